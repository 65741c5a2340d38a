"""persona.io.ply: the standard 3DGS PLY layout, round trips, and malformed files refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from persona.errors import PersonaError
from persona.io.ply import (
    C0,
    PROPERTIES,
    VERTEX_DTYPE,
    decode_gaussian_ply,
    encode_gaussian_ply,
    read_gaussian_ply,
    write_gaussian_ply,
)

STANDARD_HEADER = (
    "ply\n"
    "format binary_little_endian 1.0\n"
    "element vertex {n}\n"
    "property float x\nproperty float y\nproperty float z\n"
    "property float nx\nproperty float ny\nproperty float nz\n"
    "property float f_dc_0\nproperty float f_dc_1\nproperty float f_dc_2\n"
    "property float opacity\n"
    "property float scale_0\nproperty float scale_1\nproperty float scale_2\n"
    "property float rot_0\nproperty float rot_1\nproperty float rot_2\nproperty float rot_3\n"
    "end_header\n"
)


def _gaussians(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    quats = rng.normal(size=(n, 4))
    return {
        "means": rng.normal(size=(n, 3)).astype(np.float32),
        "scales": np.exp(rng.uniform(-7, -1, size=(n, 3))).astype(np.float32),
        "quats": (quats / np.linalg.norm(quats, axis=1, keepdims=True)).astype(np.float32),
        "opacities": rng.uniform(0.01, 0.99, size=n).astype(np.float32),
        "colors": rng.uniform(0, 1, size=(n, 3)).astype(np.float32),
    }


def _assert_close(ply, g: dict[str, np.ndarray]) -> None:
    np.testing.assert_array_equal(ply.means, g["means"])  # written as given
    np.testing.assert_allclose(ply.scales, g["scales"], rtol=2e-6)
    np.testing.assert_allclose(ply.quats, g["quats"], atol=1e-6)
    np.testing.assert_allclose(ply.opacities, g["opacities"], atol=1e-6)
    np.testing.assert_allclose(ply.colors, g["colors"], atol=1e-6)


def test_round_trip(tmp_path):
    g = _gaussians(1000)
    path = write_gaussian_ply(tmp_path / "avatar.ply", **g)
    ply = read_gaussian_ply(path)
    assert len(ply) == 1000
    for field in ("means", "scales", "quats", "opacities", "colors"):
        assert getattr(ply, field).dtype == np.float32
    _assert_close(ply, g)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["avatar.ply"]


def test_torch_inputs_and_large_n():
    g = _gaussians(200_000, seed=1)
    data = encode_gaussian_ply(**{k: torch.from_numpy(v) for k, v in g.items()})
    _assert_close(decode_gaussian_ply(data), g)


def test_header_and_layout_are_standard():
    n = 3
    data = encode_gaussian_ply(
        means=[[1, 2, 3]] * n,
        scales=[[1, np.e, 0.5]] * n,
        quats=[[2, 0, 0, 0]] * n,  # not normalised on input
        opacities=[0.5] * n,
        colors=[[0.5, 1.0, 0.0]] * n,
    )
    header = STANDARD_HEADER.format(n=n).encode("ascii")
    assert data.startswith(header)
    assert len(data) == len(header) + n * 17 * 4
    v = np.frombuffer(data, VERTEX_DTYPE, offset=len(header))[0]  # all rows are equal
    assert VERTEX_DTYPE.names == PROPERTIES
    row = lambda *names: [v[name] for name in names]  # noqa: E731
    np.testing.assert_allclose(row("x", "y", "z"), [1, 2, 3])
    assert row("nx", "ny", "nz") == [0, 0, 0]
    f_dc = row("f_dc_0", "f_dc_1", "f_dc_2")
    np.testing.assert_allclose(f_dc, [0, 0.5 / C0, -0.5 / C0], rtol=1e-6)
    assert v["opacity"] == 0.0  # logit(0.5)
    np.testing.assert_allclose(row("scale_0", "scale_1", "scale_2"), [0, 1, np.log(0.5)], atol=1e-6)
    np.testing.assert_allclose(row("rot_0", "rot_1", "rot_2", "rot_3"), [1, 0, 0, 0])  # WXYZ


def test_extreme_opacities_and_scales_stay_finite():
    g = _gaussians(4)
    g["opacities"] = np.array([0.0, 1.0, 1e-9, 0.5], np.float32)
    g["scales"][0] = 0.0
    ply = decode_gaussian_ply(encode_gaussian_ply(**g))
    np.testing.assert_allclose(ply.opacities, [0.0, 1.0, 0.0, 0.5], atol=2e-6)
    assert np.isfinite(ply.scales).all() and ply.scales[0].max() < 1e-7


def test_empty_set_round_trips():
    g = _gaussians(0)
    assert len(decode_gaussian_ply(encode_gaussian_ply(**g))) == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("means", np.zeros((5, 2))),
        ("opacities", np.zeros((4,))),
        ("colors", np.full((5, 3), np.nan)),
        ("quats", np.zeros((5, 4))),
    ],
)
def test_bad_inputs_are_caller_errors(field, value):
    g = _gaussians(5)
    g[field] = value
    with pytest.raises(ValueError):
        encode_gaussian_ply(**g)


def test_extra_properties_are_ignored():
    # Files from 3DGS training carry f_rest_* (higher SH); we read their DC part.
    g = _gaussians(10)
    data = encode_gaussian_ply(**g)
    header, body = data.split(b"end_header\n")
    old = np.frombuffer(body, VERTEX_DTYPE)
    rest = [("f_rest_0", "<f4"), ("f_rest_1", "<f4")]
    dtype = np.dtype(VERTEX_DTYPE.descr[:9] + rest + VERTEX_DTYPE.descr[9:])
    new = np.zeros(len(old), dtype)
    for name in PROPERTIES:
        new[name] = old[name]
    new["f_rest_0"] = 7.0
    header = header.replace(
        b"property float f_dc_2\n",
        b"property float f_dc_2\nproperty float f_rest_0\nproperty float f_rest_1\n",
    )
    _assert_close(decode_gaussian_ply(header + b"end_header\n" + new.tobytes()), g)


FACES = "element face {n}\nproperty list uchar int vertex_indices\n"


def _standard(n: int = 4) -> bytes:
    return encode_gaussian_ply(**_gaussians(n))


def _replace_header(data: bytes, old: str, new: str) -> bytes:
    assert old.encode() in data
    return data.replace(old.encode(), new.encode(), 1)


def _with_value(name: str, value: float) -> bytes:
    data = _standard()
    header_len = data.index(b"end_header\n") + len(b"end_header\n")
    v = np.frombuffer(data, VERTEX_DTYPE, offset=header_len).copy()
    v[name][1] = value
    return data[:header_len] + v.tobytes()


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"hello world", "not a PLY"),
        (b"", "not a PLY"),
        (b"ply\nformat binary_little_endian 1.0\nelement vertex 1\n", "no complete header"),
        (_replace_header(_standard(), "binary_little_endian", "ascii"), "format"),
        (_replace_header(_standard(), "binary_little_endian", "binary_big_endian"), "format"),
        (_replace_header(_standard(), "property float opacity\n", ""), "lacks"),
        (_replace_header(_standard(), "property float x", "property double x"), "other than float"),
        (_replace_header(_standard(), "property float y", "property float x"), "more than once"),
        (_replace_header(_standard(), "float x", "list uchar int x"), "unsupported property"),
        (_replace_header(_standard(), "float x", "half x"), "unsupported property"),
        (_replace_header(_standard(), "element vertex 4", "element vertex 5"), "truncated"),
        (_replace_header(_standard(), "element vertex 4", "element vertex 3"), "trailing bytes"),
        (_replace_header(_standard(), "vertex 4", "vertex -4"), "invalid element count"),
        (_replace_header(_standard(), "vertex 4", "vertex 99999999999999999999"), "truncated"),
        (_replace_header(_standard(), "end_header", FACES.format(n=2) + "end_header"), "'face'"),
        (b"ply\nformat binary_little_endian 1.0\nend_header\n", "no vertex element"),
        (_replace_header(_standard(), "element vertex 4\n", ""), "unexpected header line"),
        (_replace_header(_standard(), "format", "garbage line\nformat"), "unexpected header line"),
        (_standard()[:-10], "truncated"),
        (_standard() + b"\0" * 68, "trailing bytes"),
        (_with_value("scale_1", np.nan), "NaN or infinite"),
        (_with_value("x", np.inf), "NaN or infinite"),
        (_with_value("scale_0", 500.0), "large scales"),
    ],
)
def test_malformed_files_refused(tmp_path, data, match):
    (tmp_path / "bad.ply").write_bytes(data)
    with pytest.raises(PersonaError, match=match):
        read_gaussian_ply(tmp_path / "bad.ply")


def test_zero_quaternion_in_file_refused():
    data = _standard()
    header_len = data.index(b"end_header\n") + len(b"end_header\n")
    v = np.frombuffer(data, VERTEX_DTYPE, offset=header_len).copy()
    for i in range(4):
        v[f"rot_{i}"][0] = 0.0
    with pytest.raises(PersonaError, match="zero-length"):
        decode_gaussian_ply(data[:header_len] + v.tobytes())


def test_empty_extra_element_and_comments_tolerated():
    data = _replace_header(_standard(), "element vertex", "comment made by x\nelement vertex")
    data = _replace_header(data, "end_header", FACES.format(n=0) + "end_header")
    assert len(decode_gaussian_ply(data)) == 4


def test_missing_file(tmp_path):
    with pytest.raises(PersonaError, match="does not exist"):
        read_gaussian_ply(tmp_path / "nope.ply")
