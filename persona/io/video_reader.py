"""Read a driving video (for motion capture): decoded by the ffmpeg bundled with
imageio-ffmpeg, checked against the caller's limits before and while decoding.

Frames come out as (F, H, W, 3) uint8 at the video's own size (ffmpeg applies the rotation
tag), optionally subsampled in time so the rate stays at most `max_fps` (a 60 fps phone clip
is read at 30 fps). Every problem a user's file can cause raises `PersonaError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from persona.errors import PersonaError

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi", ".gif")


@dataclass(frozen=True)
class VideoLimits:
    """What a caller accepts: frames after temporal subsampling, seconds, pixels per frame."""

    max_frames: int = 300
    max_seconds: float = 20.0
    max_pixels: int = 1920 * 1080
    max_fps: float = 30.0  # faster videos are subsampled to at most this rate
    min_frames: int = 2


@dataclass
class VideoClip:
    """frames: (F, H, W, 3) uint8; fps: rate of `frames` (after subsampling);
    source_fps: the file's rate; step: every `step`-th source frame was kept."""

    name: str
    frames: np.ndarray
    fps: float
    source_fps: float
    step: int

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]

    @property
    def size(self) -> tuple[int, int]:  # width, height
        return self.frames.shape[2], self.frames.shape[1]


def is_video_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def read_video(path: str | Path, limits: VideoLimits = VideoLimits()) -> VideoClip:
    """Decode the video at `path` (frames subsampled to at most `limits.max_fps`).

    Refused (PersonaError): missing or empty files, files ffmpeg cannot decode, clips longer
    than `limits.max_seconds` or with more than `limits.max_frames` frames (after
    subsampling), frames larger than `limits.max_pixels`, fewer than `limits.min_frames`.
    """
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise PersonaError(f"The video '{path.name}' does not exist ({path}).")
    if path.stat().st_size == 0:
        raise PersonaError(f"The video '{path.name}' is empty (0 bytes).")
    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        try:
            meta = next(reader)
        except (OSError, RuntimeError, StopIteration, ValueError) as err:
            raise PersonaError(
                f"The video '{path.name}' could not be read ({_first_line(err)}). Use an MP4 (H.264), MOV, WebM or AVI file."
            ) from None
        w, h = (int(v) for v in meta["size"])
        source_fps = float(meta.get("fps") or 0.0)
        duration = float(meta.get("duration") or 0.0)
        if not 1.0 <= source_fps <= 1000.0 or not math.isfinite(source_fps):
            raise PersonaError(f"The video '{path.name}' has no usable frame rate ({source_fps:g} fps).")
        if w * h > limits.max_pixels:
            raise PersonaError(
                f"The video '{path.name}' is {w}x{h} pixels; at most {limits.max_pixels / 1e6:.1f} megapixels per frame are "
                "accepted. Scale it down (720p is plenty)."
            )
        if duration > limits.max_seconds + 0.5:
            raise PersonaError(
                f"The video '{path.name}' lasts {duration:.1f} s; at most {limits.max_seconds:g} s can be captured here. "
                "Trim it first (or use a larger preset on the command line)."
            )
        step = max(1, math.ceil(source_fps / limits.max_fps - 1e-6))
        frames = []
        for i, raw in enumerate(reader):
            if i % step:
                continue
            if len(frames) >= limits.max_frames:
                raise PersonaError(
                    f"The video '{path.name}' has more than {limits.max_frames} frames at {source_fps / step:g} fps; "
                    f"trim it to at most {limits.max_frames} frames first."
                )
            frames.append(np.frombuffer(raw, np.uint8).reshape(h, w, 3))
    except (OSError, RuntimeError) as err:
        raise PersonaError(f"The video '{path.name}' could not be decoded ({_first_line(err)}).") from None
    finally:
        reader.close()
    if len(frames) < limits.min_frames:
        raise PersonaError(f"The video '{path.name}' has {len(frames)} frame(s); at least {limits.min_frames} are needed.")
    return VideoClip(path.name, np.stack(frames), source_fps / step, source_fps, step)


def _first_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return (lines[-1] if lines else type(err).__name__)[:200]
