"""CPU timing of the pure-PyTorch Gaussian rasterizer (`persona.avatar.rasterizer`).

Scene: N small isotropic Gaussians spread on a human-sized ellipsoid surface (1.7 m tall),
seen by a 384x512 camera from 2.3 m, covering about a third of the image; each
Gaussian covers a few to ~50 pixels. Times forward (no autograd, as a preview render)
and forward+backward (RGB + alpha + depth loss, as a training step); min and median over
repeats, 2 threads by default.

    python bench/rasterizer_cpu.py [--sizes 20000 60000] [--tile-size 8] [--repeats 7]
                                   [--threads 2] [--tune-allocator]

Writes bench/results/rasterizer_cpu.json (`--out` to change).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path

import torch

from persona.avatar.rasterizer import (
    project_gaussians,
    rasterize_gaussians,
    select_contributions,
    tune_cpu_allocator,
)
from persona.camera import orbit_camera


def ellipsoid_scene(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """n Gaussians on an ellipsoid of semi-axes (0.36, 0.85, 0.2) m centred at y = 0.9 m."""
    g = torch.Generator().manual_seed(seed)
    direction = torch.randn(n, 3, generator=g)
    direction = direction / direction.norm(dim=1, keepdim=True)
    means = direction * torch.tensor([0.36, 0.85, 0.2]) + torch.tensor([0.0, 0.9, 0.0])
    # Log-uniform std 3-9 mm at 20k, finer for more Gaussians (same surface coverage).
    sigma = torch.exp(torch.empty(n).uniform_(math.log(3e-3), math.log(9e-3), generator=g))
    sigma = sigma * math.sqrt(20000 / n)
    return {
        "means": means,
        "quats": torch.randn(n, 4, generator=g),
        "scales": sigma[:, None].expand(n, 3).contiguous(),
        "opacities": torch.empty(n).uniform_(0.5, 1.0, generator=g),
        "features": torch.rand(n, 3, generator=g),
    }


def timed(fn, repeats: int) -> tuple[float, float]:
    """(min, median) wall time of fn() in ms, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3, statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20000, 60000])
    parser.add_argument("--tile-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tune-allocator", action="store_true", help="tune_cpu_allocator() first")
    default_out = Path(__file__).parent / "results" / "rasterizer_cpu.json"
    parser.add_argument("--out", type=Path, default=default_out)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tuned = tune_cpu_allocator() if args.tune_allocator else False

    width, height = 384, 512
    camera = orbit_camera(torch.tensor([0.0, 0.9, 0.0]), 2.3, 0.0, 0.0, width, height, 45.0)
    weights = torch.randn(height, width, 3, generator=torch.Generator().manual_seed(0))
    results = []
    for n in args.sizes:
        scene = ellipsoid_scene(n)
        params = {k: v.clone().requires_grad_(True) for k, v in scene.items()}

        def forward():
            with torch.no_grad():
                return rasterize_gaussians(**scene, camera=camera, tile_size=args.tile_size)

        def forward_backward():
            out = rasterize_gaussians(**params, camera=camera, tile_size=args.tile_size)
            loss = (out.features * weights).sum() + out.alpha.sum() + out.depth.sum()
            loss.backward()

        out = forward()
        proj = project_gaussians(
            scene["means"], scene["quats"], scene["scales"], scene["opacities"], camera
        )
        pixel_ids, _ = select_contributions(proj, scene["opacities"], width, height, args.tile_size)
        fwd, fwd_bwd = timed(forward, args.repeats), timed(forward_backward, args.repeats)
        row = {
            "gaussians": n,
            "width": width,
            "height": height,
            "tile_size": args.tile_size,
            "covered_fraction": round(float((out.alpha > 0.5).float().mean()), 3),
            "pixel_gaussian_pairs": len(pixel_ids),
            "forward_ms": {"min": round(fwd[0], 1), "median": round(fwd[1], 1)},
            "forward_backward_ms": {"min": round(fwd_bwd[0], 1), "median": round(fwd_bwd[1], 1)},
        }
        results.append(row)
        print(
            f"N={n:6d} {width}x{height} tile {args.tile_size}, {args.threads} threads"
            f"{', tuned allocator' if tuned else ''}: forward {fwd[0]:6.1f} ms (median "
            f"{fwd[1]:6.1f}), forward+backward {fwd_bwd[0]:6.1f} ms (median {fwd_bwd[1]:6.1f}); "
            f"{row['covered_fraction']:.0%} of pixels covered, {len(pixel_ids)} pixel-Gaussian "
            "pairs"
        )
    record = {
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "tuned_allocator": tuned,
        "torch": torch.__version__,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
