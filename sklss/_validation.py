"""Validation of trajectory data and construction of time-lagged pairs.

Every estimator in sklss accepts *trajectory data*: one 2-D array ``(n_frames, n_features)``
or a list of such arrays, possibly ragged in length. Lagged pairs ``(x_t, x_{t+lag})`` are built
inside each trajectory and never across the boundary between two trajectories.

Memory-mapped trajectories are validated without a copy, and the checks and statistics that
read every frame run in chunks (see :mod:`sklss._frames`).
"""

import warnings
from numbers import Integral

import numpy as np
from scipy import sparse

from ._compat import validate_data
from ._frames import frame_offsets, row_chunks

FLOAT_DTYPES = (np.float64, np.float32)


def is_trajectory_list(X):
    """Whether ``X`` is a list (or tuple) of 2-D trajectories rather than one array.

    A list of 1-D rows (``[[1, 2], [3, 4]]``) is one trajectory, as in scikit-learn.
    """
    if not isinstance(X, (list, tuple)) or len(X) == 0:
        return False
    return all(hasattr(x, "shape") and len(x.shape) == 2 or _nested_depth(x) == 2 for x in X)


def _nested_depth(x):
    depth = 0
    while isinstance(x, (list, tuple)) and len(x) > 0:
        depth += 1
        x = x[0]
    return depth


def _check_finite(traj, index, name):
    """Raise a ValueError that names the trajectory, frame and feature of the first NaN/inf.

    The frames are checked a chunk at a time, so a memory map is never copied whole.
    """
    if traj.dtype.kind not in "fc":
        return
    for start, chunk in row_chunks(traj):
        finite = np.isfinite(chunk)
        if finite.all():
            continue
        frame, feature = np.argwhere(~finite)[0]
        kind = "NaN" if np.isnan(chunk[frame, feature]) else "inf"
        where = f"trajectory {index}, " if index is not None else ""
        raise ValueError(
            f"Input {name} contains {kind} (NaN or inf values are not allowed) at {where}"
            f"frame {start + frame}, feature {feature}."
        )


def _reject_bad_kinds(x, index, name):
    where = f" (trajectory {index})" if index is not None else ""
    if sparse.issparse(x):
        raise TypeError(
            f"Sparse data was passed for {name}{where}, but dense data is required. "
            "Use X.toarray() to convert to a dense numpy array."
        )
    dtype = getattr(x, "dtype", None)
    if dtype is not None and np.dtype(dtype).kind == "c":
        raise ValueError(f"Complex data not supported in {name}{where}; got dtype {dtype}.")


def check_trajectories(estimator, X, *, reset, name="X", dtype=FLOAT_DTYPES, min_frames=1):
    """Validate trajectory data.

    Parameters
    ----------
    estimator : estimator
        Sets (``reset=True``) or checks ``n_features_in_`` and ``feature_names_in_``.
    X : array-like of shape (n_frames, n_features) or list of such arrays
        Trajectory data.
    reset : bool
        Whether this is a call from ``fit``.
    name : str
        The argument's name, used in error messages.
    dtype : dtype or tuple of dtypes
        Accepted float dtypes; other numeric kinds are converted to the first.
    min_frames : int
        Minimum number of frames in the data as a whole.

    Returns
    -------
    trajs : list of ndarray
        The validated trajectories, each 2-D and finite.
    is_list : bool
        Whether ``X`` was given as a list, so the caller can return the same form.
    """
    is_list = is_trajectory_list(X)
    items = list(X) if is_list else [X]
    for i, x in enumerate(items):
        _reject_bad_kinds(x, i if is_list else None, name)

    if is_list:
        shapes = [np.shape(x) for x in items]
        for i, shape in enumerate(shapes[1:], start=1):
            if shape[1] != shapes[0][1]:
                raise ValueError(
                    f"All trajectories in {name} must have the same number of features: "
                    f"trajectory 0 has shape {shapes[0]} but trajectory {i} has shape {shape}."
                )

    trajs = []
    for i, x in enumerate(items):
        # The first trajectory sets (or checks) n_features_in_; the others must agree with it.
        x = validate_data(
            estimator,
            x,
            reset=reset and i == 0,
            dtype=dtype,
            ensure_all_finite=False,
            ensure_min_samples=1,
        )
        _check_finite(x, i if is_list else None, name)
        trajs.append(x)
    n_total = sum(len(t) for t in trajs)
    if n_total < min_frames:
        raise ValueError(
            f"{name} has n_samples={n_total} frames in all, but at least {min_frames} are needed."
        )
    return trajs, is_list


