"""Image losses: L1, SSIM (Gaussian window, as in 3DGS) and the mask term; the alignment of a
relative depth map."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=16)
def _gaussian_kernel(size: int = 11, sigma: float = 1.5, dtype=torch.float32, device=torch.device("cpu")) -> torch.Tensor:
    """(size,) normalised 1D Gaussian, made once per device (a copy to the GPU would wait for
    it at every training step)."""
    x = torch.arange(size, dtype=dtype, device=device) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(a: torch.Tensor, b: torch.Tensor, window_size: int = 11) -> torch.Tensor:
    """Mean SSIM of two images (H, W, C) in [0, 1] (11x11 Gaussian window, sigma 1.5, zero
    padding, as 3DGS). The window is separable: the five local moments are blurred together
    by one vertical and one horizontal 1D convolution."""
    C = a.shape[-1]
    x, y = a.permute(2, 0, 1)[None], b.permute(2, 0, 1)[None]
    moments = torch.cat([x, y, x * x, y * y, x * y], 1)  # (1, 5C, H, W)
    k = _gaussian_kernel(window_size, dtype=a.dtype, device=a.device)
    pad = window_size // 2
    blurred = F.conv2d(moments, k.view(1, 1, -1, 1).expand(5 * C, 1, -1, 1), padding=(pad, 0), groups=5 * C)
    blurred = F.conv2d(blurred, k.view(1, 1, 1, -1).expand(5 * C, 1, 1, -1), padding=(0, pad), groups=5 * C)
    mu_x, mu_y, xx, yy, xy = blurred.split(C, 1)
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
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


def affine_aligned(target: torch.Tensor, reference: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """target (h, w), a depth map known up to a scale and a shift (a monocular estimate), mapped
    to `a * target + b` with (a, b) the weighted least-squares fit to reference (h, w) over
    weight (h, w) >= 0; a >= 0. The fit carries no gradient: a loss against the result pulls
    the reference towards the target's shape, not its scale. Written without branching on the
    data (no GPU wait): a flat or empty target gives a = 0, b = the reference's mean."""
    with torch.no_grad():
        total = weight.sum().clamp(min=1e-12)
        t_mean, r_mean = (weight * target).sum() / total, (weight * reference).sum() / total
        t, r = target - t_mean, reference - r_mean
        a = ((weight * t * r).sum() / (weight * t * t).sum().clamp(min=1e-12)).clamp(min=0)
        b = r_mean - a * t_mean
    return a * target + b
