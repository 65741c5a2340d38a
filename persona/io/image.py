"""Load and validate the user's photo.

`load_image` accepts a path, raw bytes, a PIL image or a numpy array and returns a
`LoadedImage`: RGB float32 (H, W, 3) in [0, 1] (row 0 at the top, as everywhere in
persona), an optional alpha channel, and what was done to get there.

Uploaded files are untrusted. The pixel count is checked from the header before anything is
decoded, only common photo formats are opened (no EPS, which would run Ghostscript), and
every PIL failure becomes a `PersonaError` whose message says what to do.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from persona.errors import PersonaError

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, Image.Image, np.ndarray]

MIN_SIDE = 64  # px on the short side; below this a body cannot be fitted
MAX_ASPECT = 8.0  # long side / short side
_UPLOAD_HINT = "Upload a photo of one person (JPEG, PNG or WebP)."
# Formats users plausibly upload. Restricting Image.open to these keeps PIL's rarer (and
# historically less safe) decoders, and EPS's Ghostscript call, away from untrusted files.
_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "AVIF", "BMP", "TIFF", "GIF", "PPM")


@dataclass
class LoadedImage:
    """A decoded, validated photo.

    rgb: (H, W, 3) float32 in [0, 1]; straight (not premultiplied) colour.
    alpha: (H, W) float32 in [0, 1], only when the input had a non-constant alpha channel
        (a cut-out photo): a hint for the person mask. RGB under alpha 0 is whatever the
        file stored there.
    original_size: (width, height) after EXIF orientation, before downscaling.
    scale: working size / original size (1.0 when not downscaled); the long side is exactly
        original long side * scale, each side is round(original side * scale), as in
        `persona.camera.Camera.scaled`.
    source_name: file name, or "<bytes>", "<PIL image>", "<array>".
    notes: human-readable remarks on conversions, e.g. "converted from CMYK".
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    original_size: tuple[int, int]
    scale: float
    source_name: str
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of `rgb`."""
        return self.rgb.shape[1], self.rgb.shape[0]


def load_image(
    source: ImageSource, max_pixels: int = 40_000_000, max_side: int | None = None
) -> LoadedImage:
    """Decode `source` into a `LoadedImage`, refusing anything unusable with a `PersonaError`.

    source: a file path, the file's bytes, a PIL image, or a numpy array (H, W), (H, W, 3) or
        (H, W, 4) of uint8, uint16, bool or float in [0, 1].
    max_pixels: refuse images with more pixels than this (checked from the header, before
        decoding). PIL's own decompression-bomb limit (~89 MP) also applies.
    max_side: if given, downscale (Lanczos) so that the longer side is at most this.
    """
    if max_side is not None and max_side < MIN_SIDE:
        raise ValueError(f"max_side must be at least {MIN_SIDE}, got {max_side}")
    opts = _Options(max_pixels, max_side)
    if isinstance(source, np.ndarray):
        return _load_array(source, opts)
    if isinstance(source, Image.Image):
        return _load_pil(source, _pil_name(source), "The image", opts, owned=False)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise PersonaError(f"The uploaded image is empty (0 bytes). {_UPLOAD_HINT}")
        return _load_stream(io.BytesIO(data), "<bytes>", "The uploaded image", opts)
    if isinstance(source, (str, os.PathLike)):
        return _load_path(Path(source), opts)
    raise PersonaError(
        f"Cannot read an image from a {type(source).__name__}; pass a file path, bytes, "
        "a PIL image or a numpy array."
    )


@dataclass(frozen=True)
class _Options:
    max_pixels: int
    max_side: int | None


# ---------------------------------------------------------------------------- sources


def _load_path(path: Path, opts: _Options) -> LoadedImage:
    what = f"The file {path.name!r}"
    if not path.exists():
        raise PersonaError(f"{what} does not exist ({path}). Check the path.")
    if not path.is_file():
        raise PersonaError(f"{what} is not a regular file ({path}). Pass an image file.")
    if path.stat().st_size == 0:
        raise PersonaError(f"{what} is empty (0 bytes). {_UPLOAD_HINT}")
    try:
        fp = path.open("rb")
    except OSError as e:
        raise PersonaError(f"{what} cannot be opened ({e.strerror}). Check its permissions.") from e
    with fp:
        return _load_stream(fp, path.name, what, opts)


def _load_stream(fp: BinaryIO, name: str, what: str, opts: _Options) -> LoadedImage:
    im = _open(fp, what, opts)
    with im:
        return _load_pil(im, name, what, opts, owned=True)


@cache
def _allowed_formats() -> tuple[str, ...]:
    Image.init()  # registers the plugins; formats missing from this build are skipped
    return tuple(f for f in _FORMATS if f in Image.OPEN)


def _open(fp: BinaryIO, what: str, opts: _Options) -> Image.Image:
    """Image.open (reads the header only), with PIL's errors turned into PersonaError."""
    try:
        with warnings.catch_warnings():
            # PIL warns (rather than fails) between ~89 and ~179 MP; treat it as a refusal.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(fp, formats=_allowed_formats())
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise PersonaError(
            f"{what} is too large to open safely ({e}). Resize it below "
            f"{opts.max_pixels / 1e6:.0f} megapixels and try again."
        ) from e
    except UnidentifiedImageError as e:
        raise PersonaError(
            f"{what} is not an image PIL can read (JPEG, PNG, WebP, ...). "
            "If it is an iPhone HEIC photo, export it as JPEG first. " + _UPLOAD_HINT
        ) from e
    except MemoryError:
        raise
    except Exception as e:  # untrusted bytes: any decoder failure means "unreadable"
        raise PersonaError(f"{what} could not be read ({e}). {_UPLOAD_HINT}") from e


