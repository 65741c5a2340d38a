"""Fuzzing (issue 10, item 5): the loaders of everything a user uploads (photo, avatar
package, motion file) either load or raise PersonaError: never another exception, never a
hang, never unpickling.

Property-based (hypothesis): arbitrary bytes, and valid files of each kind mutated byte by
byte (flips, truncation, insertion, splicing of chunks), so that the headers and structures
the loaders parse are hit, not only their first "is this a file of my kind" check.

Example counts are bounded so that the module runs in about a minute on 2 slow cores
(`HYPOTHESIS_PROFILE=ci`, the default, derandomized so CI is reproducible); run a deeper,
random search with `HYPOTHESIS_PROFILE=long pytest tests/test_fuzz_loaders.py`. Each call is
also guarded by a wall-clock alarm, so a hang fails the test instead of stalling CI.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import signal
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from persona.errors import PersonaError
from persona.io.image import LoadedImage, load_image
from persona.io.package import MANIFEST_NAME, TENSORS_NAME, PackageSchema, TensorSpec, encode_package, read_package

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
SCALE = {"ci": 1, "long": 20}[PROFILE]  # examples per test: SCALE x the counts below
settings.register_profile(
    "ci", deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)  # fmt: skip
settings.register_profile(
    "long", deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)  # fmt: skip
settings.load_profile(PROFILE)


def examples(n: int) -> settings:
    return settings(max_examples=n * SCALE)


CALL_LIMIT_S = 20  # one load of a file of a few kB; far above the slowest seen (~0.3 s)


@contextlib.contextmanager
def no_hang(seconds: float = CALL_LIMIT_S):
    """Fail (TimeoutError) if the block runs longer than `seconds` (SIGALRM, main thread)."""

    def expired(signum, frame):
        raise TimeoutError(f"a loader ran for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def loads_or_refuses(load, *args):
    """Call `load`: its result, or None when it raised PersonaError with a message. Any other
    exception (or a hang) propagates and fails the property."""
    with no_hang():
        try:
            return load(*args)
        except PersonaError as err:
            message = str(err)
            assert message and "\n" not in message.strip() and "Traceback" not in message, message
            return None


# --- mutations of valid files ------------------------------------------------------------------


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    """One of `seeds`, changed by 1-4 edits: flip/set bytes (biased to the first 256 bytes,
    where the headers are), truncate, insert random bytes, duplicate or delete a chunk."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        kind = draw(st.sampled_from(["flip", "set", "truncate", "insert", "duplicate", "delete"]))
        head = draw(st.booleans())
        at = draw(st.integers(0, min(len(data), 256) - 1 if head else len(data) - 1))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[at] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, draw(st.integers(0, 255))]))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            length = draw(st.integers(1, 64))
            chunk = bytes(data[at : at + length])
            if kind == "duplicate":
                data[at:at] = chunk
            else:
                del data[at : at + length]
    return bytes(data)


# --- image loader ------------------------------------------------------------------------------