def as_float_trajectories(X, name="X", *, stacks=False):
    """Trajectory data as a list of finite, non-empty 2-D float64 arrays, for metrics and plots.

    One array is one trajectory (a 1-D array is one coordinate); a list holds several. With
    ``stacks``, a 3-D array is a stack of equally long trajectories, as ``sample`` returns.
    Unlike :func:`check_trajectories` this checks no fitted estimator. Errors name ``name``,
    the trajectory and the frame.
    """
    if is_trajectory_list(X):
        trajs = [np.asarray(t, dtype=np.float64) for t in X]
    else:
        X = np.asarray(X, dtype=np.float64)
        trajs = list(X) if stacks and X.ndim == 3 else [X]
    out = []
    for i, t in enumerate(trajs):
        t = t[:, None] if t.ndim == 1 else t
        if t.ndim != 2 or len(t) == 0:
            raise ValueError(
                f"{name}: trajectory {i} must be a non-empty 2-D array; got shape {t.shape}."
            )
        if not np.isfinite(t).all():
            frame = int(np.argwhere(~np.isfinite(t))[0, 0])
            raise ValueError(f"{name} contains NaN or inf at trajectory {i}, frame {frame}.")
        out.append(t)
    return out


def as_output_form(arrays, is_list):
    """Return a list for list input and a single array for array input."""
    return list(arrays) if is_list else arrays[0]


def check_int(name, value, low=1):
    """Return ``value`` as an int of at least ``low``, or raise a ValueError naming it.

    The one integer check of the package; its wording follows scikit-learn's parameter
    validation.
    """
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        raise ValueError(
            f"The '{name}' parameter must be an int in the range [{low}, inf). Got {value!r}."
        )
    return int(value)


def check_lag_time(lag_time):
    return check_int("lag_time", lag_time)


def lagged_pairs(trajs, lag_time, *, warn=True):
    """Stack the time-lagged pairs ``(x_t, x_{t+lag_time})`` of every trajectory.

    Pairs never cross the boundary between two trajectories. A trajectory with no more than
    ``lag_time`` frames gives no pairs and is skipped with a warning that names it.

    Returns
    -------
    X0, Xt : ndarray of shape (n_pairs, n_features)
    """
    return stack_pairs(paired_trajectories(trajs, lag_time, warn=warn), lag_time)


def paired_trajectories(trajs, lag_time, *, warn=True):
    """The trajectories long enough to give a lagged pair, checked as ``lagged_pairs`` does.

    Raises when there is none, naming ``lag_time`` and the longest length; warns about the
    skipped ones. Nothing is copied.
    """
    lag_time = check_lag_time(lag_time)
    used = [t for t in trajs if len(t) > lag_time]
    if not used:
        longest = max(len(t) for t in trajs)
        if longest == 1:
            msg = "Found n_samples=1 frame"
        else:
            msg = f"The longest trajectory has {longest} frames"
        raise ValueError(
            f"{msg}; no trajectory is longer than lag_time={lag_time}, so there are no "
            f"time-lagged pairs. Use a smaller lag_time or longer trajectories."
        )
    skipped = [i for i, t in enumerate(trajs) if len(t) <= lag_time]
    if skipped and warn:
        warnings.warn(
            f"Trajectories {skipped} have at most lag_time={lag_time} frames and were skipped.",
            UserWarning,
            stacklevel=4,
        )
    return used


