"""The avatar package `avatar.persona`: a zip holding exactly two entries.

- `manifest.json`: a JSON object with `"format": "persona-avatar"`, `"format_version"`, and
  whatever the caller records (body model, preset, versions, weight licences).
- `avatar.safetensors`: every tensor needed to animate the avatar.

Reading is defensive because packages are uploaded by users: the zip structure (entry names,
paths, symlinks, sizes, compression ratio) is checked before anything is decompressed, the
tensors are parsed by safetensors (never pickle / torch.load) and then checked against a
`PackageSchema` of names, dtypes and shapes with symbolic dimensions ("N" must be the same
size wherever it appears). Each problem raises `PersonaError` naming it.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import safetensors.torch
from safetensors.torch import load as load_safetensors  # parses bytes; no pickle
import torch

from persona.errors import PersonaError
from persona.io import atomic_write

FORMAT = "persona-avatar"
FORMAT_VERSION = 1  # written by this build
SUPPORTED_VERSIONS = (1,)  # read by this build
MANIFEST_NAME = "manifest.json"
TENSORS_NAME = "avatar.safetensors"
ENTRY_NAMES = (MANIFEST_NAME, TENSORS_NAME)
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same avatar gives the same bytes
_REGULAR_FILE = 0o100644 << 16  # unix mode in ZipInfo.external_attr
_S_IFMT, _S_IFLNK = 0o170000, 0o120000
_RATIO_MIN_BYTES = 1 << 20  # below this a high compression ratio cannot hurt


@dataclass(frozen=True)
class TensorSpec:
    """Expected dtype and shape of one tensor; a str in `shape` is a symbolic dimension."""

    dtype: torch.dtype
    shape: tuple[int | str, ...]


@dataclass(frozen=True)
class PackageSchema:
    """What a valid package holds, and the limits that keep a hostile zip harmless.

    tensors: name -> TensorSpec; the package must hold exactly these names...
    optional: ...plus any of these (checked the same way when present).
    max_total_bytes: limit on the sum of the uncompressed entry sizes (and the file size).
    max_entries: limit on the number of zip entries (checked before looking at names).
    max_compression_ratio: limit on uncompressed/compressed size for entries over 1 MiB;
        the writer stores tensors uncompressed, so a high ratio means a crafted file.
    max_manifest_bytes: limit on manifest.json.
    """

    tensors: Mapping[str, TensorSpec]
    optional: Mapping[str, TensorSpec] = field(default_factory=dict)
    max_total_bytes: int = 2 * 1024**3
    max_entries: int = len(ENTRY_NAMES)
    max_compression_ratio: float = 200.0
    max_manifest_bytes: int = 1024**2


@dataclass
class LoadedPackage:
    """A validated package.

    manifest: the JSON object, `format` and `format_version` included.
    tensors: name -> CPU tensor, exactly the schema's names, dtypes and shapes.
    dims: symbolic dimension -> size bound from the tensors, e.g. {"N": 167000}.
    """

    manifest: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    dims: dict[str, int]


# ---------------------------------------------------------------------------- writing


def encode_package(manifest: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> bytes:
    """manifest (JSON-serialisable) + tensors -> the package's zip bytes."""
    buf = io.BytesIO()
    _write_zip(buf, manifest, tensors)
    return buf.getvalue()


def write_package(
    path: str | os.PathLike, manifest: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]
) -> Path:
    """Write `avatar.persona` at `path`, atomically; returns the path.

    manifest: JSON-serialisable mapping (not modified); `format` and `format_version` are
        added. tensors: name -> tensor on any device; saved contiguous, on the CPU.
    """
    with atomic_write(path) as tmp, open(tmp, "xb") as f:
        _write_zip(f, manifest, tensors)
    return Path(path)


def _write_zip(
    fp: BinaryIO, manifest: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]
) -> None:
    manifest_bytes = _manifest_bytes(manifest)
    tensor_bytes = safetensors.torch.save(_prepare_tensors(tensors), metadata={"format": "pt"})
    with zipfile.ZipFile(fp, "w") as zf:
        zf.writestr(_zip_info(MANIFEST_NAME, zipfile.ZIP_DEFLATED), manifest_bytes)
        # Stored: float tensors barely compress, and reading needs no inflate pass.
        zf.writestr(_zip_info(TENSORS_NAME, zipfile.ZIP_STORED), tensor_bytes)


