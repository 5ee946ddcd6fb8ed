"""The MDN propagator: transition densities in the latent space, sampled step after step."""

import math
import os
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import LRScheduler, ProgressBar
from skorch.dataset import Dataset
from skorch.helper import predefined_split
from threadpoolctl import threadpool_limits
from torch import nn

from ._checkpoint import checkpoint_callbacks
from ._compat import Interval, StrOptions, _fit_context
from ._nn import (
    ACTIVATIONS,
    FiniteLossGuard,
    NonFiniteLossError,
    SklssNet,
    TensorBatchLoader,
    best_epoch_stopping,
    check_hidden_layer_sizes,
    derive_seeds,
    fit_net,
    history_to_dict,
    make_mlp,
    resolve_device,
)
from ._validation import (
    as_output_form,
    check_lag_time,
    check_trajectories,
    feature_mean_and_scale,
    lagged_pairs,
    train_valid_pairs,
)

_LOG_2PI = math.log(2.0 * math.pi)
# Frames per forward pass in predict and score_samples.
_INFERENCE_CHUNK = 65536
# Random numbers drawn at once while sampling: steps are generated in chunks of about this
# many numbers, so memory stays flat however long the run. Fixed, so that the samples for a
# given random_state do not depend on where they are written.
_NOISE_CHUNK = 2**20
# Learning-rate factor applied when the monitored loss stalls (see fit).
_LR_DECAY = 0.3
# Below this many trajectories, sampling multiplies small matrices, where extra BLAS threads
# cost more than they give.
_SINGLE_THREAD_ROWS = 2048


class _MixtureDensityModule(nn.Module):
    """An MLP whose outputs parametrise a mixture of diagonal Gaussians over ``x_{t+tau}``.

    The output layer is laid out as ``C`` mixture logits followed, for each kernel in turn, by
    its ``m`` means and ``m`` raw widths, so that one kernel's parameters are contiguous.
    Widths are ``sigma = log(exp(raw) + exp(sigma_floor))``, a smooth function that never
    falls below ``sigma_floor``.
    """

    def __init__(self, n_features, hidden_layer_sizes, n_kernels, activation, sigma_floor):
        super().__init__()
        self.n_features = n_features
        self.n_kernels = n_kernels
        self.activation = activation
        self.sigma_floor = float(sigma_floor)
        n_out = n_kernels * (1 + 2 * n_features)
        self.mlp = make_mlp(n_features, hidden_layer_sizes, n_out, activation=activation)

    def mixture(self, x0):
        """Log weights ``(n, C)``, means ``(n, C, m)`` and widths ``(n, C, m)`` given ``x0``."""
        out = self.mlp(x0)
        C, m = self.n_kernels, self.n_features
        log_weights = torch.log_softmax(out[:, :C], dim=1)
        kernels = out[:, C:].reshape(-1, C, 2 * m)
        floor = torch.full_like(kernels[..., m:], self.sigma_floor)
        return log_weights, kernels[..., :m], torch.logaddexp(kernels[..., m:], floor)

    def forward(self, x0, xt):
        return _mixture_log_density(*self.mixture(x0), xt)


def _mixture_log_density(log_weights, means, sigmas, x):
    """``log p(x)`` under a mixture of diagonal Gaussians, per row, in float64.

    A log-sum-exp over kernels and float64 arithmetic keep it finite for many kernels, widths
    at the floor and targets far from every kernel.
    """
    log_weights, means, sigmas = log_weights.double(), means.double(), sigmas.double()
    z = (x.double().unsqueeze(1) - means) / sigmas
    m = means.shape[-1]
    log_kernels = -0.5 * (z * z).sum(-1) - torch.log(sigmas).sum(-1) - 0.5 * m * _LOG_2PI
    return torch.logsumexp(log_weights + log_kernels, dim=1)


class _NegativeLogLikelihood(nn.Module):
    def forward(self, log_density):
        return -log_density.mean()


class _MDNNet(SklssNet):
    def get_loss(self, y_pred, y_true=None, X=None, training=False):
        return self.criterion_(y_pred)


