"""The stochastic-interpolant propagator: latent transitions drawn through a learned bridge."""

import copy
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils.validation import check_is_fitted
from skorch.dataset import unpack_data
from torch import nn

from ._compat import Interval, _fit_context
from ._frames import tile_rows
from ._nn import (
    history_to_dict,
    make_mlp,
)
from ._propagation import (
    INFERENCE_CHUNK,
    NOISE_CHUNK,
    BoxWalls,
    LatentPropagatorMixin,
    LossOutputNet,
    layer_buffers,
    numpy_layers,
)
from ._training import (
    LAGGED_TRAINING_PARAMETERS,
    build_net,
    count_pairs,
    monitor_for,
    standard_callbacks,
    start_fit,
    train,
    training_pairs,
)
from ._validation import as_output_form, check_lag_time, check_trajectories

# Interpolation times per lagged pair at which score_samples averages the bridge loss, and the
# seed of the noise it uses there (fixed, so that scores are deterministic).
_SCORE_TIMES = 16
_SCORE_SEED = 20240
# Held-out rows for early stopping: each validation pair enters with this many fixed draws of
# (s, z), or more when there are few pairs, up to _MIN_VALID_ROWS rows.
_VALID_DRAWS = 2
_MIN_VALID_ROWS = 32768
# Decay of the moving average of the weights (see _InterpolantNet).
_EMA_DECAY = 0.999
# Smallest bridge variance per feature, in units of the feature's variance.
_MIN_BRIDGE_VARIANCE = 1e-6


class _BridgeModule(nn.Module):
    """The drift network of the bridge, and the per-pair training loss.

    The interpolant between a lagged pair ``(x0, x1)`` (standardised units) is

        x_s = (1 - s) x0 + s x1 + gamma(s) z,    gamma(s)^2 = a s (1 - s),    z ~ N(0, I),

    whose law, given both ends, is that of a Brownian bridge with diffusion coefficient ``a``
    pinned at ``x0`` and ``x1``. The network ``r(s, x; x0)`` (inputs ``x0``, ``x - x0`` and
    ``s``) learns ``E[(x1 - x_s) / (1 - s) | x_s = x, x0]``, the drift that carries the bridge
    to the end points it will reach. ``forward`` returns the squared error of that regression
    with weight ``1 - s``, which keeps the variance of the target bounded near ``s = 1``.
    """

    def __init__(self, n_features, hidden_layer_sizes, activation, bridge_variance):
        super().__init__()
        self.n_features = n_features
        self.activation = activation
        self.bridge_variance = tuple(float(a) for a in bridge_variance)
        # Moves with the module, but is rebuilt from bridge_variance rather than stored.
        self.register_buffer("noise", torch.tensor(self.bridge_variance), persistent=False)
        self.mlp = make_mlp(
            2 * n_features + 1, hidden_layer_sizes, n_features, activation=activation
        )

    def drift(self, x0, x, s):
        """``r(s, x; x0)``: rows of ``x0`` and ``x``, ``s`` of shape ``(n, 1)``."""
        return self.mlp(torch.cat([x0, x - x0, s], dim=1))

    def forward(self, x0, xt, s=None, z=None):
        if s is None:
            # Fresh interpolation times and noise for every pair in every epoch, from torch's
            # generator, which fit seeds.
            s = torch.rand(len(x0), 1, dtype=x0.dtype, device=x0.device)
            z = torch.randn_like(x0)
        return _bridge_loss(self, x0, xt, s, z)


def _bridge_loss(module, x0, xt, s, z):
    """Per-pair, per-feature loss ``(1 - s) (r(s, x_s; x0) - (x1 - x_s) / (1 - s))^2``.

    Written with ``sqrt(1 - s)`` folded into the target, which stays finite at ``s -> 1``.
    """
    a = module.noise.to(x0.dtype)
    xs = (1 - s) * x0 + s * xt + torch.sqrt(a * s * (1 - s)) * z
    w = torch.sqrt(1 - s)
    target = w * (xt - x0) - torch.sqrt(a * s) * z
    return (w * module.drift(x0, xs, s) - target) ** 2


