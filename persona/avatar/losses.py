"""Image losses: L1, SSIM (Gaussian window, as in 3DGS) and the mask term."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _gaussian_window(size: int = 11, sigma: float = 1.5, dtype=torch.float32) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(a: torch.Tensor, b: torch.Tensor, window_size: int = 11) -> torch.Tensor:
    """Mean SSIM of two images (H, W, C) in [0, 1]."""
    C = a.shape[-1]
    x, y = a.permute(2, 0, 1)[None], b.permute(2, 0, 1)[None]
    w = _gaussian_window(window_size, dtype=a.dtype).to(a.device).expand(C, 1, window_size, window_size)
    blur = lambda t: F.conv2d(t, w, padding=window_size // 2, groups=C)  # noqa: E731
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (num / den).mean()


def psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """PSNR in dB of images (H, W, C) in [0, 1], over the pixels where mask (H, W) > 0.5."""
    err = (a - b).square().mean(-1)
    if mask is not None:
        err = err[mask > 0.5]
    mse = float(err.mean()) if err.numel() else float("nan")
    return float("inf") if mse == 0 else -10.0 * torch.log10(torch.tensor(mse)).item()


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    """Intersection over union of two masks (H, W) thresholded at 0.5."""
    a, b = a > 0.5, b > 0.5
    union = (a | b).sum()
    return float((a & b).sum() / union) if union > 0 else 1.0
