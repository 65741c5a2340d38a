"""persona.io.video: browser-friendly H.264 MP4s and RGBA PNGs, written atomically."""

from __future__ import annotations

import struct
import subprocess

import imageio.v2 as iio
import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from persona.errors import PersonaError
from persona.io.video import read_video_frames, write_png_rgba, write_video


def _frames(n: int, h: int, w: int, dtype=np.float32):
    """n frames of a moving bright square on grey, float [0, 1] or uint8."""
    for i in range(n):
        frame = np.full((h, w, 3), 0.5, np.float32)
        frame[4:12, 2 + i : 10 + i] = [1.0, 0.2, 0.1]
        yield frame if dtype == np.float32 else (frame * 255).astype(np.uint8)


def _ffmpeg_description(path) -> str:
    """ffmpeg's stream description of `path` (ffmpeg -i prints it to stderr and exits 1)."""
    result = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
        capture_output=True,
        text=True,
    )
    return result.stderr


def _top_level_boxes(path) -> list[str]:
    data = path.read_bytes()
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        boxes.append(kind.decode("latin-1"))
        if size < 8:
            break
        offset += size
    return boxes


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_written_video_decodes_with_imageio(tmp_path):
    path = write_video(tmp_path / "anim.mp4", _frames(12, 48, 64), fps=24)
    assert path == tmp_path / "anim.mp4"
    with iio.get_reader(path, format="FFMPEG") as reader:
        meta = reader.get_meta_data()
        frames = list(reader.iter_data())
    assert len(frames) == 12
    assert frames[0].shape == (48, 64, 3)
    assert meta["codec"] == "h264"
    assert meta["fps"] == 24
    assert _leftovers(tmp_path) == ["anim.mp4"]


def test_stream_is_h264_yuv420p_bt709_and_faststart(tmp_path):
    path = write_video(tmp_path / "a.mp4", _frames(5, 32, 32), fps=10)
    description = _ffmpeg_description(path)
    assert "Video: h264" in description
    assert "yuv420p(tv, bt709" in description
    boxes = _top_level_boxes(path)
    assert boxes.index("moov") < boxes.index("mdat"), boxes  # faststart: index first


def test_colours_survive(tmp_path):
    frame = np.zeros((64, 64, 3), np.uint8)
    frame[:, :32] = (200, 50, 30)
    frame[:, 32:] = (20, 180, 240)
    path = write_video(tmp_path / "c.mp4", [frame] * 3)
    decoded = read_video_frames(path)
    assert decoded.shape == (3, 64, 64, 3) and decoded.dtype == np.uint8
    np.testing.assert_allclose(decoded[0, 32, 8].astype(int), (200, 50, 30), atol=4)
    np.testing.assert_allclose(decoded[0, 32, 56].astype(int), (20, 180, 240), atol=4)


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_odd_sizes_are_padded_not_resized(tmp_path, dtype):
    path = write_video(tmp_path / "odd.mp4", _frames(4, 33, 47, dtype), fps=12)
    decoded = read_video_frames(path)
    assert decoded.shape == (4, 34, 48, 3)  # padded by one row and column
    # Not rescaled: the square stays where it was drawn (rows 4..11, cols 2..9 in frame 0).
    assert decoded[0, 8, 5, 0] > 200 and decoded[0, 8, 5, 2] < 80
    assert abs(int(decoded[0, 20, 30, 0]) - 128) < 6


def test_zero_frames_refused_and_nothing_written(tmp_path):
    with pytest.raises(PersonaError, match="No frames"):
        write_video(tmp_path / "empty.mp4", [])
    assert _leftovers(tmp_path) == []


def test_error_mid_stream_leaves_no_file(tmp_path):
    def failing():
        yield from _frames(3, 32, 32)
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError, match="renderer crashed"):
        write_video(tmp_path / "x.mp4", failing())
    assert _leftovers(tmp_path) == []


def test_failure_keeps_the_previous_file(tmp_path):
    path = write_video(tmp_path / "keep.mp4", _frames(3, 32, 32))
    before = path.read_bytes()
    bad = [np.zeros((32, 32, 3)), np.zeros((16, 32, 3))]
    with pytest.raises(ValueError, match="frame 1"):
        write_video(path, bad)
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == ["keep.mp4"]


def test_bad_frame_shape_and_fps(tmp_path):
    with pytest.raises(ValueError):
        write_video(tmp_path / "a.mp4", [np.zeros((32, 32))])
    with pytest.raises(ValueError):
        write_video(tmp_path / "a.mp4", [np.zeros((32, 32, 3))], fps=0)
    assert _leftovers(tmp_path) == []


def test_read_missing_video(tmp_path):
    with pytest.raises(PersonaError, match="does not exist"):
        read_video_frames(tmp_path / "nope.mp4")


def test_png_rgba_round_trip(tmp_path):
    rgba = np.random.default_rng(0).random((20, 30, 4)).astype(np.float32)
    path = write_png_rgba(tmp_path / "sub" / "frame.png", rgba)
    with Image.open(path) as im:
        assert im.mode == "RGBA" and im.size == (30, 20)
        stored = np.asarray(im)
    np.testing.assert_array_equal(stored, np.round(rgba * 255).astype(np.uint8))
    assert _leftovers(tmp_path / "sub") == ["frame.png"]


def test_png_rgba_bad_shape(tmp_path):
    with pytest.raises(ValueError):
        write_png_rgba(tmp_path / "a.png", np.zeros((8, 8, 3)))
    assert _leftovers(tmp_path) == []
