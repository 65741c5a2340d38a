"""persona.io.image: every accepted mode gives sensible RGB; every refusal is a PersonaError."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageFile

from persona.errors import PersonaError
from persona.io.image import MIN_SIDE, LoadedImage, load_image


def _save(tmp_path, im: Image.Image, name: str, **kwargs) -> str:
    path = tmp_path / name
    im.save(path, **kwargs)
    return str(path)


def _check_valid(out: LoadedImage, w: int, h: int) -> None:
    assert out.rgb.shape == (h, w, 3)
    assert out.rgb.dtype == np.float32
    assert out.rgb.min() >= 0.0 and out.rgb.max() <= 1.0
    assert out.rgb.flags.c_contiguous


# ---------------------------------------------------------------------------- accepted modes


def test_rgb_png_is_exact(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (80, 100, 3), dtype=np.uint8)
    out = load_image(_save(tmp_path, Image.fromarray(arr), "a.png"))
    _check_valid(out, 100, 80)
    np.testing.assert_array_equal(out.rgb, arr / np.float32(255))
    assert out.alpha is None
    assert out.original_size == (100, 80) and out.scale == 1.0
    assert out.source_name == "a.png" and out.notes == []


def test_jpeg_from_path_bytes_and_pil_agree(tmp_path):
    yy, xx = np.mgrid[0:70, 0:90]
    arr = np.stack([xx * 2, yy * 3, np.full_like(xx, 100)], axis=-1).astype(np.uint8)  # smooth
    path = _save(tmp_path, Image.fromarray(arr), "a.jpg", quality=95)
    from_path = load_image(path)
    from_bytes = load_image(open(path, "rb").read())
    with Image.open(path) as im:
        from_pil = load_image(im)
    np.testing.assert_array_equal(from_path.rgb, from_bytes.rgb)
    np.testing.assert_array_equal(from_path.rgb, from_pil.rgb)
    assert from_bytes.source_name == "<bytes>" and from_pil.source_name == "a.jpg"
    assert np.abs(from_path.rgb - arr / 255).mean() < 0.02  # JPEG is lossy


def test_grayscale_8bit(tmp_path):
    out = load_image(_save(tmp_path, Image.new("L", (64, 64), 128), "g.png"))
    np.testing.assert_allclose(out.rgb, 128 / 255, atol=1e-7)


def test_bilevel(tmp_path):
    im = Image.new("1", (64, 64), 0)
    im.paste(1, (0, 0, 32, 64))
    out = load_image(_save(tmp_path, im, "b.png"))
    assert out.rgb[:, :32].min() == 1.0 and out.rgb[:, 32:].max() == 0.0


@pytest.mark.parametrize("value", [65535, 32768, 1000])
def test_16bit_grayscale_png_is_scaled_not_clipped(tmp_path, value):
    im = Image.fromarray(np.full((64, 80), value, np.uint16))
    path = _save(tmp_path, im, "g16.png")
    with Image.open(path) as reopened:
        assert reopened.mode.startswith("I")  # PIL keeps the 16 bits
    out = load_image(path)
    np.testing.assert_allclose(out.rgb, value / 65535, rtol=1e-6)


def _png_rgb16(w: int, h: int, value: tuple[int, int, int]) -> bytes:
    """A 16-bit-per-channel RGB PNG, written by hand (PIL cannot write one)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    row = b"\x00" + struct.pack(">3H", *value) * w  # filter type 0
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    idat = zlib.compress(row * h)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_16bit_rgb_png(tmp_path):
    out = load_image(_png_rgb16(64, 64, (65535, 0, 32896)))
    np.testing.assert_allclose(out.rgb[0, 0], [1.0, 0.0, 128 / 255], atol=1e-6)


def test_32bit_int_and_float_modes(tmp_path):
    out = load_image(Image.fromarray(np.full((64, 64), 65535, np.int32)))  # mode "I"
    np.testing.assert_allclose(out.rgb, 1.0)
    im = Image.fromarray(np.full((64, 64), 0.25, np.float32))  # mode "F"
    out = load_image(_save(tmp_path, im, "f.tif"))
    np.testing.assert_allclose(out.rgb, 0.25)
    out = load_image(Image.fromarray(np.full((64, 64), 3.0, np.float32)))
    np.testing.assert_allclose(out.rgb, 1.0)
    assert any("clipped" in n for n in out.notes)


