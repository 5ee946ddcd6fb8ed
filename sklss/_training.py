"""The training skeleton that every estimator's ``fit`` runs on.

A ``fit`` of sklss reads as the estimator's own decisions and nothing else:

1. :func:`start_fit` validates the data, the hidden layers and the device, and derives the
   seeds (one ``random_state`` gives the same fit in any process);
2. :func:`fit_input_scaling` standardises the features, warning about constant ones;
3. :func:`training_pairs` builds the time-lagged pairs once: the counts are checked from
   the trajectory lengths, the trajectories are split into training and held-out blocks,
   and paired (in both directions for a reversible model) as row indices. Small data in
   memory are then scaled into arrays; memory maps and large data stay where they are, and
   each batch is gathered and scaled when it is drawn (:mod:`sklss._frames`);
4. :func:`build_net` assembles the skorch net with what every sklss net shares: Adam, whole
   batches sliced from tensors (on the training device) or gathered by index
   (``TensorBatchLoader``), the held-out
   blocks as the validation set, and :func:`standard_callbacks` (the finite-loss guard, an optional
   learning-rate plateau, early stopping with the best weights restored, a progress bar, and
   the checkpoint last);
5. :func:`train` fits it reproducibly (seeded, one thread, TF32 off) and refuses weights
   that are not finite.

The estimator supplies its module, its criterion and what it records afterwards.
"""

import os
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils import Bunch
from skorch.callbacks import LRScheduler, ProgressBar
from skorch.dataset import Dataset
from skorch.helper import predefined_split

from ._checkpoint import checkpoint_callbacks
from ._compat import Interval, StrOptions
from ._frames import (
    Frames,
    LaggedPairs,
    Rows,
    frame_offsets,
    gathers_batches,
    row_chunks,
    training_inputs,
)
from ._nn import (
    ACTIVATIONS,
    FiniteLossGuard,
    NonFiniteLossError,
    TensorBatchLoader,
    best_epoch_stopping,
    check_hidden_layer_sizes,
    fit_net,
    resolve_device,
)
from ._random import derive_seeds
from ._validation import (
    check_trajectories,
    feature_mean_and_scale,
    paired_trajectories,
    train_valid_pairs,
)

# Learning-rate factor applied when the monitored loss stalls (with ``lr_plateau``).
LR_DECAY = 0.3

# The parameters every trained estimator shares, as scikit-learn validates them; an
# estimator's ``_parameter_constraints`` adds its own (and may narrow one of these).
TRAINING_PARAMETERS = {
    "hidden_layer_sizes": ["array-like"],
    "activation": [StrOptions(set(ACTIVATIONS))],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "max_epochs": [Interval(Integral, 1, None, closed="left")],
    "validation_fraction": [Interval(Real, 0, 1, closed="left")],
    "device": [StrOptions({"cpu", "cuda", "auto"})],
    "checkpoint": [str, os.PathLike, None],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
}
# The same for estimators trained on lagged pairs with early stopping.
LAGGED_TRAINING_PARAMETERS = {
    **TRAINING_PARAMETERS,
    "lag_time": [Interval(Integral, 1, None, closed="left")],
    "learning_rate": [Interval(Real, 0, None, closed="neither")],
    "patience": [Interval(Integral, 1, None, closed="left")],
}


def start_fit(estimator, X, *, n_seeds=1):
    """Validate what every ``fit`` starts from.

    Returns
    -------
    setup : sklearn.utils.Bunch
        ``trajs`` (the validated trajectories; ``n_features_in_`` is set), ``is_list``,
        ``hidden`` (the hidden layer sizes as a tuple), ``device`` and ``seeds`` (``n_seeds``
        ints derived from ``random_state``).
    """
    trajs, is_list = check_trajectories(estimator, X, reset=True)
    return Bunch(
        trajs=trajs,
        is_list=is_list,
        hidden=check_hidden_layer_sizes(estimator.hidden_layer_sizes),
        device=resolve_device(estimator.device),
        seeds=derive_seeds(estimator.random_state, n_seeds),
    )