class _MeanLoss(nn.Module):
    def forward(self, per_feature_loss):
        return per_feature_loss.sum(dim=1).mean()


class _InterpolantNet(LossOutputNet):
    """The skorch net of the bridge drift, with an average of the weights as its model.

    The optimizer trains ``trainee_``; ``module_``, which validation, early stopping and
    every use after ``fit`` see, is an exponential moving average of ``trainee_``'s weights,
    updated after every training step with decay ``min(ema_decay, (1 + t) / (10 + t))`` at
    step ``t``. The regression target of the bridge is noisy by construction (it carries the
    randomness of the end point and of the interpolant), and averaging the weights removes
    much of the noise that the last steps of stochastic gradient descent leave in them.
    """

    def __init__(self, *args, ema_decay=_EMA_DECAY, **kwargs):
        super().__init__(*args, **kwargs)
        self.ema_decay = ema_decay

    def initialize_module(self):
        super().initialize_module()
        self.trainee_ = copy.deepcopy(self.module_)
        self.module_.requires_grad_(False)
        self.average_steps_ = 0
        return self

    def initialize_optimizer(self, triggered_directly=None):
        args, kwargs = self.get_params_for_optimizer("optimizer", self.trainee_.named_parameters())
        self.optimizer_ = self.optimizer(*args, **kwargs)
        return self

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        Xi, _ = unpack_data(batch)
        per_feature = self.trainee_(**{k: v.to(self.device) for k, v in Xi.items()})
        loss = self.get_loss(per_feature, None, X=Xi, training=True)
        loss.backward()
        return {"loss": loss, "y_pred": per_feature}

    def train_step(self, batch, **fit_params):
        step = super().train_step(batch, **fit_params)
        t = self.average_steps_
        decay = min(self.ema_decay, (1.0 + t) / (10.0 + t))
        with torch.no_grad():
            for avg, p in zip(self.module_.parameters(), self.trainee_.parameters()):
                avg.lerp_(p, 1.0 - decay)
        self.average_steps_ = t + 1
        return step


