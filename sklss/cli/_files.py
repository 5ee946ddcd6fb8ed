"""Input files of the commands: existence checks and ``.npy`` loading with named errors."""

from pathlib import Path

import numpy as np

from ._errors import CommandError

_TRAJECTORY_SUFFIXES = (".dcd", ".xtc", ".trr", ".pdb", ".h5", ".gro")


def _existing(path, what):
    path = Path(path)
    if not path.exists():
        raise CommandError(f"{what} '{path}' does not exist")
    if path.is_dir() and what != "model folder":
        raise CommandError(f"{what} '{path}' is a folder, not a file")
    return path


def _load_npy(path, what):
    """A ``.npy`` file as a list of 2-D float trajectories (3-D arrays are stacks of them)."""
    path = _existing(path, what)
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise CommandError(f"could not read {what} '{path}' as a .npy array: {exc}") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "iuf":
        raise CommandError(f"{what} '{path}' must hold a numeric array; got {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim == 2:
        return [arr]
    if arr.ndim == 3:
        return list(arr)
    raise CommandError(
        f"{what} '{path}' has shape {arr.shape}; expected (n_frames, n_features) or "
        "(n_trajectories, n_frames, n_features)"
    )


def _load_npy_files(paths, what):
    trajs, sources = [], []
    for path in paths:
        loaded = _load_npy(path, what)
        trajs += loaded
        sources += [f"{path}" if len(loaded) == 1 else f"{path}[{i}]" for i in range(len(loaded))]
    return trajs, sources


def _check_aligned(X, Y, x_sources, y_sources):
    if len(X) != len(Y):
        raise CommandError(
            f"--configurations hold {len(Y)} trajectories but --features hold {len(X)}; "
            "they must correspond one to one"
        )
    for x, y, xs, ys in zip(X, Y, x_sources, y_sources):
        if len(x) != len(y):
            raise CommandError(
                f"configurations '{ys}' have {len(y)} frames but features '{xs}' have "
                f"{len(x)}; they must be aligned frame by frame"
            )