def fit_input_scaling(trajs, *, all_constant, constant):
    """Per-feature mean and scale of ``trajs``; constant features keep a scale of 1.

    ``all_constant`` ends the error raised when no feature varies and ``constant`` the
    warning that names the constant ones.
    """
    mean, scale, fixed = feature_mean_and_scale(trajs)
    if len(fixed) == len(scale):
        raise ValueError(f"Every feature of X is constant: {all_constant}")
    if len(fixed):
        warnings.warn(
            f"Features {fixed.tolist()} are constant; {constant}", UserWarning, stacklevel=3
        )
    return mean, scale


def count_pairs(trajs, lag_time):
    """Number of time-lagged pairs in ``trajs``, from their lengths alone.

    Raises when no trajectory is longer than ``lag_time`` and warns about the ones skipped,
    as :func:`sklss._validation.lagged_pairs` does; nothing is copied.
    """
    return sum(len(t) - lag_time for t in paired_trajectories(trajs, lag_time))


def training_pairs(
    trajs,
    lag_time,
    validation_fraction,
    *,
    transform,
    monitored,
    min_valid_pairs=1,
    reversible=False,
    start_weights=None,
):
    """The lagged pairs of one fit, built once: training pairs and held-out pairs.

    Held-out blocks come from :func:`sklss._validation.train_valid_pairs`; ``transform`` (the
    input scaling, float32 out) is applied to the frames. With ``reversible`` each set is
    followed by its time reverse. ``start_weights`` (one ``(n_frames, 1)`` array per
    trajectory, see :func:`start_density_weights`) adds the column ``"w"`` to the training
    pairs: the weight of each pair's first frame. The held-out pairs stay unweighted.

    Small data in memory give arrays, as ``(x0, xt)`` stacked;
    memory maps and data beyond ``sklss._frames.IN_MEMORY_BYTES`` give
    :class:`sklss._frames.Rows`, which ``TensorBatchLoader`` gathers batch by batch into the
    same batches.

    Returns
    -------
    train : dict
        ``{"x0": X0, "xt": Xt}``, arrays or ``Rows``.
    valid : dict or None
        The same for the held-out pairs, or ``None`` without validation data.
    """
    train, valid = train_valid_pairs(
        trajs,
        validation_fraction,
        lag_time,
        min_valid_pairs=min_valid_pairs,
        monitored=monitored,
    )
    frames = Frames(trajs, transform)

    def pairs(starts, weights=None):
        if starts is None:
            return None
        index = LaggedPairs(starts, lag_time, both_directions=reversible)
        columns = {"x0": Rows(frames, index, 0), "xt": Rows(frames, index, 1)}
        if weights is not None:
            columns["w"] = Rows(Frames(weights, _unchanged), index, 0)
        return columns

    gathered = gathers_batches(trajs)
    return (
        training_inputs(pairs(train, start_weights), gathered),
        training_inputs(pairs(valid), gathered),
    )


def _unchanged(frames):
    return frames


# Start-density weighting (``MDNPropagator(density_weighting=...)``): the density at a frame
# is estimated from the distance to its DENSITY_NEIGHBOURS-th nearest neighbour among at most
# DENSITY_REFERENCE_FRAMES frames drawn from the training data, and no weight exceeds
# DENSITY_WEIGHT_CAP times the median one.
DENSITY_NEIGHBOURS = 20
DENSITY_REFERENCE_FRAMES = 20_000
DENSITY_WEIGHT_CAP = 100.0


def start_density_weights(trajs, transform, exponent, seed):
    """Per-frame weights ``density ** -exponent``, capped, with mean 1 over all frames.

    The density of the transformed frames is a k-nearest-neighbour estimate,
    ``density ~ 1 / r_k ** m`` in ``m`` dimensions, so the weight is ``r_k ** (m * exponent)``
    relative to the median frame's, at most ``DENSITY_WEIGHT_CAP``. The reference frames are
    drawn with ``seed``; the frames are transformed chunk by chunk (memory maps are never
    loaded whole). Returns one float32 array of shape ``(n_frames, 1)`` per trajectory.
    """
    from sklearn.neighbors import NearestNeighbors

    n_frames = int(frame_offsets(trajs)[-1])
    rng = np.random.default_rng(seed)
    n_ref = min(DENSITY_REFERENCE_FRAMES, n_frames)
    reference = Frames(trajs, transform).take(np.sort(rng.choice(n_frames, n_ref, replace=False)))
    k = min(DENSITY_NEIGHBOURS, n_ref)
    neighbours = NearestNeighbors(n_neighbors=k).fit(reference)
    dims = reference.shape[1]
    log_radius = []
    for traj in trajs:
        out = np.empty(len(traj))
        for start, chunk in row_chunks(traj):
            r = neighbours.kneighbors(transform(chunk))[0][:, -1]
            out[start : start + len(chunk)] = np.log(np.maximum(r, 1e-12))
        log_radius.append(out)
    # log-space: r ** (m * exponent) overflows nothing even for many latent dimensions.
    median = np.median(np.concatenate(log_radius))
    log_w = [dims * exponent * (lr - median) for lr in log_radius]
    weights = [np.exp(np.minimum(lw, np.log(DENSITY_WEIGHT_CAP))) for lw in log_w]
    mean = np.mean(np.concatenate(weights))
    return [(w / mean).astype(np.float32)[:, None] for w in weights]


