"""Saving and loading sklss models in a format that never unpickles, and trajectory files.

:func:`write_trajectory` and :func:`read_trajectory` move configurations (nm) between arrays
and the DCD, XTC and PDB files that VMD, PyMOL and nglview open, through mdtraj (the
``sklss[md]`` extra); reading checks frame and atom counts and names the file when they are
wrong.

A pickle (and so a joblib file) runs code of the writer's choosing when it is loaded. Models
shared between people go through :func:`save` and :func:`load` instead, which store data only:
numbers, strings, arrays and tensors. Loading builds the estimators itself, from an explicit
list of sklss classes.

The file format
---------------
A model file is a zip archive whose members are stored uncompressed, exactly these four, in
this order:

``manifest.json``
    ``{"format": "sklss", "format_version": 1, "kind": "estimator", "sklss_version": ...,
    "torch_version": ..., "numpy_version": ..., "members": {name: {"size": n_bytes,
    "sha256": hex_digest}}}`` for the three members below. ``kind`` is ``"checkpoint"`` in the
    training checkpoints that ``fit`` writes (the ``checkpoint`` parameter of the estimators).
``content.json``
    The object tree (UTF-8 JSON, see below).
``arrays.npz``
    The numpy arrays the tree refers to (fitted statistics), one ``.npy`` member each, read
    with ``allow_pickle=False``.
``tensors.safetensors``
    The torch tensors the tree refers to (network weights, optimizer moments), in the
    safetensors format.

The tree is plain JSON in which an object always carries one tag naming what it stands for:

- ``{"__estimator__": "sklss.SRVTransformer", "params": {...}, "state": {...}}``: an
  estimator, its constructor parameters (``get_params(deep=False)``) and its fitted
  attributes. Only ``SRVTransformer``, ``MDNPropagator``, ``InterpolantPropagator``,
  ``CWGANDecoder`` and ``LatentSpaceSimulator`` are allowed; nested components are
  estimators in turn. The ``checkpoint`` parameters are always ``null``.
- ``{"__net__": ..., "params", "modules", "optimizers", "criteria", "attributes",
  "history"}``: a trained skorch network (``net_``): its parameters, the state dicts of its
  modules and optimizers, counters and its training history. The network, module and
  optimizer classes come from a fixed list of sklss and torch classes (``{"__class__": name}``).
- ``{"__mlp__": [layers], "dtype", "training", "state"}``: a plain ``torch.nn.Sequential`` of
  linear, batch-norm and activation layers (the encoder's float64 inference copy).
- ``{"__array__": key}`` and ``{"__tensor__": key}``: an entry of ``arrays.npz`` or of
  ``tensors.safetensors``; each entry is referred to exactly once.
- ``{"__tuple__": [...]}``, ``{"__dict__": {...}}`` (string keys), ``{"__items__": [[k, v],
  ...]}`` (other keys), ``{"__scalar__": [dtype, value]}`` (a numpy scalar), ``{"__strings__":
  [...]}`` (an object array of strings, such as ``feature_names_in_``) and
  ``{"__random_state__": {...}}`` (a ``numpy.random.RandomState`` passed as ``random_state``).

:func:`load` reads everything and checks it before it builds anything: the archive's
structure (no other members, no compression, no links, no bytes before or after the archive),
every member's size and SHA-256 against the manifest, the JSON, the ``.npy`` members and the
safetensors header, every tag, class and attribute name, and every array and tensor
reference. Any failure raises :class:`InvalidModelFileError` that names the file and what is
wrong. The checksums catch damage, such as a truncated copy or a flipped bit; they are not a
signature, since anyone who edits a file can recompute them. What keeps a hostile file from
running code is that nothing in it is ever executed or unpickled.

A file written by another version of sklss or torch loads, with a warning that states both
versions. Tensors are read onto the CPU and then moved to each network's device; a model
trained on CUDA loads on a machine without a GPU, on the CPU, with a warning saying so (its
``device`` parameter keeps the value it was trained with).
"""

import contextlib
import functools
import hashlib
import io
import json
import os
import re
import secrets
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import safetensors
import safetensors.torch
import torch
from torch import nn