class _BridgeSampler(BoxWalls):
    """The trained drift network as float32 numpy arrays, and the batched sampling loop.

    One lag step integrates ``dX = r(s, X; x0) ds + sqrt(a) dW`` from ``X_0 = x0`` (the
    current state) to ``s = 1`` in ``n_integration_steps`` steps of ``h`` by the stochastic
    Heun scheme for additive noise: with ``dW = sqrt(a h) xi``,

        x~ = x + h r(s, x) + dW,    x <- x + h/2 [r(s, x) + r(s + h, x~)] + dW,

    two forward passes of the network per step. All trajectories advance together; biases
    ride along as an input column of ones (inputs ``x0, x - x0, s, 1``). The walls (see
    ``BoxWalls``) act on the end point of each lag step; pinned features are held at their
    value throughout.
    """

    def __init__(self, module, lo, hi, n_integration_steps):
        super().__init__(lo, hi)
        self.n_features = module.n_features
        self.n_integration_steps = N = int(n_integration_steps)
        self.hidden, self.W_out = numpy_layers(module.mlp, module.activation)
        self.h = np.float32(1.0 / N)
        self.times = [np.float32(j / N) for j in range(N + 1)]
        self.amplitude = np.sqrt(module.noise.cpu().numpy() / N).astype(np.float32)
        self.pinned_values = self.lo[self.pinned] if len(self.pinned) else None

    def numbers_per_step(self, n_starts):
        return n_starts * self.n_features * self.n_integration_steps

    def draw(self, rng, n_steps, n_starts):
        shape = (n_steps, self.n_integration_steps, n_starts, self.n_features)
        return (rng.standard_normal(shape, dtype=np.float32),)

    def run(self, state, normal):
        """Advance ``state`` (``(n_starts, m)`` scaled float32, updated in place) by
        ``len(normal)`` lag steps; return the visited states, ``(n_steps, n_starts, m)``."""
        start_inside = self.start_inside(state)
        m = self.n_features
        B = state.shape[0]
        # Input columns: x0, the difference to the end point, the time s, and the bias.
        inputs, layers = layer_buffers(self.hidden, B, 2 * m + 1)
        W_out_T = np.ascontiguousarray(self.W_out.T)
        x0, diff, s_column = inputs[0][:, :m], inputs[0][:, m : 2 * m], inputs[0][:, 2 * m]
        last_hidden = inputs[-1]
        r0, r1, dW, x_trial = (np.empty((B, m), dtype=np.float32) for _ in range(4))
        x = state.copy()
        previous = state.copy()
        pinned, pinned_values = self.pinned, self.pinned_values
        hits = 0
        visited = np.empty((len(normal), B, m), dtype=np.float32)
        matmul, add, subtract, multiply = np.matmul, np.add, np.subtract, np.multiply
        h, half_h, times, amplitude = self.h, np.float32(self.h / 2), self.times, self.amplitude

        def drift(y, s, r):
            subtract(y, x0, out=diff)
            s_column.fill(s)
            for WbT, src, dst, act, target in layers:
                matmul(src, WbT, out=dst)
                act(target)
            matmul(last_hidden, W_out_T, out=r)

        for t in range(len(normal)):
            x0[...] = previous
            x[...] = previous
            for j, xi in enumerate(normal[t]):
                multiply(xi, amplitude, out=dW)
                drift(x, times[j], r0)
                multiply(r0, h, out=x_trial)
                add(x_trial, x, out=x_trial)
                add(x_trial, dW, out=x_trial)
                drift(x_trial, times[j + 1], r1)
                add(r0, r1, out=r0)
                multiply(r0, half_h, out=r0)
                add(x, r0, out=x)
                add(x, dW, out=x)
                if pinned_values is not None:
                    x[:, pinned] = pinned_values
            hits += self.enforce(x, previous, start_inside)
            start_inside = None
            visited[t] = x
            previous = visited[t]
        state[...] = x
        self.n_wall_hits += hits
        return visited


