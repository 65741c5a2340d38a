"""H.264 MP4 and RGBA PNG writers (and an MP4 reader for tests).

Videos are encoded by the ffmpeg binary bundled with imageio-ffmpeg, driven directly through
a pipe so that its exit status and error text are checked (imageio's writer ignores both)
and nothing rescales the frames: odd sizes are padded to even by repeating the last
row/column, as yuv420p needs. Output plays in browsers: libx264, yuv420p, BT.709 tagged,
`+faststart` (index at the front, so playback starts before the download ends).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from persona.errors import PersonaError
from persona.io import atomic_write

CRF = 18  # x264 constant rate factor: visually lossless for rendered avatars, small files


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: int = 24) -> Path:
    """Encode frames to an H.264 MP4 at `path`, atomically; returns the path.

    frames: iterable of (H, W, 3) arrays, uint8 or float in [0, 1]; all the same size.
        Consumed lazily, so a generator of rendered frames never sits in memory at once.
    fps: frames per second, > 0.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise PersonaError(
            f"No frames to write to {Path(path).name!r}: the animation is empty. "
            "Choose a motion with at least one frame."
        )
    first = _to_uint8(first, 0)
    h, w = first.shape[:2]
    with atomic_write(path) as tmp:
        _encode(tmp, _chain(first, it, (h, w)), (w, h), fps)
    return Path(path)


def _chain(first: np.ndarray, rest: Iterable[np.ndarray], hw: tuple[int, int]):
    """Yield uint8 frames padded to even size; every frame must be (H, W, 3) like the first."""
    yield _pad_even(first)
    for i, frame in enumerate(rest, start=1):
        frame = _to_uint8(frame, i)
        if frame.shape[:2] != hw:
            raise ValueError(f"frame {i} is {frame.shape[:2]}, but frame 0 is {hw}")
        yield _pad_even(frame)


def _to_uint8(frame: np.ndarray, index: int) -> np.ndarray:
    """(H, W, 3) uint8 or float [0, 1] (numpy or torch on any device) -> uint8 (H, W, 3)."""
    frame = _to_numpy(frame)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame {index} has shape {frame.shape}; expected (H, W, 3)")
    if frame.dtype == np.uint8:
        return frame
    if not np.issubdtype(frame.dtype, np.floating):
        raise ValueError(f"frame {index} has dtype {frame.dtype}; expected uint8 or float")
    return _float_to_uint8(frame)


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor on any device, without importing torch here
        x = x.detach().cpu()
        x = x.float() if x.is_floating_point() else x  # numpy has no bfloat16
        return x.numpy()
    return np.asarray(x)


def _float_to_uint8(x: np.ndarray) -> np.ndarray:
    # nan_to_num: a NaN pixel from a renderer should not abort a whole video.
    return (np.clip(np.nan_to_num(x.astype(np.float32)), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _pad_even(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _ffmpeg_exe() -> str:
    import imageio_ffmpeg  # lazy: finding the binary touches the file system

    return imageio_ffmpeg.get_ffmpeg_exe()


def _encode(out: Path, frames: Iterable[np.ndarray], size: tuple[int, int], fps: int) -> None:
    """Pipe uint8 frames (already even-sized) into ffmpeg; raise if ffmpeg fails."""
    w, h = size[0] + size[0] % 2, size[1] + size[1] % 2
    cmd = [
        _ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-",
        "-an", "-c:v", "libx264", "-preset", "medium", "-crf", str(CRF),
        # Convert with the BT.709 matrix and tag the stream as such, so players do not guess
        # (setparams: this ffmpeg ignores -color_primaries/-color_trc as output options).
        "-vf", "scale=out_color_matrix=bt709:out_range=tv,"
        "setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=tv",
        "-pix_fmt", "yuv420p",
        "-movflags", "+faststart", str(out),
    ]  # fmt: skip
    # stderr goes to a file, not a pipe: a full pipe would deadlock ffmpeg while we write.
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        try:
            try:
                for frame in frames:
                    proc.stdin.write(np.ascontiguousarray(frame).tobytes())
            except BrokenPipeError:
                pass  # ffmpeg exited early; its exit code and message below say why
            finally:
                _close_quietly(proc.stdin)
            rc = proc.wait()
        except BaseException:
            proc.kill()  # cancelled or a bad frame: stop ffmpeg; atomic_write removes `out`
            proc.wait()
            raise
        if rc != 0:
            err.seek(0)
            message = err.read().decode(errors="replace").strip()[-2000:]
            raise PersonaError(f"ffmpeg could not write the video (exit code {rc}): {message}")


def _close_quietly(pipe) -> None:
    try:
        pipe.close()  # flushing the last buffered bytes fails if ffmpeg already exited
    except BrokenPipeError:
        pass


def read_video_frames(path: str | os.PathLike) -> np.ndarray:
    """Decode a video to (F, H, W, 3) uint8 (for tests and checks)."""
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise PersonaError(f"The video {path.name!r} does not exist ({path}).")
    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(reader)
        w, h = meta["size"]
        frames = [np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in reader]
    except (OSError, RuntimeError, StopIteration) as e:
        raise PersonaError(f"The video {path.name!r} could not be decoded ({e}).") from e
    finally:
        reader.close()
    if not frames:
        return np.zeros((0, h, w, 3), np.uint8)
    return np.stack(frames)


def write_png_rgba(path: str | os.PathLike, rgba: np.ndarray) -> Path:
    """Write RGBA (H, W, 4), float in [0, 1] or uint8, straight alpha, as an 8-bit PNG.

    Atomic like `write_video`; returns the path.
    """
    rgba = _to_numpy(rgba)
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ValueError(f"rgba has shape {rgba.shape}; expected (H, W, 4)")
    if rgba.dtype != np.uint8:
        rgba = _float_to_uint8(rgba)
    with atomic_write(path) as tmp:
        Image.fromarray(np.ascontiguousarray(rgba)).save(tmp, format="PNG")
    return Path(path)
