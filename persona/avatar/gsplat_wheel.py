"""Use the precompiled gsplat wheel that ships in `wheels/` when it fits this interpreter.

The Space installs gsplat from PyPI, which compiles its CUDA code at first use and cannot there
(ZeroGPU has no nvcc at build time, and a compile would eat the visitor's GPU quota). The
repository carries a wheel compiled ahead of time (`tools/build_gsplat_wheel.sh`: sm_90 and
sm_120 code, Python 3.12, torch 2.11 + CUDA 13). A wheel is a zip file: when its tags match
this interpreter and torch's version, it is unpacked once into the persona cache and put first
on `sys.path`, before anything imports gsplat, so it shadows the PyPI package. On any mismatch
nothing changes and gsplat loads (or compiles, or falls back to the reference) as usual.
"""

from __future__ import annotations

import logging
import shutil
import sys
import sysconfig
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from persona.cache import cache_root

log = logging.getLogger(__name__)
WHEELS = Path(__file__).resolve().parents[2] / "wheels"
TORCH_LINE = "2.11"  # the torch its extension was built against (its C++ ABI is tied to it)


@dataclass(frozen=True)
class BundledWheel:
    path: Path
    version: str
    python_tag: str  # e.g. cp312
    platform_tag: str  # e.g. linux_x86_64

    @staticmethod
    def parse(path: Path) -> "BundledWheel | None":
        """gsplat-{version}-{python}-{abi}-{platform}.whl, else None."""
        parts = path.name[: -len(".whl")].split("-")
        if len(parts) != 5 or parts[0] != "gsplat":
            return None
        return BundledWheel(path, parts[1], parts[2], parts[4])


def interpreter_tags() -> tuple[str, str]:
    """(python tag, platform tag) of this interpreter, as wheels name them (cp312, linux_x86_64)."""
    return f"cp{sys.version_info.major}{sys.version_info.minor}", sysconfig.get_platform().replace("-", "_").replace(".", "_")


def matching_wheel(folder: Path = WHEELS, torch_version: str = torch.__version__) -> tuple[BundledWheel | None, str]:
    """The bundled gsplat wheel usable here, or None with the reason."""
    if not torch_version.startswith(TORCH_LINE + ".") or "+cpu" in torch_version:
        return None, f"the bundled gsplat wheel needs torch {TORCH_LINE} with CUDA, this is torch {torch_version}"
    python_tag, platform_tag = interpreter_tags()
    wheels = [w for w in map(BundledWheel.parse, sorted(folder.glob("gsplat-*.whl"))) if w is not None]
    for wheel in wheels:
        if wheel.python_tag == python_tag and wheel.platform_tag == platform_tag:
            return wheel, f"bundled {wheel.path.name}"
    return None, f"no bundled gsplat wheel for {python_tag} {platform_tag} in {folder}"


def unpacked(wheel: BundledWheel, root: Path | None = None) -> Path:
    """The wheel unpacked into the persona cache (once)."""
    target = (root or cache_root() / "gsplat") / wheel.path.stem
    if not (target / ".complete").exists():
        # Unpacked beside it and renamed into place: processes starting together (a
        # benchmark's workers, an app's) never import a half-written folder.
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
        with zipfile.ZipFile(wheel.path) as zf:
            zf.extractall(staging)
        (staging / ".complete").write_text(wheel.path.name + "\n")
        try:
            staging.rename(target)
        except OSError:  # another process got there first
            shutil.rmtree(staging, ignore_errors=True)
    return target


def use_bundled_gsplat() -> str:
    """Put the matching bundled wheel first on sys.path (idempotent). Returns what was done,
    for the log. Call before gsplat is first imported."""
    if "gsplat" in sys.modules:
        return "gsplat was already imported"
    wheel, reason = matching_wheel()
    if wheel is None:
        return reason
    folder = str(unpacked(wheel))
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return f"using the precompiled {wheel.path.name}"
