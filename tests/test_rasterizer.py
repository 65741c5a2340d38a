"""Tests of the pure-PyTorch Gaussian rasterizer (`persona.avatar.rasterizer`), CPU only."""

from __future__ import annotations

import math

import pytest
import torch

from persona.avatar.rasterizer import project_gaussians, rasterize_gaussians
from persona.camera import Camera

F64 = torch.float64
# gsplat 1.5's constants, restated so the reference below stays independent of the module.
ALPHA_MIN, ALPHA_MAX, T_MIN = 1.0 / 255.0, 0.999, 1e-4


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from threads, and a busy machine makes each parallel op slow."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_camera(width: int, height: int, f: float, dtype=F64) -> Camera:
    """Camera at the origin looking along +Z (OpenCV), principal point at the centre."""
    return Camera(torch.eye(4, dtype=dtype), f, f, width / 2, height / 2, width, height)


def identity_quats(n: int, dtype=F64) -> torch.Tensor:  # (n, 4) WXYZ
    return torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=dtype).repeat(n, 1)


def pixel_centres(camera: Camera, dtype=F64) -> torch.Tensor:  # (H, W, 2) x, y in px
    rows, cols = torch.arange(camera.height, dtype=dtype), torch.arange(camera.width, dtype=dtype)
    ys, xs = torch.meshgrid(rows, cols, indexing="ij")
    return torch.stack([xs, ys], -1) + 0.5


def brute_force(means, quats, scales, opacities, features, camera, background=None):
    """Independent N x H x W reference of gsplat 1.5's math, differentiable by autograd.

    Every Gaussian is evaluated at every pixel (no bounding boxes, no tiles).
    Returns features (H, W, C), alpha (H, W), depth (H, W)."""
    dtype = means.dtype
    R = camera.world_to_camera[:3, :3].to(dtype)
    t = camera.world_to_camera[:3, 3].to(dtype)
    cam = means @ R.T + t  # (N, 3)
    w, x, y, z = (quats / quats.norm(dim=1, keepdim=True)).unbind(1)
    rot = torch.stack(
        [
            torch.stack([1 - 2 * (y**2 + z**2), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            torch.stack([2 * (x * y + w * z), 1 - 2 * (x**2 + z**2), 2 * (y * z - w * x)], -1),
            torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x**2 + y**2)], -1),
        ],
        1,
    )  # (N, 3, 3)
    cov3 = R @ rot @ torch.diag_embed(scales**2) @ rot.transpose(1, 2) @ R.T  # camera frame
    tx, ty, tz = cam.unbind(1)
    # The Jacobian sees x/z, y/z clamped to 1.3x the half field of view (centred cameras here).
    lim_x = 1.3 * camera.width / 2 / camera.fx
    lim_y = 1.3 * camera.height / 2 / camera.fy
    jx = tz * (tx / tz).clamp(-lim_x, lim_x)
    jy = tz * (ty / tz).clamp(-lim_y, lim_y)
    zero = torch.zeros_like(tz)
    J = torch.stack(
        [
            torch.stack([camera.fx / tz, zero, -camera.fx * jx / tz**2], -1),
            torch.stack([zero, camera.fy / tz, -camera.fy * jy / tz**2], -1),
        ],
        1,
    )  # (N, 2, 3)
    cov2 = J @ cov3 @ J.transpose(1, 2) + 0.3 * torch.eye(2, dtype=dtype)
    conic = torch.linalg.inv(cov2)  # (N, 2, 2)
    mean2 = torch.stack([camera.fx * tx / tz + camera.cx, camera.fy * ty / tz + camera.cy], -1)

    pixels = pixel_centres(camera, dtype)
    H, W, C = camera.height, camera.width, features.shape[1]
    T = torch.ones(H, W, dtype=dtype)
    done = torch.zeros(H, W, dtype=torch.bool)
    out = torch.zeros(H, W, C, dtype=dtype)
    acc_alpha = torch.zeros(H, W, dtype=dtype)
    acc_depth = torch.zeros(H, W, dtype=dtype)
    for i in torch.argsort(tz.detach(), stable=True).tolist():
        if tz[i] < 0.01:
            continue
        d = pixels - mean2[i]  # (H, W, 2)
        sigma = 0.5 * torch.einsum("hwi,ij,hwj->hw", d, conic[i], d)
        alpha = (opacities[i] * torch.exp(-sigma)).clamp(max=ALPHA_MAX)
        use = (alpha >= ALPHA_MIN) & ~done
        next_T = T * (1 - alpha)
        stop = use & (next_T <= T_MIN)  # gsplat stops before this Gaussian
        done = done | stop
        use = use & ~stop
        weight = torch.where(use, alpha * T, torch.zeros_like(T))
        out = out + weight[..., None] * features[i]
        acc_alpha = acc_alpha + weight
        acc_depth = acc_depth + weight * tz[i]
        T = torch.where(use, next_T, T)
    if background is not None:
        out = out + (1 - acc_alpha)[..., None] * background
    return out, acc_alpha, acc_depth