from . import __version__
from ._nn import ACTIVATIONS, TensorBatchLoader
from ._trajectory_files import read_trajectory, write_trajectory

__all__ = ["InvalidModelFileError", "load", "read_trajectory", "save", "write_trajectory"]

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
# Constructor arguments of the layers an ``__mlp__`` may hold (Linear's ``bias`` is a flag).
_LAYER_ARGS = {
    nn.Linear: ("in_features", "out_features", "bias"),
    nn.BatchNorm1d: ("num_features", "eps", "momentum", "affine", "track_running_stats"),
    nn.ELU: ("alpha",),
    nn.GELU: ("approximate",),
    nn.Softplus: ("beta", "threshold"),
    nn.LeakyReLU: ("negative_slope",),
}
_LAYERS = {cls.__name__: cls for cls in (nn.Linear, nn.BatchNorm1d, *ACTIVATIONS.values())}


class InvalidModelFileError(ValueError):
    """A file that :func:`load` refuses: damaged, tampered with, or not an sklss model file."""


def _qualified_name(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


@functools.cache
def _registry():
    """The classes a model file may name, by the names it uses for them.

    Imported on first use: the estimator modules import this one (through checkpoints).
    """
    from skorch.dataset import Dataset

    from .decoder import CWGANDecoder, _CWGANNet, _Generator, _WassersteinGP
    from .encoder import SRVTransformer, _Lobe, _NegativeVAMP2, _SRVNet
    from .interpolant import InterpolantPropagator, _BridgeModule, _InterpolantNet, _MeanLoss
    from .propagator import MDNPropagator, _MDNNet, _MixtureDensityModule, _NegativeLogLikelihood
    from .simulator import LatentSpaceSimulator

    public = (SRVTransformer, MDNPropagator, InterpolantPropagator, CWGANDecoder)
    public += (LatentSpaceSimulator,)
    helpers = (_Lobe, _NegativeVAMP2, _MixtureDensityModule, _NegativeLogLikelihood)
    helpers += (_BridgeModule, _MeanLoss)
    helpers += (_Generator, _WassersteinGP, torch.optim.Adam, TensorBatchLoader, Dataset)
    nets = (_SRVNet, _MDNNet, _InterpolantNet, _CWGANNet)
    return {
        "estimators": {f"sklss.{cls.__name__}": cls for cls in public},
        "nets": {_qualified_name(cls): cls for cls in nets},
        "classes": {_qualified_name(cls): cls for cls in helpers},
    }


def _name_of(cls, kind):
    for name, known in _registry()[kind].items():
        if known is cls:
            return name
    return None


# --- writing --------------------------------------------------------------------------------


class _Packer:
    """Turns an object tree into JSON-ready data, collecting its arrays and tensors.

    With ``models=False`` only data (containers, scalars, arrays, tensors) is accepted, as in
    training checkpoints.
    """

    def __init__(self, models=True):
        self.models = models
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
        if self.models:
            packed = self._pack_model_object(value, where)
            if packed is not None:
                return packed
        raise TypeError(
            f"{where}: a {type(value).__qualname__} cannot be stored in an sklss model file."
        )

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

    def _pack_model_object(self, value, where):
        from ._nn import SklssNet

        if isinstance(value, type):
            name = _name_of(value, "classes")
            if name is None:
                raise TypeError(f"{where}: the class {_qualified_name(value)} is not storable.")
            return {"__class__": name}
        if _name_of(type(value), "estimators") is not None:
            return self.pack_estimator(value, where)
        if isinstance(value, SklssNet):
            return self._pack_net(value, where)
        if isinstance(value, nn.Sequential):
            return self._pack_mlp(value, where)
        return None

    def pack_estimator(self, est, where="estimator"):
        name = _name_of(type(est), "estimators")
        if name is None:
            allowed = ", ".join(_registry()["estimators"])
            raise TypeError(
                f"{where}: sklss.io.save stores sklss estimators ({allowed}), not "
                f"{_qualified_name(type(est))}."
            )
        params = est.get_params(deep=False)
        state = {k: v for k, v in vars(est).items() if k not in params}
        if "checkpoint" in params:
            # A path on the machine that trained the model, which a refit would write to.
            params["checkpoint"] = None
        return {
            "__estimator__": name,
            "params": {k: self.pack(v, f"{where}.{k}") for k, v in params.items()},
            "state": {k: self.pack(v, f"{where}.{k}") for k, v in state.items()},
        }

    def _pack_net(self, net, where):
        name = _name_of(type(net), "nets")
        if name is None:
            raise TypeError(f"{where}: the network class {type(net).__qualname__} is unknown.")
        # Callbacks only act during training; a loaded network gets skorch's defaults.
        params = {
            k: v
            for k, v in net.get_params(deep=False).items()
            if k != "callbacks" and not k.startswith("_")
        }
        attributes = {
            k: v
            for k, v in vars(net).items()
            if _NAME.match(k)
            and k.endswith("_")
            and not k.startswith("_")
            and type(v) in (bool, int, float)
            and k != "initialized_"
        }
        return {
            "__net__": name,
            "params": {k: self.pack(v, f"{where}.{k}") for k, v in params.items()},
            "modules": {
                m: {
                    "training": getattr(net, m + "_").training,
                    "state": self.pack(getattr(net, m + "_").state_dict(), f"{where}.{m}_"),
                }
                for m in net._modules
            },
            "optimizers": {
                o: self.pack(getattr(net, o + "_").state_dict(), f"{where}.{o}_")
                for o in net._optimizers
            },
            "criteria": {
                c: self.pack(getattr(net, c + "_").state_dict(), f"{where}.{c}_")
                for c in net._criteria
            },
            "attributes": attributes,
            "history": self.pack([dict(row) for row in net.history], f"{where}.history"),
        }

    def _pack_mlp(self, mlp, where):
        layers = []
        for i, layer in enumerate(mlp):
            cls = type(layer)
            if _LAYERS.get(cls.__name__) is not cls:
                raise TypeError(f"{where}[{i}]: layers of type {cls.__qualname__} unsupported.")
            spec = {"type": cls.__name__}
            for arg in _LAYER_ARGS.get(cls, ()):
                value = getattr(layer, arg)
                spec[arg] = value is not None if arg == "bias" else value
            layers.append(spec)
        dtypes = {p.dtype for p in mlp.parameters()}
        dtype = next((k for k, v in _TORCH_DTYPES.items() if {v} == dtypes), None)
        if dtype is None:
            raise TypeError(
                f"{where}: parameters of dtypes {sorted(map(str, dtypes))} unsupported."
            )
        return {
            "__mlp__": layers,
            "dtype": dtype,
            "training": mlp.training,
            "state": self.pack(mlp.state_dict(), where),
        }


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


def save(estimator, path):
    """Save an sklss estimator, fitted or not, to a file that :func:`load` reads safely.

    Tensors are stored in safetensors, arrays in ``.npy`` form, everything else in JSON,
    together with the sklss and torch versions and a SHA-256 of each part (the module
    docstring describes the format). Nothing is pickled. The file is written to a temporary
    file first and then renamed, so an interrupted save leaves any previous file intact.

    The ``checkpoint`` parameters are stored as ``None``: a checkpoint path belongs to the
    machine that trained the model, and a model loaded elsewhere must not write to it when
    refitted.

    Parameters
    ----------
    estimator : sklss estimator
        The model: an ``SRVTransformer``, ``MDNPropagator``, ``InterpolantPropagator``,
        ``CWGANDecoder`` or ``LatentSpaceSimulator``, with any nested components
        (``"passthrough"`` slots included).
    path : str or path-like
        Where to write; an existing file is replaced.

    Raises
    ------
    TypeError
        If the estimator is not one of the sklss estimators, or holds an attribute that the
        format cannot store (the message names it).

    See Also
    --------
    load : read the file back.

    Examples
    --------
    >>> import numpy as np
    >>> from sklss import MDNPropagator
    >>> from sklss.io import load, save
    >>> x = np.random.default_rng(0).normal(size=(500, 1)).cumsum(axis=0)
    >>> mdn = MDNPropagator(n_kernels=2, hidden_layer_sizes=(8,), max_epochs=2,
    ...                     random_state=0).fit(x)
    >>> save(mdn, "mdn.sklss")  # doctest: +SKIP
    >>> load("mdn.sklss").score(x) == mdn.score(x)  # doctest: +SKIP
    True
    """
    packer = _Packer(models=True)
    content = {"estimator": packer.pack_estimator(estimator)}
    data = _write_container("estimator", content, packer.arrays, packer.tensors)
    _atomic_write(path, lambda f: f.write(data))


# --- reading --------------------------------------------------------------------------------


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


@dataclass
class _EstimatorSpec:
    cls: type
    params: dict
    state: dict


@dataclass
class _NetSpec:
    cls: type
    params: dict
    modules: dict
    optimizers: dict
    criteria: dict
    attributes: dict
    history: list


@dataclass
class _MLPSpec:
    layers: list
    dtype: torch.dtype
    training: bool
    state: dict


class _Unpacker:
    """Checks a content tree and turns it into data and specs, building no model.

    Every array and tensor must be referred to exactly once. With ``models=False`` the tree
    may hold data only.
    """

    def __init__(self, arrays, tensors, path, models=True):
        self.arrays = arrays
        self.tensors = tensors
        self.path = path
        self.models = models
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
        model_tags = {
            "__class__": self._class,
            "__estimator__": self._estimator,
            "__net__": self._net,
            "__mlp__": self._mlp,
        }
        if tag in data_tags:
            self._keys(node, where, {tag})
            return data_tags[tag](node[tag], where)
        if tag in model_tags and self.models:
            return model_tags[tag](node, where)
        raise self.fail(where, f"unknown tag {tag!r}; nothing but sklss's own tags is read.")

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

    def _class(self, node, where):
        self._keys(node, where, {"__class__"})
        name = node["__class__"]
        classes = _registry()["classes"]
        if not isinstance(name, str) or name not in classes:
            raise self.fail(where, f"the class {name!r} is not one sklss builds networks from.")
        return classes[name]

    def _names(self, mapping, where, what):
        if not isinstance(mapping, dict):
            raise self.fail(where, f"{what} must be an object.")
        for name in mapping:
            if not _NAME.match(name):
                raise self.fail(where, f"{name!r} is not a valid {what} name.")
        return mapping

    def _estimator(self, node, where):
        self._keys(node, where, {"__estimator__", "params", "state"})
        name = node["__estimator__"]
        estimators = _registry()["estimators"]
        if not isinstance(name, str) or name not in estimators:
            raise self.fail(
                where,
                f"the class {name!r} is not an sklss estimator; a model file may name only "
                f"{', '.join(estimators)}.",
            )
        cls = estimators[name]
        where = f"{where} ({name})"
        params = self._names(node["params"], where, "parameter")
        allowed = set(cls._get_param_names())
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise self.fail(where, f"{unknown} are not parameters of {name}.")
        if params.get("checkpoint") is not None:
            raise self.fail(
                where, "a model file may not set a checkpoint path (a refit would write to it)."
            )
        state = self._names(node["state"], where, "attribute")
        for attr in state:
            if attr in allowed or hasattr(cls, attr):
                raise self.fail(where, f"the attribute {attr!r} would replace part of {name}.")
        return _EstimatorSpec(
            cls,
            {k: self._unpack(v, f"{where}.{k}") for k, v in params.items()},
            {k: self._unpack(v, f"{where}.{k}") for k, v in state.items()},
        )

    def _net(self, node, where):
        keys = {"__net__", "params", "modules", "optimizers", "criteria", "attributes", "history"}
        self._keys(node, where, keys)
        name = node["__net__"]
        nets = _registry()["nets"]
        if not isinstance(name, str) or name not in nets:
            raise self.fail(where, f"the network class {name!r} is not one of sklss's.")
        cls = nets[name]
        params = self._names(node["params"], where, "network parameter")
        if any(k.startswith("_") or k == "callbacks" for k in params):
            raise self.fail(where, "network parameters may not be private or callbacks.")
        attributes = self._names(node["attributes"], where, "network attribute")
        for attr, value in attributes.items():
            default = getattr(cls, attr, None)
            if (
                not attr.endswith("_")
                or attr.startswith("_")
                or type(value) not in (bool, int, float)
                or (default is not None and type(default) is not type(value))
            ):
                raise self.fail(where, f"the network attribute {attr!r}={value!r} is refused.")
        modules = self._names(node["modules"], where, "module")
        for module, entry in modules.items():
            if not isinstance(entry, dict) or set(entry) != {"training", "state"}:
                raise self.fail(where, f"module {module!r} must hold training and state.")
            if not isinstance(entry["training"], bool):
                raise self.fail(where, f"module {module!r}: training must be true or false.")
        history = self._unpack(node["history"], f"{where}.history")
        if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
            raise self.fail(where, "the history must be a list of objects.")
        return _NetSpec(
            cls,
            {k: self._unpack(v, f"{where}.{k}") for k, v in params.items()},
            {
                m: (e["training"], self._state_dict(e["state"], f"{where}.{m}_"))
                for m, e in modules.items()
            },
            {
                o: self._unpack(v, f"{where}.{o}_")
                for o, v in self._names(node["optimizers"], where, "optimizer").items()
            },
            {
                c: self._state_dict(v, f"{where}.{c}_")
                for c, v in self._names(node["criteria"], where, "criterion").items()
            },
            attributes,
            history,
        )

    def _state_dict(self, node, where):
        state = self._unpack(node, where)
        if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
        ):
            raise self.fail(where, "a state dict must map names to tensors.")
        return state

    def _mlp(self, node, where):
        self._keys(node, where, {"__mlp__", "dtype", "training", "state"})
        if not isinstance(node["__mlp__"], list) or node["dtype"] not in _TORCH_DTYPES:
            raise self.fail(where, "an __mlp__ needs a list of layers and a float dtype.")
        if not isinstance(node["training"], bool):
            raise self.fail(where, "training must be true or false.")
        layers = []
        for i, spec in enumerate(node["__mlp__"]):
            kind = spec.get("type") if isinstance(spec, dict) else None
            cls = _LAYERS.get(kind) if isinstance(kind, str) else None
            if cls is None:
                raise self.fail(f"{where}[{i}]", f"the layer type {kind!r} is not allowed.")
            args = {k: v for k, v in spec.items() if k != "type"}
            if set(args) != set(_LAYER_ARGS.get(cls, ())) or not all(
                isinstance(v, (bool, int, float, str)) for v in args.values()
            ):
                raise self.fail(f"{where}[{i}]", f"invalid arguments {args!r} for {kind}.")
            layers.append((cls, args))
        state = self._state_dict(node["state"], where)
        return _MLPSpec(layers, _TORCH_DTYPES[node["dtype"]], node["training"], state)