def test_palette_colours_exact(tmp_path):
    im = Image.new("P", (64, 64), 0)
    im.putpalette([255, 0, 0, 0, 255, 0, 10, 20, 30] + [0] * (256 - 3) * 3)
    im.paste(1, (0, 0, 32, 32))
    im.paste(2, (32, 32, 64, 64))
    out = load_image(_save(tmp_path, im, "p.png"))
    assert out.alpha is None
    np.testing.assert_array_equal(out.rgb[40, 10], [1, 0, 0])
    np.testing.assert_array_equal(out.rgb[10, 10], [0, 1, 0])
    np.testing.assert_allclose(out.rgb[50, 50], np.array([10, 20, 30]) / 255)


def test_palette_with_transparency_gives_alpha(tmp_path):
    im = Image.new("P", (64, 64), 0)
    im.putpalette([0, 0, 0, 200, 100, 50] + [0] * 254 * 3)
    im.paste(1, (16, 16, 48, 48))
    out = load_image(_save(tmp_path, im, "pt.png", transparency=0))
    assert out.alpha is not None
    assert out.alpha[0, 0] == 0.0 and out.alpha[32, 32] == 1.0
    np.testing.assert_allclose(out.rgb[32, 32], np.array([200, 100, 50]) / 255)


def test_grayscale_with_alpha(tmp_path):
    alpha = Image.new("L", (64, 64), 0)
    alpha.paste(255, (16, 16, 48, 48))
    im = Image.merge("LA", [Image.new("L", (64, 64), 90), alpha])
    out = load_image(_save(tmp_path, im, "la.png"))
    np.testing.assert_allclose(out.rgb[32, 32], 90 / 255)
    assert out.alpha[0, 0] == 0.0 and out.alpha[32, 32] == 1.0


def test_rgba_alpha_kept_only_when_not_constant(tmp_path):
    arr = np.full((64, 64, 4), 255, np.uint8)
    out = load_image(_save(tmp_path, Image.fromarray(arr), "opaque.png"))
    assert out.alpha is None and out.notes == []
    arr[:, :10, 3] = 0
    out = load_image(_save(tmp_path, Image.fromarray(arr), "cut.png"))
    assert out.alpha.shape == (64, 64) and out.alpha.dtype == np.float32
    assert out.alpha[:, :10].max() == 0.0 and out.alpha[:, 10:].min() == 1.0
    arr[..., 3] = 128
    out = load_image(_save(tmp_path, Image.fromarray(arr), "half.png"))
    assert out.alpha is None and any("constant alpha" in n for n in out.notes)


@pytest.mark.parametrize("ext", ["tif", "jpg"])
def test_cmyk_converted(tmp_path, ext):
    im = Image.new("CMYK", (64, 64), (255, 0, 0, 0))  # pure cyan
    out = load_image(_save(tmp_path, im, f"c.{ext}"))
    assert any("converted from CMYK" in n for n in out.notes)
    np.testing.assert_allclose(out.rgb[32, 32], [0.0, 1.0, 1.0], atol=0.02)


def test_other_modes_converted():
    out = load_image(Image.new("RGB", (64, 64), (200, 30, 60)).convert("YCbCr"))
    np.testing.assert_allclose(out.rgb[0, 0], np.array([200, 30, 60]) / 255, atol=0.02)
    assert any("YCbCr" in n for n in out.notes)


def test_srgb_profile_is_a_no_op_and_broken_profile_is_noted(tmp_path):
    arr = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = load_image(_save(tmp_path, Image.fromarray(arr), "s.png", icc_profile=srgb))
    np.testing.assert_array_equal(out.rgb, arr / np.float32(255))
    out = load_image(_save(tmp_path, Image.fromarray(arr), "x.png", icc_profile=b"not a profile"))
    np.testing.assert_array_equal(out.rgb, arr / np.float32(255))
    assert any("colour profile" in n for n in out.notes)


def test_mpo_uses_primary_picture(tmp_path):
    first = Image.new("RGB", (64, 64), (255, 0, 0))
    second = Image.new("RGB", (64, 64), (0, 0, 255))
    path = _save(tmp_path, first, "phone.mpo", format="MPO", save_all=True, append_images=[second])
    out = load_image(path)
    np.testing.assert_allclose(out.rgb[32, 32], [1, 0, 0], atol=0.02)
    assert any("MPO" in n for n in out.notes)


