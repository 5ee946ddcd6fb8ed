"""Pieces shared by the propagators: scaling, the box walls, numpy forward passes, sampling.

Every propagator learns ``p(x_{t+tau} | x_t)`` on standardised latent coordinates and runs
trajectories step after step inside the box of its training data. What they share lives here:

- ``LatentPropagatorMixin``: the input scaling, chunked inference through ``net_`` and the
  ``sample`` driver (argument checks, start frames outside the box, blocks of random numbers,
  writing into ``out``, the wall-hit rate and its warning);
- ``BoxWalls``: reject-and-stay at the walls of the box, shared by the numpy samplers;
- ``numpy_activation`` and ``numpy_layers``: a trained MLP as float32 numpy matrices;
- ``fit_best_of_inits``: ``n_init`` fits from different seeds, the one whose generated
  trajectories best keep the training data's free energy kept;
"""

import math
import warnings
from numbers import Integral
from pathlib import Path

import numpy as np
import torch
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits
from torch import nn

from ._nn import SklssNet
from ._random import check_rng, derive_seeds
from ._training import fit_input_scaling
from ._validation import check_int, check_trajectories

# Frames per forward pass in predict and score_samples.
INFERENCE_CHUNK = 65536
# Random numbers drawn at once while sampling: steps are generated in chunks of about this
# many numbers, so memory stays flat however long the run. Fixed, so that the samples for a
# given random_state do not depend on where they are written.
NOISE_CHUNK = 2**20
# Below this many trajectories, sampling multiplies small matrices, where extra BLAS threads
# cost more than they give.
SINGLE_THREAD_ROWS = 2048
# sample warns when more than this fraction of its draws is rejected at the walls of the
# training box.
WALL_HIT_WARNING_RATE = 0.01
# rollout_error generates this many times as many frames as the data it is checked against,
# so that the generated histograms are less noisy than the reference.
ROLLOUT_FRAMES_PER_FRAME = 10


def check_n_steps(n_steps):
    if isinstance(n_steps, bool) or not isinstance(n_steps, Integral) or n_steps < 1:
        raise ValueError(
            f"The 'n_steps' parameter of sample must be an int in the range [1, inf). "
            f"Got {n_steps!r}."
        )
    return int(n_steps)


class LossOutputNet(SklssNet):
    """A skorch net whose module returns what the criterion turns into the loss."""

    def get_loss(self, y_pred, y_true=None, X=None, training=False):
        return self.criterion_(y_pred)


def numpy_activation(name, module):
    """An in-place float32 activation, and whether it maps 1 to 1.

    The common ones run in numpy; the rarer ones call the torch module itself.
    """
    zero = np.zeros((), dtype=np.float32)
    if name == "relu":
        return (lambda h: np.maximum(h, zero, out=h)), True
    if name == "leaky_relu":
        slope = np.float32(module.negative_slope)
        return (lambda h: np.maximum(h, slope * h, out=h)), slope <= 1
    if name == "tanh":
        return (lambda h: np.tanh(h, out=h)), False

    def via_torch(h):
        with torch.inference_mode():
            h[...] = module(torch.from_numpy(h)).numpy()
        return h

    return via_torch, False


def numpy_layers(mlp, activation):
    """The layers of a ``make_mlp`` network as float32 numpy arrays.

    Returns the hidden layers as ``(Wb, activation, keeps_one)``, where ``Wb`` is the weight
    matrix with the bias appended as a last column (so that a constant input column of ones
    adds it), and the output layer's ``Wb``.
    """
    linears = [layer for layer in mlp if isinstance(layer, nn.Linear)]
    acts = [layer for layer in mlp if not isinstance(layer, nn.Linear)]
    with_bias = [
        np.hstack(
            [layer.weight.detach().cpu().numpy(), layer.bias.detach().cpu().numpy()[:, None]]
        ).astype(np.float32)
        for layer in linears
    ]
    hidden = [
        (np.ascontiguousarray(Wb), *numpy_activation(activation, act))
        for Wb, act in zip(with_bias[:-1], acts)
    ]
    return hidden, with_bias[-1]


