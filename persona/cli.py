"""Command line: `python -m persona make|animate|capture|motions|bench`.

User errors (PersonaError) print one line `persona: error: ...` on stderr and exit with code
2, with no traceback; nothing is written outside the output folder (and the caches).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from persona.errors import PersonaError

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "person_half.png"


# What mediapipe's native code (TFLite, absl, glog) prints straight to file descriptor 2.
_NATIVE_NOISE = re.compile(
    r"^(W0000|I0000|E0000|INFO: Created TensorFlow Lite|WARNING: All log messages before absl|Warp CUDA warning)"
)


@contextlib.contextmanager
def filtered_native_stderr():
    """Keep the terminal to our own lines: native libraries' log lines written to fd 2 are
    captured and dropped; anything else they wrote is replayed at the end. Python's
    sys.stderr keeps writing to the real terminal meanwhile."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        python_stderr = sys.stderr
        sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1)
        try:
            yield
        finally:
            sys.stderr.flush()
            sys.stderr.close()
            sys.stderr = python_stderr
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines():
                if line.strip() and not _NATIVE_NOISE.match(line):
                    print(line, file=sys.stderr)


class TerminalProgress:
    """Progress on stdout (stderr is kept for the error line): one updating line on a
    terminal, a line every 5% of each step otherwise."""

    def __init__(self, stream=None):
        self.stream, self.start, self.last = stream, time.perf_counter(), ""

    def __call__(self, fraction: float, message: str) -> None:
        line = f"[{fraction * 100:5.1f}% {time.perf_counter() - self.start:6.1f}s] {message}"
        if line == self.last:
            return
        self.last = line
        stream = self.stream or sys.stdout
        if stream.isatty():
            stream.write("\r" + line.ljust(78)[:120])
            if fraction >= 1.0:
                stream.write("\n")
        elif not message.startswith(("rendering", "fitting the avatar")) or fraction >= 1.0 or int(fraction * 1000) % 50 == 0:
            stream.write(line + "\n")
        stream.flush()


