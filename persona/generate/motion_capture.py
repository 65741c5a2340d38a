"""Motion capture from a driving video with the embedded perception: read the video, track
the most prominent person (mediapipe), fit the body to every frame at once, and return a
motion in the project's format with the camera of every frame.

video -> `read_video` (limits per preset) -> `track_person` (2D keypoints, 3D world landmarks,
lost frames interpolated) -> `fit_motion` (the photo fit batched over frames, with smoothness
and foot-contact terms) -> `CapturedMotion`.

The motion lives in the camera's world (the camera at the origin looking along -Z, Y up: a
level, static camera is assumed), moved so that it starts at x = z = 0 with the feet on the
ground (as imported motions are); `cameras` are moved with it, so rendering the motion through
them shows the avatar where the person was in the video. Saved as our motion `.npz` with three
extra arrays (`camera_world_to_camera` (F, 4, 4), `camera_intrinsics` fx, fy, cx, cy,
`camera_size` width, height); every motion reader ignores them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from persona.body.model import BodyModel
from persona.camera import Camera
from persona.errors import PersonaError
from persona.generate.motions import Motion
from persona.generate.retarget import body_skeleton, ground_motion
from persona.io import atomic_write
from persona.io.video_reader import VideoClip, VideoLimits, read_video
from persona.perceive.fit_motion import MotionFit, MotionFitConfig, fit_motion
from persona.perceive.track import PersonTrack, TrackConfig, track_person

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class CaptureConfig:
    """Motion capture settings of a preset: what video is accepted, tracking, the fit."""

    limits: VideoLimits = field(default_factory=VideoLimits)
    track: TrackConfig = field(default_factory=TrackConfig)
    fit: MotionFitConfig = field(default_factory=MotionFitConfig)


@dataclass
class CaptureReport:
    source: str
    frames: int
    fps: float
    size: tuple[int, int]  # width, height of the video
    tracked_frames: int  # frames mediapipe found the person in (the others are interpolated)
    contact_fraction: tuple[float, float]  # share of frames with the left / right foot planted
    keypoint_error_px: float  # mean reprojection error of the fitted body
    seconds: dict[str, float]
    warnings: list[str]


@dataclass
class CapturedMotion:
    """motion: the captured motion (anny's joints; F frames); cameras: F cameras (the video's
    viewpoint, in the motion's world); fit: the poses in the camera's world; track: the
    keypoints the fit used."""

    motion: Motion
    cameras: list[Camera]
    fit: MotionFit
    track: PersonTrack
    report: CaptureReport


def capture_motion(
    video: str | Path | VideoClip,
    body: BodyModel,
    config: CaptureConfig = CaptureConfig(),
    progress: Progress | None = None,
) -> CapturedMotion:
    """The motion of the most prominent person in `video` (a path or an already read clip).

    body: the model the fit runs on (anny: the motion is saved on its joints).
    Raises PersonaError for a bad or too long video, or when nobody is tracked."""
    say = progress or (lambda f, m: None)
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    say(0.0, "reading the video")
    clip = video if isinstance(video, VideoClip) else read_video(video, config.limits)
    seconds["read"] = round(time.perf_counter() - t, 3)

    t = time.perf_counter()
    track = track_person(clip.frames, config.track, lambda f, m: say(0.05 + 0.45 * f, m))
    seconds["track"] = round(time.perf_counter() - t, 3)

    t = time.perf_counter()
    steps = config.fit.global_steps + config.fit.steps + config.fit.contact_steps
    done = [0]

    def fit_progress(stage: int, step: int, loss: float) -> None:
        done[0] += 20
        say(0.5 + 0.5 * min(1.0, done[0] / max(steps, 1)), f"fitting the body to {clip.num_frames} frames")

    fit = fit_motion(body, track.keypoints, track.world, clip.size, clip.fps, config.fit, fit_progress)
    seconds["fit"] = round(time.perf_counter() - t, 3)
    motion, cameras = _to_motion(fit, body, Path(clip.name).stem, clip.fps)
    seconds["total"] = round(sum(seconds.values()), 3)
    report = CaptureReport(
        source=clip.name, frames=clip.num_frames, fps=clip.fps, size=clip.size, tracked_frames=int(track.tracked.sum()),
        contact_fraction=tuple(float(c) for c in fit.contacts.mean(0)), keypoint_error_px=round(fit.keypoint_error_px, 2),
        seconds=seconds, warnings=list(track.warnings),
    )  # fmt: skip
    say(1.0, f"captured {clip.num_frames} frames")
    return CapturedMotion(motion, cameras, fit, track, report)


def _to_motion(fit: MotionFit, body: BodyModel, name: str, fps: float) -> tuple[Motion, list[Camera]]:
    """Camera-world poses -> a motion starting at x = z = 0 with the feet on the ground, and
    the per-frame cameras moved with it."""
    poses = fit.poses
    names = list(body.fit_joints)
    index = [body.joint_index(n) for n in names]
    raw = Motion(name, float(fps), names, poses.joint_rotations[:, index].clone(), poses.global_orient.clone(), poses.translation.clone())
    grounded = ground_motion(raw, body_skeleton(body))
    start = poses.translation[0].clone()
    grounded.translation[:, [0, 2]] -= start[[0, 2]]
    offsets = poses.translation - grounded.translation  # (F, 3): motion world = camera world - offset
    cameras = []
    for f in range(poses.batch):
        shift = torch.eye(4)
        shift[:3, 3] = offsets[f]
        cameras.append(replace(fit.camera, world_to_camera=fit.camera.world_to_camera @ shift))
    # ground_motion names the joints after the skeleton; keep only the fitted ones.
    motion = Motion(name, float(fps), names, raw.rotations, grounded.global_orient, grounded.translation)
    return motion, cameras


def save_capture(captured: CapturedMotion, path: str | Path) -> Path:
    """Write the motion `.npz` (readable by every motion loader) with the cameras, atomically."""
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise PersonaError(f"The captured motion is saved as .npz, not '{path.suffix}'.")
    m = captured.motion
    c = captured.cameras[0]
    with atomic_write(path) as tmp, open(tmp, "wb") as fp:
        np.savez(
            fp,
            **m.arrays(),
            camera_world_to_camera=torch.stack([k.world_to_camera for k in captured.cameras]).numpy().astype(np.float32),
            camera_intrinsics=np.array([c.fx, c.fy, c.cx, c.cy], np.float32),
            camera_size=np.array([c.width, c.height], np.int32),
        )
    return path


def load_capture_cameras(path: str | Path, frames: int) -> list[Camera] | None:
    """The per-frame cameras saved with a captured motion (None when the file has none or they
    do not match `frames`)."""
    with np.load(path, allow_pickle=False) as data:
        if not {"camera_world_to_camera", "camera_intrinsics", "camera_size"} <= set(data.files):
            return None
        w2c, k, size = data["camera_world_to_camera"], data["camera_intrinsics"], data["camera_size"]
    if w2c.shape != (frames, 4, 4) or k.shape != (4,) or size.shape != (2,) or not np.isfinite(w2c).all() or not np.isfinite(k).all():
        log.warning("%s: the saved cameras do not match the motion; ignoring them", Path(path).name)
        return None
    if not (1 <= size.min() and size.max() <= 16384 and (k > 0).all()):
        return None
    return [Camera(torch.from_numpy(m.copy()).float(), float(k[0]), float(k[1]), float(k[2]), float(k[3]), int(size[0]), int(size[1])) for m in w2c]