def stack_pairs(trajs, lag_time):
    """``lagged_pairs`` without its checks, for trajectories already known to be long enough.

    Every trajectory must have more than ``lag_time`` frames.
    """
    X0 = np.concatenate([t[:-lag_time] for t in trajs])
    Xt = np.concatenate([t[lag_time:] for t in trajs])
    return X0, Xt


def split_train_valid(trajs, fraction, lag_time):
    """Hold out contiguous blocks for validation, never frames shuffled out of a trajectory.

    When ``fraction`` of the number of trajectories rounds to at least one, that many whole
    trajectories are held out (the last ones, so the split is deterministic). Otherwise the
    last ``fraction`` of each trajectory is held out, and ``lag_time`` frames between the two
    parts are dropped so that no training pair reaches into the validation block.

    Returns ``(train_trajs, valid_trajs)``; ``valid_trajs`` is empty when ``fraction`` is 0 or the
    data are too short to hold anything out.
    """
    train, valid = split_segments([len(t) for t in trajs], fraction, lag_time)
    return [trajs[i][a:b] for i, a, b in train], [trajs[i][a:b] for i, a, b in valid]


def split_segments(lengths, fraction, lag_time):
    """:func:`split_train_valid` on the trajectory ``lengths`` alone.

    Returns
    -------
    train, valid : list of tuple
        Blocks ``(trajectory, start, stop)`` of frames ``start..stop-1``, in order.
    """
    whole = [(i, 0, n) for i, n in enumerate(lengths)]
    if fraction <= 0:
        return whole, []
    n_valid = int(round(fraction * len(lengths)))
    if 1 <= n_valid < len(lengths):
        return whole[:-n_valid], whole[-n_valid:]
    train, valid = [], []
    for i, n in enumerate(lengths):
        n_valid = int(round(fraction * n))
        n_train = n - n_valid - lag_time
        if n_valid <= lag_time or n_train <= lag_time:
            train.append((i, 0, n))
            continue
        train.append((i, 0, n_train))
        valid.append((i, n_train + lag_time, n))
    return train, valid


def segment_rows(segments, offsets, lag_time=0):
    """Global rows of the frames in ``segments`` that have a frame ``lag_time`` later in them.

    ``offsets`` are the global rows where the trajectories start
    (:func:`sklss._frames.frame_offsets`). With ``lag_time=0`` these are all their frames;
    otherwise the rows where their lagged pairs start, in the order ``stack_pairs`` stacks
    them. Blocks of at most ``lag_time`` frames give none.
    """
    rows = [
        np.arange(offsets[i] + a, offsets[i] + b - lag_time, dtype=np.int64)
        for i, a, b in segments
        if b - a > lag_time
    ]
    return np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)


def check_paired_targets(estimator, y, trajs, is_list, *, name="Y", dtype=FLOAT_DTYPES):
    """Validate targets ``y`` that pair frame by frame with validated trajectories ``trajs``.

    ``y`` takes the same form as the ``X`` that gave ``trajs``: one array, or a list with one
    array per trajectory. Each array is ``(n_frames,)`` or ``(n_frames, n_outputs)`` and must
    have as many frames as its trajectory. ``estimator`` only names itself in error messages;
    its fitted attributes are left alone.

    Returns
    -------
    targets : list of ndarray
        One 2-D, finite array per trajectory.
    is_1d : bool
        Whether the targets were 1-D (a single output), so predictions can be returned 1-D.
    """
    from sklearn.utils import check_array

    owner = type(estimator).__name__
    if y is None:
        raise ValueError(
            f"{owner} requires y to be passed, but the target y is None ({name} holds the "
            "targets, frame-aligned with X)."
        )
    y_is_list = is_trajectory_list(y) or (
        is_list and isinstance(y, (list, tuple)) and all(hasattr(t, "shape") for t in y)
    )
    if is_list != y_is_list:
        form = f"a list of {len(trajs)} trajectories" if is_list else "a single array"
        raise ValueError(f"X is {form}, so {name} must be {form} too, with the same frames.")
    items = list(y) if is_list else [y]
    if len(items) != len(trajs):
        raise ValueError(
            f"X has {len(trajs)} trajectories but {name} has {len(items)}; they must pair up."
        )
    targets, ndims = [], set()
    for i, (target, x) in enumerate(zip(items, trajs)):
        index = i if is_list else None
        _reject_bad_kinds(target, index, name)
        target = check_array(
            target,
            dtype=dtype,
            ensure_2d=False,
            ensure_all_finite=False,
            ensure_min_samples=1,
            input_name=name,
            estimator=estimator,
        )
        if target.ndim not in (1, 2):
            raise ValueError(f"{name} must be 1-D or 2-D; got shape {target.shape}.")
        ndims.add(target.ndim)
        target = target.reshape(len(target), -1)
        if len(target) != len(x):
            where = f" in trajectory {i}" if is_list else ""
            raise ValueError(
                f"Found input variables with inconsistent numbers of samples{where}: "
                f"X has {len(x)} frames but {name} has {len(target)}."
            )
        _check_finite(target, index, name)
        if targets and target.shape[1] != targets[0].shape[1]:
            raise ValueError(
                f"All trajectories in {name} must have the same number of outputs: trajectory "
                f"0 has shape {targets[0].shape} but trajectory {i} has shape {target.shape}."
            )
        targets.append(target)
    if len(ndims) > 1:
        raise ValueError(f"The trajectories in {name} mix 1-D and 2-D arrays.")
    return targets, ndims == {1}


