"""Motion-capture benchmark on 2 CPU cores: seconds per frame of `capture_motion` on a
pedestrian-style clip, and its accuracy against the clip's known motion.

No real video of a walking person is available offline here (no network, none in the
package registries' wheels we could find), so the clip is made: the example photo's textured
body (examples/person_half.png on the real anny body) walks diagonally across a real
photographed background (`--background`, default a brick wall over gravel from the
scikit-image wheel's CC0 data, when found; else a grey gradient), stance foot planted,
854x480 at 24 fps, 120 frames. The JSON says exactly what the clip was.

    python bench/motion_capture.py [--background IMAGE] [--frames 120] [--out bench/results/motion_capture_cpu.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from persona.benchmark import machine
from persona.body.anny_model import load_anny
from persona.evaluate.capture import foot_sliding, render_clip, segment_errors, textured_avatar
from persona.generate.motion_capture import capture_motion
from persona.generate.motions import get_motion
from persona.io.video import write_video
from persona.perceive.fit import photo_camera
from persona.perceive.fit_motion import KeypointRig
from persona.perceive.keypoints import COCO23
from persona.pipeline import versions

SKIMAGE_DATA = [Path("/tmp/dl/ski/skimage/data")]  # an unpacked scikit-image wheel, if any


def background(width: int, height: int, path: Path | None) -> tuple[np.ndarray, str]:
    """(H, W, 3) float background and a sentence saying what it is."""
    if path is not None:
        return np.asarray(Image.open(path).convert("RGB").resize((width, height)), np.float32) / 255, f"the photo {path.name}"
    for folder in SKIMAGE_DATA:
        try:
            import skimage.data  # noqa: F401

            folder = Path(skimage.data.__file__).parent
        except ImportError:
            pass
        if (folder / "brick.png").exists() and (folder / "gravel.png").exists():
            wall = Image.open(folder / "brick.png").convert("RGB").resize((width, int(height * 0.62)))
            ground = Image.open(folder / "gravel.png").convert("RGB").resize((width, height - int(height * 0.62)))
            image = np.concatenate([np.asarray(wall), np.asarray(ground)], 0).astype(np.float32) / 255
            return image, "scikit-image's CC0 photos brick.png (a brick wall, upper 62%) over gravel.png (the ground)"
    y = np.linspace(0.8, 0.5, height, dtype=np.float32)[:, None, None]
    return np.broadcast_to(y, (height, width, 3)).copy(), "a grey gradient (no photo found)"


def walking_poses(body, frames: int, yaw_deg: float, distance: float, start_x: float):
    """The built-in walk, looped to `frames`, turned `yaw_deg` to the body's left and moved
    forward by its stance foot (the lower foot stays put), starting `start_x` metres to the
    side, `distance` metres in front of the camera. -> BodyPose (F)"""
    walk = get_motion("walk")
    loop = torch.arange(frames) % walk.num_frames
    pose = walk.to_pose(body)
    pose = type(pose)(pose.joint_rotations[loop], pose.global_orient[loop].clone(), pose.translation[loop].clone())
    pose.global_orient[:, 1] = math.radians(yaw_deg)
    rig = KeypointRig(body)
    feet = [[COCO23.index(f"{s}_heel"), COCO23.index(f"{s}_big_toe")] for s in ("left", "right")]
    with torch.no_grad():
        points = rig.keypoints(pose)
        foot = torch.stack([points[:, f].mean(1) for f in feet], 1)  # (F, 2, 3)
        shift = torch.zeros(frames, 3)
        for f in range(1, frames):
            stance = int(foot[f, :, 1].argmin())
            step = foot[f, stance] - foot[f - 1, stance]
            shift[f] = shift[f - 1] - torch.tensor([step[0], 0.0, step[2]])
        pose.translation = pose.translation + shift
        centre = rig.keypoints(pose.index(0))[0].mean(0)
    pose.translation = pose.translation - centre + torch.tensor([start_x, 0.0, -distance])
    return pose


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--background", type=Path, default=None)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "motion_capture_cpu.json")
    parser.add_argument("--keep", type=Path, default=None, help="also write the clip here (.mp4)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    W, H, fps = 854, 480, 24
    body = load_anny()
    avatar = textured_avatar(body)
    truth = walking_poses(body, args.frames, yaw_deg=75.0, distance=8.0, start_x=-3.2)
    bg, what = background(W, H, args.background)
    frames = render_clip(body, avatar, truth, photo_camera(W, H, 50.0), bg)
    video = args.keep or Path("/tmp") / "persona_bench_walk.mp4"
    write_video(video, frames, fps)

    start = time.perf_counter()
    captured = capture_motion(video, body)
    seconds = time.perf_counter() - start
    r = captured.report
    errors = segment_errors(body, truth, captured.fit.poses)
    result = {
        "benchmark": "motion_capture_cpu",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "clip": {
            "what": "SYNTHETIC, not a real video: the example photo's textured anny body (examples/person_half.png) doing the "
            "built-in walk with its stance foot planted, diagonally across the frame (turned 75 degrees, from 8 m away), "
            f"rendered by the reference rasterizer over {what}; H.264, {W}x{H}, {fps} fps",
            "frames": r.frames,
            "seconds": r.frames / fps,
        },
        "preset": "preview",
        "capture_seconds": round(seconds, 2),
        "seconds_per_frame": round(seconds / r.frames, 3),
        "stage_seconds": r.seconds,
        "tracked_frames": r.tracked_frames,
        "warnings": r.warnings,
        "keypoint_error_px": r.keypoint_error_px,
        "limb_direction_error_deg": {"mean": round(float(np.mean(list(errors["direction"].values()))), 2), **{k: round(v, 1) for k, v in errors["direction"].items()}},
        "limb_geodesic_error_deg": {"mean": round(float(np.mean(list(errors["geodesic"].values()))), 2), **{k: round(v, 1) for k, v in errors["geodesic"].items()}},
        "foot_sliding_cm_per_frame": {k: round(v, 3) if isinstance(v, float) else v for k, v in foot_sliding(body, truth, captured.fit.poses).items()},
        "targets": {"seconds_per_frame": 0.5, "limb_direction_error_deg": 15.0},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("seconds_per_frame", "stage_seconds", "tracked_frames", "limb_direction_error_deg", "foot_sliding_cm_per_frame")}, indent=1))


if __name__ == "__main__":
    main()
