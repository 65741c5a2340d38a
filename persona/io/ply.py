"""Gaussians <-> the standard 3DGS PLY layout (as written by the INRIA code and read by splat
viewers).

File layout: binary little endian, one `vertex` element with 17 float32 properties in this
order: x y z, nx ny nz (0), f_dc_0..2, opacity, scale_0..2, rot_0..3 (no higher SH).
File conventions, converted here and nowhere else:
- f_dc = (rgb - 0.5) / C0, the degree-0 spherical-harmonic coefficient;
- opacity is a logit, scales are natural logs, rotation is a WXYZ quaternion;
- coordinates are written as given: persona passes world Y-up metres (canonical pose).
Our side: means (N, 3) metres, scales (N, 3) linear metres, quats (N, 4) WXYZ unit,
opacities (N,) in [0, 1], colors (N, 3) RGB in [0, 1].
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from persona.errors import PersonaError
from persona.io import atomic_write

C0 = 0.28209479177387814  # SH band-0 constant, 1 / (2 sqrt(pi))
PROPERTIES = (
    "x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
    "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3",
)  # fmt: skip
VERTEX_DTYPE = np.dtype([(name, "<f4") for name in PROPERTIES])
OPACITY_EPS = 1e-6  # opacity clamped to [eps, 1 - eps] so the logit stays finite (|logit| <= 13.8)
MIN_SCALE = 1e-8  # metres; log(0) would be -inf
_MAX_HEADER_BYTES = 64 * 1024
# PLY scalar type names (both spellings) -> little-endian numpy dtypes.
_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "<i2", "int16": "<i2", "ushort": "<u2", "uint16": "<u2",
    "int": "<i4", "int32": "<i4", "uint": "<u4", "uint32": "<u4",
    "float": "<f4", "float32": "<f4", "double": "<f8", "float64": "<f8",
}  # fmt: skip


@dataclass
class GaussianPly:
    """Gaussians in persona's conventions (float32 numpy arrays).

    means: (N, 3) metres. scales: (N, 3) linear metres (standard deviations).
    quats: (N, 4) unit WXYZ. opacities: (N,) in [0, 1]. colors: (N, 3) RGB in [0, 1].
    """

    means: np.ndarray
    scales: np.ndarray
    quats: np.ndarray
    opacities: np.ndarray
    colors: np.ndarray

    def __len__(self) -> int:
        return self.means.shape[0]


# ---------------------------------------------------------------------------- writing


def encode_gaussian_ply(means, scales, quats, opacities, colors) -> bytes:
    """Gaussians (numpy arrays or torch tensors, shapes as in `GaussianPly`) -> PLY bytes."""
    means = _as_array(means, "means", 3)
    n = means.shape[0]
    scales = _as_array(scales, "scales", 3, n)
    quats = _as_array(quats, "quats", 4, n)
    opacities = _as_array(opacities, "opacities", None, n)
    colors = _as_array(colors, "colors", 3, n)
    norms = np.linalg.norm(quats, axis=1, keepdims=True)
    if (norms < 1e-12).any():
        raise ValueError("quats contains zero-length quaternions")

    vertices = np.zeros(n, dtype=VERTEX_DTYPE)  # normals stay 0, as in 3DGS files
    _set(vertices, ("x", "y", "z"), means)
    _set(vertices, ("f_dc_0", "f_dc_1", "f_dc_2"), (colors - 0.5) / C0)
    p = np.clip(opacities, OPACITY_EPS, 1.0 - OPACITY_EPS)
    vertices["opacity"] = np.log(p) - np.log1p(-p)
    _set(vertices, ("scale_0", "scale_1", "scale_2"), np.log(np.maximum(scales, MIN_SCALE)))
    _set(vertices, ("rot_0", "rot_1", "rot_2", "rot_3"), quats / norms)
    return _header(n) + vertices.tobytes()


def write_gaussian_ply(path: str | os.PathLike, means, scales, quats, opacities, colors) -> Path:
    """Write Gaussians to a 3DGS PLY file at `path`, atomically; returns the path.

    means (N, 3) metres (Y-up, as given), scales (N, 3) linear metres, quats (N, 4) WXYZ
    (normalised here), opacities (N,) in [0, 1], colors (N, 3) RGB in [0, 1].
    """
    data = encode_gaussian_ply(means, scales, quats, opacities, colors)
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def _header(n: int) -> bytes:
    lines = ["ply", "format binary_little_endian 1.0", f"element vertex {n}"]
    lines += [f"property float {name}" for name in PROPERTIES]
    lines.append("end_header")
    return ("\n".join(lines) + "\n").encode("ascii")


def _as_array(x, name: str, cols: int | None, n: int | None = None) -> np.ndarray:
    """numpy/torch -> float64 (N, cols) or (N,), validated (caller errors: ValueError)."""
    if hasattr(x, "detach"):  # torch tensor, on any device, without importing torch
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    expected = (n if n is not None else x.shape[0],) + ((cols,) if cols else ())
    if x.shape != expected:
        raise ValueError(f"{name} has shape {x.shape}; expected {expected}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _set(vertices: np.ndarray, names: tuple[str, ...], values: np.ndarray) -> None:
    for i, name in enumerate(names):
        vertices[name] = values[:, i]


# ---------------------------------------------------------------------------- reading


def read_gaussian_ply(path: str | os.PathLike) -> GaussianPly:
    """Read a 3DGS PLY file; raises PersonaError if it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise PersonaError(f"The PLY file {path.name!r} does not exist ({path}).")
    return decode_gaussian_ply(path.read_bytes(), path.name)


