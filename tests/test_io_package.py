"""persona.io.package: the avatar.persona zip round-trips, and every corruption is refused."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import replace

import pytest
import safetensors.torch
import torch

from persona.errors import PersonaError
from persona.io.package import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_NAME,
    TENSORS_NAME,
    LoadedPackage,
    PackageSchema,
    TensorSpec,
    encode_package,
    read_package,
    write_package,
)

SCHEMA = PackageSchema(
    tensors={
        "means": TensorSpec(torch.float32, ("N", 3)),
        "parent": TensorSpec(torch.int64, ("N",)),
        "weights": TensorSpec(torch.float32, (4, "C")),
    }
)
MANIFEST = {"body_model": "anny", "preset": "preview", "licences": {"anny": "Apache-2.0"}}


def _tensors(n: int = 5, c: int = 7) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "means": torch.randn(n, 3, generator=g),
        "parent": torch.arange(n),
        "weights": torch.rand(4, c, generator=g),
    }


def _full_manifest(**changes) -> dict:
    return {"format": FORMAT, "format_version": FORMAT_VERSION, **MANIFEST, **changes}


def _zip(entries: list[tuple[str | zipfile.ZipInfo, bytes]], compression=zipfile.ZIP_STORED):
    """A zip of exactly these entries (hand-made packages for the corruption cases)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def _package(manifest=None, tensors=None, extra=(), compression=zipfile.ZIP_STORED) -> bytes:
    manifest_bytes = json.dumps(_full_manifest() if manifest is None else manifest).encode()
    tensor_bytes = safetensors.torch.save(_tensors() if tensors is None else tensors)
    entries = [(MANIFEST_NAME, manifest_bytes), (TENSORS_NAME, tensor_bytes), *extra]
    return _zip(entries, compression)


def _refused(data: bytes, match: str, schema: PackageSchema = SCHEMA) -> None:
    with pytest.raises(PersonaError, match=match):
        read_package(data, schema)


# ---------------------------------------------------------------------------- round trip


def test_round_trip_from_path_and_bytes(tmp_path):
    tensors = _tensors()
    path = write_package(tmp_path / "avatar.persona", MANIFEST, tensors)
    for source in (path, path.read_bytes(), str(path)):
        loaded = read_package(source, SCHEMA)
        assert isinstance(loaded, LoadedPackage)
        assert loaded.manifest == _full_manifest()
        assert loaded.dims == {"N": 5, "C": 7}
        assert loaded.tensors.keys() == tensors.keys()
        for name, t in tensors.items():
            assert torch.equal(loaded.tensors[name], t)
    assert "format" not in MANIFEST  # the caller's dict is not modified
    assert sorted(p.name for p in tmp_path.iterdir()) == ["avatar.persona"]


def test_zip_layout():
    with zipfile.ZipFile(io.BytesIO(encode_package(MANIFEST, _tensors()))) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        assert list(infos) == [MANIFEST_NAME, TENSORS_NAME]
        assert infos[MANIFEST_NAME].compress_type == zipfile.ZIP_DEFLATED
        assert infos[TENSORS_NAME].compress_type == zipfile.ZIP_STORED
        manifest = json.loads(zf.read(MANIFEST_NAME))
    assert manifest["format"] == "persona-avatar" and manifest["format_version"] == 1


def test_bytes_are_deterministic():
    assert encode_package(MANIFEST, _tensors()) == encode_package(MANIFEST, _tensors())


def test_views_shared_storage_and_non_contiguous_tensors():
    base = torch.randn(3, 5)
    tensors = {"means": base.T[:, :3], "parent": torch.arange(5), "weights": torch.randn(7, 4).T}
    loaded = read_package(encode_package(MANIFEST, tensors), SCHEMA)
    assert torch.equal(loaded.tensors["weights"], tensors["weights"])
    shared = torch.randn(4, 4)
    views = {"a": shared[0], "b": shared[1]}  # same storage: safetensors alone would refuse
    spec = TensorSpec(torch.float32, (4,))
    schema = PackageSchema({"a": spec, "b": spec})
    loaded = read_package(encode_package({}, views), schema)
    assert torch.equal(loaded.tensors["b"], shared[1])