def random_scene(n: int, seed: int, dtype=F64, channels: int = 3) -> dict[str, torch.Tensor]:
    """n Gaussians around the view of `make_camera(24, 20, 30)`: some off-screen, two behind
    the camera, enough overlap that some pixels reach the transmittance stop."""
    g = torch.Generator().manual_seed(seed)
    z = 1.0 + 2.0 * torch.rand(n, generator=g, dtype=dtype)
    z[:2] = torch.tensor([-1.0, 0.005], dtype=dtype)  # culled: behind / before the near plane
    spread = torch.tensor([1.4, 1.2], dtype=dtype)  # beyond the 0.8 x 0.67 field of view
    xy = (torch.rand(n, 2, generator=g, dtype=dtype) - 0.5) * spread * z.abs()[:, None]
    xy[2:14] *= 0.15  # a stack of nearly opaque Gaussians in the middle
    opacities = 0.3 + 0.68 * torch.rand(n, generator=g, dtype=dtype)
    opacities[2:14] = 0.9 + 0.08 * torch.rand(12, generator=g, dtype=dtype)
    return {
        "means": torch.cat([xy, z[:, None]], 1),
        "quats": torch.randn(n, 4, generator=g, dtype=dtype),
        "scales": 0.03 + 0.1 * torch.rand(n, 3, generator=g, dtype=dtype),
        "opacities": opacities,
        "features": torch.rand(n, channels, generator=g, dtype=dtype),
    }


def test_single_isotropic_gaussian_matches_analytic_profile():
    f, z, sigma, opacity = 50.0, 2.0, 0.1, 0.8
    camera = make_camera(41, 41, f)  # pixel (20, 20) has its centre on the optical axis
    out = rasterize_gaussians(
        means=torch.tensor([[0.0, 0.0, z]], dtype=F64),
        quats=identity_quats(1),
        scales=torch.full((1, 3), sigma, dtype=F64),
        opacities=torch.tensor([opacity], dtype=F64),
        features=torch.ones(1, 1, dtype=F64),
        camera=camera,
    )
    # Head-on, the 2D std is f * sigma / z (2.5 px); gsplat adds a 0.3 px^2 low-pass.
    var = (f * sigma / z) ** 2 + 0.3
    assert torch.argmax(out.alpha).item() == 20 * 41 + 20
    for dx, dy in [(0, 0), (1, 0), (0, 3), (2, -2), (-4, 1)]:
        expected = opacity * math.exp(-0.5 * (dx * dx + dy * dy) / var)
        assert out.alpha[20 + dy, 20 + dx].item() == pytest.approx(expected, rel=1e-9)
        assert out.features[20 + dy, 20 + dx, 0].item() == pytest.approx(expected, rel=1e-9)
        assert out.depth[20 + dy, 20 + dx].item() == pytest.approx(expected * z, rel=1e-9)


@pytest.mark.parametrize("red_in_front", [True, False])
def test_occlusion_order(red_in_front: bool):
    camera = make_camera(17, 17, 20.0, torch.float32)  # pixel (8, 8) on the axis
    z_red, z_blue = (1.0, 2.0) if red_in_front else (2.0, 1.0)
    out = rasterize_gaussians(
        means=torch.tensor([[0.0, 0.0, z_red], [0.0, 0.0, z_blue]]),
        quats=identity_quats(2, torch.float32),
        scales=torch.full((2, 3), 0.3),
        opacities=torch.tensor([0.999, 0.999]),
        features=torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]),
        camera=camera,
        tile_size=4,
    )
    expected = [1.0, 0.0, 0.0] if red_in_front else [0.0, 0.0, 1.0]
    torch.testing.assert_close(out.features[8, 8], torch.tensor(expected), atol=2e-3, rtol=0)


