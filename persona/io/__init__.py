"""Files in and out: pure functions from tensors/arrays to bytes or files and back.

- `persona.io.image`: load and validate the user's photo (`load_image`).
- `persona.io.video`: H.264 MP4 and RGBA PNG writers (`write_video`, `write_png_rgba`).
- `persona.io.ply`: the standard 3DGS PLY layout (`write_gaussian_ply`, `read_gaussian_ply`).
- `persona.io.package`: the `avatar.persona` zip (`write_package`, `read_package`).

Every writer goes through `atomic_write`, so a cancelled or failed run never leaves a
half-written file under the final name. Every problem a user's file can cause raises
`persona.errors.PersonaError`. Import the submodules directly; this file stays light.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; move it onto `path` only if the block succeeds.

    The temporary name keeps the final suffix (tools such as ffmpeg pick the container from
    it) and starts with a dot, so folder listings and globs on the final name skip it. It
    lives in the same folder so that the final `os.replace` is an atomic rename on the same
    file system. On any exception, Ctrl-C included, the temporary file is removed.
    The parent folder is created if missing.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: it creates files with mode 0600; a plain open() honours the umask.
    tmp = final.with_name(f".{final.stem}.{secrets.token_hex(6)}.tmp{final.suffix}")
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
