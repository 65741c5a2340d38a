"""Where heavy caches live: outside the clone, in documented folders.

`PERSONA_CACHE_DIR` (default `~/.cache/persona`) holds one sub-folder per library. Each
library's own variable wins when the user has set it. `configure_caches()` must run before
anny, warp, matplotlib or gradio are imported, because they read their variable at import.
"""

from __future__ import annotations

import os
from pathlib import Path

# library variable -> sub-folder of the persona cache
_LIBRARY_CACHES = {
    "ANNY_CACHE_DIR": "anny",  # ~800 MB model build, ~85 s the first time on 2 cores
    "WARP_CACHE_PATH": "warp",  # kernels compiled by warp-lang (used by anny)
    "HF_HOME": "huggingface",  # Hub weights (optional path)
    "MPLCONFIGDIR": "matplotlib",  # font cache of matplotlib (imported by mediapipe)
    "GRADIO_TEMP_DIR": "gradio",  # uploads and outputs of the app
}


def cache_root() -> Path:
    """The persona cache folder (`PERSONA_CACHE_DIR`, default `~/.cache/persona`)."""
    return Path(os.environ.get("PERSONA_CACHE_DIR", Path.home() / ".cache" / "persona"))


def configure_caches() -> dict[str, str]:
    """Point every library cache at the persona cache unless the user chose a folder.

    Returns the variable -> folder mapping in force."""
    root = cache_root()
    for variable, sub in _LIBRARY_CACHES.items():
        os.environ.setdefault(variable, str(root / sub))
    return {variable: os.environ[variable] for variable in _LIBRARY_CACHES}