def feature_mean_and_scale(trajs):
    """Per-feature mean and standard deviation of trajectory data, for standardisation.

    Computed in float64 over all frames of all trajectories, in two passes of chunks (see
    :func:`sklss._frames.row_chunks`), so memory-mapped data are never copied whole. A
    feature whose standard deviation is negligible next to its magnitude counts as constant
    and gets a scale of 1, so that standardising never divides by zero.

    Returns
    -------
    mean, scale : ndarray of shape (n_features,)
        float64.
    constant : ndarray of int
        Indices of the constant features.
    """
    n = sum(len(t) for t in trajs)
    mean = sum(c.sum(axis=0, dtype=np.float64) for c in _chunks(trajs)) / n
    var = sum(((c - mean) ** 2).sum(axis=0, dtype=np.float64) for c in _chunks(trajs)) / n
    scale = np.sqrt(var)
    constant = np.flatnonzero(scale <= 1e-12 * np.maximum(1.0, np.abs(mean)))
    scale[constant] = 1.0
    return mean, scale, constant


def _chunks(trajs):
    """Every chunk of every trajectory, in order."""
    return (chunk for t in trajs for _, chunk in row_chunks(t))


def train_valid_pairs(trajs, fraction, lag_time, *, min_valid_pairs=1, monitored="loss"):
    """Lagged pairs for training and for early stopping, from held-out blocks, as row indices.

    The trajectories are split by :func:`split_train_valid` (on their lengths; no frame is
    read). If no training trajectory is long enough after the split, everything trains.
    Validation needs at least ``min_valid_pairs`` pairs; otherwise there is none, and (when
    ``fraction`` asked for some) a warning says that early stopping monitors the training
    ``monitored``.

    Returns
    -------
    train : ndarray of int64
        The global rows (see :func:`sklss._frames.frame_offsets`) where the training pairs
        start, in the order :func:`stack_pairs` stacks them.
    valid : ndarray of int64 or None
        The same for the held-out pairs, or ``None`` without validation data.
    """
    lengths = [len(t) for t in trajs]
    train, valid = split_segments(lengths, fraction, lag_time)
    if not any(b - a > lag_time for _, a, b in train):
        train, valid = split_segments(lengths, 0, lag_time)
    offsets = frame_offsets(trajs)
    train_rows = segment_rows(train, offsets, lag_time)
    valid_rows = segment_rows(valid, offsets, lag_time)
    if len(valid_rows) and len(valid_rows) >= min_valid_pairs:
        return train_rows, valid_rows
    if fraction > 0:
        warnings.warn(
            "Too little data to hold out a validation block; early stopping monitors the "
            f"training {monitored} instead.",
            UserWarning,
            stacklevel=3,
        )
    return train_rows, None