def _pil_name(im: Image.Image) -> str:
    filename = getattr(im, "filename", "")
    return Path(filename).name if filename else "<PIL image>"


def _load_array(arr: np.ndarray, opts: _Options) -> LoadedImage:
    """numpy (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) -> LoadedImage."""
    what = "The image array"
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise PersonaError(
            f"{what} has shape {arr.shape}; expected (H, W), (H, W, 3) or (H, W, 4)."
        )
    h, w = arr.shape[:2]
    _check_size(w, h, what, opts)
    notes: list[str] = []
    if arr.dtype == np.uint8:
        im = Image.fromarray(np.ascontiguousarray(arr))  # L, RGB or RGBA
        return _finish(im, (w, h), "<array>", what, opts, notes)
    if arr.dtype == np.uint16:
        pixels = arr.astype(np.float32) / 65535.0
    elif arr.dtype == np.bool_:
        pixels = arr.astype(np.float32)
    elif np.issubdtype(arr.dtype, np.floating):
        pixels = _clip_float(arr.astype(np.float32), what, notes)
    else:
        raise PersonaError(
            f"{what} has dtype {arr.dtype}; expected uint8, uint16, bool or float in [0, 1]."
        )
    pixels = pixels if pixels.ndim == 3 else pixels[..., None]
    return _finish(pixels, (w, h), "<array>", what, opts, notes)


# ---------------------------------------------------------------------------- PIL path


def _load_pil(im: Image.Image, name: str, what: str, opts: _Options, owned: bool) -> LoadedImage:
    """Validate the header, decode, orient, convert and downscale a PIL image.

    owned: we opened `im` ourselves, so it may be decoded at reduced size (JPEG draft);
    a caller's image is never shrunk behind its back.
    """
    _check_size(im.width, im.height, what, opts)
    header_size = im.size  # before any JPEG draft shrinks it
    notes: list[str] = []
    _check_frames(im, what, notes)
    try:
        if owned:
            _draft(im, opts)
        im.load()
    except MemoryError:
        raise
    except Exception as e:  # truncated/corrupt data: PIL raises OSError, SyntaxError, ...
        raise PersonaError(
            f"{what} could not be decoded ({e}); it may be truncated or corrupt. "
            "Export or download it again, then retry."
        ) from e
    decoded_size = im.size
    im = _exif_transpose(im, notes)
    swapped = im.size != decoded_size  # orientations 5-8 swap width and height
    original_size = (header_size[1], header_size[0]) if swapped else header_size
    try:
        pixels = _normalise_mode(im, what, notes)
    except PersonaError:
        raise
    except MemoryError:
        raise
    except Exception as e:  # e.g. a mode PIL cannot convert
        raise PersonaError(
            f"{what} uses pixel mode {im.mode!r}, which could not be converted to RGB ({e}). "
            "Save it as an 8-bit RGB JPEG or PNG."
        ) from e
    return _finish(pixels, original_size, name, what, opts, notes)


def _check_size(w: int, h: int, what: str, opts: _Options) -> None:
    """Refuse from the header: too many pixels, too small, too elongated."""
    if w * h > opts.max_pixels:
        raise PersonaError(
            f"{what} is {w}x{h} ({w * h / 1e6:.1f} megapixels), more than the "
            f"{opts.max_pixels / 1e6:.0f} megapixels allowed. Resize it and try again."
        )
    if min(w, h) < MIN_SIDE:
        raise PersonaError(
            f"{what} is only {w}x{h} pixels; at least {MIN_SIDE} px on the short side is "
            "needed (a few hundred is better). Use a larger photo."
        )
    if max(w, h) > MAX_ASPECT * min(w, h):
        raise PersonaError(
            f"{what} is {w}x{h}, an aspect ratio beyond 1:{MAX_ASPECT:.0f}. "
            "Crop it closer to the person."
        )