def _check_optimizer_state(optimizer, name):
    """Moments shaped like their parameters (``load_state_dict`` does not check)."""
    for param, state in optimizer.state.items():
        for key, value in state.items():
            if torch.is_tensor(value) and value.dim() > 0 and value.shape != param.shape:
                raise ValueError(
                    f"the {name} state {key!r} has shape {tuple(value.shape)}, but its "
                    f"parameter has shape {tuple(param.shape)}"
                )


class _Builder:
    """Builds estimators from checked specs."""

    def __init__(self, path):
        self.path = path
        self.moved_to_cpu = set()

    def build(self, spec, where):
        if isinstance(spec, list):
            return [self.build(v, where) for v in spec]
        if isinstance(spec, tuple):
            return tuple(self.build(v, where) for v in spec)
        if isinstance(spec, dict):
            return {k: self.build(v, where) for k, v in spec.items()}
        if isinstance(spec, _EstimatorSpec):
            return self._estimator(spec, where)
        if isinstance(spec, _NetSpec):
            return self._net(spec, where)
        if isinstance(spec, _MLPSpec):
            return self._mlp(spec, where)
        return spec

    def _estimator(self, spec, where):
        where = f"{where} ({spec.cls.__name__})"
        params = {k: self.build(v, f"{where}.{k}") for k, v in spec.params.items()}
        est = spec.cls(**params)
        for attr, value in spec.state.items():
            setattr(est, attr, self.build(value, f"{where}.{attr}"))
        return est

    def _device(self, device):
        device = str(device)
        if device.startswith("cuda") and not torch.cuda.is_available():
            self.moved_to_cpu.add(device)
            return "cpu"
        return device

    def _net(self, spec, where):
        from skorch.history import History

        params = {k: self.build(v, f"{where}.{k}") for k, v in spec.params.items()}
        params["device"] = self._device(params.get("device", "cpu"))
        try:
            net = spec.cls(**params)
            # Initialisation draws random weights; keep the caller's torch RNG untouched.
            with torch.random.fork_rng(devices=[]):
                net.initialize()
            if sorted(spec.modules) != sorted(net._modules) or sorted(spec.optimizers) != sorted(
                net._optimizers
            ):
                raise ValueError(
                    f"stored modules {sorted(spec.modules)} and optimizers "
                    f"{sorted(spec.optimizers)} do not match the network's "
                    f"{sorted(net._modules)} and {sorted(net._optimizers)}"
                )
            for name, (training, state) in spec.modules.items():
                module = getattr(net, name + "_")
                module.load_state_dict(state, strict=True)
                module.train(training)
            for name, state in spec.optimizers.items():
                optimizer = getattr(net, name + "_")
                optimizer.load_state_dict(state)
                _check_optimizer_state(optimizer, name)
            for name, state in spec.criteria.items():
                getattr(net, name + "_").load_state_dict(state, strict=True)
        except (TypeError, ValueError, RuntimeError, KeyError, AttributeError) as err:
            raise _refuse(self.path, f"{where}: the network cannot be rebuilt ({err}).") from None
        for attr, value in spec.attributes.items():
            current = getattr(net, attr, None)
            if current is not None and type(current) is not type(value):
                raise _refuse(
                    self.path,
                    f"{where}: the attribute {attr!r} would replace a "
                    f"{type(current).__qualname__}.",
                )
            setattr(net, attr, value)
        net.history_ = History(spec.history)
        return net

    def _mlp(self, spec, where):
        try:
            with torch.random.fork_rng(devices=[]):
                mlp = nn.Sequential(*[cls(**args) for cls, args in spec.layers])
            mlp = mlp.to(spec.dtype)
            mlp.load_state_dict(spec.state, strict=True)
        except (TypeError, ValueError, RuntimeError) as err:
            raise _refuse(self.path, f"{where}: the network cannot be rebuilt ({err}).") from None
        return mlp.train(spec.training)


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