def _image_seeds() -> list[bytes]:
    """Small valid files in every accepted format and several modes (EXIF-rotated JPEG,
    palette PNG with transparency, 16-bit PNG, CMYK JPEG/TIFF, animated GIF, ...)."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (72, 80, 3), dtype=np.uint8))
    out = []

    def save(im: Image.Image, fmt: str, **kwargs) -> None:
        buf = io.BytesIO()
        im.save(buf, fmt, **kwargs)
        out.append(buf.getvalue())

    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate
    save(rgb, "JPEG", quality=80, exif=exif.tobytes())
    save(rgb, "PNG")
    save(rgb.convert("RGBA"), "PNG")
    save(rgb.convert("P"), "PNG", transparency=3)
    save(Image.fromarray(rng.integers(0, 65535, (70, 70), dtype=np.uint16)), "PNG")
    save(rgb.convert("CMYK"), "JPEG")
    save(rgb.convert("CMYK"), "TIFF")
    save(rgb, "WEBP", quality=70)
    save(rgb, "BMP")
    save(rgb.convert("L"), "PPM")
    save(rgb, "GIF", save_all=True, append_images=[rgb.rotate(90)])
    return out


IMAGE_SEEDS = _image_seeds()


def check_image(out: LoadedImage | None, max_pixels: int) -> None:
    if out is None:
        return
    h, w = out.rgb.shape[:2]
    assert out.rgb.shape == (h, w, 3) and out.rgb.dtype == np.float32
    assert np.isfinite(out.rgb).all() and out.rgb.min() >= 0.0 and out.rgb.max() <= 1.0
    assert out.alpha is None or out.alpha.shape == (h, w)
    assert out.original_size[0] * out.original_size[1] <= max_pixels


@examples(400)
@given(st.binary(max_size=4096))
def test_image_loader_on_arbitrary_bytes(data):
    check_image(loads_or_refuses(load_image, data), 40_000_000)


@examples(1500)
@given(mutated(IMAGE_SEEDS), st.sampled_from([None, 64, 96]))
def test_image_loader_on_mutated_images(data, max_side):
    out = loads_or_refuses(lambda: load_image(data, 20_000, max_side))  # a mutated header may claim anything
    check_image(out, 20_000)
    if out is not None and max_side is not None:
        assert max(out.rgb.shape[:2]) <= max_side


@examples(200)
@given(st.binary(min_size=1, max_size=2048), st.sampled_from(["photo.jpg", "photo.png", "photo", "photo.webp"]))
def test_image_loader_on_files(data, name):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        check_image(loads_or_refuses(load_image, path), 40_000_000)


# --- avatar package reader ---------------------------------------------------------------------

SCHEMA = PackageSchema(
    tensors={"means": TensorSpec(torch.float32, ("N", 3)), "parent": TensorSpec(torch.int64, ("N",)), "weights": TensorSpec(torch.float32, (4, "C"))},
    max_total_bytes=1 << 20,
)  # fmt: skip


def _package_seeds() -> list[bytes]:
    g = torch.Generator().manual_seed(0)
    tensors = {"means": torch.randn(6, 3, generator=g), "parent": torch.arange(6), "weights": torch.rand(4, 5, generator=g)}
    valid = encode_package({"body_model": "anny", "preset": "preview"}, tensors)
    assert read_package(valid, SCHEMA).dims == {"N": 6, "C": 5}
    deflated = io.BytesIO()  # the same entries, both deflated: mutations then hit the inflater
    with zipfile.ZipFile(valid and io.BytesIO(valid)) as src, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    return [valid, deflated.getvalue()]


PACKAGE_SEEDS = _package_seeds()


def check_package(out) -> None:
    if out is None:
        return
    assert set(out.tensors) == set(SCHEMA.tensors)
    for name, spec in SCHEMA.tensors.items():
        assert out.tensors[name].dtype == spec.dtype
        assert not out.tensors[name].is_floating_point() or torch.isfinite(out.tensors[name]).all()


@examples(400)
@given(st.binary(max_size=4096))
def test_package_reader_on_arbitrary_bytes(data):
    check_package(loads_or_refuses(read_package, data, SCHEMA))


@examples(1500)
@given(mutated(PACKAGE_SEEDS))
def test_package_reader_on_mutated_packages(data):
    check_package(loads_or_refuses(read_package, data, SCHEMA))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


@examples(400)
@given(
    manifest=st.one_of(JSON, st.fixed_dictionaries({"format": st.just("persona-avatar"), "format_version": JSON})),
    header=st.dictionaries(st.sampled_from(["means", "parent", "weights", "other", "__metadata__"]), JSON, max_size=4),
    body=st.binary(max_size=256),
    names=st.lists(st.text(min_size=1, max_size=12), max_size=2),
)
def test_package_reader_on_hand_made_entries(manifest, header, body, names):
    """Valid zips with arbitrary manifests, safetensors headers (the JSON it starts with) and
    entry names: structure checks and parsers see well-formed containers of bad content."""
    header_bytes = json.dumps(header).encode()
    tensors = len(header_bytes).to_bytes(8, "little") + header_bytes + body
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(MANIFEST_NAME, json.dumps(manifest))
        zf.writestr(TENSORS_NAME, tensors)
        for name in names:
            with contextlib.suppress(ValueError):  # names zipfile itself cannot write
                zf.writestr(name, b"")
    check_package(loads_or_refuses(read_package, buf.getvalue(), SCHEMA))


def test_valid_tensors_in_a_valid_package_still_load():
    """The property tests' seed really is accepted (a fuzz test whose seeds were all refused
    would only ever test refusals)."""
    out = read_package(PACKAGE_SEEDS[1], SCHEMA)
    assert out.dims == {"N": 6, "C": 5}
    assert safetensors.torch.load(safetensors.torch.save(out.tensors)).keys() == out.tensors.keys()


# --- motion loaders ----------------------------------------------------------------------------


def _motion_seeds(folder: Path) -> dict[str, list[bytes]]:
    from dataclasses import replace

    from test_motion_import import write_amass, write_bvh

    from persona.generate.motions import MOTIONS

    wave = MOTIONS["wave"]()
    short = replace(wave, rotations=wave.rotations[:8], global_orient=wave.global_orient[:8], translation=wave.translation[:8])
    short.save(folder / "ours.npz")
    write_amass(folder / "amass.npz", width=66)
    np.savez(folder / "params.npz", global_orient=np.zeros((4, 3)), body_pose=np.zeros((4, 63)), transl=np.zeros((4, 3)))
    bvh = write_bvh(folder / "walk.bvh").read_text().splitlines()
    # Keep the BVH small: the hierarchy and 6 of its frames.
    motion_at = bvh.index("MOTION")
    small_bvh = "\n".join([*bvh[: motion_at + 1], "Frames: 6", bvh[motion_at + 2], *bvh[motion_at + 3 : motion_at + 9]]) + "\n"
    npy = io.BytesIO()
    np.save(npy, np.zeros((4, 3)))  # a bare .npy named .npz: np.load returns an array, not an archive
    return {
        ".npz": [(folder / name).read_bytes() for name in ("ours.npz", "amass.npz", "params.npz")] + [npy.getvalue()],
        ".bvh": [small_bvh.encode()],
    }


@functools.cache
def motion_seeds() -> dict[str, list[bytes]]:
    """Valid motion files of each layout (as bytes), each checked to load."""
    from persona.generate.motion_import import load_motion_file

    with tempfile.TemporaryDirectory() as folder:
        seeds = _motion_seeds(Path(folder))
        for suffix, files in seeds.items():  # every seed but the bare .npy is a motion PERSONA reads
            for i, data in enumerate(files):
                (Path(folder) / f"{i}{suffix}").write_bytes(data)
                if not data.startswith(b"\x93NUMPY"):
                    assert load_motion_file(Path(folder) / f"{i}{suffix}").num_frames >= 1
    return seeds


def load_motion_bytes(data: bytes, suffix: str):
    from persona.generate.motion_import import load_motion_file

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"motion{suffix}"
        path.write_bytes(data)
        out = loads_or_refuses(load_motion_file, path)
    if out is not None:
        assert out.num_frames >= 1 and torch.isfinite(out.rotations).all() and torch.isfinite(out.translation).all()
    return out


@examples(300)
@given(st.binary(max_size=2048), st.sampled_from([".npz", ".bvh", ".pkl", ".txt"]))
def test_motion_loader_on_arbitrary_bytes(data, suffix):
    load_motion_bytes(data, suffix)


@examples(600)
@given(data=st.data())
def test_motion_loader_on_mutated_npz(data):
    load_motion_bytes(data.draw(mutated(motion_seeds()[".npz"])), ".npz")


@examples(300)
@given(data=st.data())
def test_motion_loader_on_mutated_bvh(data):
    load_motion_bytes(data.draw(mutated(motion_seeds()[".bvh"])), ".bvh")


TOKENS = st.sampled_from(["0", "-1", "1e308", "nan", "inf", "{", "}", "ROOT", "JOINT X", "End Site", "CHANNELS 0", "CHANNELS 99",
                          "OFFSET", "Frames: 0", "Frames: -3", "Frame Time: 0", "MOTION", "\n", " "])  # fmt: skip


@examples(300)
@given(data=st.data())
def test_motion_loader_on_edited_bvh_text(data):
    """Token-level edits of the BVH text (numbers, keywords, braces, frame counts)."""
    words = motion_seeds()[".bvh"][0].decode().split(" ")
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(words) - 1))
        words[at] = data.draw(TOKENS)
    load_motion_bytes(" ".join(words).encode(), ".bvh")


ARRAYS = st.one_of(
    st.builds(np.zeros, st.tuples(*[st.integers(0, 5)] * 2)),
    st.builds(np.zeros, st.tuples(*[st.integers(0, 4)] * 3)),
    st.builds(np.full, st.tuples(st.integers(1, 4), st.sampled_from([3, 63, 66, 165])), st.sampled_from([0.0, np.nan, 1e9, -1.0])),
    st.builds(np.array, st.sampled_from([30.0, 0.0, -5.0, 1e12, "walk", "anny", "smplx"])),
    st.builds(np.array, st.lists(st.text(max_size=8), max_size=4)),
)


@examples(500)
@given(st.dictionaries(st.sampled_from([
    "joint_names", "rotations", "global_orient", "translation", "fps", "skeleton", "poses", "trans", "mocap_framerate",
    "body_pose", "transl", "left_hand_pose", "jaw_pose", "betas", "pose_body", "root_orient",
]), ARRAYS, max_size=6))  # fmt: skip
def test_motion_loader_on_arbitrary_npz_arrays(arrays):
    """Well-formed .npz files holding arbitrary arrays under the keys the loaders look for."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    load_motion_bytes(buf.getvalue(), ".npz")