def _check_frames(im: Image.Image, what: str, notes: list[str]) -> None:
    try:
        n_frames = int(getattr(im, "n_frames", 1))
    except Exception as e:  # counting frames walks the file; a corrupt one fails here
        raise PersonaError(f"{what} could not be read ({e}). {_UPLOAD_HINT}") from e
    if n_frames <= 1:
        return
    if im.format == "MPO":
        # Phone cameras write MPO (a JPEG plus depth/preview pictures); frame 0 is the photo.
        notes.append(f"used the primary picture of a {n_frames}-picture MPO file")
        return
    raise PersonaError(
        f"{what} is animated or has several pages ({n_frames} frames). "
        "Use a still image: one photo of one person."
    )


def _draft(im: Image.Image, opts: _Options) -> None:
    """Let libjpeg decode big JPEGs at 1/2, 1/4 or 1/8 size when we will downscale anyway."""
    if opts.max_side is None or im.format not in ("JPEG", "MPO"):
        return
    s = opts.max_side / max(im.size)
    if s < 0.5:
        # draft keeps the result at least as large as requested; Lanczos does the rest.
        im.draft(im.mode, (math.ceil(im.width * s), math.ceil(im.height * s)))


def _exif_transpose(im: Image.Image, notes: list[str]) -> Image.Image:
    try:
        return ImageOps.exif_transpose(im)
    except MemoryError:
        raise
    except Exception as e:  # a broken EXIF block should not cost the user their photo
        notes.append(f"ignored unreadable EXIF orientation ({e})")
        return im


def _normalise_mode(im: Image.Image, what: str, notes: list[str]) -> Image.Image | np.ndarray:
    """Any PIL mode -> an 8-bit image in L/LA/RGB/RGBA, or float32 (H, W, C) in [0, 1].

    High-bit-depth modes go to float so that 16-bit values are scaled, not clipped to 255.
    """
    mode = im.mode
    has_transparency = "transparency" in im.info
    if mode in ("L", "RGB") and has_transparency:  # a tRNS colour key
        return im.convert("LA" if mode == "L" else "RGBA")
    if mode in ("L", "LA", "RGB", "RGBA"):
        return _to_srgb(im, notes)
    if mode == "1":
        return im.convert("L")
    if mode in ("P", "PA"):
        return im.convert("RGBA" if mode == "PA" or has_transparency else "RGB")
    if mode in ("RGBa", "La"):  # premultiplied
        return im.convert(mode.upper())
    if mode == "CMYK":
        return _cmyk_to_rgb(im, notes)
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.float32)[..., None] / 65535.0
    if mode == "I":
        # 32-bit integer images come from 16-bit sources in practice (PNG, TIFF).
        return _clip_float(np.asarray(im).astype(np.float32) / 65535.0, what, notes)[..., None]
    if mode == "F":
        return _clip_float(np.asarray(im).astype(np.float32), what, notes)[..., None]
    notes.append(f"converted from {mode}")
    return im.convert("RGB")


def _clip_float(pixels: np.ndarray, what: str, notes: list[str]) -> np.ndarray:
    if not np.isfinite(pixels).all():
        raise PersonaError(
            f"{what} contains NaN or infinite values. Save it as an 8-bit JPEG or PNG."
        )
    lo, hi = float(pixels.min()), float(pixels.max())
    if lo < 0.0 or hi > 1.0:
        notes.append(f"clipped values outside [0, 1] (range was {lo:.3g}..{hi:.3g})")
        pixels = np.clip(pixels, 0.0, 1.0)
    return pixels


def _cmyk_to_rgb(im: Image.Image, notes: list[str]) -> Image.Image:
    if "icc_profile" in im.info:
        converted = _icc_to_srgb(im, "RGB", notes)
        if converted is not None:
            notes.append("converted from CMYK using its embedded colour profile")
            return converted
    notes.append("converted from CMYK")
    return im.convert("RGB")


def _to_srgb(im: Image.Image, notes: list[str]) -> Image.Image:
    """Apply an embedded non-sRGB ICC profile (e.g. Display P3 from phones) for RGB images."""
    if im.mode not in ("RGB", "RGBA") or not im.info.get("icc_profile"):
        return im
    converted = _icc_to_srgb(im, im.mode, notes)
    return im if converted is None else converted