def standard_callbacks(
    estimator, component, *data, monitor=None, lr_plateau=False, extra=(), progress_from=2
):
    """The callbacks of an sklss net, in order.

    The finite-loss guard; ``extra`` (named callbacks of the estimator's own); with
    ``lr_plateau``, a learning-rate cut by ``LR_DECAY`` when ``monitor`` stalls for a third of
    the patience; with a ``monitor``, early stopping that restores the best epoch; a progress
    bar at ``verbose >= progress_from``; and the checkpoint of ``data`` last, so that it holds
    what the other callbacks did in the epoch.
    """
    callbacks = [("guard", FiniteLossGuard(component)), *extra]
    if lr_plateau:
        # Small steps late in training matter: the rare barrier-crossing tails of the density,
        # which set the stationary populations, are only resolved once the noise of large
        # steps is gone.
        plateau = LRScheduler(
            policy="ReduceLROnPlateau",
            monitor=monitor,
            factor=LR_DECAY,
            patience=max(1, estimator.patience // 3),
            threshold=1e-4,
            threshold_mode="abs",
        )
        callbacks.append(("lr_plateau", plateau))
    if monitor is not None:
        callbacks.append(("early_stopping", best_epoch_stopping(monitor, estimator.patience)))
    if estimator.verbose and estimator.verbose >= progress_from:
        callbacks.append(("progress", ProgressBar()))
    return callbacks + checkpoint_callbacks(estimator, *data)


def monitor_for(valid):
    """The loss early stopping watches: held-out when there is a held-out set."""
    return "train_loss" if valid is None else "valid_loss"


def build_net(
    net_class,
    estimator,
    *,
    callbacks,
    n_train,
    valid,
    device,
    lr,
    valid_batch_size,
    batch_size=None,
    **params,
):
    """An sklss skorch net with the settings every estimator shares.

    Adam at ``lr``; training batches of ``batch_size`` (default the estimator's) rows, at most
    ``n_train``, sliced from tensors; the dict of arrays ``valid`` as the validation set (none
    when ``None``), evaluated in batches of ``valid_batch_size``. ``params`` are the net's own
    (module, criterion and their arguments).
    """
    batch_size = estimator.batch_size if batch_size is None else batch_size
    split = None if valid is None else predefined_split(Dataset(valid, None))
    return net_class(
        optimizer=torch.optim.Adam,
        lr=lr,
        max_epochs=estimator.max_epochs,
        batch_size=min(batch_size, n_train),
        iterator_train=TensorBatchLoader,
        iterator_train__shuffle=True,
        iterator_train__device=device,
        iterator_valid=TensorBatchLoader,
        iterator_valid__batch_size=valid_batch_size,
        iterator_valid__device=device,
        train_split=split,
        callbacks=callbacks,
        device=device,
        verbose=int(estimator.verbose),
        **params,
    )


def train(net, data, seed, device, *, component=None):
    """Fit ``net`` on the dict of arrays ``data`` reproducibly and return it.

    See :func:`sklss._nn.fit_net`. With ``component``, weights that are not finite after
    training (which a finite loss does not rule out) raise a ``NonFiniteLossError`` naming it.
    """
    fit_net(net, Dataset(data, None), seed, device)
    if component is not None and not all(torch.isfinite(p).all() for p in net.module_.parameters()):
        raise NonFiniteLossError(
            f"{component}: the network's weights are not finite after {len(net.history)} "
            "epochs. Lower the learning rate."
        )
    return net