def decode_gaussian_ply(data: bytes, name: str = "<bytes>") -> GaussianPly:
    """PLY bytes -> GaussianPly in our conventions.

    Accepts the standard layout, plus extra scalar vertex properties (e.g. f_rest_* from
    tools that write higher SH), which are ignored. Colours are clipped to [0, 1].
    """
    what = f"The PLY file {name!r}"
    header_len, n, dtype = _parse_header(data, what)
    expected = header_len + n * dtype.itemsize
    if len(data) != expected:
        problem = "is truncated" if len(data) < expected else "has trailing bytes"
        raise PersonaError(
            f"{what} {problem}: its header declares {n} vertices ({expected} bytes in all) "
            f"but the file has {len(data)} bytes. Export it again."
        )
    vertices = np.frombuffer(data, dtype=dtype, count=n, offset=header_len)
    fields = {p: vertices[p].astype(np.float64) for p in PROPERTIES}
    for p, values in fields.items():
        if not np.isfinite(values).all():
            raise PersonaError(f"{what} has NaN or infinite values in '{p}'. Export it again.")
    return _to_ours(fields, what)


def _to_ours(f: dict[str, np.ndarray], what: str) -> GaussianPly:
    """File conventions (logit, log, SH DC) -> ours."""
    def cols(*names: str) -> np.ndarray:  # (N, len(names))
        return np.stack([f[k] for k in names], axis=1)

    quats = cols("rot_0", "rot_1", "rot_2", "rot_3")
    norms = np.linalg.norm(quats, axis=1, keepdims=True)
    if (norms < 1e-12).any():
        raise PersonaError(f"{what} has zero-length rotation quaternions. Export it again.")
    log_scales = cols("scale_0", "scale_1", "scale_2")
    if (log_scales > 80.0).any():  # exp would overflow float32
        raise PersonaError(f"{what} has absurdly large scales (log scale > 80). Export it again.")
    opacity = 1.0 / (1.0 + np.exp(-np.clip(f["opacity"], -80.0, 80.0)))
    return GaussianPly(
        means=cols("x", "y", "z").astype(np.float32),
        scales=np.exp(log_scales).astype(np.float32),
        quats=(quats / norms).astype(np.float32),
        opacities=opacity.astype(np.float32),
        colors=np.clip(cols("f_dc_0", "f_dc_1", "f_dc_2") * C0 + 0.5, 0.0, 1.0).astype(np.float32),
    )


def _parse_header(data: bytes, what: str) -> tuple[int, int, np.dtype]:
    """-> (header length in bytes, vertex count, numpy dtype of one vertex record)."""
    if not data.startswith(b"ply\n") and not data.startswith(b"ply\r\n"):
        raise PersonaError(f"{what} is not a PLY file (it does not start with 'ply').")
    end = data.find(b"end_header", 0, _MAX_HEADER_BYTES)
    newline = data.find(b"\n", end) if end >= 0 else -1
    if newline < 0:
        raise PersonaError(f"{what} has no complete header ('end_header' not found).")
    try:
        lines = data[:end].decode("ascii").splitlines()
    except UnicodeDecodeError as e:
        raise PersonaError(f"{what} has a header that is not ASCII text.") from e

    fmt, n, props = None, None, []
    element = None
    for line in lines[1:]:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format":
            fmt = " ".join(words[1:])
        elif words[0] == "element" and len(words) == 3:
            element = words[1]
            count = _parse_count(words[2], what)
            if element == "vertex":
                if n is not None:
                    raise PersonaError(f"{what} declares the vertex element twice.")
                n = count
            elif count > 0:
                # Gaussians are vertices only; an empty extra element takes no bytes, anything
                # else would need a general PLY reader, and no splat tool writes one.
                raise PersonaError(
                    f"{what} has a '{element}' element; a 3DGS PLY has only vertices."
                )
        elif words[0] == "property" and element == "vertex":
            props.append(_parse_property(words, what))
        elif words[0] == "property" and element is not None:
            continue  # property of an empty extra element
        else:
            raise PersonaError(f"{what} has an unexpected header line: {line!r}.")

    if fmt != "binary_little_endian 1.0":
        raise PersonaError(
            f"{what} has format {fmt!r}; only 'binary_little_endian 1.0' (what 3DGS tools "
            "write) is supported. Convert it with your splat tool."
        )
    if n is None:
        raise PersonaError(f"{what} has no vertex element.")
    return newline + 1, n, _vertex_dtype(props, what)


def _parse_count(word: str, what: str) -> int:
    if not word.isdigit():
        raise PersonaError(f"{what} has an invalid element count {word!r}.")
    return int(word)


def _parse_property(words: list[str], what: str) -> tuple[str, str]:
    if len(words) != 3 or words[1] not in _PLY_TYPES:
        raise PersonaError(
            f"{what} has an unsupported property {' '.join(words[1:])!r} (lists are not "
            "allowed in a 3DGS PLY)."
        )
    return words[2], _PLY_TYPES[words[1]]


def _vertex_dtype(props: list[tuple[str, str]], what: str) -> np.dtype:
    names = [p for p, _ in props]
    duplicates = sorted({p for p in names if names.count(p) > 1})
    if duplicates:
        raise PersonaError(f"{what} declares properties more than once: {duplicates}.")
    types = dict(props)
    missing = [p for p in PROPERTIES if p not in types]
    if missing:
        raise PersonaError(
            f"{what} lacks the 3DGS properties {missing}; it is not a Gaussian-splat PLY."
        )
    not_float = [p for p in PROPERTIES if types[p] != "<f4"]
    if not_float:
        raise PersonaError(f"{what} stores {not_float} with a type other than float.")
    return np.dtype(props)