def _reflect(x, lo, hi):
    """Fold ``x`` into ``[lo, hi]`` feature by feature, in place, as reflecting walls would.

    A value ``d`` beyond a wall lands ``d`` inside it; an overshoot longer than the box folds
    again. A zero-width box (a constant feature) maps everything onto ``lo``. Values inside
    the box are left bit for bit as they were.
    """
    y = np.where(x < lo, 2 * lo - x, x)
    y = np.where(y > hi, 2 * hi - y, y)
    far = (y < lo) | (y > hi)
    if far.any():
        width = hi - lo
        safe = np.where(width > 0, width, 1).astype(x.dtype)
        folded = np.mod(x - lo, 2 * safe)
        folded = np.where(folded > safe, 2 * safe - folded, folded)
        folded = np.where(width > 0, np.clip(lo + folded, lo, hi), lo)
        y = np.where(far, folded, y)
    x[...] = y
    return x


def _check_pairs_exist(trajs, lag):
    """Warn about trajectories too short for a lagged pair; raise if none is long enough.

    ``lagged_pairs`` words both, on views of at most ``lag + 1`` frames, so nothing is copied.
    """
    lagged_pairs([t[: lag + 1] for t in trajs], lag)


def _gumbel_and_normal(rng, n_steps, n_starts, n_kernels, n_features):
    """Pre-drawn noise for ``n_steps`` steps: Gumbel keys pick the kernel, normals its value.

    ``argmax(log w_k + g_k)`` with standard Gumbel ``g_k`` draws kernel ``k`` with probability
    ``w_k`` (the Gumbel-max trick), so no softmax or cumulative sum is needed per step.
    """
    g = rng.random((n_steps, n_starts, n_kernels), dtype=np.float32)
    with np.errstate(divide="ignore"):
        # u = 0 gives a key of -inf: that kernel is not picked, which is the right limit.
        np.log(g, out=g)
        np.negative(g, out=g)
        np.log(g, out=g)
    np.negative(g, out=g)
    z = rng.standard_normal((n_steps, n_starts, n_features), dtype=np.float32)
    return g, z


def _numpy_activation(name, module):
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