class InterpolantPropagator(LatentPropagatorMixin, DensityMixin, BaseEstimator):
    """Stochastic-interpolant propagator: sample ``p(x_{t+tau} | x_t)`` through a learned bridge.

    A drop-in alternative to :class:`~sklss.MDNPropagator` that needs no kernel count and
    makes no assumption on the shape of the transition density: curved, strongly correlated
    or many-modal densities in several latent dimensions are represented by the flow of an
    SDE rather than by a sum of diagonal Gaussians. For a frame ``x_t`` a draw of
    ``x_{t+tau}`` integrates a stochastic bridge from ``x_t`` (at interpolation time
    ``s = 0``) to the new frame (at ``s = 1``), whose drift a network learns by regression on
    the lagged pairs of the training trajectories. It shares the MDN's contract: ``fit`` on
    latent trajectories, ``sample`` step after step with the same walls and wall-hit
    reporting, ``predict``, ``score``, checkpoints and safe model files.

    Parameters
    ----------
    lag_time : int, default=1
        Lag time tau in frames; one step of ``sample`` advances one lag time.
    n_integration_steps : int, default=10
        Integration steps of the bridge per lag step of ``sample``, at least 2; each costs
        two forward passes of the network (see Notes). It can be changed after ``fit``.
    noise_scale : float, default=1.0
        The diffusion coefficient ``a`` of the bridge, per feature, relative to the spread
        of the transition density: ``a = noise_scale * E[Var(x_{t+tau} | x_t)]``, estimated
        from the training pairs (``bridge_variance_``). The interpolant between the ends of
        a lagged pair spreads by ``sqrt(a s (1 - s))``. At 1 the bridge is about as noisy as
        the dynamics themselves, so the drift it has to learn is smooth; much larger
        values make the final approach to the end point stiff, much smaller ones make the
        drift steep near the start.
    hidden_layer_sizes : tuple of int, default=(64, 64, 64)
        Widths of the drift network's hidden layers.
    activation : str, default="relu"
        Hidden activation: "relu", "tanh", "swish", "elu", "gelu", "sigmoid", "softplus" or
        "leaky_relu". Sampling is fastest with "relu", "tanh" and "leaky_relu".
    learning_rate : float, default=3e-3
        Initial Adam learning rate. It is multiplied by 0.3 whenever the monitored loss has not
        improved for ``max(1, patience // 3)`` epochs. The model is a moving average of the
        trained weights (see Notes), which tolerates a larger rate than the MDN's.
    batch_size : int, default=1024
        Lagged pairs per training batch. Each pair gets a fresh interpolation time and noise
        draw in every epoch.
    max_epochs : int, default=100
        Maximum number of passes over the training pairs.
    validation_fraction : float, default=0.1
        Fraction of the data held out for early stopping: whole trajectories when there are
        several, otherwise the final block of each trajectory (never shuffled frames). Each
        held-out pair is scored at fixed draws of the interpolation time and noise, so the
        validation loss is deterministic. 0 monitors the training loss instead.
    patience : int, default=10
        Epochs without improvement of the monitored loss (by more than 1e-4) before training
        stops. The weights of the best epoch are restored.
    reversible : bool, default=False
        Train on the lagged pairs in both directions of time, as
        :class:`~sklss.MDNPropagator` does (see there): right for equilibrium data of
        dynamics in detailed balance, wrong otherwise.
    device : {"cpu", "cuda", "auto"}, default="cpu"
        Torch device for training, ``predict`` and ``score``. ``sample`` always runs on the
        CPU.
    checkpoint : str or path-like, default=None
        A file that ``fit`` writes the training state to after every epoch, and resumes from;
        see :class:`~sklss.MDNPropagator`.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, batch shuffling and the interpolation draws of training.
        The same int gives bitwise identical parameters on CPU; the caller's global random
        state is never touched. ``sample`` has its own ``random_state``.
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
        Per-epoch ``"epoch"``, ``"train_loss"`` and ``"valid_loss"`` (``None`` without
        validation data): the mean bridge loss per pair (see Notes), in standardised units.
    n_iter_ : int
        Number of epochs run.
    bridge_variance_ : ndarray of shape (n_features,)
        The diffusion coefficient ``a`` of the bridge per feature, in the units of the data
        squared: ``noise_scale`` times the nearest-neighbour estimate of ``E[Var(x_{t+tau} |
        x_t)]``.
    n_features_in_ : int
        Number of features ``m`` seen in ``fit``.
    wall_hit_rate_ : float
        Set by ``sample``: the fraction of its draws (``n_starts * (n_steps - 1)``) that left
        ``[data_min_, data_max_]`` and were rejected. Absent until ``sample`` is called.
    net_ : skorch.NeuralNet
        The trained network (private use).

    See Also
    --------
    sklss.MDNPropagator : the mixture density network propagator, with an exact likelihood.
    sklss.LatentSpaceSimulator : takes either propagator.

    Notes
    -----
    **The interpolant.** Each feature is standardised as in the MDN. For a lagged pair
    ``(x0, x1)`` the two-sided interpolant ``x_s = (1 - s) x0 + s x1 + gamma(s) z`` with
    ``gamma(s)^2 = a s (1 - s)`` and ``z ~ N(0, I)`` runs from ``x0`` to ``x1`` and is
    random in between; given both ends it has the law of a Brownian bridge with diffusion
    ``a`` (per feature). Conditioned on ``x0`` alone (the start point is the known current
    frame), the SDE

        dX_s = r(s, X_s; x0) ds + sqrt(a) dW_s,    X_0 = x0,
        r(s, x; x0) = E[(x1 - x_s) / (1 - s) | x_s = x, x0],

    has the marginals of ``x_s`` for every ``s`` (a Markovian projection of the bridge), so
    ``X_1`` is a draw of ``p(x_{t+tau} | x_t = x0)``. In the terms of Albergo, Boffi and
    Vanden-Eijnden, with velocity ``b = E[x1 - x0 + gamma'(s) z | x_s]``, denoiser ``eta =
    E[z | x_s]`` and diffusion ``eps(s)`` in ``dX = [b - (eps / gamma) eta] ds + sqrt(2 eps)
    dW``, this is the choice ``eps = a / 2``, which equals ``gamma gamma'`` at ``s = 0`` and
    so removes the ``1 / gamma`` singularity there. Since ``x0`` is known, one network
    gives both: ``E[x1 | x_s] = x_s + (1 - s) r``, from which ``b`` and ``eta`` follow, and
    the drift above is ``r`` itself; nothing is divided by ``gamma`` anywhere. ``a`` is
    matched to the spread of the transition density (``noise_scale``): where that density
    is close to a Gaussian of that width, ``r`` is close to the constant mean displacement,
    which is easy to learn and to integrate.

    **Training** regresses ``r`` on ``(x1 - x_s) / (1 - s)`` at a uniform ``s`` and fresh
    ``z`` for every pair in every epoch, with weight ``1 - s`` (the loss is ``(1 - s) (r -
    (x1 - x_s) / (1 - s))^2``, summed over features): the target's variance grows like ``a s
    / (1 - s)`` near ``s = 1``, and the weight keeps the loss's variance bounded. The target
    is noisy by construction, so the model is an exponential moving average of the weights
    that Adam trains (decay 0.999 per step); validation and early stopping see the average.

    **Sampling** integrates the SDE from ``s = 0`` to 1 in ``n_integration_steps`` steps of
    the stochastic Heun scheme (a predictor step, then the average of the drifts at both
    ends of the step, with the same noise increment): two forward passes per step, and an
    error that falls much faster with the step count than Euler-Maruyama's. All
    trajectories advance together, in numpy float32 on preallocated buffers (faster than
    torch inference on the CPU for these small networks), with the random numbers drawn in
    blocks. One lag step costs ``2 * n_integration_steps`` forward passes of the network,
    against one for the MDN.

    **Walls.** Exactly as for :class:`~sklss.MDNPropagator`: reject-and-stay at the box
    ``[data_min_, data_max_]``, start frames outside it accepted with a warning and clipped
    into it on the first step, ``wall_hit_rate_`` reported and a warning above
    ``WALL_HIT_WARNING_RATE``. The walls act on the end point of each lag step.

    **Scores.** There is no cheap exact likelihood. ``score_samples`` and ``score`` report
    minus the bridge loss of each held-out lagged pair, averaged over fixed interpolation
    times and noise draws, in the units of the data (each feature's squared error times its
    variance): a deterministic, higher-is-better surrogate whose expectation is lowest for
    the exact drift, comparable between interpolant propagators with the same
    ``noise_scale`` on the same data, not with the MDN's log-likelihood. To compare with the
    MDN, score the composite :class:`~sklss.LatentSpaceSimulator` on fixed observables.

    References
    ----------
    M. S. Albergo, N. M. Boffi and E. Vanden-Eijnden, "Stochastic interpolants: a unifying
    framework for flows and diffusions", arXiv:2303.08797 (2023).

    H. Sidky, W. Chen and A. L. Ferguson, "Molecular latent space simulators", Chem. Sci. 11,
    9459 (2020).

    Examples
    --------
    >>> import numpy as np
    >>> from sklss import InterpolantPropagator
    >>> rng = np.random.default_rng(0)
    >>> x = np.zeros((2000, 1))
    >>> for t in range(1, 2000):
    ...     x[t] = 0.9 * x[t - 1] + rng.normal()
    >>> prop = InterpolantPropagator(lag_time=1, hidden_layer_sizes=(16,), max_epochs=5,
    ...                              random_state=0).fit(x)
    >>> prop.bridge_variance_.shape
    (1,)
    >>> prop.sample(x[:3], n_steps=100, random_state=0).shape
    (3, 100, 1)
    """

    _parameter_constraints = {
        **LAGGED_TRAINING_PARAMETERS,
        "n_integration_steps": [Interval(Integral, 2, None, closed="left")],
        "noise_scale": [Interval(Real, 0, None, closed="neither")],
        "reversible": ["boolean"],
    }

    def __init__(
        self,
        lag_time=1,
        *,
        n_integration_steps=10,
        noise_scale=1.0,
        hidden_layer_sizes=(64, 64, 64),
        activation="relu",
        learning_rate=3e-3,
        batch_size=1024,
        max_epochs=100,
        validation_fraction=0.1,
        patience=10,
        reversible=False,
        device="cpu",
        checkpoint=None,
        random_state=None,
        verbose=0,
    ):
        self.lag_time = lag_time
        self.n_integration_steps = n_integration_steps
        self.noise_scale = noise_scale
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.reversible = reversible
        self.device = device
        self.checkpoint = checkpoint
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the bridge drift on the time-lagged pairs of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_frames, n_features) or list of such arrays
            Trajectory data of latent coordinates. Pairs are built within each trajectory; a
            trajectory with at most ``lag_time`` frames is skipped with a warning.
        y : None
            Ignored.

        Returns
        -------
        self : InterpolantPropagator
        """
        setup = start_fit(self, X, n_seeds=2)
        trajs, (net_seed, valid_seed) = setup.trajs, setup.seeds
        count_pairs(trajs, self.lag_time)
        self._fit_scaling(trajs)
        pairs, valid = training_pairs(
            trajs,
            self.lag_time,
            self.validation_fraction,
            transform=self._scale,
            monitored="loss",
            reversible=self.reversible,
        )
        variance = _conditional_variance(pairs["x0"], pairs["xt"], valid_seed)
        self.bridge_variance_ = self.noise_scale * variance * self.scale_**2
        monitor = monitor_for(valid)
        net = build_net(
            _InterpolantNet,
            self,
            callbacks=standard_callbacks(
                self, "InterpolantPropagator", trajs, monitor=monitor, lr_plateau=True
            ),
            n_train=len(pairs["x0"]),
            # The held-out loss is taken at fixed draws, so that epochs compare.
            valid=None if valid is None else _fixed_draws(valid["x0"], valid["xt"], valid_seed),
            device=setup.device,
            lr=self.learning_rate,
            valid_batch_size=INFERENCE_CHUNK,
            module=_BridgeModule,
            module__n_features=self.n_features_in_,
            module__hidden_layer_sizes=setup.hidden,
            module__activation=self.activation,
            module__bridge_variance=tuple((self.noise_scale * variance).tolist()),
            criterion=_MeanLoss,
        )
        train(net, pairs, net_seed, setup.device, component="InterpolantPropagator")
        self.net_ = net
        self.history_ = history_to_dict(
            net.history, {"train_loss": ("train_loss", 1.0), "valid_loss": ("valid_loss", 1.0)}
        )
        self.n_iter_ = len(self.history_["epoch"])
        return self

    def predict(self, X):
        """Conditional mean ``E[x_{t+lag_time} | x_t]`` of every frame of ``X``.

        It is the end point the bridge predicts at its start, ``x_t + r(0, x_t; x_t)``.

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
        out = []
        for i, t in enumerate(trajs):
            index = i if is_list else None
            m = self._forward_chunks(self._scale(t, index), _predicted_end)
            m = self._checked(m.reshape(len(t), -1), index, "X", "mean")
            out.append((m * self.scale_ + self.mean_).astype(t.dtype, copy=False))
        return as_output_form(out, is_list)

    def score_samples(self, X):
        """Minus the bridge loss of each lagged pair of ``X``, in the units of the data.

        The loss of the pair ``(x_t, x_{t+lag_time})`` (see the class Notes), averaged over
        16 interpolation times ``s = (k + 1/2) / 16`` with fixed noise draws, each feature's
        squared error multiplied by its variance ``scale_ ** 2``. Deterministic; higher is
        better. It is a surrogate, not a log-density: compare it only between interpolant
        propagators with the same ``noise_scale``.

        Parameters
        ----------
        X : array-like of shape (n_frames, n_features) or list of such arrays
            Trajectory data; pairs are built within each trajectory.

        Returns
        -------
        scores : ndarray of shape (n_frames - lag_time,) or list of such arrays
            For a list, one array per trajectory, empty for a trajectory with at most
            ``lag_time`` frames.
        """
        check_is_fitted(self)
        trajs, is_list = check_trajectories(self, X, reset=False)
        lag = check_lag_time(self.lag_time)
        count_pairs(trajs, lag)
        K = _SCORE_TIMES
        times = (np.arange(K, dtype=np.float32) + 0.5) / K
        variance = torch.as_tensor(self.scale_**2)
        out = []
        for i, t in enumerate(trajs):
            index = i if is_list else None
            if len(t) <= lag:
                out.append(np.empty(0))
                continue
            scaled = self._scale(t, index)
            n_pairs = len(t) - lag
            xt = torch.from_numpy(scaled[lag:])
            # Noise of pair i depends on i only, so a trajectory scores alike in a list.
            z = np.random.default_rng(_SCORE_SEED).standard_normal(
                (n_pairs, K, self.n_features_in_), dtype=np.float32
            )
            z = torch.from_numpy(z)

            def loss(module, x0, rows, xt=xt, z=z):
                n = len(x0)
                total = torch.zeros(n, dtype=torch.float64, device=x0.device)
                for k, s in enumerate(times):
                    s_col = torch.full((n, 1), float(s), dtype=x0.dtype, device=x0.device)
                    per_feature = _bridge_loss(
                        module, x0, xt[rows].to(x0.device), s_col, z[rows, k].to(x0.device)
                    )
                    total += (per_feature.double() * variance.to(x0.device)).sum(dim=1)
                return -total / K

            values = self._forward_chunks(scaled[:-lag], loss)
            out.append(self._checked(values, index, "X", "bridge loss"))
        return as_output_form(out, is_list)

    def score(self, X, y=None):
        """Mean of ``score_samples`` over the lagged pairs of ``X``; higher is better.

        A surrogate of the fit of the transition density (see ``score_samples``), for
        comparing interpolant propagators with the same ``noise_scale``, for example in
        ``GridSearchCV`` with splitters that keep trajectories together.

        Parameters
        ----------
        X : array-like of shape (n_frames, n_features) or list of such arrays
        y : None
            Ignored.

        Returns
        -------
        score : float
        """
        scores = self.score_samples(X)
        if isinstance(scores, list):
            scores = np.concatenate(scores)
        return float(np.mean(scores))

    def rollout_error(self, X, *, n_starts=100, n_steps=None, bins=50, random_state=0):
        """Free-energy error of long generated trajectories against the data ``X``, in kT.

        The mean over the features of the uncapped free-energy RMSE between ``X`` and
        trajectories generated from ``n_starts`` of its frames; lower is better. The same
        measure as :meth:`sklss.MDNPropagator.rollout_error`, which describes it and its
        parameters, so the two propagators can be compared on the same ``X``.
        """
        return self._rollout_error(X, n_starts, n_steps, bins, random_state)

    def sample(self, X0, n_steps, random_state=None, *, out=None, return_wall_hits=False):
        """Generate trajectories, one lag time per step, by integrating the learned bridge.

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
            Where to write the trajectories, for example a memory-mapped ``.npy`` file. Steps
            are generated in blocks, so memory use does not grow with ``n_steps``; the
            samples do not depend on whether ``out`` is given.
        return_wall_hits : bool, default=False
            Also return the number of draws rejected at the walls of the box and the number
            of draws made.

        Returns
        -------
        trajectories : ndarray of shape (n_starts, n_steps, n_features)
            ``out`` if given. Step 0 is ``X0``; every later frame lies in
            ``[data_min_, data_max_]``. float32 ``X0`` gives float32, anything else float64.
        n_wall_hits : int
            Only with ``return_wall_hits=True``: draws that left the box and were rejected.
        n_draws : int
            Only with ``return_wall_hits=True``: all draws, ``n_starts * (n_steps - 1)``.

        Warns
        -----
        UserWarning
            If a start frame lies outside ``[data_min_, data_max_]``, and if more than
            ``WALL_HIT_WARNING_RATE`` (1 %) of the draws were rejected at the walls.
        """
        check_is_fitted(self)
        return self._sample(X0, n_steps, random_state, out, return_wall_hits)

    def _noise_chunk(self):
        return NOISE_CHUNK

    def _sampler(self, lo, hi):
        steps = self.n_integration_steps
        if isinstance(steps, bool) or not isinstance(steps, Integral) or steps < 2:
            raise ValueError(
                "The 'n_integration_steps' parameter of InterpolantPropagator must be an int in "
                f"the range [2, inf). Got {steps!r}."
            )
        return _BridgeSampler(self.net_.module_, lo, hi, steps)

    def _check_first_step(self, state):
        """Refuse start frames where the network overflows; later steps stay in the box."""
        ends = self._forward_chunks(state, _predicted_end)
        if not np.isfinite(ends).all():
            raise ValueError(
                "The network gave a non-finite drift for a start frame in X0: it lies too far "
                "outside the training data."
            )


