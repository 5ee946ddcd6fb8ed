"""Training checkpoints: the state of a fit, written after every epoch, and resuming from it.

A checkpoint is a file in the format of :mod:`sklss.io` whose kind is ``"checkpoint"``, so it
is read with the same checks and never unpickled. It holds everything the next epoch depends
on: the state dicts of the networks and optimizers, counters such as the decoder's averaging
step, skorch's history, the state of the callbacks (early stopping with its best weights, the
learning-rate schedule, best scores) and torch's random number generator. Nothing in a
training loop draws from numpy's global generator, so its state is not needed (and the
caller's is never touched).

A fit resumes from a checkpoint only if it was written for the same estimator class,
parameters and training data (a SHA-256 "fingerprint" of all three). ``max_epochs``, ``device``
and ``verbose`` may differ, so that a finished fit can be extended by raising ``max_epochs``.
A checkpoint of another fit, or one damaged beyond reading, is replaced with a warning; a file
that is not a checkpoint at all is never overwritten.
"""

import hashlib
import json
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from skorch.callbacks import Callback
from skorch.history import History

from ._archive import (
    _MANIFEST,
    _MAX_MANIFEST_BYTES,
    FORMAT,
    InvalidModelFileError,
    Packer,
    Unpacker,
    _atomic_write,
    _read_container,
    _warn_on_versions,
    _write_container,
)

_KIND = "checkpoint"
# Parameters that do not change what the epochs compute.
_FREE_PARAMS = frozenset({"checkpoint", "verbose", "max_epochs", "device"})


def _describe(value):
    return value.tolist() if hasattr(value, "tolist") else type(value).__qualname__


def fingerprint(estimator, *data):
    """SHA-256 of the estimator's class, its parameters and the training data.

    ``data`` are lists of arrays (trajectories, targets). The parameters in ``_FREE_PARAMS``
    are left out. A ``RandomState`` passed as ``random_state`` counts by its type only: the
    checkpoint restores the random state that training had reached.
    """
    params = {k: v for k, v in estimator.get_params(deep=False).items() if k not in _FREE_PARAMS}
    digest = hashlib.sha256(type(estimator).__qualname__.encode())
    digest.update(json.dumps(params, sort_keys=True, default=_describe).encode())
    for arrays in data:
        digest.update(f"[{len(arrays)}]".encode())
        for a in arrays:
            a = np.ascontiguousarray(a)
            digest.update(f"{a.dtype.str}{a.shape}".encode())
            digest.update(memoryview(a).cast("B"))
    return digest.hexdigest()


def checkpoint_callbacks(estimator, *data):
    """The checkpoint callback for ``estimator.fit`` as a list: empty without a checkpoint.

    It must be the last callback, so that the state it saves includes what the other
    callbacks did at the end of the epoch.
    """
    if estimator.checkpoint is None:
        return []
    path = Path(estimator.checkpoint)
    if path.is_dir() or not path.parent.is_dir():
        raise ValueError(
            f"The 'checkpoint' parameter of {type(estimator).__name__} must be a file path in "
            f"an existing directory; got {str(estimator.checkpoint)!r}."
        )
    if path.exists() and not _is_checkpoint_file(path):
        raise ValueError(
            f"The 'checkpoint' parameter of {type(estimator).__name__} names {str(path)!r}, "
            "which exists and is not an sklss training checkpoint; it is left untouched. "
            "Choose another path."
        )
    callback = TrainingCheckpoint(path, fingerprint(estimator, *data), type(estimator).__name__)
    return [("checkpoint", callback)]


def _is_checkpoint_file(path):
    """Whether ``path`` has the manifest of a checkpoint, even if its contents are damaged."""
    try:
        with zipfile.ZipFile(path) as zf:
            if zf.getinfo(_MANIFEST).file_size > _MAX_MANIFEST_BYTES:
                return False
            manifest = json.loads(zf.read(_MANIFEST))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return False
    if not isinstance(manifest, dict):
        return False
    return manifest.get("format") == FORMAT and manifest.get("kind") == _KIND


def _is_scalar(value):
    return value is None or type(value) in (bool, int, float, str) or isinstance(value, np.generic)


def _is_state_dict(value):
    return isinstance(value, dict) and all(isinstance(v, torch.Tensor) for v in value.values())


def _public_state_names(obj):
    return [k for k in vars(obj) if k.endswith("_") and not k.startswith("_")]


def _callback_state(callback):
    """Fitted attributes of a skorch callback that the following epochs depend on."""
    values, state_dicts = {}, {}
    for name in _public_state_names(callback):
        value = getattr(callback, name)
        if _is_scalar(value) or _is_state_dict(value):
            values[name] = value
        elif not isinstance(value, type) and hasattr(value, "load_state_dict"):
            state_dicts[name] = value.state_dict()
    return {"values": values, "state_dicts": state_dicts}