class _MixtureSampler:
    """The trained network as float32 numpy arrays, and the per-step sampling loops.

    One step costs a handful of numpy calls on preallocated buffers, without framework
    dispatch. The kernel is picked from the mixture logits first; then only the picked
    kernel's means and widths are computed. Biases ride along as an extra input column that is
    always 1, which saves one call per layer.
    """

    def __init__(self, module, lo, hi):
        linears = [layer for layer in module.mlp if isinstance(layer, nn.Linear)]
        acts = [layer for layer in module.mlp if not isinstance(layer, nn.Linear)]
        C, m = module.n_kernels, module.n_features
        self.n_kernels, self.n_features = C, m
        self.floor = np.full(m, module.sigma_floor, dtype=np.float32)
        self.lo = np.asarray(lo, dtype=np.float32)
        self.hi = np.asarray(hi, dtype=np.float32)
        with_bias = [
            np.hstack(
                [layer.weight.detach().cpu().numpy(), layer.bias.detach().cpu().numpy()[:, None]]
            ).astype(np.float32)
            for layer in linears
        ]
        self.hidden = [
            (np.ascontiguousarray(Wb), *_numpy_activation(module.activation, act))
            for Wb, act in zip(with_bias[:-1], acts)
        ]
        self.W_logits = np.ascontiguousarray(with_bias[-1][:C])
        self.W_kernels = np.ascontiguousarray(with_bias[-1][C:].reshape(C, 2 * m, -1))

    def run(self, state, gumbel, normal):
        """Advance ``state`` (``(n_starts, m)`` scaled float32, updated in place) by
        ``len(gumbel)`` steps; return the visited states, ``(n_steps, n_starts, m)``."""
        if state.shape[0] == 1:
            return self._run_one(state, gumbel[:, 0], normal[:, 0])[:, None, :]
        return self._run_batch(state, gumbel, normal)

    def _run_one(self, state, gumbel, normal):
        m = self.n_features
        inputs = [np.ones(m + 1, dtype=np.float32)]
        layers = []
        for Wb, act, _ in self.hidden:
            out = np.ones(Wb.shape[0] + 1, dtype=np.float32)
            layers.append((Wb, inputs[-1], out[:-1], act))
            inputs.append(out)
        W_logits, W_kernels = self.W_logits, self.W_kernels
        h = inputs[-1]
        x = inputs[0][:m]
        x[:] = state[0]
        logits = np.empty(self.n_kernels, dtype=np.float32)
        params = np.empty(2 * m, dtype=np.float32)
        mean, raw = params[:m], params[m:]
        sigma = np.empty(m, dtype=np.float32)
        floor, lo, hi = self.floor, self.lo, self.hi
        bounds = list(zip(lo.tolist(), hi.tolist()))
        visited = np.empty((len(gumbel), m), dtype=np.float32)
        dot, add, multiply, logaddexp = np.dot, np.add, np.multiply, np.logaddexp
        for t in range(len(gumbel)):
            for Wb, src, dst, act in layers:
                dot(Wb, src, out=dst)
                act(dst)
            dot(W_logits, h, out=logits)
            add(logits, gumbel[t], out=logits)
            dot(W_kernels[logits.argmax()], h, out=params)
            logaddexp(raw, floor, out=sigma)
            multiply(sigma, normal[t], out=x)
            add(x, mean, out=x)
            for v, (a, c) in zip(x.tolist(), bounds):
                if v < a or v > c:
                    _reflect(x, lo, hi)
                    break
            visited[t] = x
        state[0] = x
        return visited

    def _run_batch(self, state, gumbel, normal):
        m = self.n_features
        B = state.shape[0]
        inputs = [np.ones((B, m + 1), dtype=np.float32)]
        layers = []
        for Wb, act, keeps_one in self.hidden:
            out = np.ones((B, Wb.shape[0] + 1), dtype=np.float32)
            # The whole buffer is contiguous and faster to activate, where the bias column of
            # ones survives the activation.
            target = out if keeps_one else out[:, :-1]
            layers.append((np.ascontiguousarray(Wb.T), inputs[-1], out[:, :-1], act, target))
            inputs.append(out)
        W_logits_T, W_kernels = np.ascontiguousarray(self.W_logits.T), self.W_kernels
        h = inputs[-1]
        h_column = h[:, :, None]
        x = inputs[0][:, :m]
        x[...] = state
        logits = np.empty((B, self.n_kernels), dtype=np.float32)
        params = np.empty((B, 2 * m, 1), dtype=np.float32)
        mean, raw = params[:, :m, 0], params[:, m:, 0]
        sigma = np.empty((B, m), dtype=np.float32)
        floor, lo, hi = self.floor, self.lo, self.hi
        lo_max, hi_min = float(lo.max()), float(hi.min())
        visited = np.empty((len(gumbel), B, m), dtype=np.float32)
        matmul, add, multiply, logaddexp = np.matmul, np.add, np.multiply, np.logaddexp
        for t in range(len(gumbel)):
            for WbT, src, dst, act, target in layers:
                matmul(src, WbT, out=dst)
                act(target)
            matmul(h, W_logits_T, out=logits)
            add(logits, gumbel[t], out=logits)
            matmul(W_kernels[logits.argmax(axis=1)], h_column, out=params)
            logaddexp(raw, floor, out=sigma)
            multiply(sigma, normal[t], out=x)
            add(x, mean, out=x)
            # A cheap test that is exact when every feature has the same box, and else
            # only sends rows near a wall to the exact per-feature test in _reflect.
            if x.min() < lo_max or x.max() > hi_min:
                _reflect(x, lo, hi)
            visited[t] = x
        state[...] = x
        return visited