def _predicted_end(module, x0, rows):
    """``E[x1 | x0] = x0 + r(0, x0; x0)``, in standardised units."""
    s = torch.zeros(len(x0), 1, dtype=x0.dtype, device=x0.device)
    return x0 + module.drift(x0, x0, s)


def _conditional_variance(X0, Xt, seed, max_pairs=50_000):
    """Per-feature estimate of ``E[Var(x_{t+tau} | x_t)]`` from nearest neighbours in ``x_t``.

    Half the mean squared difference between the ends of pairs whose starts are nearest
    neighbours (among at most ``max_pairs`` pairs picked at random): the spread of the
    transition density, plus a little of the variation of its mean between neighbours.
    A floor keeps it positive for features that never move. ``X0`` and ``Xt`` are arrays or
    gathered rows (``sklss._frames.Rows``); only the picked pairs are read.
    """
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    rows = rng.permutation(len(X0))[:max_pairs] if len(X0) > max_pairs else np.arange(len(X0))
    starts = X0[rows].astype(np.float64)
    _, neighbour = cKDTree(starts).query(starts, k=2)
    ends = Xt[rows].astype(np.float64)
    variance = 0.5 * np.mean((ends - ends[neighbour[:, 1]]) ** 2, axis=0)
    return np.maximum(variance, _MIN_BRIDGE_VARIANCE)


def _fixed_draws(X0, Xt, seed):
    """Held-out pairs with fixed interpolation times and noise, for a deterministic loss.

    ``X0`` and ``Xt`` are arrays or gathered rows (``sklss._frames.Rows``).
    """
    repeats = max(_VALID_DRAWS, min(16, -(-_MIN_VALID_ROWS // len(X0))))
    rng = np.random.default_rng(seed)
    n = repeats * len(X0)
    return {
        "x0": tile_rows(X0, repeats),
        "xt": tile_rows(Xt, repeats),
        "s": rng.random((n, 1), dtype=np.float32),
        "z": rng.standard_normal((n, X0.shape[1]), dtype=np.float32),
    }