def _manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    for key, value in (("format", FORMAT), ("format_version", FORMAT_VERSION)):
        if key in manifest and manifest[key] != value:
            raise ValueError(
                f"manifest[{key!r}] is {manifest[key]!r}; leave it out, the writer sets it"
            )
    full = {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest}
    # allow_nan=False: NaN is not JSON and other readers would reject the file.
    return json.dumps(full, indent=2, ensure_ascii=False, allow_nan=False).encode("utf-8")


def _prepare_tensors(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detach, move to CPU, make contiguous; copy tensors that share storage.

    (safetensors refuses shared storage, e.g. two rows of one tensor.)
    """
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, t in tensors.items():
        if not isinstance(name, str) or not isinstance(t, torch.Tensor):
            raise TypeError(
                f"tensors must map str -> torch.Tensor; got {name!r}: {type(t).__name__}"
            )
        t = t.detach().to("cpu").contiguous()
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise ValueError(f"tensor {name!r} contains NaN or infinite values")
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen and t.numel() > 0:
            t = t.clone()
        seen.add(ptr)
        out[name] = t
    return out


def _zip_info(name: str, compress_type: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
    info.compress_type = compress_type
    info.create_system = 3  # unix, so external_attr is read as a file mode
    info.external_attr = _REGULAR_FILE
    return info


# ---------------------------------------------------------------------------- reading


def read_package(source: str | os.PathLike | bytes, schema: PackageSchema) -> LoadedPackage:
    """Open and validate an avatar package from a path or its bytes.

    Raises PersonaError naming the first problem found: not a zip, unexpected, unsafe or
    oversized entries, a bad manifest or format version, malformed safetensors, or tensors
    whose names, dtypes, shapes or values do not match `schema`.
    """
    what = "The avatar package"
    if isinstance(source, (bytes, bytearray, memoryview)):
        fp: BinaryIO | Path = io.BytesIO(bytes(source))
        size = len(source)
    else:
        fp = Path(source)
        what = f"The avatar package {fp.name!r}"
        if not fp.is_file():
            raise PersonaError(f"{what} does not exist ({fp}). Check the path.")
        size = fp.stat().st_size
    if size > schema.max_total_bytes:
        raise PersonaError(
            f"{what} is {_human(size)}, over the {_human(schema.max_total_bytes)} limit."
        )
    with _open_zip(fp, what) as zf:
        infos = _checked_entries(zf, schema, what)
        manifest = _parse_manifest(_read_entry(zf, infos[MANIFEST_NAME], what), what)
        tensors = _parse_tensors(_read_entry(zf, infos[TENSORS_NAME], what), what)
    dims = _check_tensors(tensors, schema, what)
    return LoadedPackage(manifest, tensors, dims)


def _human(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def _open_zip(fp: BinaryIO | Path, what: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(fp)
    except MemoryError:
        raise
    except Exception as e:  # BadZipFile, or struct/OS errors from a mangled directory
        raise PersonaError(
            f"{what} is not a valid zip file ({e}). Choose an avatar.persona file "
            "made by PERSONA."
        ) from e


def _checked_entries(
    zf: zipfile.ZipFile, schema: PackageSchema, what: str
) -> dict[str, zipfile.ZipInfo]:
    """Check the zip's structure from its directory alone (nothing decompressed yet)."""
    infos = zf.infolist()
    if len(infos) > schema.max_entries:
        raise PersonaError(
            f"{what} has {len(infos)} entries; at most {schema.max_entries} are allowed "
            f"({', '.join(ENTRY_NAMES)})."
        )
    by_name: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        _check_entry(info, what)
        if info.filename in by_name:
            raise PersonaError(f"{what} holds '{info.filename}' twice.")
        by_name[info.filename] = info
    missing = [n for n in ENTRY_NAMES if n not in by_name]
    if missing:
        raise PersonaError(f"{what} lacks {' and '.join(missing)}; it is incomplete.")
    total = sum(info.file_size for info in infos)
    if total > schema.max_total_bytes:
        raise PersonaError(
            f"{what} unpacks to {_human(total)}, over the {_human(schema.max_total_bytes)} limit."
        )
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > _RATIO_MIN_BYTES and ratio > schema.max_compression_ratio:
            raise PersonaError(
                f"{what}: '{info.filename}' claims a compression ratio of {ratio:.0f}:1, "
                "which a real avatar never has (a zip bomb?). Refusing to unpack it."
            )
    if by_name[MANIFEST_NAME].file_size > schema.max_manifest_bytes:
        raise PersonaError(f"{what} has a manifest.json over {schema.max_manifest_bytes} bytes.")
    return by_name


def _check_entry(info: zipfile.ZipInfo, what: str) -> None:
    name = info.filename
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise PersonaError(f"{what} contains an unsafe path {name!r}; refusing to open it.")
    if (info.external_attr >> 16) & _S_IFMT == _S_IFLNK:
        raise PersonaError(f"{what} contains a symbolic link {name!r}; refusing to open it.")
    if name not in ENTRY_NAMES:
        raise PersonaError(
            f"{what} contains an unexpected entry {name!r}; a package holds only "
            f"{' and '.join(ENTRY_NAMES)}."
        )
    if info.flag_bits & 0x1:
        raise PersonaError(f"{what} is encrypted; packages are never encrypted.")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise PersonaError(
            f"{what}: '{name}' uses compression method {info.compress_type}; only stored "
            "or deflated entries are read."
        )


def _read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, what: str) -> bytes:
    try:
        with zf.open(info) as f:
            data = f.read(info.file_size + 1)  # never more than declared (+1 to detect lies)
    except MemoryError:
        raise
    except Exception as e:  # CRC mismatch, bad deflate stream, truncated file
        raise PersonaError(f"{what}: '{info.filename}' is corrupt ({e}).") from e
    if len(data) != info.file_size:
        raise PersonaError(f"{what}: '{info.filename}' does not match its declared size.")
    return data


