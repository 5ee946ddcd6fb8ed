"""Saving and loading sklss models and model folders without unpickling, and trajectory files.

:func:`write_trajectory` and :func:`read_trajectory` move configurations (nm) between arrays
and the DCD, XTC and PDB files that VMD, PyMOL and nglview open, through mdtraj (the
``sklss[md]`` extra); reading checks frame and atom counts and names the file when they are
wrong.

:func:`save_model_folder` and :func:`load_model_folder` keep a fitted simulator in a folder
together with what it needs to run on its own: default start frames and, when it generates
atoms, their topology. This is the model folder that ``sklss fit`` and ``sklss demo`` write
and ``sklss sample`` runs.

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

import functools
import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from skorch.dataset import Dataset
from torch import nn

from ._archive import (  # noqa: F401  (FORMAT and InvalidModelFileError are public here)
    _ARRAYS,
    _CONTENT,
    _NAME,
    _TENSORS,
    _TORCH_DTYPES,
    FORMAT,
    InvalidModelFileError,
    Packer,
    Unpacker,
    _atomic_write,
    _read_container,
    _refuse,
    _warn_on_versions,
    _write_container,
)
from ._featurize_files import featurize_files
from ._nn import ACTIVATIONS, TensorBatchLoader
from ._trajectory_files import read_trajectory, write_trajectory
from ._version import __version__
from .decoder import CWGANDecoder, _CWGANNet, _Generator, _WassersteinGP
from .encoder import SRVTransformer, _Lobe, _NegativeVAMP2, _SRVNet
from .interpolant import InterpolantPropagator, _BridgeModule, _InterpolantNet, _MeanLoss
from .propagator import MDNPropagator, _MDNNet, _MixtureDensityModule, _NegativeLogLikelihood
from .simulator import LatentSpaceSimulator

__all__ = [
    "InvalidModelFileError",
    "featurize_files",
    "load",
    "load_model_folder",
    "read_trajectory",
    "save",
    "save_model_folder",
    "write_trajectory",
]

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


def _qualified_name(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


@functools.cache
def _registry():
    """The classes a model file may name, by the names it uses for them."""
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


class _Packer(Packer):
    """The archive's packer plus sklss estimators, skorch networks, torch MLPs and
    allowed classes (``models=False`` keeps it to plain data, as in checkpoints)."""

    def __init__(self, models=True):
        super().__init__()
        self.models = models

    def _pack_object(self, value, where):
        return self._pack_model_object(value, where) if self.models else None

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


class _Unpacker(Unpacker):
    """The archive's unpacker plus estimators, networks, MLPs and allowed classes, read
    into specs that :class:`_Builder` builds after every check has passed."""

    def __init__(self, arrays, tensors, path, models=True):
        super().__init__(arrays, tensors, path)
        self.models = models

    def _object_tags(self):
        if not self.models:
            return {}
        return {
            "__class__": self._class,
            "__estimator__": self._estimator,
            "__net__": self._net,
            "__mlp__": self._mlp,
        }

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


# --- model folders --------------------------------------------------------------------------

# The files of a model folder; ``sklss-model.json`` names the others.
_FOLDER_INFO = "sklss-model.json"
_FOLDER_MODEL = "simulator.sklss"
_FOLDER_START_FRAMES = "start_frames.npy"
_FOLDER_TOPOLOGY = "topology.pdb"
_FOLDER_FORMAT, _FOLDER_FORMAT_VERSION = "sklss model folder", 1


def save_model_folder(simulator, folder, X, *, info=None, topology=None, n_start_frames=100):
    """Save a fitted simulator in a folder, with what it needs to run on its own.

    A model folder is what ``sklss fit`` and ``sklss demo`` write and ``sklss sample`` runs.
    It holds

    ``simulator.sklss``
        The simulator, written by :func:`save` (nothing is pickled).
    ``start_frames.npy``
        Up to ``n_start_frames`` frames of ``X``, spread evenly over the data, as default
        start frames of simulations.
    ``topology.pdb``
        Only with ``topology``: the atoms that the decoder generates coordinates of, so that
        samples can be written as DCD or XTC files.
    ``sklss-model.json``
        What the folder holds: the format and its version, the sklss version, the names of
        the files above, ``lag_time`` (frames), ``n_features``, ``decoded`` (whether the
        simulator has a decoder), ``interrupted`` (the stage an interrupted fit stopped in,
        or ``null``), and the entries of ``info``.

    Parameters
    ----------
    simulator : LatentSpaceSimulator
        A fitted simulator.
    folder : str or path-like
        The folder to write, created if missing; files of an earlier model are replaced.
    X : array-like of shape (n_frames, n_features) or list of such arrays
        Feature frames in the simulator's input space, usually its training data.
    info : dict, default=None
        More entries for ``sklss-model.json`` (JSON values), such as what the inputs and
        outputs are; they override the entries above of the same name.
    topology : mdtraj.Trajectory or path-like, default=None
        The decoded atoms: a structure saved as ``topology.pdb``, or a PDB file copied there.
    n_start_frames : int, default=100
        How many frames of ``X`` to keep as start frames.

    Returns
    -------
    folder : pathlib.Path
        The folder written.

    Raises
    ------
    ValueError
        If the simulator is not fitted, or ``X`` has another number of features than the
        simulator was fitted on.

    See Also
    --------
    load_model_folder : read the folder back.
    save : save an estimator in one file.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from sklss import LatentSpaceSimulator, MDNPropagator
    >>> from sklss.io import load_model_folder, save_model_folder
    >>> x = np.random.default_rng(0).normal(size=(500, 1)).cumsum(axis=0)
    >>> mdn = MDNPropagator(n_kernels=2, hidden_layer_sizes=(8,), max_epochs=2)
    >>> lss = LatentSpaceSimulator("passthrough", mdn, "passthrough", lag_time=2,
    ...                            random_state=0).fit(x)
    >>> folder = save_model_folder(lss, tempfile.mkdtemp(), x, info={"system": "random walk"})
    >>> sorted(p.name for p in folder.iterdir())
    ['simulator.sklss', 'sklss-model.json', 'start_frames.npy']
    >>> model = load_model_folder(folder)
    >>> model.info["system"], model.info["lag_time"], model.start_frames.shape
    ('random walk', 2, (100, 1))
    """
    n_features = getattr(simulator, "n_features_in_", None)
    if n_features is None:
        raise ValueError("save_model_folder needs a fitted simulator; call fit first.")
    frames = np.concatenate([np.asarray(x) for x in (X if isinstance(X, list) else [X])])
    if frames.ndim == 1 and n_features == 1:
        frames = frames[:, None]
    if frames.ndim != 2 or frames.shape[1] != n_features:
        raise ValueError(
            f"X must be frames of the simulator's {n_features} features; got shape {frames.shape}."
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save(simulator, folder / _FOLDER_MODEL)
    picks = np.unique(np.linspace(0, len(frames) - 1, n_start_frames).astype(int))
    np.save(folder / _FOLDER_START_FRAMES, frames[picks])
    if isinstance(topology, (str, os.PathLike)):
        shutil.copyfile(topology, folder / _FOLDER_TOPOLOGY)
    elif topology is not None:
        topology.save_pdb(str(folder / _FOLDER_TOPOLOGY))
    contents = {
        "format": _FOLDER_FORMAT,
        "format_version": _FOLDER_FORMAT_VERSION,
        "sklss_version": __version__,
        "model": _FOLDER_MODEL,
        "start_frames": _FOLDER_START_FRAMES,
        "topology": _FOLDER_TOPOLOGY if topology is not None else None,
        "lag_time": int(getattr(simulator, "lag_time_", simulator.lag_time or 1)),
        "n_features": int(n_features),
        "decoded": simulator.decoder_ != "passthrough",
        "interrupted": getattr(simulator, "interrupted_", None),
        **(info or {}),
    }
    (folder / _FOLDER_INFO).write_text(json.dumps(contents, indent=2) + "\n")
    return folder


def load_model_folder(folder):
    """Load a model folder written by :func:`save_model_folder`, ``sklss fit`` or ``sklss demo``.

    Parameters
    ----------
    folder : str or path-like
        The model folder.

    Returns
    -------
    model : sklearn.utils.Bunch
        With the attributes

        - ``simulator``: the :class:`~sklss.LatentSpaceSimulator`, read by :func:`load`;
        - ``info``: the contents of ``sklss-model.json`` (a dict);
        - ``start_frames``: the start frames kept in the folder, an array of shape
          ``(n_start_frames, n_features)``;
        - ``topology``: the path of the decoded atoms' PDB file, or ``None`` when the
          simulator does not generate atoms;
        - ``folder``: the folder, as a :class:`pathlib.Path`.

    Raises
    ------
    FileNotFoundError
        If the folder does not exist, or a file that ``sklss-model.json`` names is missing
        (the message names the folder and the file).
    ValueError
        If the folder has no ``sklss-model.json``, or it is not valid JSON or was written by
        a newer sklss, or the start frames are not a numeric ``.npy`` array.
    InvalidModelFileError
        If the simulator file is damaged or not an sklss model file.

    See Also
    --------
    save_model_folder : write a model folder.

    Examples
    --------
    After ``sklss demo``, four trajectories of 100 steps from its model:

    >>> from sklss.io import load_model_folder
    >>> model = load_model_folder("sklss-demo-report/model")  # doctest: +SKIP
    >>> starts = model.start_frames[:4]  # doctest: +SKIP
    >>> model.simulator.sample(starts, 100, random_state=0).latent.shape  # doctest: +SKIP
    (4, 100, 2)
    """
    from sklearn.utils import Bunch

    folder, info = _read_folder_info(folder)
    model_path = _folder_file(folder, info, "model", _FOLDER_MODEL)
    starts_path = _folder_file(folder, info, "start_frames", _FOLDER_START_FRAMES)
    topology = info.get("topology")
    topology = _folder_file(folder, info, "topology", None) if topology else None
    try:
        starts = np.load(starts_path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"could not read '{starts_path}' as a .npy array: {exc}") from None
    if not isinstance(starts, np.ndarray) or starts.ndim != 2 or starts.dtype.kind not in "iuf":
        raise ValueError(f"'{starts_path}' must hold a 2-D numeric array of start frames.")
    simulator = load(model_path)
    return Bunch(
        simulator=simulator, info=info, start_frames=starts, topology=topology, folder=folder
    )


def _read_folder_info(folder):
    """The folder and its ``sklss-model.json``, checked."""
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"model folder '{folder}' does not exist")
    info_path = folder / _FOLDER_INFO
    if not folder.is_dir() or not info_path.is_file():
        raise ValueError(
            f"'{folder}' is not a model folder written by 'sklss fit' or 'sklss demo' "
            f"(no {_FOLDER_INFO} in it)"
        )
    try:
        info = json.loads(info_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"'{info_path}' is not valid JSON: {exc}") from None
    if not isinstance(info, dict):
        raise ValueError(f"'{info_path}' must hold a JSON object; got {type(info).__name__}")
    version = info.get("format_version", _FOLDER_FORMAT_VERSION)
    if not isinstance(version, int) or version > _FOLDER_FORMAT_VERSION:
        raise ValueError(
            f"model folder '{folder}' has format_version {version!r}; this sklss reads "
            f"versions up to {_FOLDER_FORMAT_VERSION}"
        )
    return folder, info


def _folder_file(folder, info, key, default):
    """The path of a file that ``sklss-model.json`` names under ``key``; it must exist."""
    name = info.get(key, default)
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name == "..":
        raise ValueError(f"'{folder / _FOLDER_INFO}': {key} must be a file name; got {name!r}")
    path = folder / name
    if not path.is_file():
        raise FileNotFoundError(f"model folder '{folder}' has no {name}")
    return path