def layer_buffers(hidden, n_rows, n_inputs):
    """Preallocated float32 buffers for a batched forward pass through ``hidden`` layers.

    Each buffer ends in a column of ones, the bias input of the next layer's ``Wb``. Returns
    ``inputs`` (the input buffer, ``(n_rows, n_inputs + 1)``, then each layer's output) and
    ``layers``: per hidden layer ``(Wb.T, input buffer, output view, activation, target)``,
    where the activation runs in place on ``target`` (the whole buffer when the activation
    keeps the ones column, which is contiguous and faster).
    """
    inputs = [np.ones((n_rows, n_inputs + 1), dtype=np.float32)]
    layers = []
    for Wb, act, keeps_one in hidden:
        out = np.ones((n_rows, Wb.shape[0] + 1), dtype=np.float32)
        target = out if keeps_one else out[:, :-1]
        layers.append((np.ascontiguousarray(Wb.T), inputs[-1], out[:, :-1], act, target))
        inputs.append(out)
    return inputs, layers


class BoxWalls:
    """Reject-and-stay at the walls of the box ``[lo, hi]`` (scaled units), per feature.

    A trajectory whose new draw leaves the box in any feature, or is not finite, keeps its
    current state for that step. Only when a trajectory starts outside the box is a rejected
    draw clipped into it instead, so that no trajectory stays outside. Features with a
    zero-width box (constant in the training data) are ``pinned``: the samplers hold them at
    their value, so they never cause a rejection. ``n_wall_hits`` counts the rejected draws.
    """

    def __init__(self, lo, hi):
        self.lo = np.asarray(lo, dtype=np.float32)
        self.hi = np.asarray(hi, dtype=np.float32)
        self.pinned = np.flatnonzero(self.lo == self.hi)
        free = self.lo != self.hi
        if not free.any():
            free[:] = True
        # Bounds that every free feature's box contains: a step whose draws all lie inside
        # them is inside the box, which needs no per-feature test.
        self.inner_lo = float(self.lo[free].max())
        self.inner_hi = float(self.hi[free].min())
        self.n_wall_hits = 0

    def start_inside(self, state):
        """``None`` when every row of ``state`` lies inside the box, else which rows do."""
        inside = ((state >= self.lo) & (state <= self.hi)).all(axis=1)
        return None if inside.all() else inside

    def _into_box(self, draw):
        """Clip rejected draws of trajectories that start outside the box into it.

        A draw that is not a number goes to 0, the mean of the training data, which lies
        inside the box.
        """
        return np.clip(np.nan_to_num(draw, nan=0.0), self.lo, self.hi)

    def _reject(self, x, previous, start_inside):
        """Reject-and-stay for the rows of ``x`` (updated in place) that left the box.

        ``start_inside`` is ``None`` when every row of ``previous`` lies inside the box, and
        else says which ones do; a rejected row that started outside is clipped into the box.
        Returns the number of rejected rows.
        """
        # Written so that a NaN counts as outside.
        out = ~((x >= self.lo) & (x <= self.hi)).all(axis=1)
        n_out = int(np.count_nonzero(out))
        if not n_out:
            return 0
        if start_inside is None:
            np.copyto(x, previous, where=out[:, None])
        else:
            np.copyto(x, previous, where=(out & start_inside)[:, None])
            clip = out & ~start_inside
            x[clip] = self._into_box(x[clip])
        return n_out

    def enforce(self, x, previous, start_inside):
        """Apply the walls to the new draws ``x`` (in place); return the rejected count.

        A cheap test, exact when every free feature has the same box; otherwise only steps
        with a draw near some wall take the exact per-row test. Written so that a NaN fails
        it.
        """
        if x.min() >= self.inner_lo and x.max() <= self.inner_hi:
            return 0
        return self._reject(x, previous, start_inside)


