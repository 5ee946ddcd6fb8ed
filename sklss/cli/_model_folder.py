"""The model folder that ``sklss fit`` writes and ``sklss sample`` reads."""

import json
from pathlib import Path

import numpy as np

from ._errors import CommandError
from ._files import _existing

# The folder layout that ``sklss fit`` writes and ``sklss sample`` reads.
_MODEL_INFO = "sklss-model.json"
_MODEL_FILE = "simulator.sklss"
_START_FRAMES = "start_frames.npy"
_TOPOLOGY = "topology.pdb"
# Training frames kept in a model folder as default start frames for ``sample``.
_N_START_FRAMES = 100


def _save_estimator(estimator, folder):
    """Write a fitted estimator into ``folder`` with :func:`sklss.io.save` (no pickle)."""
    from ..io import save

    path = Path(folder) / _MODEL_FILE
    save(estimator, path)
    return path


def _load_estimator(folder, info):
    from ..io import load

    return load(Path(folder) / info.get("model", _MODEL_FILE))


def _save_model_folder(lss, folder, X, *, info, topology=None):
    """Save a fitted simulator with what ``sklss sample`` needs to run it on its own.

    The folder holds the simulator, ``sklss-model.json`` (what the inputs and outputs are),
    ``start_frames.npy`` (up to 100 training frames, spread over the data, as default start
    frames) and, for coordinates decoded from MD, ``topology.pdb`` (the decoded atoms).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _save_estimator(lss, folder)
    frames = np.concatenate(X if isinstance(X, list) else [X])
    picks = np.unique(np.linspace(0, len(frames) - 1, _N_START_FRAMES).astype(int))
    np.save(folder / _START_FRAMES, frames[picks])
    if topology is not None:
        topology.save_pdb(str(folder / _TOPOLOGY))
    from .. import __version__

    info = {
        "format": "sklss model folder",
        "format_version": 1,
        "sklss_version": __version__,
        "model": _MODEL_FILE,
        "start_frames": _START_FRAMES,
        "topology": _TOPOLOGY if topology is not None else None,
        "lag_time": int(getattr(lss, "lag_time_", lss.lag_time or 1)),
        "n_features": int(lss.n_features_in_),
        "decoded": lss.decoder_ != "passthrough",
        "interrupted": getattr(lss, "interrupted_", None),
        **info,
    }
    (folder / _MODEL_INFO).write_text(json.dumps(info, indent=2) + "\n")
    return folder


def _read_model_folder(path):
    folder = _existing(path, "model folder")
    info_path = folder / _MODEL_INFO
    if not folder.is_dir() or not info_path.is_file():
        raise CommandError(
            f"'{folder}' is not a model folder written by 'sklss fit' or 'sklss demo' "
            f"(no {_MODEL_INFO} in it)"
        )
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as exc:
        raise CommandError(f"'{info_path}' is not valid JSON: {exc}") from None
    if not (folder / info.get("model", _MODEL_FILE)).is_file():
        raise CommandError(f"model folder '{folder}' has no {info.get('model', _MODEL_FILE)}")
    return folder, info