def test_empty_scene_gives_background_and_single_opaque_depth():
    camera = make_camera(13, 11, 15.0, torch.float32)  # pixel (5, 6) on the axis
    background = torch.tensor([0.2, 0.4, 0.6])
    empty = rasterize_gaussians(
        torch.zeros(0, 3), torch.zeros(0, 4), torch.zeros(0, 3), torch.zeros(0),
        torch.zeros(0, 3), camera, background,
    )
    torch.testing.assert_close(empty.features, background.expand(11, 13, 3))
    assert empty.alpha.abs().max() == 0 and empty.depth.abs().max() == 0

    # A large opaque Gaussian at z = 3 m: alpha saturates at 0.999 in the middle.
    out = rasterize_gaussians(
        torch.tensor([[0.0, 0.0, 3.0]]), identity_quats(1, torch.float32),
        torch.full((1, 3), 2.0), torch.tensor([1.0]), torch.ones(1, 3), camera, background,
    )
    assert out.alpha[5, 6].item() == pytest.approx(0.999, abs=1e-6)
    assert out.depth[5, 6].item() / out.alpha[5, 6].item() == pytest.approx(3.0, rel=1e-6)
    torch.testing.assert_close(out.features[5, 6], 0.999 + 0.001 * background)


def test_culling_behind_camera_and_off_screen():
    camera = make_camera(12, 10, 15.0)
    means = torch.tensor(
        [[0.0, 0.0, -1.0], [0.0, 0.0, 0.005], [50.0, 0.0, 1.0], [0.0, 0.0, 2.0]], dtype=F64
    )
    scales = torch.full((4, 3), 0.05, dtype=F64)
    opacities = torch.full((4,), 0.9, dtype=F64)
    proj = project_gaussians(means, identity_quats(4), scales, opacities, camera)
    assert proj.valid.tolist() == [False, False, False, True]
    assert (proj.radii[:3] == 0).all() and (proj.radii[3] > 0).all()

    # Culled Gaussians get exactly zero (not NaN) gradients.
    means, scales = means.requires_grad_(True), scales.requires_grad_(True)
    features = torch.ones(4, 2, dtype=F64)
    out = rasterize_gaussians(means, identity_quats(4), scales, opacities, features, camera)
    (out.features.sum() + out.depth.sum()).backward()
    for p in (means, scales):
        assert torch.isfinite(p.grad).all() and (p.grad[:3] == 0).all()
        assert p.grad[3].abs().sum() > 0


@pytest.mark.parametrize("tile_size", [1, 4, 8, 16])
def test_tiled_equals_brute_force_values_and_gradients(tile_size: int):
    scene = random_scene(80, seed=tile_size)
    camera = make_camera(24, 20, 30.0)
    background = torch.tensor([0.1, 0.5, 0.9], dtype=F64)
    weights = torch.randn(20, 24, 5, generator=torch.Generator().manual_seed(1), dtype=F64)

    def loss_and_grads(render):
        params = {k: v.clone().requires_grad_(True) for k, v in scene.items()}
        feats, alpha, depth = render(params)
        images = torch.cat([feats, alpha[..., None], depth[..., None]], -1)  # (H, W, 5)
        (images * weights).sum().backward()
        return images.detach(), {k: p.grad for k, p in params.items()}

    def tiled(p):
        out = rasterize_gaussians(**p, camera=camera, background=background, tile_size=tile_size)
        return out.features, out.alpha, out.depth

    images, grads = loss_and_grads(tiled)
    ref_images, ref_grads = loss_and_grads(
        lambda p: brute_force(**p, camera=camera, background=background)
    )
    assert (images[..., 3] > 0.3).float().mean() > 0.3  # the scene does cover the image
    torch.testing.assert_close(images, ref_images, rtol=1e-9, atol=1e-10)
    for name in grads:
        torch.testing.assert_close(grads[name], ref_grads[name], rtol=1e-7, atol=1e-9, msg=name)


