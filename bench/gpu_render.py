"""GPU timings of the renderer backends (run on the device machine).

    python bench/gpu_render.py [--out bench/results/gpu_render.json]

Measures, on one CUDA GPU, with CUDA events after warm-up:
1. raw gsplat forward+backward, N = 55k (standard preset) at 512x512;
2. an avatar photo-training step on the same Gaussians: skinning of canonical points by
   per-Gaussian blended transforms, render, 0.8 L1 + 0.2 (1 - SSIM) + mask L1, backward,
   Adam step (the operations of `persona.avatar.train.optimize_on_photo`);
3. the reference (pure PyTorch) backend's forward+backward of (1) on the same GPU;
4. animation throughput: 150k Gaussians, 512x512, LBS with 104 bones + render, no grad,
   16 cameras per call.
"""

from __future__ import annotations

import argparse
import json
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import torch

from persona.avatar.losses import ssim
from persona.avatar.model import blend_points
from persona.avatar.renderer import render, resolve_backend
from persona.camera import orbit_camera
from rasterizer_cpu import ellipsoid_scene  # bench/ is on sys.path when run as a script


def cuda_ms(fn, repeats: int = 20) -> float:
    """Median milliseconds of fn() on the GPU, after 3 warm-up calls."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def scene(n: int, size: int):
    s = {k: v.cuda() for k, v in ellipsoid_scene(n).items()}
    camera = orbit_camera(torch.tensor([0.0, 0.9, 0.0]), 2.6, 0.0, 5.0, size, size, 45.0).to("cuda")
    return s, camera


def raw_step(s, camera, backend):
    leaves = [s[k].clone().requires_grad_(True) for k in ("means", "quats", "scales", "opacities", "features")]

    def step():
        out = render(*leaves, camera, torch.ones(3, device="cuda"), backend=backend)
        (out.features.sum() + out.alpha.sum()).backward()

    return step


def training_step(s, camera, joints: int = 104):
    n = s["means"].shape[0]
    g = torch.Generator(device="cuda").manual_seed(0)
    blended = torch.eye(4, device="cuda")[:3].expand(n, 3, 4).contiguous()
    blended[:, :, 3] += 0.01 * torch.randn(n, 3, device="cuda", generator=g)
    canonical = s["means"].clone()
    offsets = torch.zeros(n, 3, device="cuda", requires_grad=True)
    log_scales = s["scales"][:, :1].log().clone().requires_grad_(True)
    color_logits = torch.zeros(n, 3, device="cuda", requires_grad=True)
    quats = torch.zeros(n, 4, device="cuda")
    quats[:, 0] = 1
    opacities = torch.full((n,), 0.99, device="cuda")
    optimizer = torch.optim.Adam([offsets, log_scales, color_logits], lr=1e-3, fused=True)
    target = torch.rand(camera.height, camera.width, 3, device="cuda", generator=g)
    mask = (torch.rand(camera.height, camera.width, device="cuda", generator=g) > 0.5).float()
    white = torch.ones(3, device="cuda")

    def step():
        optimizer.zero_grad(set_to_none=True)
        points = canonical + offsets
        means = (blended[..., :3] @ points[..., None])[..., 0] + blended[..., 3]
        out = render(means, quats, log_scales.exp().expand(n, 3), opacities, torch.sigmoid(color_logits), camera, white)
        loss = 0.8 * (out.features - target).abs().mean() + 0.2 * (1 - ssim(out.features, target))
        loss = loss + (out.alpha - mask).abs().mean()
        loss.backward()
        optimizer.step()

    return step


def animation_fps(n: int, size: int, batch: int = 16, joints: int = 104) -> float:
    s, _ = scene(n, size)
    weights = torch.softmax(torch.randn(n, joints, device="cuda"), -1)
    transforms = torch.eye(4, device="cuda").expand(batch, joints, 4, 4).contiguous()
    cameras = [orbit_camera(torch.tensor([0.0, 0.9, 0.0]), 2.6, 360.0 * i / batch, 5.0, size, size, 45.0).to("cuda") for i in range(batch)]
    white = torch.ones(3, device="cuda")

    @torch.no_grad()
    def frames():
        posed = blend_points(weights, transforms, s["means"])  # (batch, N, 3)
        for i in range(batch):  # one pose per frame, all rendered
            render(posed[i], s["quats"], s["scales"], s["opacities"], s["features"], cameras[i], white)

    ms = cuda_ms(frames, repeats=10)
    return 1000.0 * batch / ms


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("bench/results/gpu_render.json"))
    args = parser.parse_args()
    assert resolve_backend("cuda") == "gsplat", "gsplat is not usable here"
    s, camera = scene(55_000, 512)
    results = {
        "gsplat_fwd_bwd_ms_55k_512": cuda_ms(raw_step(s, camera, "gsplat")),
        "training_step_ms_55k_512": cuda_ms(training_step(s, camera)),
        "reference_fwd_bwd_ms_55k_512": cuda_ms(raw_step(s, camera, "reference"), repeats=5),
        "animation_fps_150k_512": animation_fps(150_000, 512),
    }
    results["training_step_over_gsplat"] = results["training_step_ms_55k_512"] / results["gsplat_fwd_bwd_ms_55k_512"]
    record = {
        "benchmark": "gpu_render",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(0),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "gsplat": metadata.version("gsplat"),
        },
        "results": {k: round(v, 3) for k, v in results.items()},
        "targets": {"training_step_over_gsplat": 2.0, "animation_fps_150k_512": 300},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