# ---------------------------------------------------------------------------- orientation, scale


def _marked(w: int, h: int) -> Image.Image:
    """Grey image with a red block at the top-left corner (stored orientation)."""
    im = Image.new("RGB", (w, h), (128, 128, 128))
    im.paste((255, 0, 0), (0, 0, w // 4, h // 4))
    return im


def _jpeg_with_orientation(im: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=95, exif=exif)
    return buf.getvalue()


def test_exif_orientation_6_rotates(tmp_path):
    data = _jpeg_with_orientation(_marked(120, 80), 6)  # stored 120 wide, 80 high
    out = load_image(data)
    _check_valid(out, 80, 120)  # displayed 80 wide, 120 high
    assert out.original_size == (80, 120)
    # Orientation 6 = rotate 90 degrees clockwise to display: top-left goes to top-right.
    assert out.rgb[5, -5, 0] > 0.9 and out.rgb[5, -5, 1] < 0.1
    assert abs(out.rgb[5, 5, 0] - 0.5) < 0.05


def test_exif_orientation_with_jpeg_draft_downscale():
    data = _jpeg_with_orientation(_marked(1200, 800), 6)
    out = load_image(data, max_side=200)
    assert out.original_size == (800, 1200)
    _check_valid(out, 133, 200)
    assert out.scale == pytest.approx(200 / 1200)
    assert out.rgb[3, -3, 0] > 0.9 and out.rgb[3, -3, 1] < 0.1


def test_downscale_keeps_aspect_and_reports_scale(tmp_path):
    im = Image.new("RGB", (400, 200), (10, 200, 30))
    out = load_image(_save(tmp_path, im, "w.png"), max_side=100)
    _check_valid(out, 100, 50)
    assert out.scale == 0.25 and out.original_size == (400, 200)
    assert any("downscaled from 400x200" in n for n in out.notes)
    np.testing.assert_allclose(out.rgb.reshape(-1, 3) * 255, [[10, 200, 30]] * 5000, atol=1e-4)
    # No upscaling when the image is already small enough.
    out = load_image(_save(tmp_path, Image.new("RGB", (90, 70)), "s.png"), max_side=100)
    _check_valid(out, 90, 70)
    assert out.scale == 1.0


def test_downscale_16bit_keeps_precision(tmp_path):
    im = Image.fromarray(np.full((128, 256), 1000, np.uint16))
    out = load_image(_save(tmp_path, im, "g16.png"), max_side=64)
    _check_valid(out, 64, 32)
    np.testing.assert_allclose(out.rgb, 1000 / 65535, rtol=1e-4)  # not 4/255


def test_downscale_with_alpha_does_not_bleed_hidden_colour():
    arr = np.zeros((128, 128, 4), np.float32)
    arr[..., 0] = 1.0  # red, but only visible on the right half
    arr[:, :64, :3] = [0.0, 1.0, 0.0]  # green under alpha 0
    arr[:, 64:, 3] = 1.0
    out = load_image(arr, max_side=64)
    edge = out.rgb[:, 32:34]  # right next to the alpha edge
    assert out.alpha is not None and edge[..., 1].max() < 0.05


# ---------------------------------------------------------------------------- numpy inputs


@pytest.mark.parametrize(
    ("arr", "expected"),
    [
        (np.full((64, 70), 255, np.uint8), 1.0),
        (np.full((64, 70, 1), 51, np.uint8), 0.2),
        (np.full((64, 70, 3), 65535, np.uint16), 1.0),
        (np.full((64, 70, 3), 0.5, np.float64), 0.5),
        (np.ones((64, 70), bool), 1.0),
    ],
)
def test_numpy_inputs(arr, expected):
    out = load_image(arr)
    _check_valid(out, 70, 64)
    np.testing.assert_allclose(out.rgb, expected, rtol=1e-6)
    assert out.source_name == "<array>"


def test_numpy_rgba_alpha():
    arr = np.zeros((64, 64, 4), np.uint8)
    arr[..., 3] = 255
    arr[0, 0, 3] = 0
    assert load_image(arr).alpha[0, 0] == 0.0


@pytest.mark.parametrize(
    "arr",
    [
        np.zeros((64, 64, 2), np.uint8),
        np.zeros((64,), np.uint8),
        np.zeros((64, 64, 3), np.int64),
        np.full((64, 64, 3), np.nan, np.float32),
    ],
)
def test_numpy_refused(arr):
    with pytest.raises(PersonaError):
        load_image(arr)


# ---------------------------------------------------------------------------- refusals


def _refused(source, match: str, **kwargs) -> str:
    with pytest.raises(PersonaError, match=match) as info:
        load_image(source, **kwargs)
    return str(info.value)


def test_missing_path_directory_and_empty(tmp_path):
    _refused(tmp_path / "nope.jpg", "does not exist")
    _refused(tmp_path, "not a regular file")
    (tmp_path / "empty.png").write_bytes(b"")
    _refused(tmp_path / "empty.png", "empty")
    _refused(b"", "empty")


def test_non_image_whatever_the_extension(tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    message = _refused(tmp_path / "x.txt", "not an image")
    assert "'x.txt'" in message and "photo" in message
    (tmp_path / "fake.jpg").write_text("I am not a JPEG")
    _refused(tmp_path / "fake.jpg", "not an image")
    _refused(b"\x00" * 1000, "not an image")


def test_eps_is_not_opened(tmp_path):
    # EPS would be decoded by Ghostscript; only common photo formats are allowed.
    (tmp_path / "a.eps").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n")
    _refused(tmp_path / "a.eps", "not an image")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file(tmp_path, fmt):
    arr = np.random.default_rng(3).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt)
    data = buf.getvalue()
    (tmp_path / "t.img").write_bytes(data[: len(data) // 2])
    _refused(tmp_path / "t.img", "truncated or corrupt")


def test_too_small_and_too_elongated():
    _refused(Image.new("RGB", (200, MIN_SIDE - 1)), "at least 64")
    _refused(np.zeros((64, 64 * 8 + 8, 3), np.uint8), "aspect ratio")
    _check_valid(load_image(np.zeros((64, 64 * 8, 3), np.uint8)), 512, 64)  # 1:8 is fine


def test_animated_gif_and_multipage_tiff_refused(tmp_path):
    frames = [Image.new("RGB", (64, 64), c) for c in [(255, 0, 0), (0, 255, 0)]]
    gif = _save(tmp_path, frames[0], "a.gif", save_all=True, append_images=frames[1:])
    assert "use a still image" in _refused(gif, "animated").lower()
    tif = _save(tmp_path, frames[0], "a.tif", save_all=True, append_images=frames[1:])
    _refused(tif, "still image")
    webp = _save(tmp_path, frames[0], "a.webp", save_all=True, append_images=frames[1:])
    _refused(webp, "still image")


def test_single_frame_gif_accepted(tmp_path):
    out = load_image(_save(tmp_path, Image.new("RGB", (64, 64), (0, 0, 255)), "s.gif"))
    np.testing.assert_allclose(out.rgb[0, 0], [0, 0, 1])


def _png_claiming(width: int, height: int) -> bytes:
    """A real 1x1 PNG whose IHDR is patched (with a valid CRC) to claim width x height."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (8000, 8000),  # over our 40 MP limit, under PIL's
        (10000, 10000),  # PIL warns (DecompressionBombWarning)
        (30000, 30000),  # PIL refuses (DecompressionBombError)
    ],
)
def test_decompression_bomb_refused_before_decoding(tmp_path, monkeypatch, width, height):
    def no_decoding(self):
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    (tmp_path / "bomb.png").write_bytes(_png_claiming(width, height))
    message = _refused(tmp_path / "bomb.png", "too large|megapixels")
    assert "AssertionError" not in message


def test_max_pixels_parameter():
    _refused(Image.new("RGB", (100, 100)), "megapixels", max_pixels=5000)
    assert load_image(Image.new("RGB", (100, 100)), max_pixels=10_000).rgb.shape == (100, 100, 3)


def test_fully_transparent_refused():
    _refused(np.zeros((64, 64, 4), np.uint8), "fully transparent")


def test_unsupported_source_type():
    _refused(12345, "Cannot read an image")


def test_max_side_below_minimum_is_a_caller_error():
    with pytest.raises(ValueError):
        load_image(np.zeros((64, 64, 3), np.uint8), max_side=32)