def _icc_to_srgb(im: Image.Image, out_mode: str, notes: list[str]) -> Image.Image | None:
    """Colour-manage `im` to sRGB; None if it is already sRGB or the profile is unusable."""
    try:
        from PIL import ImageCms  # needs littlecms; absent in some minimal PIL builds
    except ImportError:
        notes.append("ignored the embedded colour profile (PIL has no littlecms)")
        return None
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(im.info["icc_profile"]))
        description = ImageCms.getProfileDescription(src).strip()
        if im.mode != "CMYK" and "srgb" in description.lower():
            return None  # already sRGB: skip an identity transform
        dst = ImageCms.createProfile("sRGB")
        out = ImageCms.profileToProfile(im, src, dst, outputMode=out_mode)
    except MemoryError:
        raise
    except Exception as e:  # a broken profile: keep the raw values, say so
        notes.append(f"ignored an unreadable embedded colour profile ({e})")
        return None
    if im.mode != "CMYK":
        notes.append(f"converted from the embedded colour profile {description!r} to sRGB")
    return out


# ---------------------------------------------------------------------------- finishing


def _finish(
    pixels: Image.Image | np.ndarray,
    original_size: tuple[int, int],
    name: str,
    what: str,
    opts: _Options,
    notes: list[str],
) -> LoadedImage:
    """Downscale, convert to float32 (H, W, C) and split off a meaningful alpha channel."""
    w, h = original_size
    scale = 1.0
    if opts.max_side is not None and max(w, h) > opts.max_side:
        scale = opts.max_side / max(w, h)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        pixels = _resize(pixels, size)
        notes.append(f"downscaled from {w}x{h} to {size[0]}x{size[1]}")
    elif isinstance(pixels, Image.Image) and pixels.size != (w, h):
        pixels = _resize(pixels, (w, h))  # a JPEG draft overshoot without downscaling
    if isinstance(pixels, Image.Image):
        arr = np.asarray(pixels, dtype=np.uint8).astype(np.float32) / 255.0
        pixels = arr if arr.ndim == 3 else arr[..., None]
    rgb, alpha = _split_alpha(pixels, what, notes)
    return LoadedImage(rgb, alpha, (w, h), scale, name, notes)


def _resize(pixels: Image.Image | np.ndarray, size: tuple[int, int]) -> Image.Image | np.ndarray:
    """Lanczos resize to size=(width, height); PIL premultiplies alpha for LA/RGBA itself."""
    if isinstance(pixels, Image.Image):
        return pixels.resize(size, Image.Resampling.LANCZOS)
    # float (H, W, C): premultiply alpha so hidden colours do not bleed across cut-out edges.
    has_alpha = pixels.shape[2] in (2, 4)
    if has_alpha:
        pixels = np.concatenate([pixels[..., :-1] * pixels[..., -1:], pixels[..., -1:]], axis=-1)
    out = np.clip(_resize_channels(pixels, size), 0.0, 1.0)  # Lanczos overshoots at edges
    if has_alpha:
        a = np.maximum(out[..., -1:], 1e-6)
        out[..., :-1] = np.where(out[..., -1:] > 1e-6, np.clip(out[..., :-1] / a, 0.0, 1.0), 0.0)
    return out


def _resize_channels(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float32 (H, W, C) -> (h, w, C), each channel resized as a PIL "F" image (full precision)."""
    channels = []
    for i in range(pixels.shape[2]):
        channel = Image.fromarray(np.ascontiguousarray(pixels[..., i], dtype=np.float32))
        channels.append(np.asarray(channel.resize(size, Image.Resampling.LANCZOS)))
    return np.stack(channels, axis=-1)


def _split_alpha(
    pixels: np.ndarray, what: str, notes: list[str]
) -> tuple[np.ndarray, np.ndarray | None]:
    """float32 (H, W, C), C in 1..4 -> rgb (H, W, 3) and alpha (H, W) or None."""
    c = pixels.shape[2]
    color = pixels[..., : 3 if c >= 3 else 1]
    rgb = np.ascontiguousarray(np.broadcast_to(color, (*pixels.shape[:2], 3)), dtype=np.float32)
    if c not in (2, 4):
        return rgb, None
    alpha = np.ascontiguousarray(pixels[..., -1], dtype=np.float32)
    lo, hi = float(alpha.min()), float(alpha.max())
    if hi == 0.0:
        raise PersonaError(
            f"{what} is fully transparent (its alpha channel is 0 everywhere). "
            "Save it without transparency, e.g. as JPEG."
        )
    if lo == hi:
        if hi < 1.0:
            notes.append(f"ignored a constant alpha channel ({hi:.3g})")
        return rgb, None
    return rgb, alpha