def _parser() -> argparse.ArgumentParser:
    from persona.config import PRESETS
    from persona.generate.generator import BACKENDS, MAX_FRAMES_FACTOR, MIN_FRAMES_PER_MOTION

    parser = argparse.ArgumentParser(prog="persona", description="One photo of a person to an animatable 3D Gaussian avatar.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every stage")
    sub = parser.add_subparsers(dest="command", required=True)

    make = sub.add_parser("make", help="make an avatar from a photo")
    make.add_argument("image", type=Path, help="photo of one person (JPEG, PNG, WebP, ...)")
    make.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    make.add_argument("--preset", choices=list(PRESETS), default="preview")
    make.add_argument(
        "--motion", default="walk",
        help="built-in motion name (see `persona motions`) or a motion file: .npz (ours, AMASS-style, SMPL-X parameters), "
        "a folder of per-frame SMPL-X .npz, or .bvh",
    )  # fmt: skip
    make.add_argument("--seed", type=int, default=0)
    make.add_argument(
        "--frames", type=int, default=None, metavar="N",
        help="generated training frames per driving motion (default: the preset's, "
        + ", ".join(f"{name} {p.generate.frames_per_motion}" for name, p in PRESETS.items())
        + f"; from {MIN_FRAMES_PER_MOTION} to {MAX_FRAMES_FACTOR}x that)",
    )  # fmt: skip
    make.add_argument(
        "--generator", default="synth", metavar="NAME",
        help="training-video generator: " + "; ".join(f"{s.name} ({s.licence})" for s in BACKENDS.values())
        + ". The diffusion ones need CUDA and their Hub weights, else synth makes the frames (the report says why)",
    )  # fmt: skip
    make.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    make.add_argument("--body", choices=["anny", "smplx"], default="anny", help="body model (default anny, embedded)")
    make.add_argument("--body-model", type=Path, default=None, help="SMPL-X: SMPLX_NEUTRAL.npz or its folder (your own download)")

    animate = sub.add_parser("animate", help="animate a saved avatar")
    animate.add_argument("avatar", type=Path, help="avatar.persona")
    animate.add_argument(
        "--motion", default="walk",
        help="built-in motion name, a motion file (.npz, .bvh, folder) or a video of a person (.mp4, .mov, .webm, ...: captured first)",
    )  # fmt: skip
    animate.add_argument("--side-by-side", action="store_true", help="with a video motion: the video and the avatar side by side")
    animate.add_argument("--preset", choices=list(PRESETS), default="preview", help="with a video motion: the capture limits")
    animate.add_argument("-o", "--output", type=Path, required=True, help="output .mp4")
    animate.add_argument("--size", type=int, default=512, help="frame size in pixels")
    animate.add_argument("--body-model", type=Path, default=None, help="SMPL-X avatars: SMPLX_NEUTRAL.npz or its folder")
    animate.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")

    capture = sub.add_parser("capture", help="motion capture: the motion of the person in a video, as a motion .npz")
    capture.add_argument("video", type=Path, help="video of one person (.mp4, .mov, .webm, .avi, ...)")
    capture.add_argument("-o", "--output", type=Path, required=True, help="output motion .npz (the report goes beside it, .json)")
    capture.add_argument("--preset", choices=list(PRESETS), default="preview", help="limits: frames and seconds of video")

    sub.add_parser("motions", help="list the built-in motions")

    bench = sub.add_parser(
        "bench", help="time the stages of a preset (cpu), the video generators (video), or the PERSONA optimisation against ground truth (synthetic)"
    )
    bench.add_argument(
        "target", choices=["cpu", "gpu", "video", "synthetic"],
        help="gpu: the avatar stages of each preset on CUDA (gsplat); video: diffusion generators on CUDA (synth on CPU); "
        "synthetic: full method and ablations on simulated subjects",
    )  # fmt: skip
    bench.add_argument("--quick", action="store_true", help="synthetic: the 2-core CPU version (about 10 minutes)")
    bench.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu", help="synthetic: where to run it")
    bench.add_argument(
        "--variants", default=None,
        help="synthetic: comma-separated variants to run (default all: full, its ablations and synth_frames), e.g. to split the full run over calls",
    )  # fmt: skip
    bench.add_argument(
        "--train-motions", default=None,
        help="synthetic: comma-separated built-in motions for the training clips (default walk,dance,stretch), e.g. walk,dance",
    )  # fmt: skip
    bench.add_argument(
        "--no-depth-estimates", action="store_true",
        help="synthetic: train without the photo's and the generated frames' relative depth estimates",
    )  # fmt: skip
    bench.add_argument(
        "--merge", nargs="+", type=Path, default=None, metavar="RECORD",
        help="synthetic: combine the records of runs with the same settings into --out: other --variants side by side, repeats averaged (nothing runs)",
    )  # fmt: skip
    bench.add_argument("--presets", default="preview,standard,high", help="gpu: comma-separated presets to time")
    bench.add_argument("--image", type=Path, default=EXAMPLE)
    bench.add_argument("--preset", choices=list(PRESETS), default="preview")
    bench.add_argument("--out", type=Path, default=None, help="result JSON (default bench/results/cpu_<preset>.json, video_gpu.json)")
    bench.add_argument("--backends", default="mimicmotion,wan-vace", help="video: diffusion backends to time")
    bench.add_argument("--video-presets", default=None, help="video: comma-separated candidate presets (default all)")
    return parser


def _make(args) -> None:
    from persona.pipeline import MakeOptions, make_avatar

    if args.output.exists() and not args.output.is_dir():
        raise PersonaError(f"The output '{args.output}' exists and is not a folder.")
    options = MakeOptions(
        preset=args.preset, motion=args.motion, seed=args.seed, device=args.device,
        body=args.body, body_model=str(args.body_model) if args.body_model else None,
        frames_per_motion=args.frames, generator=args.generator,
    )  # fmt: skip
    result = make_avatar(args.image, args.output, options, TerminalProgress())
    r = result.report
    print(f"avatar: {r.num_gaussians} Gaussians in {r.seconds['total']:.0f} s (preset {r.preset})")
    motions = ", ".join(r.generator_motions)
    print(f"training frames: {r.generated_frames} generated by {r.generator} ({r.frames_per_motion} per motion: {motions})")
    print(f"input view: silhouette IoU {r.metrics.silhouette_iou:.3f}, PSNR in mask {r.metrics.psnr_in_mask_db:.1f} dB")
    for warning in r.warnings:
        print(f"note: {warning}")
    for name in ("ply", "package", "animation", "turntable", "input_view", "report"):
        print(f"{name:>10}: {getattr(result.files, name)}")