def _parse_manifest(data: bytes, what: str) -> dict[str, Any]:
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise PersonaError(f"{what}: manifest.json is not valid JSON ({e}).") from e
    if not isinstance(manifest, dict):
        raise PersonaError(f"{what}: manifest.json is a {type(manifest).__name__}, not an object.")
    if manifest.get("format") != FORMAT:
        raise PersonaError(
            f"{what}: manifest format is {manifest.get('format')!r}, not {FORMAT!r}; "
            "this is not a PERSONA avatar."
        )
    version = manifest.get("format_version")
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        readable = ", ".join(map(str, SUPPORTED_VERSIONS))
        newer = type(version) is int and version > max(SUPPORTED_VERSIONS)
        hint = " It was made by a newer PERSONA; update this one." if newer else ""
        raise PersonaError(
            f"{what} has format_version {version!r}; this build reads version(s) {readable}.{hint}"
        )
    return manifest


def _parse_tensors(data: bytes, what: str) -> dict[str, torch.Tensor]:
    try:
        return load_safetensors(data)
    except MemoryError:
        raise
    except Exception as e:  # SafetensorError and friends on a malformed header or body
        raise PersonaError(f"{what}: avatar.safetensors is malformed ({e}).") from e


def _check_tensors(
    tensors: dict[str, torch.Tensor], schema: PackageSchema, what: str
) -> dict[str, int]:
    """Names, dtypes, shapes (binding symbolic dims) and finiteness -> the bound dims."""
    missing = sorted(set(schema.tensors) - set(tensors))
    extra = sorted(set(tensors) - set(schema.tensors) - set(schema.optional))
    if missing or extra:
        parts = [f"missing {missing}"] * bool(missing) + [f"unexpected {extra}"] * bool(extra)
        raise PersonaError(f"{what} has the wrong tensors: {'; '.join(parts)}.")
    dims: dict[str, int] = {}
    bound_by: dict[str, str] = {}
    specs = {**schema.tensors, **{n: s for n, s in schema.optional.items() if n in tensors}}
    for name, spec in specs.items():
        t = tensors[name]
        if t.dtype != spec.dtype:
            raise PersonaError(f"{what}: tensor {name!r} is {t.dtype}, expected {spec.dtype}.")
        if t.dim() != len(spec.shape):
            raise PersonaError(
                f"{what}: tensor {name!r} has shape {tuple(t.shape)}, expected {spec.shape}."
            )
        for axis, (size, want) in enumerate(zip(t.shape, spec.shape)):
            if isinstance(want, int) and size != want:
                raise PersonaError(
                    f"{what}: tensor {name!r} has shape {tuple(t.shape)}, expected {spec.shape}."
                )
            if isinstance(want, str):
                if want in dims and dims[want] != size:
                    raise PersonaError(
                        f"{what}: tensor {name!r} has {want} = {size} (axis {axis}), but "
                        f"{bound_by[want]!r} has {want} = {dims[want]}."
                    )
                dims.setdefault(want, size)
                bound_by.setdefault(want, name)
        if (t.is_floating_point() or t.is_complex()) and not torch.isfinite(t).all():
            raise PersonaError(f"{what}: tensor {name!r} contains NaN or infinite values.")
    return dims
