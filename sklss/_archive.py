"""The data-only archive under every sklss file: model files and training checkpoints.

A file is an uncompressed zip of exactly four members: ``manifest.json`` (format, kind,
versions, and the size and SHA-256 of each other member), ``content.json`` (a JSON tree of
tagged plain data), ``arrays.npz`` (numpy arrays, read without pickle) and
``tensors.safetensors``. This module writes and checks that container and packs and unpacks
plain data (containers, scalars, arrays, tensors, random states). It knows no estimator:
:mod:`sklss.io` adds the estimators on top, and the checkpoints of ``fit`` use it as it is.
Size limits, checksums and strict parsing refuse damaged or hostile files before anything is
built; nothing is ever unpickled.
"""

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import warnings
import zipfile
from pathlib import Path

import numpy as np
import safetensors
import safetensors.torch
import torch

from ._version import __version__

FORMAT = "sklss"

FORMAT_VERSION = 1

_MANIFEST = "manifest.json"

_CONTENT = "content.json"

_ARRAYS = "arrays.npz"

_TENSORS = "tensors.safetensors"

_PAYLOAD = (_CONTENT, _ARRAYS, _TENSORS)

_MEMBERS = (_MANIFEST, *_PAYLOAD)

# A fixed timestamp, so that the same content gives the same archive bytes.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)

# The manifest is a few hundred bytes; anything far larger is not one.
_MAX_MANIFEST_BYTES = 1 << 20

# The safetensors header lists names, dtypes, shapes and offsets: kilobytes for sklss models.
_MAX_TENSOR_HEADER_BYTES = 16 << 20

_SHA256 = re.compile(r"[0-9a-f]{64}\Z")

# Attribute and parameter names a file may set: identifiers, never dunder names.
_NAME = re.compile(r"_?[A-Za-z][A-Za-z0-9_]*\Z")

_ARRAY_KINDS = "biufcU"

_SCALAR_DTYPES = frozenset(
    ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
    + ["float16", "float32", "float64"]
)

_TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


class InvalidModelFileError(ValueError):
    """A file that :func:`load` refuses: damaged, tampered with, or not an sklss model file."""