def _training_state(net):
    state = {
        "modules": {
            m: {
                "training": getattr(net, m + "_").training,
                "state": getattr(net, m + "_").state_dict(),
            }
            for m in net._modules
        },
        "optimizers": {o: getattr(net, o + "_").state_dict() for o in net._optimizers},
        "attributes": {
            k: getattr(net, k)
            for k in _public_state_names(net)
            if type(getattr(net, k)) in (int, float)
        },
        "history": [dict(row) for row in net.history],
        "callbacks": {
            name: _callback_state(cb)
            for name, cb in net.callbacks_
            if not isinstance(cb, TrainingCheckpoint)
        },
        "rng": {"cpu": torch.get_rng_state()},
    }
    device = torch.device(net.device)
    if device.type == "cuda":
        state["rng"]["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _restore(net, state):
    for name, entry in state["modules"].items():
        module = getattr(net, name + "_")
        module.load_state_dict(entry["state"])
        module.train(entry["training"])
    for name, optimizer_state in state["optimizers"].items():
        getattr(net, name + "_").load_state_dict(optimizer_state)
    for name, value in state["attributes"].items():
        if name not in _public_state_names(net) or type(value) not in (int, float):
            raise ValueError(f"unexpected network attribute {name!r}")
        setattr(net, name, value)
    net.history_ = History(state["history"])
    callbacks = dict(net.callbacks_)
    for name, saved in state["callbacks"].items():
        callback = callbacks[name]
        for attr, value in saved["values"].items():
            if not attr.endswith("_") or attr.startswith("_"):
                raise ValueError(f"unexpected attribute {attr!r} of the callback {name!r}")
            setattr(callback, attr, value)
        for attr, value in saved["state_dicts"].items():
            getattr(callback, attr).load_state_dict(value)
    torch.set_rng_state(state["rng"]["cpu"])
    device = torch.device(net.device)
    if "cuda" in state["rng"] and device.type == "cuda":
        torch.cuda.set_rng_state(state["rng"]["cuda"], device)


class TrainingCheckpoint(Callback):
    """Write the training state to ``path`` after every epoch; resume from it at the start.

    Parameters
    ----------
    path : Path
        The checkpoint file. Each write replaces it atomically (see ``sklss.io``), so a
        process killed while writing leaves the previous checkpoint intact.
    fingerprint : str
        Identifies the estimator, parameters and data (see :func:`fingerprint`). A file
        written with another fingerprint is not resumed from: training starts afresh, with a
        warning, and replaces it.
    component : str
        The estimator's name, for messages.

    Attributes
    ----------
    resumed_from_ : int or None
        The number of epochs restored from the file, or ``None`` if training started afresh.
    """

    def __init__(self, path, fingerprint, component):
        self.path = path
        self.fingerprint = fingerprint
        self.component = component

    def initialize(self):
        self.resumed_from_ = None
        return self

    def _afresh(self, reason):
        warnings.warn(
            f"{self.component}: the checkpoint {self.path} {reason}; training starts afresh "
            "and will replace it.",
            UserWarning,
            stacklevel=2,
        )

    def _read(self, net):
        """The saved training state if the file exists and belongs to this fit, else None."""
        if not self.path.exists():
            return None
        try:
            manifest, content, arrays, tensors = _read_container(self.path, _KIND)
            if set(content) != {"fingerprint", "component", "epochs", "state"}:
                raise InvalidModelFileError("it does not hold a training state")
            unpacker = Unpacker(arrays, tensors, self.path)
            state = unpacker.unpack(content["state"], "state")
            unpacker.finish()
            if not isinstance(state, dict) or type(content["epochs"]) is not int:
                raise InvalidModelFileError("it does not hold a training state")
        except InvalidModelFileError as err:
            self._afresh(f"cannot be read ({str(err).removeprefix(f'{self.path}: ')})")
            return None
        if content["fingerprint"] != self.fingerprint:
            self._afresh("was written by a fit with other parameters or other data")
            return None
        if content["epochs"] > net.max_epochs:
            self._afresh(f"holds {content['epochs']} epochs, more than max_epochs={net.max_epochs}")
            return None
        _warn_on_versions(manifest, self.path)
        return state

    def on_train_begin(self, net, **kwargs):
        # Runs after the other callbacks' on_train_begin, which reset the state restored here.
        state = self._read(net)
        if state is None:
            return
        try:
            _restore(net, state)
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
            raise ValueError(
                f"{self.component}: the checkpoint {self.path} matches this fit but cannot be "
                f"restored ({err}). Delete it to start afresh."
            ) from None
        self.resumed_from_ = len(net.history)
        if net.verbose:
            print(f"Resuming from {self.path} after epoch {self.resumed_from_}.", flush=True)

    def on_epoch_end(self, net, **kwargs):
        packer = Packer()
        content = {
            "fingerprint": self.fingerprint,
            "component": self.component,
            "epochs": len(net.history),
            "state": packer.pack(_training_state(net), "checkpoint"),
        }
        data = _write_container(_KIND, content, packer.arrays, packer.tensors)
        try:
            _atomic_write(self.path, lambda f: f.write(data))
        except OSError as err:
            # A full disk must not cost the training done in memory.
            warnings.warn(
                f"{self.component}: the checkpoint {self.path} could not be written ({err}); "
                "the previous one is kept and training goes on.",
                UserWarning,
                stacklevel=2,
            )