class MDNPropagator(DensityMixin, BaseEstimator):
    """Mixture density network (MDN) propagator: learn and sample ``p(x_{t+tau} | x_t)``.

    An MLP maps a frame ``x_t`` of latent coordinates to the weights, means and widths of
    ``n_kernels`` Gaussian kernels with diagonal covariance, a density for the frame one lag
    time later. It is trained by maximum likelihood on the lagged pairs of the training
    trajectories. ``sample`` then generates new trajectories step after step, one lag time
    per step, without any molecular dynamics.

    Parameters
    ----------
    lag_time : int, default=1
        Lag time tau in frames; one step of ``sample`` advances one lag time.
    n_kernels : int, default=24
        Number of Gaussian kernels ``C`` in the mixture.
    hidden_layer_sizes : tuple of int, default=(100, 100)
        Widths of the network's hidden layers.
    activation : str, default="relu"
        Hidden activation: "relu", "tanh", "swish", "elu", "gelu", "sigmoid", "softplus" or
        "leaky_relu". Sampling is fastest with "relu", "tanh" and "leaky_relu".
    learning_rate : float, default=1e-3
        Initial Adam learning rate. It is multiplied by 0.3 whenever the monitored loss has not
        improved for ``max(1, patience // 3)`` epochs.
    batch_size : int, default=1024
        Lagged pairs per training batch.
    max_epochs : int, default=100
        Maximum number of passes over the training pairs.
    validation_fraction : float, default=0.1
        Fraction of the data held out for early stopping: whole trajectories when there are
        several, otherwise the final block of each trajectory (never shuffled frames). 0 turns
        held-out early stopping off, and the training loss is monitored instead.
    patience : int, default=10
        Epochs without improvement of the monitored loss (by more than 1e-4 nats per pair)
        before training stops. The weights of the best epoch are restored.
    sigma_floor : float, default=1e-3
        Lower bound on every kernel width, in units of the feature's standard deviation. It
        keeps the likelihood finite when a kernel collapses onto a point.
    device : {"cpu", "cuda", "auto"}, default="cpu"
        Torch device for training, ``predict`` and ``score``; ``"auto"`` uses CUDA when
        available. ``sample`` always runs on the CPU (see Notes).
    checkpoint : str or path-like, default=None
        A file that ``fit`` writes the training state to after every epoch (weights, optimizer,
        early-stopping and learning-rate schedule state, history, random number generator
        state), in the safe format of :mod:`sklss.io` (never pickled), each time replaced
        atomically. A ``fit`` that finds a checkpoint written for the same parameters and data
        resumes from it and, on the CPU, ends with the same model as an uninterrupted fit.
        ``max_epochs``, ``device`` and ``verbose`` may differ, so raising ``max_epochs`` extends
        a finished fit. A checkpoint from other parameters or data is replaced, with a warning.
        Give every fit its own file (not one shared by the fits of a grid search).
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation and batch shuffling. The same int gives bitwise identical
        parameters on CPU, whatever torch's thread setting (training runs with one intra-op
        thread), so also in joblib workers; the caller's global random state is never touched.
        The randomness of ``sample`` has its own ``random_state`` argument.
    verbose : int, default=0
        0 is silent, 1 prints a line per epoch and shows a progress bar in ``sample``, 2 also
        shows a progress bar per epoch.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
        Per-feature mean of the training data, removed before the network.
    scale_ : ndarray of shape (n_features,)
        Per-feature standard deviation of the training data (1 for a constant feature).
    data_min_, data_max_ : ndarray of shape (n_features,)
        Per-feature range of the training data: the box that ``sample`` keeps trajectories in.
    history_ : dict of lists
        Per-epoch ``"epoch"``, ``"train_nll"`` (mean negative log-likelihood per training
        pair) and ``"valid_nll"`` (on the held-out blocks; ``None`` without validation data),
        in the units of the data, so ``valid_nll`` is ``-score`` of the held-out data.
    n_iter_ : int
        Number of epochs run.
    n_features_in_ : int
        Number of features ``m`` seen in ``fit``.
    net_ : skorch.NeuralNet
        The trained network (private use; the public state is the attributes above).

    See Also
    --------
    sklss.SRVTransformer : learns the slow latent coordinates this propagator runs in.
    sklearn.mixture.GaussianMixture : an unconditional Gaussian mixture.

    Notes
    -----
    **Scaling.** Each feature is standardised with the mean and standard deviation of the
    training data, and the kernel means are unbounded. The paper instead min-max scales to
    ``[0, 1]`` and bounds the means with a sigmoid; standardisation is not dominated by a few
    extreme frames, and unbounded means keep their gradients at the edges of the data, where a
    saturated sigmoid stalls. Densities (``score_samples``, ``score``, ``history_``) are
    reported in the units of the data: the Jacobian of the scaling is included.

    **Support.** A learned density leaks a little mass beyond the range of the training data,
    where the network was never fitted and can extrapolate without bound. ``sample`` keeps
    every trajectory inside the per-feature box ``[data_min_, data_max_]`` by reflecting a
    step that leaves it back off the wall it crossed. Unlike clipping, as in the paper,
    reflection piles no probability onto the wall itself; it is the zero-flux boundary of
    diffusion. ``predict`` and ``score_samples`` report the learned mixture itself, without
    the walls. Start frames outside the box are accepted, with a warning.

    **Sampling.** Random numbers are drawn in blocks before the steps they drive: Gumbel keys
    select the kernel (the Gumbel-max trick) and standard normals its value. The steps then
    run in numpy float32 on preallocated buffers, on the CPU whatever ``device`` is, without
    the per-call overhead of torch: a step of one trajectory is about a dozen small library
    calls, and only the picked kernel's means and widths are computed. Fewer than 2048
    trajectories run with one BLAS thread, since threads cost more than they give on such
    small matrices. The samples follow the distribution of the float32 network exactly; the
    tests compare them with a plain torch sampler on the same random numbers.

    References
    ----------
    C. M. Bishop, "Mixture density networks", Technical Report NCRG/94/004, Aston University
    (1994).

    H. Sidky, W. Chen and A. L. Ferguson, "Molecular latent space simulators", Chem. Sci. 11,
    9459 (2020).

    Examples
    --------
    >>> import numpy as np
    >>> from sklss import MDNPropagator
    >>> rng = np.random.default_rng(0)
    >>> x = np.zeros((2000, 1))
    >>> for t in range(1, 2000):
    ...     x[t] = 0.9 * x[t - 1] + rng.normal()
    >>> mdn = MDNPropagator(lag_time=1, n_kernels=2, hidden_layer_sizes=(16,), max_epochs=5,
    ...                     random_state=0).fit(x)
    >>> mdn.sample(x[:3], n_steps=100, random_state=0).shape
    (3, 100, 1)
    """

    _parameter_constraints = {
        "lag_time": [Interval(Integral, 1, None, closed="left")],
        "n_kernels": [Interval(Integral, 1, None, closed="left")],
        "hidden_layer_sizes": ["array-like"],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "sigma_floor": [Interval(Real, 0, None, closed="neither")],
        "device": [StrOptions({"cpu", "cuda", "auto"})],
        "checkpoint": [str, os.PathLike, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        lag_time=1,
        *,
        n_kernels=24,
        hidden_layer_sizes=(100, 100),
        activation="relu",
        learning_rate=1e-3,
        batch_size=1024,
        max_epochs=100,
        validation_fraction=0.1,
        patience=10,
        sigma_floor=1e-3,
        device="cpu",
        checkpoint=None,
        random_state=None,
        verbose=0,
    ):
        self.lag_time = lag_time
        self.n_kernels = n_kernels
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.sigma_floor = sigma_floor
        self.device = device
        self.checkpoint = checkpoint
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the mixture density network on the time-lagged pairs of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_frames, n_features) or list of such arrays
            Trajectory data of latent coordinates. Pairs are built within each trajectory; a
            trajectory with at most ``lag_time`` frames is skipped with a warning.
        y : None
            Ignored.

        Returns
        -------
        self : MDNPropagator
        """
        trajs, _ = check_trajectories(self, X, reset=True)
        lag = check_lag_time(self.lag_time)
        hidden = check_hidden_layer_sizes(self.hidden_layer_sizes)
        _check_pairs_exist(trajs, lag)
        self._fit_scaling(trajs)
        device = resolve_device(self.device)
        (net_seed,) = derive_seeds(self.random_state, 1)

        (X0, Xt), valid = train_valid_pairs(
            trajs,
            self.validation_fraction,
            lag,
            transform=self._scale,
            monitored="log-likelihood",
        )
        valid_ds = None if valid is None else Dataset({"x0": valid[0], "xt": valid[1]}, None)

        monitor = "valid_loss" if valid_ds is not None else "train_loss"
        stopper = best_epoch_stopping(monitor, self.patience)
        # Small steps late in training matter: the rare barrier-crossing tails of the density,
        # which set the stationary populations, are only resolved once the noise of large
        # steps is gone.
        plateau = LRScheduler(
            policy="ReduceLROnPlateau",
            monitor=monitor,
            factor=_LR_DECAY,
            patience=max(1, self.patience // 3),
            threshold=1e-4,
            threshold_mode="abs",
        )
        callbacks = [
            ("guard", FiniteLossGuard("MDNPropagator")),
            ("lr_plateau", plateau),
            ("early_stopping", stopper),
        ]
        if self.verbose and self.verbose > 1:
            callbacks.append(("progress", ProgressBar()))
        # Last, so that a checkpoint holds what the other callbacks did in the epoch.
        callbacks += checkpoint_callbacks(self, trajs)
        net = _MDNNet(
            module=_MixtureDensityModule,
            module__n_features=self.n_features_in_,
            module__hidden_layer_sizes=hidden,
            module__n_kernels=self.n_kernels,
            module__activation=self.activation,
            module__sigma_floor=self.sigma_floor,
            criterion=_NegativeLogLikelihood,
            optimizer=torch.optim.Adam,
            lr=self.learning_rate,
            max_epochs=self.max_epochs,
            batch_size=min(self.batch_size, len(X0)),
            iterator_train=TensorBatchLoader,
            iterator_train__shuffle=True,
            iterator_valid=TensorBatchLoader,
            iterator_valid__batch_size=_INFERENCE_CHUNK,
            train_split=predefined_split(valid_ds) if valid_ds is not None else None,
            callbacks=callbacks,
            device=device,
            verbose=int(self.verbose),
        )
        fit_net(net, Dataset({"x0": X0, "xt": Xt}, None), net_seed, device)
        if not all(torch.isfinite(p).all() for p in net.module_.parameters()):
            raise NonFiniteLossError(
                f"MDNPropagator: the network's weights are not finite after {len(net.history)} "
                "epochs. Lower the learning rate."
            )
        self.net_ = net
        # history in data units: the scaled log-likelihood less the log-Jacobian of scaling.
        log_jacobian = float(np.sum(np.log(self.scale_)))
        history = history_to_dict(
            net.history, {"train_loss": ("train_nll", 1.0), "valid_loss": ("valid_nll", 1.0)}
        )
        for key in ("train_nll", "valid_nll"):
            history[key] = [None if v is None else v + log_jacobian for v in history[key]]
        self.history_ = history
        self.n_iter_ = len(self.history_["epoch"])
        return self

    def _fit_scaling(self, trajs):
        mean, scale, constant = feature_mean_and_scale(trajs)
        if len(constant) == len(scale):
            raise ValueError(
                "Every feature of X is constant: there are no dynamics to learn a transition "
                "density from."
            )
        if len(constant):
            warnings.warn(
                f"Features {constant.tolist()} are constant; samples keep them at that value.",
                UserWarning,
                stacklevel=3,
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

    def _forward_chunks(self, scaled, fn):
        """Apply ``fn(module, x0_tensor, rows)`` to chunks of frames; stack float64 outputs."""
        module = self.net_.module_
        module.eval()
        device = self.net_.device
        outs = []
        with torch.inference_mode():
            for start in range(0, len(scaled), _INFERENCE_CHUNK):
                rows = slice(start, start + _INFERENCE_CHUNK)
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

    def predict(self, X):
        """Conditional mean ``E[x_{t+lag_time} | x_t]`` of every frame of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_frames, n_features) or list of such arrays

        Returns
        -------
        X_next : ndarray of shape (n_frames, n_features) or list of such arrays
            The same form as ``X``. float32 input gives float32 output, anything else float64.
        """
        check_is_fitted(self)
        trajs, is_list = check_trajectories(self, X, reset=False)

        def mean(module, x0, rows):
            log_w, mu, _ = module.mixture(x0)
            return (log_w.double().exp().unsqueeze(-1) * mu.double()).sum(1)

        out = []
        for i, t in enumerate(trajs):
            index = i if is_list else None
            m = self._forward_chunks(self._scale(t, index), mean)
            m = self._checked(m.reshape(len(t), -1), index, "X", "mean")
            out.append((m * self.scale_ + self.mean_).astype(t.dtype, copy=False))
        return as_output_form(out, is_list)

    def score_samples(self, X):
        """Log density ``log p(x_{t+lag_time} | x_t)`` of each lagged pair of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_frames, n_features) or list of such arrays
            Trajectory data; pairs are built within each trajectory.

        Returns
        -------
        log_density : ndarray of shape (n_frames - lag_time,) or list of such arrays
            In the units of the data (per unit volume of ``x``). For a list, one array per
            trajectory, empty for a trajectory with at most ``lag_time`` frames.
        """
        check_is_fitted(self)
        trajs, is_list = check_trajectories(self, X, reset=False)
        lag = check_lag_time(self.lag_time)
        _check_pairs_exist(trajs, lag)
        log_jacobian = float(np.sum(np.log(self.scale_)))
        out = []
        for i, t in enumerate(trajs):
            index = i if is_list else None
            if len(t) <= lag:
                out.append(np.empty(0))
                continue
            scaled = self._scale(t, index)
            xt = torch.from_numpy(scaled[lag:])

            def log_density(module, x0, rows, xt=xt):
                return module(x0, xt[rows].to(x0.device))

            logp = self._forward_chunks(scaled[:-lag], log_density)
            out.append(self._checked(logp, index, "X", "log density") - log_jacobian)
        return as_output_form(out, is_list)

    def score(self, X, y=None):
        """Mean log-likelihood per lagged pair of ``X`` under the learned transition density.

        Higher is better, so ``GridSearchCV`` can select ``n_kernels`` or the network size
        with it. Use splitters that keep trajectories or contiguous blocks together.

        Parameters
        ----------
        X : array-like of shape (n_frames, n_features) or list of such arrays
        y : None
            Ignored.

        Returns
        -------
        score : float
        """
        log_density = self.score_samples(X)
        if isinstance(log_density, list):
            log_density = np.concatenate(log_density)
        return float(np.mean(log_density))

    def sample(self, X0, n_steps, random_state=None, *, out=None):
        """Generate trajectories by sampling the transition density step after step.

        Parameters
        ----------
        X0 : array-like of shape (n_starts, n_features)
            Start frames, one per trajectory.
        n_steps : int
            Frames per trajectory, the start included; consecutive frames are one
            ``lag_time`` apart.
        random_state : int, RandomState instance or None, default=None
            Seeds the draws. The same int gives bitwise identical trajectories.
        out : ndarray of shape (n_starts, n_steps, n_features), default=None
            Where to write the trajectories, for example a memory-mapped ``.npy`` file
            (``numpy.lib.format.open_memmap``) for runs larger than memory. The steps are
            generated and written in blocks, so memory use does not grow with ``n_steps``.
            The samples do not depend on whether ``out`` is given.

        Returns
        -------
        trajectories : ndarray of shape (n_starts, n_steps, n_features)
            ``out`` if given. Step 0 is ``X0``; every later frame lies in
            ``[data_min_, data_max_]``. float32 ``X0`` gives float32, anything else float64.
        """
        check_is_fitted(self)
        if isinstance(n_steps, bool) or not isinstance(n_steps, Integral) or n_steps < 1:
            raise ValueError(
                f"The 'n_steps' parameter of sample must be an int in the range [1, inf). "
                f"Got {n_steps!r}."
            )
        starts, is_list = check_trajectories(self, X0, reset=False, name="X0")
        if is_list:
            raise ValueError(
                "X0 must be one 2-D array of start frames, shape (n_starts, n_features), not a "
                "list of trajectories."
            )
        X0 = starts[0]
        n_starts, m = X0.shape
        shape = (n_starts, int(n_steps), m)
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
                "data, where the network extrapolates; the steps after them are kept inside it.",
                UserWarning,
                stacklevel=2,
            )
        lo = ((self.data_min_ - self.mean_) / self.scale_).astype(np.float32)
        hi = ((self.data_max_ - self.mean_) / self.scale_).astype(np.float32)
        sampler = _MixtureSampler(self.net_.module_, lo, hi)
        (seed,) = derive_seeds(random_state, 1)
        rng = np.random.default_rng(seed)
        C = self.net_.module_.n_kernels
        block = max(1, _NOISE_CHUNK // (n_starts * (C + m)))

        out[:, 0] = X0
        threads = 1 if n_starts < _SINGLE_THREAD_ROWS else None
        progress = None
        if self.verbose:
            from tqdm.auto import tqdm

            progress = tqdm(total=shape[1] - 1, desc="sampling", unit="step")
        with threadpool_limits(limits=threads, user_api="blas"):
            for start in range(1, shape[1], block):
                n = min(block, shape[1] - start)
                gumbel, normal = _gumbel_and_normal(rng, n, n_starts, C, m)
                visited = sampler.run(state, gumbel, normal)
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
        return out

    def _check_first_step(self, state):
        """Refuse start frames where the network overflows; later steps stay in the box."""
        module = self.net_.module_
        module.eval()
        with torch.inference_mode():
            x0 = torch.from_numpy(state).to(self.net_.device)
            ok = all(torch.isfinite(p).all() for p in module.mixture(x0))
        if not ok:
            raise ValueError(
                "The network gave non-finite kernel parameters for a start frame in X0: it "
                "lies too far outside the training data."
            )

    def __sklearn_is_fitted__(self):
        # Fitted only once training succeeded; a failed fit leaves the scaling behind.
        return hasattr(self, "net_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        tags.non_deterministic = False
        return tags
