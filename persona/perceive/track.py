"""Track one person through the frames of a video with mediapipe Pose (offline, shipped
model, complexity 1) in video mode: 2D keypoints and 3D world landmarks per frame.

The most prominent person is followed: when the first frames show several faces (the face
detector of `persona.perceive.person`), mediapipe only sees a crop around the most prominent
one, and the crop then follows the tracked person from frame to frame. Frames where the
person is lost are filled by linear interpolation between the nearest tracked frames (held
at the ends) with a low confidence, and listed in the warnings.

Coordinates: keypoints in pixels of the video frame (x right, y down, continuous as in
`persona.camera`); world landmarks in metres relative to mediapipe's hip centre, converted to
the project's axes for a camera at the origin looking along -Z (x right, y up, z towards
the camera): (x, -y, -z) of mediapipe's camera-aligned axes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from persona.errors import PersonaError
from persona.perceive.keypoints import mediapipe_to_coco23

Progress = Callable[[float, str], None]
_MAJOR = (11, 12, 23, 24)  # shoulders and hips: without them a frame counts as lost


@dataclass(frozen=True)
class TrackConfig:
    max_side: int = 640  # frames are shrunk so their longer side is at most this for mediapipe
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    min_visibility: float = 0.5  # shoulders and hips must reach this for a frame to count as tracked
    min_tracked_fraction: float = 0.3  # fewer tracked frames than this: the capture is refused
    interpolated_confidence: float = 0.3  # confidence given to interpolated keypoints
    crop_margin: float = 0.6  # a followed crop is the last bbox grown by this fraction on each side


@dataclass
class PersonTrack:
    """keypoints: (F, 23, 3) COCO-23 pixels x, y and confidence (interpolated frames get
    `interpolated_confidence` times their neighbours'); world: (F, 23, 3) metres, project
    axes, hip-centred; tracked: (F,) bool, the frames mediapipe found the person in;
    size: width, height of the frames in pixels."""

    keypoints: np.ndarray
    world: np.ndarray
    tracked: np.ndarray
    size: tuple[int, int]
    people_found: int
    warnings: list[str] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return self.keypoints.shape[0]


def track_person(frames: np.ndarray, config: TrackConfig = TrackConfig(), progress: Progress | None = None) -> PersonTrack:
    """frames: (F, H, W, 3) uint8 -> the most prominent person's keypoints in every frame.

    Raises PersonaError when no person is tracked in enough frames."""
    import cv2
    from mediapipe.python.solutions import pose as mp_pose

    from persona.perceive.person import PerceiveConfig, _detect_faces, _person_column

    F, H, W = frames.shape[:3]
    body = np.zeros((F, 33, 3), np.float32)
    world = np.zeros((F, 33, 3), np.float32)
    tracked = np.zeros(F, bool)
    # Several people: follow a crop around the most prominent (faces in the first frame).
    faces = _detect_faces(np.ascontiguousarray(frames[0]), PerceiveConfig())
    box = _person_column(faces, 0, W, H, PerceiveConfig()) if len(faces) >= 2 else None
    with mp_pose.Pose(
        static_image_mode=False,
        model_complexity=1,  # the pose model shipped in the wheel (no download)
        smooth_landmarks=True,
        enable_segmentation=False,
        min_detection_confidence=config.min_detection_confidence,
        min_tracking_confidence=config.min_tracking_confidence,
    ) as model:
        for i in range(F):
            x0, y0, x1, y1 = box if box is not None else (0, 0, W, H)
            crop = frames[i, y0:y1, x0:x1]
            s = min(1.0, config.max_side / max(crop.shape[:2]))
            image = crop if s == 1.0 else cv2.resize(crop, (max(1, round(crop.shape[1] * s)), max(1, round(crop.shape[0] * s))), interpolation=cv2.INTER_AREA)
            res = model.process(np.ascontiguousarray(image))
            if res.pose_landmarks is not None:
                points = np.array([[p.x, p.y, p.visibility] for p in res.pose_landmarks.landmark], np.float32)
                points[:, 0] = points[:, 0] * (x1 - x0) + x0
                points[:, 1] = points[:, 1] * (y1 - y0) + y0
                inside = (points[:, 0] >= 0) & (points[:, 0] < W) & (points[:, 1] >= 0) & (points[:, 1] < H)
                points[~inside, 2] = 0.0
                if (points[list(_MAJOR), 2] >= config.min_visibility).all():
                    tracked[i] = True
                    body[i] = points
                    world[i] = [[p.x, -p.y, -p.z] for p in res.pose_world_landmarks.landmark]
                    if box is not None:
                        box = _follow(points, config, W, H)
            if progress is not None:
                progress((i + 1) / F, f"tracking the person ({i + 1}/{F})")
    count = int(tracked.sum())
    if count == 0:
        raise PersonaError(
            "No person was found in the video. Use a clip where one person is clearly visible, ideally head to feet."
        )
    if count < config.min_tracked_fraction * F:
        raise PersonaError(
            f"The person was found in only {count} of {F} frames ({100 * count / F:.0f}%; at least "
            f"{100 * config.min_tracked_fraction:.0f}% are needed). Use a clip where the person stays in view."
        )
    keypoints = np.stack([mediapipe_to_coco23(b) for b in body])
    world23 = np.stack([mediapipe_to_coco23(w) for w in world])
    warnings = []
    if len(faces) >= 2:
        warnings.append(f"{len(faces)} people in the first frame; followed the most prominent one.")
    lost = np.nonzero(~tracked)[0]
    if len(lost):
        keypoints = _interpolate(keypoints, tracked, config.interpolated_confidence)
        world23 = _interpolate(world23, tracked, None)
        warnings.append(
            f"The person was lost in {len(lost)} of {F} frames ({_ranges(lost)}); their poses were interpolated "
            "from the neighbouring frames."
        )
    return PersonTrack(keypoints, world23, tracked, (W, H), max(1, len(faces)), warnings)


def _follow(points: np.ndarray, config: TrackConfig, W: int, H: int) -> tuple[int, int, int, int]:
    """The crop box around the landmarks points (33, 3) seen in this frame, grown by the margin."""
    seen = points[points[:, 2] > 0.3, :2]
    x0, y0 = seen.min(0)
    x1, y1 = seen.max(0)
    m = config.crop_margin * max(x1 - x0, y1 - y0)
    return (int(max(0, x0 - m)), int(max(0, y0 - m)), int(min(W, x1 + m)), int(min(H, y1 + m)))


def _interpolate(values: np.ndarray, tracked: np.ndarray, confidence: float | None) -> np.ndarray:
    """values: (F, K, 3) with rows valid where tracked (F,) -> lost rows linearly interpolated
    (held at the ends); with `confidence`, their third column is scaled by it."""
    out = values.copy()
    frames = np.arange(len(values))
    known = frames[tracked]
    for k in range(values.shape[1]):
        for c in range(values.shape[2]):
            out[~tracked, k, c] = np.interp(frames[~tracked], known, values[tracked, k, c])
    if confidence is not None:
        out[~tracked, :, 2] *= confidence
    return out


def _ranges(index: np.ndarray) -> str:
    """Sorted frame indices -> 'a-b, c, ...' (at most 6 ranges)."""
    parts, start = [], int(index[0])
    for prev, cur in zip(index[:-1], index[1:]):
        if cur != prev + 1:
            parts.append((start, int(prev)))
            start = int(cur)
    parts.append((start, int(index[-1])))
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in parts[:6])
    return "frames " + text + (", ..." if len(parts) > 6 else "")
