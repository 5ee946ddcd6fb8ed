"""Featurising many MD trajectory files, one joblib task per file, into ``.npy`` memory maps.

:func:`featurize_files` is public as :func:`sklss.io.featurize_files`. Each file is one
joblib task, so ``joblib.parallel_backend("dask")`` runs them on a Dask cluster. A task
reads its file, featurises it and writes ``<stem>.npy`` atomically; what is already on disk
and current is skipped, so a run that failed or was stopped resumes where it was.
"""

import glob
import os
from pathlib import Path

import numpy as np

from ._archive import _atomic_write
from ._optional import import_md
from ._trajectory_files import _TOPOLOGY_FORMATS, _as_topology, _suffix, read_trajectory
from ._validation import check_int

__all__ = ["featurize_files"]

# What a directory is searched for: trajectory formats that mdtraj reads.
_TRAJECTORY_SUFFIXES = (".dcd", ".xtc", ".trr", ".nc", ".h5", ".pdb")
_GLOB_CHARACTERS = frozenset("*?[")


def _expand(item, exclude):
    """The files one entry of ``paths`` names: a file, a directory's files, or glob matches."""
    path = Path(item)
    if path.is_file():
        return [path]
    if path.is_dir():
        matches = sorted(
            p
            for p in path.iterdir()
            if p.is_file() and not p.name.startswith(".") and _suffix(p) in _TRAJECTORY_SUFFIXES
        )
        what = (
            f"the directory {str(path)!r} holds no trajectory files "
            f"({', '.join(_TRAJECTORY_SUFFIXES)})"
        )
    elif _GLOB_CHARACTERS & set(str(item)):
        matches = sorted(Path(p) for p in glob.glob(str(item)) if os.path.isfile(p))
        what = f"the pattern {str(item)!r} matches no files"
    else:
        raise FileNotFoundError(f"Trajectory file {str(path)!r} does not exist.")
    matches = [p for p in matches if exclude is None or p.resolve() != exclude]
    if not matches:
        raise ValueError(f"No trajectory files to featurise: {what}.")
    return matches


def _trajectory_paths(paths, *, topology=None):
    """The trajectory files that ``paths`` names, in order.

    ``paths`` is one path-like or a list of them. Each is a file, a directory (its files with
    a suffix in ``_TRAJECTORY_SUFFIXES``, sorted by name, hidden ones left out) or a glob
    pattern (its matching files, sorted). A topology file (path) is left out of directory
    listings and glob matches, so it may sit next to the trajectories. Shared by
    :func:`featurize_files` and ``sklss fit --trajectories``.
    """
    items = [paths] if isinstance(paths, (str, os.PathLike)) else paths
    if not isinstance(items, (list, tuple)):
        raise TypeError(
            "The 'paths' parameter must be a path, a directory, a glob pattern or a list of "
            f"them. Got {type(paths).__name__}."
        )
    if not items:
        raise ValueError("The 'paths' parameter is an empty list; expected trajectory files.")
    exclude = Path(topology).resolve() if isinstance(topology, (str, os.PathLike)) else None
    files = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(
                f"The 'paths' parameter holds a {type(item).__name__}; expected paths of "
                "trajectory files, directories or glob patterns."
            )
        files += _expand(item, exclude)
    return files


def _stem(path):
    """The file name without its format suffix (``run.pdb.gz`` gives ``run``)."""
    return path.name[: len(path.name) - len(_suffix(path))] or path.name


def _output_paths(files, out_dir):
    """``out_dir/<stem>.npy`` for every file; two files that would share one are an error."""
    outputs, seen = [], {}
    for path in files:
        key = _stem(path).casefold()
        if key in seen:
            other = seen[key]
            if other.resolve() == path.resolve():
                raise ValueError(f"Trajectory file {str(path)!r} is listed twice.")
            raise ValueError(
                f"Trajectory files {str(other)!r} and {str(path)!r} would both write their "
                f"features to {str(out_dir / (_stem(path) + '.npy'))!r} (file names are "
                "compared without their suffix, ignoring case). Rename one, or featurise them "
                "into separate folders."
            )
        seen[key] = path
        outputs.append(out_dir / f"{_stem(path)}.npy")
    return outputs