def test_write_side_caller_errors(tmp_path):
    with pytest.raises(ValueError, match="format"):
        encode_package({"format": "other"}, _tensors())
    with pytest.raises(ValueError, match="NaN"):
        encode_package(MANIFEST, {**_tensors(), "means": torch.full((5, 3), float("nan"))})
    with pytest.raises(ValueError):
        encode_package({"x": float("nan")}, _tensors())
    with pytest.raises(TypeError):
        encode_package(MANIFEST, {"means": [1, 2, 3]})
    with pytest.raises(TypeError):
        write_package(tmp_path / "a.persona", {"x": object()}, _tensors())
    assert list(tmp_path.iterdir()) == []  # a failed write leaves nothing


# ---------------------------------------------------------------------------- zip structure


def test_hand_made_valid_package_reads():
    assert read_package(_package(), SCHEMA).dims == {"N": 5, "C": 7}


def test_not_a_zip(tmp_path):
    _refused(b"this is not a zip file at all", "not a valid zip")
    _refused(b"", "not a valid zip")
    _refused(_package()[:-30], "not a valid zip")  # end of central directory cut off
    with pytest.raises(PersonaError, match="does not exist"):
        read_package(tmp_path / "missing.persona", SCHEMA)


def test_unexpected_entry():
    _refused(_package(extra=[("evil.txt", b"x")]), "entries")  # 3 > max_entries
    loose = replace(SCHEMA, max_entries=3)
    _refused(_package(extra=[("evil.txt", b"x")]), "unexpected entry 'evil.txt'", loose)
    _refused(_zip([(MANIFEST_NAME, b"{}"), ("other.bin", b"")]), "unexpected entry")


def test_too_many_entries():
    entries = [(f"f{i}", b"") for i in range(50)]
    _refused(_zip(entries), "50 entries")


@pytest.mark.parametrize(
    "name", ["/manifest.json", "../avatar.safetensors", "a/../../x", "C:/x", "\\evil"]
)
def test_unsafe_paths(name):
    _refused(_zip([(name, b"{}"), (TENSORS_NAME, b"")]), "unsafe path")


def test_symlink_entry():
    link = zipfile.ZipInfo(MANIFEST_NAME)
    link.create_system = 3
    link.external_attr = 0o120777 << 16  # a unix symlink
    _refused(_zip([(link, b"/etc/passwd"), (TENSORS_NAME, b"")]), "symbolic link")


def test_duplicate_entry():
    with pytest.warns(UserWarning, match="Duplicate name"):
        data = _zip([(MANIFEST_NAME, b"{}"), (MANIFEST_NAME, b"{}")])
    _refused(data, "twice")


def test_missing_entries():
    manifest_only = _zip([(MANIFEST_NAME, json.dumps(_full_manifest()).encode())])
    _refused(manifest_only, "lacks avatar.safetensors")
    _refused(_zip([(TENSORS_NAME, safetensors.torch.save(_tensors()))]), "lacks manifest.json")


def test_encrypted_entry():
    data = bytearray(_package())
    # Set the "encrypted" bit in every local and central header (zipfile cannot write it).
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            data[start + flag_offset] |= 0x1
            start += 4
    _refused(bytes(data), "encrypted")


def _zero_tensors(n: int) -> dict[str, torch.Tensor]:
    return {
        "means": torch.zeros(n, 3),
        "parent": torch.zeros(n, dtype=torch.int64),
        "weights": torch.zeros(4, 1),
    }


def test_uncompressed_size_over_limit():
    # Compressed this is a few kB; unpacked it is 400 kB, over a 100 kB limit.
    tensors = _zero_tensors(30_000)
    data = _package(tensors=tensors, compression=zipfile.ZIP_DEFLATED)
    small = replace(SCHEMA, max_total_bytes=100_000)
    assert len(data) < small.max_total_bytes
    _refused(data, "unpacks to", small)
    _refused(_package(), "over the", replace(SCHEMA, max_total_bytes=100))  # the file itself