class Packer:
    """Turns a tree of plain data (containers, scalars, arrays, tensors) into JSON-ready
    data, collecting its arrays and tensors. Subclasses add other objects through
    ``_pack_object``."""

    def __init__(self):
        self.arrays = {}
        self.tensors = {}

    def _array(self, a):
        key = f"a{len(self.arrays)}"
        # Kept as is: .npy records Fortran order, and the memory layout of an array changes
        # the rounding of the products it enters.
        self.arrays[key] = a
        return {"__array__": key}

    def _tensor(self, t):
        key = f"t{len(self.tensors)}"
        # Own contiguous CPU storage: safetensors refuses views and shared storage.
        self.tensors[key] = t.detach().cpu().contiguous().clone()
        return {"__tensor__": key}

    def pack(self, value, where):
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, np.generic):
            dtype = value.dtype.name
            if dtype not in _SCALAR_DTYPES:
                raise TypeError(f"{where}: numpy scalars of dtype {dtype} cannot be stored.")
            return {"__scalar__": [dtype, value.item()]}
        if isinstance(value, (int, float)):
            return value
        if isinstance(value, torch.Tensor):
            return self._tensor(value)
        if isinstance(value, np.ndarray):
            return self._pack_array(value, where)
        if isinstance(value, tuple):
            return {"__tuple__": [self.pack(v, f"{where}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self.pack(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict):
            return self._pack_dict(value, where)
        if isinstance(value, np.random.RandomState):
            name, keys, pos, has_gauss, cached = value.get_state()
            return {
                "__random_state__": {
                    "keys": self._array(keys),
                    "pos": int(pos),
                    "has_gauss": int(has_gauss),
                    "cached_gaussian": float(cached),
                }
            }
        packed = self._pack_object(value, where)
        if packed is not None:
            return packed
        raise TypeError(
            f"{where}: a {type(value).__qualname__} cannot be stored in an sklss model file."
        )

    def _pack_object(self, value, where):
        """Pack an object that is not plain data, or return ``None``: data only here."""
        return None

    def _pack_array(self, a, where):
        if a.dtype == object:
            if not all(isinstance(v, str) for v in a.flat):
                raise TypeError(f"{where}: object arrays can only be stored if they hold strings.")
            return {"__strings__": a.tolist()}
        if a.dtype.kind not in _ARRAY_KINDS or a.dtype.fields is not None:
            raise TypeError(f"{where}: arrays of dtype {a.dtype} cannot be stored.")
        return self._array(a)

    def _pack_dict(self, d, where):
        if all(isinstance(k, str) for k in d):
            return {"__dict__": {k: self.pack(v, f"{where}[{k!r}]") for k, v in d.items()}}
        items = []
        for k, v in d.items():
            if k is not None and not isinstance(k, (bool, int, float, str)):
                raise TypeError(f"{where}: dict keys of type {type(k).__qualname__} unsupported.")
            items.append([k, self.pack(v, f"{where}[{k!r}]")])
        return {"__items__": items}


def _npz_bytes(arrays):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for key, a in arrays.items():
            with zf.open(zipfile.ZipInfo(key + ".npy", _ZIP_DATE), "w", force_zip64=True) as f:
                np.lib.format.write_array(f, a, allow_pickle=False)
    return buffer.getvalue()


def _write_container(kind, content, arrays, tensors):
    """The bytes of a model file of ``kind`` holding ``content`` and its arrays and tensors."""
    payload = {
        _CONTENT: json.dumps(content, separators=(",", ":")).encode("utf-8"),
        _ARRAYS: _npz_bytes(arrays),
        _TENSORS: safetensors.torch.save(tensors),
    }
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "sklss_version": __version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "members": {
            name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in payload.items()
        },
    }
    members = {_MANIFEST: json.dumps(manifest, indent=1).encode("utf-8"), **payload}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, _ZIP_DATE)
            info.external_attr = 0o100644 << 16
            zf.writestr(info, data)
    return buffer.getvalue()


def _atomic_write(path, write):
    """Write a file through ``write(file_object)`` so that ``path`` is never left half-written.

    The data go to a temporary file in the same directory, are flushed to disk, and then
    replace ``path`` in one ``os.replace``: a process killed at any moment leaves either the
    previous file or the new one. A failed write removes its temporary file.
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    # os.open rather than mkstemp: the file gets the permissions the umask gives, not 0600.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # The rename itself is durable only once the directory is flushed (POSIX only).
    if hasattr(os, "O_DIRECTORY"):
        with contextlib.suppress(OSError):
            dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)


def _refuse(path, message):
    return InvalidModelFileError(f"{path}: {message}")


def _parse_json(data, path, member, allow_nan):
    def unique_keys(pairs):
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            duplicate = next(k for k in keys if keys.count(k) > 1)
            raise ValueError(f"duplicate key {duplicate!r}")
        return dict(pairs)

    def no_constants(name):
        raise ValueError(f"{name} is not allowed here")

    try:
        return json.loads(
            data.decode("utf-8"),
            object_pairs_hook=unique_keys,
            **({} if allow_nan else {"parse_constant": no_constants}),
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        reason = "nested too deeply" if isinstance(err, RecursionError) else str(err)
        raise _refuse(path, f"{member} is not valid JSON ({reason}).") from None


def _check_archive(data, path):
    """Open the archive and check its structure; return the ``ZipFile``."""
    if not data.startswith(b"PK\x03\x04"):
        what = "a pickle" if data[:1] == b"\x80" else "something else"
        raise _refuse(
            path,
            f"not an sklss model file: it does not start with a zip header (it looks like "
            f"{what}). sklss.io.load never unpickles; load pickle or joblib files only from "
            "sources you trust, with joblib.load.",
        )
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as err:
        raise _refuse(path, f"damaged or truncated archive ({err}).") from None
    if data[-22:-18] != b"PK\x05\x06" or zf.comment:
        raise _refuse(path, "bytes follow the end of the archive.")
    names = [info.filename for info in infos]
    for name in names:
        if names.count(name) > 1:
            raise _refuse(path, f"the member {name!r} appears twice.")
        if name not in _MEMBERS:
            raise _refuse(
                path,
                f"unexpected member {name!r}; an sklss model file holds exactly "
                f"{', '.join(_MEMBERS)}.",
            )
    if names != list(_MEMBERS):
        missing = [m for m in _MEMBERS if m not in names]
        detail = f"missing {', '.join(missing)}" if missing else f"found them as {names}"
        raise _refuse(path, f"the members must be {', '.join(_MEMBERS)} in this order; {detail}.")
    if infos[0].header_offset != 0:
        raise _refuse(path, f"{infos[0].header_offset} bytes precede the archive.")
    for info in infos:
        mode = info.external_attr >> 16
        if info.flag_bits & 0x1:
            raise _refuse(path, f"{info.filename} is encrypted.")
        if info.compress_type != zipfile.ZIP_STORED:
            raise _refuse(path, f"{info.filename} is compressed; members must be stored.")
        if info.is_dir() or (mode & 0o170000) not in (0, 0o100000):
            raise _refuse(path, f"{info.filename} is not a regular file (a link or directory).")
    return zf


def _read_member(zf, name, path, limit=None):
    info = zf.getinfo(name)
    if limit is not None and info.file_size > limit:
        raise _refuse(path, f"{name} is {info.file_size} bytes, more than {limit} allowed.")
    try:
        return zf.read(name)
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise _refuse(path, f"{name} is damaged ({err}).") from None


def _check_manifest(manifest, path, kind):
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _refuse(path, "the manifest does not describe an sklss model file.")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _refuse(path, f"invalid format_version {version!r} in the manifest.")
    if version > FORMAT_VERSION:
        raise _refuse(
            path,
            f"format version {version} was written by a newer sklss; this sklss "
            f"{__version__} reads versions up to {FORMAT_VERSION}.",
        )
    if manifest.get("kind") != kind:
        found = manifest.get("kind")
        hint = {
            "checkpoint": " A training checkpoint is resumed by fit(checkpoint=...), "
            "not loaded as a model.",
            "estimator": " It is a saved model; load it with sklss.io.load.",
        }.get(found, "")
        raise _refuse(path, f"the file holds a {found!r}, not a {kind!r}.{hint}")
    for key in ("sklss_version", "torch_version"):
        if not isinstance(manifest.get(key), str):
            raise _refuse(path, f"the manifest has no {key}.")
    members = manifest.get("members")
    if not isinstance(members, dict) or sorted(members) != sorted(_PAYLOAD):
        raise _refuse(path, f"the manifest must list exactly {', '.join(_PAYLOAD)}.")
    for name, entry in members.items():
        size = entry.get("size") if isinstance(entry, dict) else None
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise _refuse(path, f"the manifest gives no valid size for {name}.")
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise _refuse(path, f"the manifest gives no valid SHA-256 for {name}.")


def _read_arrays(data, path):
    try:
        inner = zipfile.ZipFile(io.BytesIO(data))
        infos = inner.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as err:
        raise _refuse(path, f"{_ARRAYS} is not a valid .npz archive ({err}).") from None
    names = [info.filename for info in infos]
    arrays = {}
    for info in infos:
        key = info.filename[:-4]
        if (
            not info.filename.endswith(".npy")
            or not _NAME.match(key)
            or names.count(info.filename) > 1
        ):
            raise _refuse(path, f"{_ARRAYS} holds an unexpected member {info.filename!r}.")
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
            raise _refuse(path, f"{_ARRAYS}: {info.filename} is compressed or encrypted.")
        try:
            with inner.open(info) as f:
                a = np.lib.format.read_array(f, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
            raise _refuse(path, f"{_ARRAYS}: {info.filename} is refused ({err}).") from None
        if a.dtype.hasobject or a.dtype.kind not in _ARRAY_KINDS or a.dtype.fields is not None:
            raise _refuse(path, f"{_ARRAYS}: {info.filename} has the unsupported dtype {a.dtype}.")
        arrays[key] = a
    return arrays


def _read_tensors(data, path):
    if len(data) < 8:
        raise _refuse(path, f"{_TENSORS} is truncated ({len(data)} bytes).")
    header = int.from_bytes(data[:8], "little")
    if header > min(len(data) - 8, _MAX_TENSOR_HEADER_BYTES):
        raise _refuse(
            path,
            f"{_TENSORS} declares a {header}-byte header, more than the "
            f"{min(len(data) - 8, _MAX_TENSOR_HEADER_BYTES)} bytes it may have.",
        )
    try:
        tensors = safetensors.torch.load(data)
    except Exception as err:  # the parser reports bad headers and offsets in several types
        raise _refuse(path, f"{_TENSORS} is not a valid safetensors file ({err}).") from None
    for key in tensors:
        if not _NAME.match(key):
            raise _refuse(path, f"{_TENSORS} holds an unexpected tensor {key!r}.")
    return tensors


def _read_container(path, kind):
    """Read and check a model file; return its manifest, content tree, arrays and tensors.

    Everything is checked before anything is returned: structure, sizes, checksums and the
    syntax of every member. Nothing is built and nothing is unpickled.
    """
    path = Path(path)
    if path.is_dir():
        raise _refuse(path, "a directory, not an sklss model file.")
    data = path.read_bytes()
    zf = _check_archive(data, path)
    manifest_bytes = _read_member(zf, _MANIFEST, path, _MAX_MANIFEST_BYTES)
    manifest = _parse_json(manifest_bytes, path, _MANIFEST, allow_nan=False)
    _check_manifest(manifest, path, kind)
    payload = {}
    for name in _PAYLOAD:
        expected = manifest["members"][name]
        size = zf.getinfo(name).file_size
        if size != expected["size"]:
            raise _refuse(
                path,
                f"{name} is {size} bytes but the manifest says {expected['size']} "
                "(truncated or tampered).",
            )
        data = _read_member(zf, name, path)
        if hashlib.sha256(data).hexdigest() != expected["sha256"]:
            raise _refuse(
                path, f"{name} does not match its SHA-256 in the manifest (damaged or tampered)."
            )
        payload[name] = data
    content = _parse_json(payload[_CONTENT], path, _CONTENT, allow_nan=True)
    if not isinstance(content, dict):
        raise _refuse(path, f"{_CONTENT} must hold a JSON object.")
    arrays = _read_arrays(payload[_ARRAYS], path)
    tensors = _read_tensors(payload[_TENSORS], path)
    return manifest, content, arrays, tensors


def _warn_on_versions(manifest, path):
    here = {"sklss": __version__, "torch": torch.__version__}
    there = {"sklss": manifest["sklss_version"], "torch": manifest["torch_version"]}
    differ = [k for k in here if here[k] != there[k]]
    if differ:
        saved = " and ".join(f"{k} {there[k]}" for k in differ)
        current = " and ".join(f"{k} {here[k]}" for k in differ)
        warnings.warn(
            f"{path} was saved with {saved}; this is {current}. It loads, but results may "
            "differ from those of the original model.",
            UserWarning,
            stacklevel=3,
        )


class Unpacker:
    """Checks a content tree of plain data and turns it into that data, building nothing.

    Every array and tensor must be referred to exactly once. Subclasses read other tags
    through ``_object_tags``.
    """

    def __init__(self, arrays, tensors, path):
        self.arrays = arrays
        self.tensors = tensors
        self.path = path
        self._used = set()

    def fail(self, where, message):
        return _refuse(self.path, f"{_CONTENT}: {where}: {message}")

    def _take(self, table, key, where, member):
        if not isinstance(key, str) or key not in table:
            raise self.fail(where, f"refers to {key!r}, which {member} does not hold.")
        if (member, key) in self._used:
            raise self.fail(where, f"refers to {key!r} of {member} a second time.")
        self._used.add((member, key))
        return table[key]

    def finish(self):
        """Check that every array and tensor was referred to."""
        unused = [k for k in self.arrays if (_ARRAYS, k) not in self._used]
        unused += [k for k in self.tensors if (_TENSORS, k) not in self._used]
        if unused:
            raise _refuse(self.path, f"entries {unused} are stored but never referred to.")

    def unpack(self, node, where):
        try:
            return self._unpack(node, where)
        except RecursionError:
            raise self.fail(where, "nested too deeply.") from None

    def _unpack(self, node, where):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self._unpack(v, f"{where}[{i}]") for i, v in enumerate(node)]
        if not isinstance(node, dict) or not node:
            raise self.fail(where, f"unexpected value {node!r}.")
        tag = next(iter(node))
        data_tags = {
            "__tuple__": self._tuple,
            "__dict__": self._dict,
            "__items__": self._items,
            "__array__": self._array_ref,
            "__tensor__": self._tensor_ref,
            "__scalar__": self._scalar,
            "__strings__": self._strings,
            "__random_state__": self._random_state,
        }
        if tag in data_tags:
            self._keys(node, where, {tag})
            return data_tags[tag](node[tag], where)
        handler = self._object_tags().get(tag)
        if handler is not None:
            return handler(node, where)
        raise self.fail(where, f"unknown tag {tag!r}; nothing but sklss's own tags is read.")

    def _object_tags(self):
        """Handlers of tags beyond plain data, by tag: none here."""
        return {}

    def _keys(self, node, where, expected):
        if set(node) != set(expected):
            raise self.fail(where, f"expected the keys {sorted(expected)}, got {sorted(node)}.")

    def _tuple(self, value, where):
        if not isinstance(value, list):
            raise self.fail(where, "__tuple__ must hold a list.")
        return tuple(self._unpack(v, f"{where}[{i}]") for i, v in enumerate(value))

    def _dict(self, value, where):
        if not isinstance(value, dict):
            raise self.fail(where, "__dict__ must hold an object.")
        return {k: self._unpack(v, f"{where}[{k!r}]") for k, v in value.items()}

    def _items(self, value, where):
        if not isinstance(value, list) or not all(
            isinstance(p, list) and len(p) == 2 and not isinstance(p[0], (list, dict))
            for p in value
        ):
            raise self.fail(where, "__items__ must hold [key, value] pairs with scalar keys.")
        return {k: self._unpack(v, f"{where}[{k!r}]") for k, v in value}

    def _array_ref(self, key, where):
        return self._take(self.arrays, key, where, _ARRAYS)

    def _tensor_ref(self, key, where):
        return self._take(self.tensors, key, where, _TENSORS)

    def _scalar(self, value, where):
        if not (isinstance(value, list) and len(value) == 2 and value[0] in _SCALAR_DTYPES):
            raise self.fail(where, f"invalid __scalar__ {value!r}.")
        dtype, number = value
        if not isinstance(number, (bool, int, float)):
            raise self.fail(where, f"invalid __scalar__ value {number!r}.")
        return np.dtype(dtype).type(number)

    def _strings(self, value, where):
        a = np.array(value, dtype=object)
        if not all(isinstance(v, str) for v in a.flat):
            raise self.fail(where, "__strings__ must hold strings only.")
        return a

    def _random_state(self, value, where):
        if not isinstance(value, dict):
            raise self.fail(where, "__random_state__ must hold an object.")
        self._keys(value, where, {"keys", "pos", "has_gauss", "cached_gaussian"})
        keys = self._unpack(value["keys"], f"{where}.keys")
        rs = np.random.RandomState()
        try:
            rs.set_state(
                ("MT19937", keys, value["pos"], value["has_gauss"], value["cached_gaussian"])
            )
        except (TypeError, ValueError) as err:
            raise self.fail(where, f"invalid random state ({err}).") from None
        return rs