def test_saturated_pixels_stop_like_gsplat():
    """Many opaque layers: the T <= 1e-4 stop matters and must agree with the reference."""
    camera = make_camera(10, 8, 12.0)
    n = 6
    params = {
        "means": torch.tensor([[0.0, 0.0, 1.0 + 0.2 * i] for i in range(n)], dtype=F64),
        "quats": identity_quats(n),
        "scales": torch.full((n, 3), 0.4, dtype=F64),
        "opacities": torch.full((n,), 0.98, dtype=F64),
        "features": torch.eye(n, dtype=F64),
    }
    out = rasterize_gaussians(**params, camera=camera, tile_size=4)
    torch.testing.assert_close(out.features, brute_force(**params, camera=camera)[0])
    assert out.features[4, 5, 3:].abs().max() == 0  # layers behind the stop do not show


def test_float32_matches_float64():
    """The float32 path (the product's) against float64, on the random scene."""
    scene = random_scene(80, seed=3)
    out64 = rasterize_gaussians(**scene, camera=make_camera(24, 20, 30.0))
    scene32 = {k: v.float() for k, v in scene.items()}
    out32 = rasterize_gaussians(**scene32, camera=make_camera(24, 20, 30.0, torch.float32))
    for a, b in [(out32.features, out64.features), (out32.alpha, out64.alpha)]:
        torch.testing.assert_close(a.double(), b, atol=1e-4, rtol=1e-4)


def test_gradcheck_tiny_scene():
    # 4 Gaussians, 12x10 image, tile 4 (several tiles, Gaussians straddling tile borders).
    camera = make_camera(12, 10, 12.0)
    means = torch.tensor(
        [[0.05, -0.02, 1.0], [-0.2, 0.1, 1.3], [0.15, 0.12, 1.6], [-0.05, -0.15, 1.1]], dtype=F64
    )
    quats = torch.tensor(
        [[1.0, 0.1, -0.2, 0.05], [0.9, 0.3, 0.1, -0.2], [0.7, -0.1, 0.4, 0.2], [1, 0, 0.3, 0.1]],
        dtype=F64,
    )
    scales = torch.tensor(
        [[0.08, 0.05, 0.06], [0.06, 0.1, 0.05], [0.12, 0.07, 0.09], [0.05, 0.05, 0.07]], dtype=F64
    ) * 1.05  # 1.05: keeps every pixel's alpha clear of 1/255
    opacities = torch.tensor([0.6, 0.8, 0.7, 0.5], dtype=F64)
    features = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.3, 0.6]], dtype=F64)
    background = torch.tensor([0.25, 0.75], dtype=F64)

    # The scene keeps clear of the non-differentiable thresholds: no pixel's alpha near 1/255,
    # opacity * exp(...) well below 0.999, transmittance far above 1e-4.
    proj = project_gaussians(means, quats, scales, opacities, camera)
    d = pixel_centres(camera)[None] - proj.means2d[:, None, None]  # (N, H, W, 2)
    a, b, c = proj.conics[:, None, None].unbind(-1)
    sigma = 0.5 * (a * d[..., 0] ** 2 + c * d[..., 1] ** 2) + b * d[..., 0] * d[..., 1]
    alphas = opacities[:, None, None] * torch.exp(-sigma)  # (N, H, W)
    assert (alphas - ALPHA_MIN).abs().min() > 1e-4 and alphas.max() < 0.9
    assert proj.valid.all()

    def render(means, quats, scales, opacities, features):
        out = rasterize_gaussians(means, quats, scales, opacities, features, camera, background, 4)
        return out.features, out.alpha, out.depth

    inputs = [x.clone().requires_grad_(True) for x in (means, quats, scales, opacities, features)]
    assert torch.autograd.gradcheck(render, tuple(inputs), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_rejects_bad_shapes():
    camera = make_camera(8, 8, 10.0)
    good = random_scene(20, seed=0)
    with pytest.raises(ValueError, match="quats must have shape"):
        rasterize_gaussians(**{**good, "quats": good["quats"][:, :3]}, camera=camera)
    with pytest.raises(ValueError, match="background must have shape"):
        rasterize_gaussians(**good, camera=camera, background=torch.zeros(2, dtype=F64))
