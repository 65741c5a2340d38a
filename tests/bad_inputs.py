"""The catalogue of bad uploads (issue 10, items 1-2), written as real files, for the CLI and
app tests: each case is (id, writer, expected message fragment). A writer takes a folder (and,
for packages, a valid package's bytes) and returns the file's path.

`small_package` makes a real, valid avatar.persona quickly (the body's own vertices as
Gaussians, no optimisation) for the package cases and for cheap /animate calls.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
from PIL import Image

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


# --- photos ----------------------------------------------------------------------------------


def _png_claiming(width: int, height: int) -> bytes:
    """A real 1x1 PNG whose header claims width x height (a decompression bomb's header)."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def _write(folder: Path, name: str, data: bytes) -> Path:
    (folder / name).write_bytes(data)
    return folder / name


def _saved(folder: Path, name: str, im: Image.Image, **kwargs) -> Path:
    im.save(folder / name, **kwargs)
    return folder / name


def _truncated_photo(folder: Path) -> Path:
    data = (EXAMPLES / "person_bust.jpg").read_bytes()
    return _write(folder, "truncated.jpg", data[: len(data) // 3])


def _animated(folder: Path) -> Path:
    frames = [Image.open(EXAMPLES / "person_half.png").convert("RGB").resize((128, 128)), Image.new("RGB", (128, 128), "white")]
    return _saved(folder, "animated.gif", frames[0], save_all=True, append_images=frames[1:])


BAD_PHOTOS = [
    ("text_named_jpg", lambda d: _write(d, "notes.jpg", b"these are my notes, not a photo\n"), "not an image"),
    ("truncated_jpeg", _truncated_photo, "truncated or corrupt"),
    ("decompression_bomb", lambda d: _write(d, "bomb.png", _png_claiming(30000, 30000)), "too large"),
    ("over_max_pixels", lambda d: _write(d, "huge.png", _png_claiming(8000, 8000)), "megapixels"),
    ("tiny", lambda d: _saved(d, "tiny.png", Image.new("RGB", (40, 60), "grey")), "at least 64"),
    ("animated_gif", _animated, "animated"),
    ("extreme_aspect", lambda d: _saved(d, "strip.png", Image.new("RGB", (1200, 100), "grey")), "aspect ratio"),
    ("fully_transparent", lambda d: _saved(d, "clear.png", Image.new("RGBA", (200, 300), (0, 0, 0, 0))), "fully transparent"),
    ("empty_file", lambda d: _write(d, "empty.jpg", b""), "empty"),
    ("no_person", lambda d: _saved(d, "wall.png", Image.new("RGB", (400, 300), "white")), "no person"),
    ("cut_off_at_the_chest", lambda d: EXAMPLES / "person_bust.jpg", "hips visible"),
]


# Photos a user may well send that are accepted: each is the example photo in another form.
def _person() -> Image.Image:
    return Image.open(EXAMPLES / "person_half.png").convert("RGB")


def _exif_rotated_cmyk(folder: Path) -> Path:
    exif = Image.Exif()
    exif[0x0112] = 8  # the camera was turned: the viewer must rotate 90 degrees clockwise
    return _saved(folder, "cmyk_rotated.jpg", _person().rotate(-90, expand=True).convert("CMYK"), quality=92, exif=exif.tobytes())


def _rgba16(folder: Path) -> Path:
    """16-bit greyscale PNG."""
    grey = (np.asarray(_person().convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    return _saved(folder, "grey16.png", Image.fromarray(grey))


def _palette(folder: Path) -> Path:
    return _saved(folder, "palette.png", _person().convert("P", palette=Image.Palette.ADAPTIVE, colors=64), transparency=0)


def _two_people(folder: Path) -> Path:
    person = _person()
    w, h = person.size
    pair = Image.new("RGB", (2 * w, h), "white")
    pair.paste(person, (0, 0))
    pair.paste(person.resize((w * 3 // 4, h * 3 // 4)), (w + w // 8, h // 4))  # a smaller second person
    return _saved(folder, "two_people.jpg", pair, quality=92)


ACCEPTED_PHOTOS = [
    ("exif_rotated_cmyk_jpeg", _exif_rotated_cmyk),
    ("grey_16bit_png", _rgba16),
    ("palette_png_with_transparency", _palette),
    ("two_people", _two_people),
]


# --- avatar packages ---------------------------------------------------------------------------


def small_package(path: Path, body) -> Path:
    """A valid avatar.persona on `body` without optimisation (grey Gaussians on the body)."""
    from persona.avatar.storage import save_avatar
    from persona.avatar.train import AvatarConfig, initial_avatar
    from persona.body.model import BodyPose
    from persona.perceive.fit import photo_camera

    pose = BodyPose.zeros(1, body.num_joints)
    pose.translation[0, 2] = -3.0
    grey = torch.full((len(body.skin_weights), 3), 0.5)
    avatar = initial_avatar(body, body.default_shape, pose, photo_camera(256, 256, 50.0), grey, AvatarConfig(subdivision=0))
    return save_avatar(path, avatar, {"preset": "test"})


def _entries(valid: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(valid)) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def _zip(entries: list[tuple[str | zipfile.ZipInfo, bytes]], compression=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def _with_tensors(valid: bytes, change) -> bytes:
    entries = _entries(valid)
    tensors = safetensors.torch.load(entries["avatar.safetensors"])
    change(tensors)
    return _zip([("manifest.json", entries["manifest.json"]), ("avatar.safetensors", safetensors.torch.save(tensors))])


def _with_manifest(valid: bytes, **changes) -> bytes:
    entries = _entries(valid)
    manifest = {**json.loads(entries["manifest.json"]), **changes}
    return _zip([("manifest.json", json.dumps(manifest).encode()), ("avatar.safetensors", entries["avatar.safetensors"])])


def _renamed(valid: bytes, old: str, new: str) -> bytes:
    return _zip([(new if name == old else name, data) for name, data in _entries(valid).items()])


def _symlink(valid: bytes) -> bytes:
    link = zipfile.ZipInfo("manifest.json")
    link.create_system = 3
    link.external_attr = 0o120777 << 16
    return _zip([(link, b"/etc/passwd"), ("avatar.safetensors", _entries(valid)["avatar.safetensors"])])


class _Marker:
    """Unpickling this creates a folder: the proof that a file was (wrongly) unpickled."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def pickle_payload(marker: Path) -> bytes:
    import pickle

    return pickle.dumps(_Marker(str(marker)))


def _pickled_tensors(valid: bytes, marker: Path) -> bytes:
    return _zip([("manifest.json", _entries(valid)["manifest.json"]), ("avatar.safetensors", pickle_payload(marker))])


def _drop(name: str):
    return lambda t: t.pop(name)


def _set(name: str, value):
    return lambda t: t.__setitem__(name, value(t[name]))


# (id, bytes from (valid package bytes, marker path), expected fragment)
BAD_PACKAGES = [
    ("not_a_zip", lambda v, m: b"PK\x03\x04 this is not a zip", "not a valid zip"),
    ("truncated", lambda v, m: v[: len(v) // 2], "not a valid zip"),
    ("parent_path_entry", lambda v, m: _renamed(v, "avatar.safetensors", "../avatar.safetensors"), "unsafe path"),
    ("absolute_path_entry", lambda v, m: _renamed(v, "manifest.json", "/manifest.json"), "unsafe path"),
    ("symlink_entry", lambda v, m: _symlink(v), "symbolic link"),
    ("too_many_entries", lambda v, m: _zip([*_entries(v).items(), *((f"extra{i}.bin", b"") for i in range(40))]), "entries"),
    ("zip_bomb", lambda v, m: _zip([("manifest.json", _entries(v)["manifest.json"]), ("avatar.safetensors", bytes(50 << 20))], zipfile.ZIP_DEFLATED), "compression ratio"),
    ("unknown_format_version", lambda v, m: _with_manifest(v, format_version=99), "newer"),
    ("not_an_avatar", lambda v, m: _with_manifest(v, format="something-else"), "not a PERSONA avatar"),
    ("missing_tensor", lambda v, m: _with_tensors(v, _drop("colors")), "missing"),
    ("extra_tensor", lambda v, m: _with_tensors(v, lambda t: t.__setitem__("spy", torch.zeros(1))), "unexpected"),
    ("wrong_dtype", lambda v, m: _with_tensors(v, _set("colors", lambda x: x.double())), "expected torch.float32"),
    ("wrong_shape", lambda v, m: _with_tensors(v, _set("offsets", lambda x: x[:, :2].contiguous())), "shape"),
    ("non_finite", lambda v, m: _with_tensors(v, _set("offsets", lambda x: torch.full_like(x, float("nan")))), "NaN or infinite"),
    ("pickle_inside", lambda v, m: _pickled_tensors(v, m), "malformed"),
]


def write_bad_package(folder: Path, case: tuple, valid: bytes) -> tuple[Path, Path]:
    """The case's file (avatar.persona in its own folder) and the marker that must never appear."""
    name, build, _ = case
    (folder / name).mkdir(parents=True, exist_ok=True)
    marker = folder / name / "UNPICKLED"
    path = folder / name / "avatar.persona"
    path.write_bytes(build(valid, marker))
    return path, marker


# --- motion files ------------------------------------------------------------------------------


def _short_motion(frames: int):
    from persona.generate.motions import MOTIONS

    walk = MOTIONS["walk"]()
    index = torch.arange(frames) % walk.num_frames
    return replace(walk, rotations=walk.rotations[index], global_orient=walk.global_orient[index], translation=walk.translation[index])


def _motion_npz(folder: Path, name: str, frames: int = 12, **changes) -> Path:
    motion = _short_motion(frames)
    motion.save(folder / name)
    if changes:
        with np.load(folder / name) as data:
            arrays = {**{k: data[k] for k in data.files}, **changes}
        np.savez(folder / name, **arrays)
    return folder / name


def _object_npz(folder: Path, marker: Path) -> Path:
    np.savez(folder / "objects.npz", poses=np.array([_Marker(str(marker))], dtype=object), trans=np.zeros((1, 3)))
    return folder / "objects.npz"


def _zip_bomb_npz(folder: Path) -> Path:
    """Our layout, with 43 MB of zeros deflated to a few kB in `rotations`."""
    motion = _short_motion(1)
    np.savez_compressed(
        folder / "bomb.npz", joint_names=np.array(motion.joint_names), rotations=np.zeros((1, 3_600_000, 3), np.float32),
        global_orient=np.zeros((1, 3), np.float32), translation=np.zeros((1, 3), np.float32), fps=np.float32(24),
    )  # fmt: skip
    return folder / "bomb.npz"


# (id, writer(folder, marker), expected fragment); the CLI and /animate refuse each.
BAD_MOTIONS = [
    ("pickle_file", lambda d, m: _write(d, "motion.pkl", pickle_payload(m)), "pickle"),
    ("not_a_zip_npz", lambda d, m: _write(d, "motion.npz", b"hello, not an archive"), "Could not read"),
    ("object_array_npz", _object_npz, "Could not read"),
    ("non_finite_npz", lambda d, m: _motion_npz(d, "nan.npz", rotations=np.full((12, len(_short_motion(1).joint_names), 3), np.nan, np.float32)), "non-finite"),
    ("inconsistent_npz", lambda d, m: _motion_npz(d, "short.npz", translation=np.zeros((5, 3), np.float32)), "inconsistent"),
    ("unknown_layout_npz", lambda d, m: (np.savez(d / "weights.npz", weights=np.zeros(3)), d / "weights.npz")[1], "none of the motion layouts"),
    ("zip_bomb_npz", lambda d, m: _zip_bomb_npz(d), "too large"),
    ("garbage_bvh", lambda d, m: _write(d, "motion.bvh", b"HIERARCHY\nROOT Hips\n{\n  OFFSET 0 0\n"), "Could not read the BVH"),
]


def long_motion(folder: Path, frames: int) -> Path:
    """A valid motion file of `frames` frames (for the length limits)."""
    return _motion_npz(folder, f"long_{frames}.npz", frames)
