"""One renderer interface, two backends: the pure-PyTorch reference (CPU or CUDA) and gsplat
(CUDA). `backend="auto"` takes gsplat for CUDA tensors when it loads, else the reference;
a fallback is logged once with its reason. Both take the same inputs and return the same
`RenderOutput`; `tests/test_render_parity.py` checks values and gradients agree on a GPU.
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch

from persona.avatar.gsplat_backend import gsplat_status, rasterize_gsplat
from persona.avatar.rasterizer import RenderOutput, rasterize_gaussians
from persona.camera import Camera
from persona.errors import PersonaError

log = logging.getLogger(__name__)
BACKENDS = ("auto", "reference", "gsplat")
_warned: set[str] = set()


def resolve_backend(device: torch.device | str, requested: str = "auto") -> str:
    """The backend that will run on `device`: 'reference' or 'gsplat'."""
    if requested not in BACKENDS:
        raise PersonaError(f"Unknown renderer backend '{requested}'. Use one of: {', '.join(BACKENDS)}.")
    if requested == "reference" or (requested == "auto" and torch.device(device).type != "cuda"):
        return "reference"
    usable, reason = gsplat_status() if torch.device(device).type == "cuda" else (False, "the tensors are not on CUDA")
    if usable:
        return "gsplat"
    if reason not in _warned:
        _warned.add(reason)
        log.warning("renderer: using the pure-PyTorch reference instead of gsplat: %s", reason)
    return "reference"


def render(
    means: torch.Tensor,  # (N, 3)
    quats: torch.Tensor,  # (N, 4) WXYZ
    scales: torch.Tensor,  # (N, 3) std, metres
    opacities: torch.Tensor,  # (N,)
    features: torch.Tensor,  # (N, D)
    cameras: Camera | Sequence[Camera],
    background: torch.Tensor | None = None,  # (D,)
    backend: str = "auto",
) -> RenderOutput:
    """Render for one camera (outputs (H, W, ...)) or several cameras of one image size
    (outputs with a leading camera dimension (C, H, W, ...))."""
    if background is not None:
        background = background.to(means.device, means.dtype)
    single = isinstance(cameras, Camera)
    cams = [cameras] if single else list(cameras)
    if len({(c.width, c.height) for c in cams}) != 1:
        raise ValueError("all cameras of one render call must share the image size")
    if resolve_backend(means.device, backend) == "gsplat":
        feats, alpha, depth = rasterize_gsplat(means, quats, scales, opacities, features, cams, background)
        out = RenderOutput(feats, alpha, depth)
    elif single:
        return rasterize_gaussians(means, quats, scales, opacities, features, cams[0], background)
    else:
        outs = [rasterize_gaussians(means, quats, scales, opacities, features, c, background) for c in cams]
        out = RenderOutput(*(torch.stack(t) for t in zip(*((o.features, o.alpha, o.depth) for o in outs))))
    return RenderOutput(out.features[0], out.alpha[0], out.depth[0]) if single else out