def _fitted(featurizer, first, topology, stride):
    """``featurizer`` itself when fitted, else a clone fitted on the first file."""
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(featurizer)
        return featurizer
    except NotFittedError:
        pass
    traj = read_trajectory(first, topology, stride=stride)
    try:
        return clone(featurizer).fit(traj)
    except Exception as exc:
        raise ValueError(
            f"Could not fit {type(featurizer).__name__} on trajectory file {str(first)!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _n_features_out(featurizer):
    """The featuriser's number of output columns, or None when it does not name them."""
    try:
        return len(featurizer.get_feature_names_out())
    except (AttributeError, TypeError, ValueError):
        return None


def _frame_count(path):
    """Frames in a trajectory file, read from its headers; None when they cannot be counted."""
    md = import_md("mdtraj", feature="featurize_files")
    try:
        with md.open(str(path)) as f:
            return len(f)
    except Exception:  # any reader failure only means the features are computed afresh
        return None


def _is_current(path, out, stride, n_out):
    """``out`` holds the features of ``path`` at ``stride``: newer, float32, right shape."""
    try:
        if out.stat().st_mtime_ns < path.stat().st_mtime_ns:
            return False
        # Opening as a memory map reads the header and checks the file is long enough.
        saved = np.load(out, mmap_mode="r", allow_pickle=False)
        shape, dtype = saved.shape, saved.dtype
        del saved
    except (OSError, ValueError, EOFError):
        return False
    if len(shape) != 2 or dtype != np.float32 or (n_out is not None and shape[1] != n_out):
        return False
    n_frames = _frame_count(path)
    return n_frames is not None and shape[0] == len(range(0, n_frames, stride))


def _checked_features(X, path, n_frames, n_out, stride):
    """The features of one file as a finite float32 array of one row per frame."""
    X = np.asarray(X)
    if X.ndim != 2 or len(X) != n_frames or X.dtype.kind not in "iuf":
        raise ValueError(
            f"Featurising trajectory file {str(path)!r} gave an array of shape {X.shape} and "
            f"dtype {X.dtype}; expected numbers of shape ({n_frames}, n_features), one row per "
            "frame."
        )
    if n_out is not None and X.shape[1] != n_out:
        raise ValueError(
            f"Featurising trajectory file {str(path)!r} gave {X.shape[1]} features, but the "
            f"featuriser names {n_out} (get_feature_names_out)."
        )
    X = X.astype(np.float32, copy=False)
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(
            f"The features of trajectory file {str(path)!r} contain NaN or inf, first at frame "
            f"{row * stride} of the file."
        )
    return X


def _featurize_file(path, out, featurizer, topology, stride, n_out, overwrite):
    """One task: featurise ``path`` into ``out``; return whether it was written (or skipped)."""
    if not overwrite and _is_current(path, out, stride, n_out):
        return False
    from joblib import parallel_config

    traj = read_trajectory(path, topology, stride=stride)
    try:
        # In this process: a featuriser's own joblib calls (FeatureUnion's) would otherwise
        # become nested Dask tasks that ship the trajectory to other workers.
        with parallel_config(backend="sequential"):
            X = featurizer.transform(traj)
    except Exception as exc:
        raise ValueError(
            f"Could not featurise trajectory file {str(path)!r} with "
            f"{type(featurizer).__name__}: {type(exc).__name__}: {exc}"
        ) from exc
    X = _checked_features(X, path, traj.n_frames, n_out, stride)
    try:
        _atomic_write(out, lambda f: np.save(f, X, allow_pickle=False))
    except OSError as exc:
        raise OSError(
            f"Could not write {str(out)!r}, the features of trajectory file {str(path)!r}: {exc}"
        ) from exc
    return True


def _not_written(files, outputs):
    """The files whose features are not on disk (or are older than the file), named."""
    missing = [
        repr(str(p))
        for p, o in zip(files, outputs)
        if not o.is_file() or o.stat().st_mtime_ns < p.stat().st_mtime_ns
    ]
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    return ", ".join(missing[:5]) + more or "none"


def featurize_files(
    paths,
    featurizer,
    out_dir,
    *,
    topology=None,
    stride=1,
    n_jobs=None,
    overwrite=False,
    verbose=0,
):
    """Featurise MD trajectory files in parallel into one ``.npy`` file each.

    Every file is one joblib task: it is read with :func:`sklss.io.read_trajectory`,
    featurised with ``featurizer.transform`` and written as float32 to
    ``out_dir/<stem>.npy`` (``run1.xtc`` gives ``run1.npy``). The tasks run in joblib's
    processes with ``n_jobs``, or on a Dask cluster under
    ``joblib.parallel_backend("dask")``; the files must then be readable from the workers,
    and ``out_dir`` shared with this process. Only the tasks' arguments and a flag travel
    back; the features go through the disk.

    A file is written to a temporary file in ``out_dir`` and then renamed, so an interrupted
    run never leaves a partial ``.npy`` behind. A file whose ``.npy`` is already there,
    newer than the trajectory file and of the shape this call would write (the
    featuriser's number of columns, one row per ``stride``-th frame), is skipped: rerunning
    after a failure redoes only what is missing.

    Parameters
    ----------
    paths : path-like or list of path-like
        Trajectory files, each of them a file, a directory or a glob pattern such as
        ``"md/*.xtc"``. A directory stands for its files ending in ``.dcd``, ``.xtc``,
        ``.trr``, ``.nc``, ``.h5`` or ``.pdb`` sorted by name, a pattern for its matching
        files sorted by path; a topology file given as a path is left out of both. The
        arrays come back in this order.
    featurizer : sklss featuriser
        A featuriser of :mod:`sklss.features` (or any transformer that maps one
        ``mdtraj.Trajectory`` to an array of one row per frame), such as
        ``make_encoder_features("heavy").fit(structure)``. An unfitted one is cloned and the
        clone is fitted once, in this process, on the first file (read with ``stride``),
        before any task starts, so every file is featurised alike; the object passed is left
        unchanged. Fit it yourself to keep its feature names or choose its reference.
    out_dir : path-like
        Folder of the ``.npy`` files, created if missing. Two input files with the same
        name but for the suffix (``a/run.xtc`` and ``b/run.dcd``, also ``Run`` and ``run``)
        would write one ``.npy`` file and are refused.
    topology : mdtraj.Topology, mdtraj.Trajectory, path-like or None, default=None
        The atoms of the files; needed for formats without their own topology (DCD, XTC,
        TRR, NetCDF).
    stride : int, default=1
        Featurise every ``stride``-th frame of each file.
    n_jobs : int or None, default=None
        Parallel tasks, as in :class:`joblib.Parallel`: ``None`` is one unless a
        ``joblib.parallel_backend`` context says otherwise, ``-1`` all cores.
    overwrite : bool, default=False
        Featurise every file, even those whose ``.npy`` file is current.
    verbose : int, default=0
        0 is silent; 1 shows a progress bar over the files.

    Returns
    -------
    features : list of numpy.memmap
        One read-only array ``(n_frames, n_features)`` of float32 per file, in the order of
        ``paths``, opened with ``np.load(path, mmap_mode="r")``: trajectory data that
        :meth:`SRVTransformer.fit <sklss.SRVTransformer.fit>` and
        :meth:`LatentSpaceSimulator.fit <sklss.LatentSpaceSimulator.fit>` take as they are.

    Raises
    ------
    FileNotFoundError
        If a trajectory file does not exist.
    ValueError
        If ``paths`` names no file (an empty directory or pattern, which the message names),
        two files would share one ``.npy`` file, or a file cannot be read or featurised (it
        is truncated or corrupt, holds other atoms than ``topology``, or gives NaN). The
        message names the file; the ``.npy`` files written before stay and are reused by
        the next call.
    RuntimeError
        If a task stops for a reason that names no file, such as a worker process that
        died; the message lists the files still without features.

    See Also
    --------
    sklss.io.read_trajectory : Read and check one trajectory file.
    sklss.features.make_encoder_features : The LSS paper's encoder features.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from sklss.datasets import alanine_dipeptide_structure
    >>> from sklss.features import make_encoder_features
    >>> from sklss.io import featurize_files, write_trajectory
    >>> structure = alanine_dipeptide_structure()
    >>> features = make_encoder_features("heavy").fit(structure)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     for i in range(3):  # three runs of 10 frames
    ...         xyz = np.repeat(structure.xyz, 10, axis=0)
    ...         _ = write_trajectory(xyz, structure, Path(folder) / f"run{i}.xtc")
    ...     X = featurize_files(folder, features, Path(folder) / "features", topology=structure,
    ...                         stride=2)
    ...     [x.shape for x in X], sorted(p.name for p in Path(folder, "features").iterdir())
    ([(5, 49), (5, 49), (5, 49)], ['run0.npy', 'run1.npy', 'run2.npy'])

    On a Dask cluster, then fitting an encoder on the memory maps:

    >>> import joblib  # doctest: +SKIP
    >>> from dask.distributed import Client  # doctest: +SKIP
    >>> from sklss import SRVTransformer  # doctest: +SKIP
    >>> client = Client("tcp://scheduler:8786")  # doctest: +SKIP
    >>> with joblib.parallel_backend("dask"):  # doctest: +SKIP
    ...     X = featurize_files("md/*.xtc", features, "features", topology="ala2.pdb")
    >>> SRVTransformer(lag_time=10, n_components=2).fit(X)  # doctest: +SKIP
    """
    from joblib import Parallel, delayed

    md = import_md("mdtraj", feature="featurize_files")
    stride = check_int("stride", stride)
    if not hasattr(featurizer, "transform"):
        raise TypeError(
            "The 'featurizer' parameter must be a featuriser with a transform method, such "
            f"as sklss.features.make_encoder_features(). Got {type(featurizer).__name__}."
        )
    top = None if topology is None else _as_topology(topology, md)
    files = _trajectory_paths(paths, topology=topology)
    if top is None:
        for path in files:
            if _suffix(path) not in _TOPOLOGY_FORMATS:
                raise ValueError(
                    f"Reading {str(path)!r} needs a topology: {_suffix(path) or 'this'} files "
                    "hold coordinates only. Pass topology= (an mdtraj.Topology, a Trajectory "
                    "or a PDB file)."
                )
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"The 'out_dir' {str(out_dir)!r} exists and is not a folder.")
    outputs = _output_paths(files, out_dir)
    featurizer = _fitted(featurizer, files[0], top, stride)
    n_out = _n_features_out(featurizer)
    out_dir.mkdir(parents=True, exist_ok=True)

    tasks = [
        delayed(_featurize_file)(path, out, featurizer, top, stride, n_out, bool(overwrite))
        for path, out in zip(files, outputs)
    ]
    progress = None
    if verbose:
        from tqdm.auto import tqdm

        progress = tqdm(total=len(tasks), desc="featurising", unit="file")
    try:
        for _ in Parallel(n_jobs=n_jobs, return_as="generator")(tasks):
            if progress is not None:
                progress.update()
    except (ValueError, OSError):
        raise  # the task's own error, which names its file
    except Exception as exc:
        raise RuntimeError(
            f"Featurising stopped. Trajectory files without features in {str(out_dir)!r}: "
            f"{_not_written(files, outputs)}; those of the others are saved there and reused "
            f"by the next call. Cause: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        if progress is not None:
            progress.close()
    return [np.load(out, mmap_mode="r", allow_pickle=False) for out in outputs]
