"""The gsplat (CUDA) backend of the renderer, loaded lazily.

The precompiled wheel in `wheels/` is used where it fits (`persona.avatar.gsplat_wheel`);
otherwise gsplat 1.5.3 from PyPI compiles its CUDA extension at first use (about a minute on an H100 machine with
`TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16`, cached in `TORCH_EXTENSIONS_DIR`). Whether it can
run is checked once per process; any failure (no CUDA, no compiler, a build error) is
logged with its reason and the caller falls back to the pure-PyTorch reference.
"""

from __future__ import annotations

import functools
import logging
from typing import Sequence

import torch

from persona.avatar.gsplat_wheel import use_bundled_gsplat
from persona.camera import Camera

log = logging.getLogger(__name__)


@functools.cache
def gsplat_status() -> tuple[bool, str]:
    """(usable, reason) for gsplat on this process's CUDA device."""
    if not torch.cuda.is_available():
        return False, "no CUDA device"
    log.info("gsplat: %s", use_bundled_gsplat())
    try:
        from gsplat.cuda._backend import _C
    except Exception as error:  # any import or build failure means "use the reference"
        return False, f"gsplat could not be loaded ({type(error).__name__}: {error})"
    if _C is None:
        return False, "gsplat's CUDA extension could not be built or loaded"
    return True, "gsplat CUDA extension loaded"


def rasterize_gsplat(
    means: torch.Tensor,  # (N, 3) world, metres
    quats: torch.Tensor,  # (N, 4) WXYZ, any norm
    scales: torch.Tensor,  # (N, 3) std, metres
    opacities: torch.Tensor,  # (N,) [0, 1]
    features: torch.Tensor,  # (N, D)
    cameras: Sequence[Camera],  # C cameras of one image size
    background: torch.Tensor | None,  # (D,) or None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> features (C, H, W, D), alpha (C, H, W), depth (C, H, W) (alpha-weighted z)."""
    from gsplat import rasterization

    width, height = cameras[0].width, cameras[0].height
    device, dtype = means.device, means.dtype
    viewmats = torch.stack([c.world_to_camera for c in cameras]).to(device, dtype)
    Ks = torch.stack([c.K for c in cameras]).to(device, dtype)
    backgrounds = None if background is None else background.to(device, dtype).expand(len(cameras), -1)
    image, alpha, _ = rasterization(
        means, quats / quats.norm(dim=-1, keepdim=True), scales, opacities, features, viewmats, Ks,
        width, height, near_plane=0.01, eps2d=0.3, packed=False, backgrounds=backgrounds,
        render_mode="RGB+D", rasterize_mode="classic",
    )  # fmt: skip
    # gsplat's depth channel is composited with a zero background: the accumulated z.
    return image[..., :-1], alpha[..., 0], image[..., -1]