def test_absurd_compression_ratio():
    tensors = _zero_tensors(400_000)  # 9.6 MB of zeros deflate about 1000:1
    _refused(_package(tensors=tensors, compression=zipfile.ZIP_DEFLATED), "compression ratio")


def test_corrupt_entry_data():
    tensor_bytes = safetensors.torch.save(_tensors())
    data = bytearray(_package())
    start = data.find(tensor_bytes)
    data[start + len(tensor_bytes) - 3] ^= 0xFF  # flip bits inside the stored tensor data
    _refused(bytes(data), "corrupt")


def test_oversized_manifest():
    data = _package(manifest=_full_manifest(padding="x" * 2000))
    _refused(data, "manifest.json over", replace(SCHEMA, max_manifest_bytes=1000))


# ---------------------------------------------------------------------------- manifest


@pytest.mark.parametrize(
    ("manifest_bytes", "match"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "not an object"),
        (json.dumps({"format_version": 1}).encode(), "not a PERSONA avatar"),
        (json.dumps(_full_manifest(format="something-else")).encode(), "not a PERSONA avatar"),
        (
            json.dumps(_full_manifest(format_version=2)).encode(),
            r"reads version\(s\) 1\. It was made by a newer",
        ),
        (json.dumps(_full_manifest(format_version=0)).encode(), r"reads version\(s\) 1"),
        (json.dumps(_full_manifest(format_version="1")).encode(), "format_version '1'"),
        (json.dumps(_full_manifest(format_version=True)).encode(), "format_version True"),
        (json.dumps({"format": FORMAT}).encode(), "format_version None"),
    ],
)
def test_bad_manifest(manifest_bytes, match):
    tensor_bytes = safetensors.torch.save(_tensors())
    data = _zip([(MANIFEST_NAME, manifest_bytes), (TENSORS_NAME, tensor_bytes)])
    _refused(data, match)


# ---------------------------------------------------------------------------- tensors


def _with_tensors(tensors: dict[str, torch.Tensor]) -> bytes:
    return _package(tensors=tensors)


@pytest.mark.parametrize(
    ("tensor_bytes", "match"),
    [
        (b"", "malformed"),
        (b"\x00" * 7, "malformed"),
        (b"garbage!" * 10, "malformed"),
        (safetensors.torch.save(_tensors())[:-8], "malformed"),  # body shorter than the header says
    ],
)
def test_malformed_safetensors(tensor_bytes, match):
    manifest_bytes = json.dumps(_full_manifest()).encode()
    data = _zip([(MANIFEST_NAME, manifest_bytes), (TENSORS_NAME, tensor_bytes)])
    _refused(data, match)


def test_missing_and_extra_tensors():
    tensors = _tensors()
    del tensors["parent"]
    _refused(_with_tensors(tensors), r"missing \['parent'\]")
    _refused(_with_tensors({**_tensors(), "spy": torch.zeros(1)}), r"unexpected \['spy'\]")


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("means", torch.zeros(5, 3, dtype=torch.float64), "torch.float64, expected torch.float32"),
        ("parent", torch.zeros(5, dtype=torch.int32), "torch.int32, expected torch.int64"),
        ("means", torch.zeros(5, 3, 1), r"shape \(5, 3, 1\), expected \('N', 3\)"),
        ("means", torch.zeros(15), "shape"),
        ("weights", torch.zeros(5, 7), r"shape \(5, 7\), expected \(4, 'C'\)"),
        ("means", torch.zeros(5, 4), "shape"),
        ("parent", torch.zeros(6, dtype=torch.int64), "'parent' has N = 6 .* 'means' has N = 5"),
        ("means", torch.tensor([[0.0, float("nan"), 0.0]] * 5), "NaN or infinite"),
        ("weights", torch.full((4, 7), float("inf")), "NaN or infinite"),
    ],
)
def test_wrong_tensors(name, value, match):
    _refused(_with_tensors({**_tensors(), name: value}), match)