class LatentPropagatorMixin:
    """Scaling, inference and the sampling driver of a propagator with a skorch ``net_``.

    The class using it defines ``_sampler(lo, hi)``, which returns an object with
    ``draw(rng, n_steps, n_starts)`` (the random numbers for ``n_steps`` steps, a tuple),
    ``run(state, *noise)`` (advance ``state`` in place, return the visited states
    ``(n_steps, n_starts, m)``), ``numbers_per_step(n_starts)`` and ``n_wall_hits``;
    ``_check_first_step(state)``; and reads its block size from ``_noise_chunk()``.
    """

    def _fit_scaling(self, trajs):
        mean, scale = fit_input_scaling(
            trajs,
            all_constant="there are no dynamics to learn a transition density from.",
            constant="samples keep them at that value.",
        )
        self.mean_ = mean
        self.scale_ = scale
        self.data_min_ = np.min([t.min(axis=0) for t in trajs], axis=0).astype(np.float64)
        self.data_max_ = np.max([t.max(axis=0) for t in trajs], axis=0).astype(np.float64)

    def _scale(self, traj, index=None, name="X"):
        """Standardised float32 frames; an error if they overflow float32."""
        with np.errstate(over="ignore"):
            scaled = ((traj - self.mean_) / self.scale_).astype(np.float32)
        if not np.isfinite(scaled).all():
            frame = int(np.argwhere(~np.isfinite(scaled))[0, 0])
            where = f"trajectory {index}, " if index is not None else ""
            raise ValueError(
                f"{name} at {where}frame {frame} lies too far outside the training data "
                f"(beyond the float32 range after scaling)."
            )
        return scaled

    def _scaled_box(self):
        lo = ((self.data_min_ - self.mean_) / self.scale_).astype(np.float32)
        hi = ((self.data_max_ - self.mean_) / self.scale_).astype(np.float32)
        return lo, hi

    def _forward_chunks(self, scaled, fn):
        """Apply ``fn(module, x0_tensor, rows)`` to chunks of frames; stack float64 outputs."""
        module = self.net_.module_
        module.eval()
        device = self.net_.device
        outs = []
        with torch.inference_mode():
            for start in range(0, len(scaled), INFERENCE_CHUNK):
                rows = slice(start, start + INFERENCE_CHUNK)
                x0 = torch.from_numpy(np.ascontiguousarray(scaled[rows])).to(device)
                outs.append(fn(module, x0, rows).double().cpu().numpy())
        return np.concatenate(outs) if outs else np.empty(0)

    def _checked(self, values, index, name, what):
        if not np.isfinite(values).all():
            frame = int(np.argwhere(~np.isfinite(values.reshape(len(values), -1)))[0, 0])
            where = f"trajectory {index}, " if index is not None else ""
            raise ValueError(
                f"The network gave a non-finite {what} for {name} at {where}frame {frame}: the "
                "input lies too far outside the training data."
            )
        return values

    def _sample(self, X0, n_steps, random_state, out, return_wall_hits):
        """The body of ``sample``; warnings point at the caller of ``sample``."""
        n_steps = check_n_steps(n_steps)
        starts, is_list = check_trajectories(self, X0, reset=False, name="X0")
        if is_list:
            raise ValueError(
                "X0 must be one 2-D array of start frames, shape (n_starts, n_features), not a "
                "list of trajectories."
            )
        X0 = starts[0]
        n_starts, m = X0.shape
        shape = (n_starts, n_steps, m)
        if out is None:
            out = np.empty(shape, dtype=X0.dtype)
        elif getattr(out, "shape", None) != shape or np.dtype(out.dtype).kind != "f":
            raise ValueError(
                f"out must be a float array of shape {shape}; got "
                f"{getattr(out, 'dtype', type(out))} of shape {getattr(out, 'shape', None)}."
            )
        state = self._scale(X0, name="X0")
        self._check_first_step(state)
        outside = np.flatnonzero(((X0 < self.data_min_) | (X0 > self.data_max_)).any(axis=1))
        if len(outside):
            warnings.warn(
                f"Start frames {outside[:10].tolist()} lie outside the range of the training "
                "data, where the network extrapolates; a first step that does not reach the "
                "range is clipped into it, and every later frame stays inside it.",
                UserWarning,
                stacklevel=3,
            )
        sampler = self._sampler(*self._scaled_box())
        (seed,) = derive_seeds(random_state, 1)
        rng = np.random.default_rng(seed)
        block = max(1, self._noise_chunk() // sampler.numbers_per_step(n_starts))

        out[:, 0] = X0
        threads = 1 if n_starts < SINGLE_THREAD_ROWS else None
        progress = None
        if self.verbose:
            from tqdm.auto import tqdm

            progress = tqdm(total=shape[1] - 1, desc="sampling", unit="step")
        with threadpool_limits(limits=threads, user_api="blas"):
            for start in range(1, shape[1], block):
                n = min(block, shape[1] - start)
                visited = sampler.run(state, *sampler.draw(rng, n, n_starts))
                frames = visited.transpose(1, 0, 2) * self.scale_ + self.mean_
                # Exact in data units too, despite float32 rounding near the walls.
                np.clip(frames, self.data_min_, self.data_max_, out=frames)
                out[:, start : start + n] = frames
                if progress is not None:
                    progress.update(n)
        if progress is not None:
            progress.close()
        if hasattr(out, "flush"):
            out.flush()
        n_draws = n_starts * (shape[1] - 1)
        n_wall_hits = sampler.n_wall_hits
        self.wall_hit_rate_ = n_wall_hits / n_draws if n_draws else 0.0
        if self.wall_hit_rate_ > WALL_HIT_WARNING_RATE:
            warnings.warn(
                f"{self.wall_hit_rate_:.2%} of the draws left the range of the training data "
                f"and were rejected (more than {WALL_HIT_WARNING_RATE:.0%}): the trajectories "
                "keep running into the edge of the training data. A start frame outside the "
                "training data, or too little training data near its edges, can cause this; "
                "near the edges, the walls then shape the dynamics more than the learned "
                "kernel does.",
                UserWarning,
                stacklevel=3,
            )
        if return_wall_hits:
            return out, n_wall_hits, n_draws
        return out

    def _rollout_error(self, X, n_starts, n_steps, bins, random_state):
        """The body of ``rollout_error`` (documented on each propagator)."""
        from .metrics import free_energy_profile, free_energy_rmse

        check_is_fitted(self)
        n_starts, bins = check_int("n_starts", n_starts), check_int("bins", bins)
        trajs, _ = check_trajectories(self, X, reset=False)
        frames = np.concatenate(trajs)
        if n_steps is None:
            n_steps = max(2, math.ceil(ROLLOUT_FRAMES_PER_FRAME * len(frames) / n_starts))
        rng = check_rng(random_state)
        starts = frames[rng.choice(len(frames), n_starts, replace=n_starts > len(frames))]
        generated = self.sample(starts, n_steps, random_state=rng).reshape(-1, frames.shape[1])
        errors = []
        for d in range(frames.shape[1]):
            span = (
                min(frames[:, d].min(), generated[:, d].min()),
                max(frames[:, d].max(), generated[:, d].max()),
            )
            reference, _ = free_energy_profile(frames[:, d], bins=bins, range=span)
            model, _ = free_energy_profile(generated[:, d], bins=bins, range=span)
            errors.append(free_energy_rmse(reference, model))
        return float(np.mean(errors))

    def __sklearn_is_fitted__(self):
        # Fitted only once training succeeded; a failed fit leaves the scaling behind.
        return hasattr(self, "net_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        tags.non_deterministic = False
        return tags


def _init_checkpoint(checkpoint, i):
    if checkpoint is None:
        return None
    path = Path(checkpoint)
    return path.with_name(f"{path.stem}.init{i}{path.suffix}")


def fit_best_of_inits(estimator, X):
    """Fit ``estimator.n_init`` copies of ``estimator`` and keep the best; return it.

    Each copy is fitted with ``n_init=1`` and its own seed: with an int ``random_state``
    the first copy gets that int, so it is the fit ``n_init=1`` gives, and the others
    seeds derived from it. Each is rated by ``rollout_error`` on ``X`` with one shared seed,
    and the fitted state of the lowest is copied into ``estimator``, with ``init_errors_``
    (every copy's error) and ``best_init_`` (the index kept). With a ``checkpoint``, copy
    ``i`` writes its own file, ``<stem>.init<i><suffix>``, so an interrupted fit resumes
    where it stopped.
    """
    n_init = estimator.n_init
    seeds = derive_seeds(estimator.random_state, n_init + 1)
    if isinstance(estimator.random_state, Integral):
        seeds[0] = int(estimator.random_state)
    rollout_seed = seeds[n_init]
    own = set(estimator.get_params(deep=False))
    best, best_error, errors = None, np.inf, []
    for i in range(n_init):
        candidate = clone(estimator).set_params(
            n_init=1,
            random_state=seeds[i],
            checkpoint=_init_checkpoint(estimator.checkpoint, i),
        )
        candidate.fit(X)
        error = candidate.rollout_error(X, random_state=rollout_seed)
        errors.append(error)
        if estimator.verbose:
            print(
                f"[{type(estimator).__name__}] init {i + 1}/{n_init}: {candidate.n_iter_} "
                f"epochs, rollout free-energy error {error:.3f} kT",
                flush=True,
            )
        if error < best_error:
            best, best_error = candidate, error
    for key, value in vars(best).items():
        if key not in own:
            setattr(estimator, key, value)
    estimator.init_errors_ = np.asarray(errors)
    estimator.best_init_ = int(np.argmin(errors))
    return estimator
