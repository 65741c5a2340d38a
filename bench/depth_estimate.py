"""Cost of the depth estimator on generated frames, on a GPU or on the CPU.

    python bench/depth_estimate.py [--device cuda] [--out bench/results/depth_estimate_<device>.json] [--frames 24]

Depth Anything V2 Small's architecture at its real sizes (24.8M parameters) with random
weights, saved in the Hub's layout and loaded by the real loading code
(`persona.perceive.depth.load_depth_estimator`): the weights cannot be downloaded here, and the
time of a forward pass does not depend on their values. Each preset's generated frames (3:4,
the preset's `generate.resolution` on the longer side) go through `DepthEstimator.__call__`
one at a time, as `add_depth_estimates` does; the first frames warm the GPU up and are not timed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import transformers
from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

from persona.benchmark import machine
from persona.config import PRESETS
from persona.perceive.depth import DepthEstimator, load_depth_estimator
from persona.pipeline import versions


def save_depth_anything_v2_small(folder: Path) -> int:
    """Depth Anything V2 Small's architecture (the Hub's config.json) with random weights, in
    `folder`; returns its parameter count."""
    backbone = Dinov2Config(
        hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536, patch_size=14, image_size=518,
        out_indices=[3, 6, 9, 12], reshape_hidden_states=False, layerscale_value=1.0,
    )  # fmt: skip
    config = DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=384, reassemble_factors=[4, 2, 1, 0.5], neck_hidden_sizes=[48, 96, 192, 384],
        fusion_hidden_size=64, head_hidden_size=32, patch_size=14, depth_estimation_type="relative",
    )  # fmt: skip
    model = DepthAnythingForDepthEstimation(config).eval()
    model.save_pretrained(folder, safe_serialization=True)
    return sum(p.numel() for p in model.parameters())


def time_preset(estimator: DepthEstimator, resolution: int, frames: int, warmup: int = 3) -> dict[str, object]:
    """Seconds per frame of `estimator` on a 3:4 frame `resolution` pixels high, with a
    person-shaped box as its mask."""
    height, width = resolution, resolution * 3 // 4
    image = torch.rand(height, width, 3)
    mask = torch.zeros(height, width)
    mask[height // 8 : -height // 8, width // 3 : -width // 3] = 1
    for _ in range(warmup):
        estimator(image, mask)
    sync = torch.cuda.synchronize if estimator.device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(frames):
        estimator(image, mask)  # returns on the CPU: each call ends synchronised
    sync()
    return {"frame_size": [width, height], "seconds_per_frame": round((time.perf_counter() - start) / frames, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda or cpu")
    parser.add_argument("--out", type=Path, default=None, help="default bench/results/depth_estimate_<device>.json")
    parser.add_argument("--frames", type=int, default=24, help="timed frames per preset")
    args = parser.parse_args()
    out = args.out or Path("bench") / "results" / f"depth_estimate_{args.device}.json"
    with tempfile.TemporaryDirectory(prefix="persona-depth-") as folder:
        parameters = save_depth_anything_v2_small(Path(folder))
        start = time.perf_counter()
        estimator = load_depth_estimator(args.device, local_dir=folder)
        load_seconds = time.perf_counter() - start
    presets = {name: time_preset(estimator, preset.generate.resolution, args.frames) for name, preset in PRESETS.items()}
    record = {
        "benchmark": "depth_estimate",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": {**versions(), "transformers": transformers.__version__},
        "model": "Depth Anything V2 Small architecture, random weights",
        "parameters": parameters,
        "input_size": estimator.input_size,
        "load_seconds": round(load_seconds, 2),
        "presets": presets,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