def _animate(args) -> None:
    from persona.avatar.animate import ClipConfig
    from persona.io.video_reader import is_video_path
    from persona.pipeline import animate_avatar, animate_from_video

    if args.output.suffix.lower() != ".mp4":
        raise PersonaError(f"The output must be an .mp4 file, got '{args.output}'.")
    if not 64 <= args.size <= 2048:
        raise PersonaError("--size must be between 64 and 2048 pixels.")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if is_video_path(args.motion):
        result = animate_from_video(
            args.avatar, args.motion, args.output, ClipConfig(size=args.size), args.side_by_side, args.preset, TerminalProgress(), args.body_model
        )
        for warning in result.capture.warnings:
            print(f"note: {warning}")
        print(result.video)
        return
    if args.side_by_side:
        raise PersonaError("--side-by-side needs a video as the motion (--motion VIDEO).")
    path = animate_avatar(args.avatar, args.motion, args.output, ClipConfig(size=args.size), TerminalProgress(), args.body_model, args.device)
    print(path)


def _capture(args) -> None:
    from persona.pipeline import capture_video

    if args.output.suffix.lower() != ".npz":
        raise PersonaError(f"The output must be a .npz motion file, got '{args.output}'.")
    captured = capture_video(args.video, args.output, args.preset, TerminalProgress())
    r = captured.report
    print(
        f"captured {r.frames} frames at {r.fps:g} fps ({r.tracked_frames} tracked) in {r.seconds['total']:.1f} s, "
        f"keypoint error {r.keypoint_error_px:.1f} px"
    )
    for warning in r.warnings:
        print(f"note: {warning}")
    print(args.output)


def _motions(args) -> None:
    from persona.generate.motions import DESCRIPTIONS, stored_motions

    for name, text in DESCRIPTIONS.items():
        print(f"{name:<12} {text}")
    for name, path in stored_motions().items():
        print(f"{name:<12} stored motion ({path.name})")


def _merge_synthetic(paths: list[Path], out: Path | None) -> Path:
    """`bench synthetic --merge A B --out C`: the records of a run split over calls, or repeated, as one."""
    from persona.evaluate.synthetic import merge_records

    if out is None:
        raise PersonaError("--merge needs --out: the file to write the merged record to.")
    records = []
    for path in paths:
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise PersonaError(f"Cannot read the benchmark record '{path}': {error}") from None
    try:
        record = merge_records(records)
    except (KeyError, TypeError, AttributeError):
        raise PersonaError("These files are not records of `bench synthetic`.") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    if args.command in ("make", "animate", "bench", "capture"):
        from persona.avatar.rasterizer import tune_cpu_allocator

        tune_cpu_allocator()  # this process renders thousands of times: keep freed memory
    try:
        with filtered_native_stderr():
            if args.command == "make":
                _make(args)
            elif args.command == "animate":
                _animate(args)
            elif args.command == "capture":
                _capture(args)
            elif args.command == "motions":
                _motions(args)
            elif args.command == "bench" and args.target == "synthetic" and args.merge:
                print(_merge_synthetic(args.merge, args.out))
            elif args.command == "bench" and args.target == "synthetic":
                from persona.body.anny_model import load_anny
                from persona.evaluate.synthetic import write_synthetic_benchmark
                from persona.pipeline import resolve_device

                body = load_anny(str(resolve_device(args.device)))
                variants = tuple(args.variants.split(",")) if args.variants else None
                motions = tuple(m for m in args.train_motions.split(",") if m) if args.train_motions is not None else None
                print(write_synthetic_benchmark(
                    body, args.quick, args.out, log=lambda m: print(m, flush=True), variants=variants, train_motions=motions,
                    depth_estimates=not args.no_depth_estimates,
                ))
            elif args.command == "bench" and args.target == "gpu":
                from persona.body.anny_model import load_anny
                from persona.evaluate.gpu_bench import write_gpu_benchmark

                presets = tuple(args.presets.split(","))
                print(write_gpu_benchmark(load_anny("cuda"), args.out, presets, log=lambda m: print(m, flush=True)))
            elif args.command == "bench" and args.target == "video":
                from persona.generate.video_bench import run_video_benchmark

                presets = tuple(args.video_presets.split(",")) if args.video_presets else None
                print(run_video_benchmark(args.out, tuple(args.backends.split(",")), presets))
            elif args.command == "bench":
                from persona.benchmark import run_cpu_benchmark

                print(run_cpu_benchmark(args.image, args.preset, args.out))
    except PersonaError as err:
        print(f"persona: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("persona: interrupted", file=sys.stderr)
        return 130
    return 0