def load(path):
    """Load an estimator written by :func:`save`, without unpickling anything.

    The whole file is checked first (structure, sizes, SHA-256 checksums, JSON, array and
    tensor headers, class and attribute names, see the module docstring); only then are the
    estimators built, from sklss's own classes. A saved and reloaded model gives the same
    outputs, bit for bit on the CPU, as the model that was saved: ``transform``, ``predict``,
    ``score`` and ``sample`` with the same ``random_state``.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save`.

    Returns
    -------
    estimator : sklss estimator
        An ``SRVTransformer``, ``MDNPropagator``, ``InterpolantPropagator``,
        ``CWGANDecoder`` or ``LatentSpaceSimulator``.

    Raises
    ------
    InvalidModelFileError
        If the file is not an sklss model file, is damaged, truncated or tampered with, or
        names anything outside sklss. The message names the file and the problem.

    Warns
    -----
    UserWarning
        If the file was written by another version of sklss or torch (both versions are
        named), or if its networks were on a CUDA device that is not available here (they
        are loaded on the CPU).
    """
    manifest, content, arrays, tensors = _read_container(path, "estimator")
    unpacker = _Unpacker(arrays, tensors, path, models=True)
    if set(content) != {"estimator"}:
        raise _refuse(path, f"{_CONTENT} must hold exactly one estimator.")
    spec = unpacker.unpack(content["estimator"], "estimator")
    if not isinstance(spec, _EstimatorSpec):
        raise _refuse(path, f"{_CONTENT} does not hold an estimator.")
    unpacker.finish()
    _warn_on_versions(manifest, path)
    builder = _Builder(path)
    try:
        estimator = builder.build(spec, "estimator")
    except RecursionError:
        raise _refuse(path, "the estimator is nested too deeply.") from None
    if builder.moved_to_cpu:
        warnings.warn(
            f"{path} holds networks trained on {', '.join(sorted(builder.moved_to_cpu))}, "
            "which is not available here; they were loaded on the CPU.",
            UserWarning,
            stacklevel=2,
        )
    return estimator
