"""CPU timing of the pure-PyTorch Gaussian rasterizer (`persona.avatar.rasterizer`).

Scene: N small isotropic Gaussians spread on a human-sized ellipsoid surface (1.7 m tall),
seen by a 384x512 camera from 2.6 m, the person covering about a third of the image; each
Gaussian covers a few to ~50 pixels. Times forward and forward+backward (RGB + alpha +
depth loss), median over repeats, with 2 threads.

    python bench/rasterizer_cpu.py [--sizes 20000 60000] [--tile-size 16] [--repeats 5]

Writes bench/results/rasterizer_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from pathlib import Path

import torch

from persona.avatar.rasterizer import rasterize_gaussians, select_contributions, project_gaussians
from persona.camera import orbit_camera


def ellipsoid_scene(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """n Gaussians on an ellipsoid of semi-axes (0.3, 0.85, 0.18) m centred at y = 0.9 m."""
    g = torch.Generator().manual_seed(seed)
    direction = torch.randn(n, 3, generator=g)
    direction = direction / direction.norm(dim=1, keepdim=True)
    means = direction * torch.tensor([0.30, 0.85, 0.18]) + torch.tensor([0.0, 0.9, 0.0])
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


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20000, 60000])
    parser.add_argument("--tile-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    camera = orbit_camera(torch.tensor([0.0, 0.9, 0.0]), 2.6, 0.0, 0.0, 384, 512, 45.0)
    weights = torch.randn(512, 384, 3)
    results = []
    for n in args.sizes:
        scene = ellipsoid_scene(n)
        params = {k: v.clone().requires_grad_(True) for k, v in scene.items()}

        def forward(p=params):
            return rasterize_gaussians(**p, camera=camera, tile_size=args.tile_size)

        def forward_backward(p=params):
            out = forward(p)
            loss = (out.features * weights).sum() + out.alpha.sum() + out.depth.sum()
            loss.backward()

        with torch.no_grad():
            out = forward()
            proj = project_gaussians(
                scene["means"], scene["quats"], scene["scales"], scene["opacities"], camera
            )
            pixel_ids, _ = select_contributions(proj, scene["opacities"], 384, 512, args.tile_size)
        row = {
            "gaussians": n,
            "width": 384,
            "height": 512,
            "tile_size": args.tile_size,
            "covered_fraction": round(float((out.alpha > 0.5).float().mean()), 3),
            "pairs": len(pixel_ids),
            "forward_ms": round(timed(lambda: forward(), args.repeats), 1),
            "forward_backward_ms": round(timed(forward_backward, args.repeats), 1),
        }
        results.append(row)
        print(
            f"N={n:6d} {row['width']}x{row['height']} tile {args.tile_size}: "
            f"forward {row['forward_ms']:7.1f} ms, forward+backward "
            f"{row['forward_backward_ms']:7.1f} ms  (covered {row['covered_fraction']:.0%}, "
            f"{row['pairs']} pixel-Gaussian pairs)"
        )
    record = {
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "results": results,
    }
    path = Path(__file__).parent / "results" / "rasterizer_cpu.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
