"""GPU cost of the pose-guided video diffusion generators (run on the device machine).

    python bench/video_gpu.py [--out bench/results/video_gpu.json] [--backends mimicmotion,wan-vace]
                              [--presets preview,standard,...] [--tiny]

The same as `python -m persona bench video`; see `persona.generate.video_bench` for what is
measured and how (full-size architectures, random weights, one clip per candidate preset).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from persona.generate.video_bench import run_video_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results/video_gpu.json"))
    parser.add_argument("--backends", default="mimicmotion,wan-vace")
    parser.add_argument("--presets", default=None, help="comma-separated candidate names (default: all)")
    parser.add_argument("--tiny", action="store_true", help="tiny random models (smoke test, CPU)")
    args = parser.parse_args()
    presets = tuple(args.presets.split(",")) if args.presets else None
    path = run_video_benchmark(args.out, tuple(args.backends.split(",")), presets, "tiny" if args.tiny else "full")
    print(path)


if __name__ == "__main__":
    main()
