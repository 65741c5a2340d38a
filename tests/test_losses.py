"""The separable SSIM equals the textbook 2D-window SSIM; PSNR and IoU basics."""

import torch
import torch.nn.functional as F

from persona.avatar.losses import iou, psnr, ssim


def ssim_2d_window(a: torch.Tensor, b: torch.Tensor, size: int = 11) -> torch.Tensor:
    """Reference: one 2D Gaussian window per moment, as in 3DGS's loss_utils."""
    C = a.shape[-1]
    x, y = a.permute(2, 0, 1)[None], b.permute(2, 0, 1)[None]
    t = torch.arange(size, dtype=a.dtype) - size // 2
    g = torch.exp(-(t**2) / (2 * 1.5**2))
    g = g / g.sum()
    window = (g[:, None] * g[None]).expand(C, 1, size, size)
    blur = lambda z: F.conv2d(z, window, padding=size // 2, groups=C)  # noqa: E731
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    return (((2 * mx * my + 1e-4) * (2 * cxy + 9e-4)) / ((mx**2 + my**2 + 1e-4) * (vx + vy + 9e-4))).mean()


def test_separable_ssim_matches_the_2d_window():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(37, 53, 3, generator=g, dtype=torch.float64)
    b = (a + 0.1 * torch.randn(37, 53, 3, generator=g, dtype=torch.float64)).clamp(0, 1)
    assert torch.allclose(ssim(a, b), ssim_2d_window(a, b), atol=1e-12)
    assert torch.allclose(ssim(a, a), torch.tensor(1.0, dtype=torch.float64))


def test_psnr_and_iou():
    a = torch.zeros(4, 4, 3)
    b = torch.full((4, 4, 3), 0.1)
    assert abs(psnr(a, b) - 20.0) < 1e-4
    mask = torch.zeros(4, 4)
    mask[:2] = 1
    assert iou(mask, mask) == 1.0
    assert iou(mask, 1 - mask) == 0.0
