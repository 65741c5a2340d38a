"""gsplat (CUDA) against the pure-PyTorch reference: values and gradients.

The GPU tests are marked `gpu` (skipped without CUDA); run them on the device machine. The
backend choice is tested on any machine. Tolerances (float32): images agree to 2e-3 mean
absolute difference, with isolated pixels allowed to differ where an alpha sits on gsplat's
1/255 cut-off; gradients agree in direction (cosine > 0.99) and norm (within 5%).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
import torch

from persona.avatar.renderer import render, resolve_backend
from persona.camera import Camera, orbit_camera

DATA = Path(__file__).resolve().parent / "data" / "avatar_scene.safetensors"


def test_cpu_tensors_use_the_reference():
    assert resolve_backend("cpu") == "reference"
    assert resolve_backend("cpu", "gsplat") == "reference"  # falls back, with a logged reason


def test_several_cameras_match_one_by_one():
    g = torch.Generator().manual_seed(0)
    scene = random_scene(200, 3, g, "cpu")
    cams = [orbit_camera(torch.tensor([0.0, 0.0, 0.0]), 3.0, az, 10.0, 40, 32, 40.0) for az in (0.0, 30.0)]
    batch = render(*scene, cams, backend="reference")
    for i, cam in enumerate(cams):
        one = render(*scene, cam, backend="reference")
        assert torch.equal(batch.features[i], one.features) and torch.equal(batch.alpha[i], one.alpha)


def random_scene(n: int, channels: int, g: torch.Generator, device) -> tuple[torch.Tensor, ...]:
    means = torch.randn(n, 3, generator=g) * torch.tensor([0.4, 0.8, 0.3])
    quats = torch.randn(n, 4, generator=g)
    scales = torch.exp(torch.empty(n, 3).uniform_(math.log(0.005), math.log(0.05), generator=g))
    opacities = torch.empty(n).uniform_(0.2, 0.95, generator=g)
    features = torch.rand(n, channels, generator=g)
    return tuple(t.to(device) for t in (means, quats, scales, opacities, features))


def compare(scene, cameras, background, label, isotropic=False):
    """Render with both backends; check values and gradients; return the measured gaps.
    For isotropic Gaussians the rotation gradient is zero in theory: both must be tiny."""
    results = {}
    for backend in ("reference", "gsplat"):
        leaves = [t.clone().requires_grad_(True) for t in scene]
        out = render(*leaves, cameras, background, backend=backend)
        g = torch.Generator(device=out.features.device).manual_seed(1)
        loss = (
            (out.features * torch.rand(out.features.shape, generator=g, device=out.features.device)).sum()
            + (out.alpha * torch.rand(out.alpha.shape, generator=g, device=out.alpha.device)).sum()
            + 0.1 * (out.depth * torch.rand(out.depth.shape, generator=g, device=out.depth.device)).sum()
        )
        loss.backward()
        results[backend] = (out, [t.grad for t in leaves])
    (ref, ref_grads), (fast, fast_grads) = results["reference"], results["gsplat"]
    gaps = {}
    for name in ("features", "alpha", "depth"):
        a, b = getattr(ref, name), getattr(fast, name)
        gaps[name] = ((a - b).abs().mean().item(), (a - b).abs().max().item())
        assert gaps[name][0] < 2e-3, (label, name, gaps[name])
    for name, a, b in zip(("means", "quats", "scales", "opacities", "features"), ref_grads, fast_grads):
        if isotropic and name == "quats":
            scale = ref_grads[0].norm()
            gaps["grad_quats_relative_norms"] = ((a.norm() / scale).item(), (b.norm() / scale).item())
            assert a.norm() < 1e-4 * scale and b.norm() < 1e-4 * scale
            continue
        cos = torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()
        ratio = (b.norm() / a.norm()).item()
        gaps[f"grad_{name}"] = (cos, ratio)
        assert cos > 0.99 and abs(ratio - 1) < 0.05, (label, name, cos, ratio)
    print(label, {k: tuple(round(x, 6) for x in v) for k, v in gaps.items()})
    return gaps


@pytest.mark.gpu
@pytest.mark.parametrize("n, channels", [(2000, 3), (20000, 3), (5000, 8)])
def test_gsplat_matches_the_reference_on_random_scenes(n, channels):
    assert resolve_backend("cuda") == "gsplat", "gsplat did not load on this CUDA machine"
    g = torch.Generator().manual_seed(n + channels)
    scene = random_scene(n, channels, g, "cuda")
    cameras = [orbit_camera(torch.zeros(3), 3.0, az, 10.0, 160, 120, 45.0).to("cuda") for az in (0.0, 70.0, 180.0)]
    compare(scene, cameras, torch.rand(channels, generator=g).cuda(), f"random N={n} D={channels}")


@pytest.mark.gpu
def test_gsplat_matches_the_reference_on_a_real_avatar():
    import safetensors.torch

    t = safetensors.torch.load_file(DATA, device="cuda")
    n = t["means"].shape[0]
    quats = torch.zeros(n, 4, device="cuda")
    quats[:, 0] = 1
    fx, fy, cx, cy = t["intrinsics"].tolist()
    width, height = t["size"].tolist()
    camera = Camera(t["world_to_camera"], fx, fy, cx, cy, int(width), int(height))
    scene = (t["means"], quats, t["scales"], torch.full((n,), 0.99, device="cuda"), t["colors"])
    compare(scene, camera, torch.ones(3, device="cuda"), f"avatar N={n}", isotropic=True)


@pytest.mark.gpu
def test_auto_picks_gsplat_on_cuda(caplog):
    with caplog.at_level(logging.WARNING):
        assert resolve_backend(torch.device("cuda")) == "gsplat"
    assert "instead of gsplat" not in caplog.text


def test_the_bundled_gsplat_wheel_is_chosen_only_where_it_fits(tmp_path):
    import zipfile

    from persona.avatar.gsplat_wheel import WHEELS, interpreter_tags, matching_wheel, unpacked

    python_tag, platform_tag = interpreter_tags()
    ours = tmp_path / f"gsplat-1.5.3-{python_tag}-{python_tag}-{platform_tag}.whl"
    with zipfile.ZipFile(ours, "w") as zf:
        zf.writestr("gsplat/__init__.py", "MARK = 1\n")
    (tmp_path / "gsplat-1.5.3-cp39-cp39-win_amd64.whl").write_bytes(b"")
    wheel, reason = matching_wheel(tmp_path, "2.11.0+cu130")
    assert wheel is not None and wheel.path == ours, reason
    for version in ("2.13.0", "2.11.0+cpu", "2.8.0+cu128"):
        assert matching_wheel(tmp_path, version)[0] is None
    assert matching_wheel(tmp_path / "empty", "2.11.0+cu130")[0] is None
    folder = unpacked(wheel, tmp_path / "cache")
    assert (folder / "gsplat" / "__init__.py").read_text() == "MARK = 1\n" and (folder / ".complete").exists()
    # The one in the repository is for the Space and the benchmark machine: CPython 3.12 on x86-64 Linux.
    assert [p.name for p in WHEELS.glob("gsplat-*.whl")] == ["gsplat-1.5.3-cp312-cp312-linux_x86_64.whl"]
