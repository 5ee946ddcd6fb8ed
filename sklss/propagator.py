"""The MDN propagator: transition densities in the latent space, sampled step after step."""

import math
from numbers import Integral, Real

import numpy as np
import torch
from scipy.special import ndtr
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils.validation import check_is_fitted
from torch import nn
from torch.nn.functional import softplus

from ._compat import Interval, _fit_context
from ._mixture_sampler import MixtureSampler
from ._nn import (
    history_to_dict,
    make_mlp,
)
from ._propagation import (
    INFERENCE_CHUNK,
    NOISE_CHUNK,
    LatentPropagatorMixin,
    LossOutputNet,
    fit_best_of_inits,
)
from ._propagation import (
    WALL_HIT_WARNING_RATE as WALL_HIT_WARNING_RATE,  # public here too
)
from ._training import (
    LAGGED_TRAINING_PARAMETERS,
    build_net,
    count_pairs,
    monitor_for,
    standard_callbacks,
    start_density_weights,
    start_fit,
    train,
    training_pairs,
)
from ._validation import (
    as_output_form,
    check_lag_time,
    check_trajectories,
)

_LOG_2PI = math.log(2.0 * math.pi)
# Random numbers drawn at once while sampling (see sklss._propagation).
_NOISE_CHUNK = NOISE_CHUNK


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
        # log(exp(raw) + exp(floor)) written as floor + softplus(raw - floor): the same
        # function, in a kernel several times faster than logaddexp on strided views.
        sigmas = self.sigma_floor + softplus(kernels[..., m:] - self.sigma_floor)
        return log_weights, kernels[..., :m], sigmas

    def forward(self, x0, xt, w=None):
        log_density = _mixture_log_density(*self.mixture(x0), xt)
        # Weighted training pairs (density_weighting) enter the mean as w * log p.
        return log_density if w is None else log_density * w[:, 0]


def _mixture_log_density(log_weights, means, sigmas, x):
    """``log p(x)`` under a mixture of diagonal Gaussians, per row.

    A log-sum-exp over kernels keeps it finite for many kernels, widths at the floor and
    targets far from every kernel: with widths of at least ``sigma_floor`` and latent
    coordinates of order 10, ``z^2`` stays far below float32's range. It runs in the
    networks' float32 (the DESIGN's precision rule), which made the elementwise work that
    dominates an MDN step about a third cheaper than float64 (``benchmarks/bench_training.py``).
    """
    z = (x.unsqueeze(1).to(means.dtype) - means) / sigmas
    m = means.shape[-1]
    log_kernels = -0.5 * (z * z).sum(-1) - torch.log(sigmas).sum(-1) - 0.5 * m * _LOG_2PI
    return torch.logsumexp(log_weights + log_kernels, dim=1)


class _NegativeLogLikelihood(nn.Module):
    def forward(self, log_density):
        return -log_density.mean()


class _MDNNet(LossOutputNet):
    pass


class MDNPropagator(LatentPropagatorMixin, DensityMixin, BaseEstimator):
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
        before training stops. The weights of the best epoch are restored. Rare states
        converge last: the held-out likelihood is dominated by the dense basins and flattens
        while the density around a state that holds 1 % of the frames is still sharpening.
        On alanine dipeptide at 400 K (``benchmarks/bench_alanine_dipeptide.py``), 10 stopped
        after 65 epochs with stays in alpha_L 31 % short on the latent space; 30 ran 111-120
        epochs and gave stays within 8 % of held-out MD's (four fits).
    n_init : int, default=1
        Number of networks fitted from different seeds; the one whose generated trajectories
        best keep the free energy of the training data (the lowest ``rollout_error`` on
        ``X``) is kept, as ``n_init`` keeps the best of several starts in
        :class:`sklearn.cluster.KMeans`. With an int ``random_state``, the first fit is the
        one ``n_init=1`` gives, and the others use seeds derived from it. Fitting takes
        ``n_init`` times as long, plus the rollouts. Use it where a rare state matters: fits
        of equal held-out likelihood can differ in how their trajectories cross a barrier.
        On alanine dipeptide at 400 K (``benchmarks/bench_alanine_dipeptide.py``), six fits
        had validation losses within 0.01 nats of each other. The two whose trajectories
        spent twice MD's time on the barrier between the basins had rollout errors of
        0.85-0.94 kT on the training data (three rollout seeds each), and decoded, Markov
        timescales of the phi transition 47-50 % short of held-out MD's. Three of the four
        others scored 0.52-0.71 kT and the fourth 0.62-0.91 kT; decoded, all four came
        within 20 %. The fourth's bad rollouts held a trajectory stuck for 1,774 steps at a
        point near the edge of the training data, where nearly every draw left the box.
    sigma_floor : float, default=1e-3
        Lower bound on every kernel width, in units of the feature's standard deviation. It
        keeps the likelihood finite when a kernel collapses onto a point.
    reversible : bool, default=False
        Train on the lagged pairs in both directions of time: every pair ``(x_t,
        x_{t+tau})`` also enters as ``(x_{t+tau}, x_t)``, in training and in validation.
        This is right for dynamics in detailed balance sampled in equilibrium, where the
        reversed pairs are draws of the same transition density; it doubles the training
        pairs, the time per epoch and the memory they take. With data that do not sample
        equilibrium (short trajectories started away from it) or with driven dynamics, it
        learns the wrong kernel; keep it off there. ``train_nll`` and ``valid_nll`` in
        ``history_`` then average over both directions, whereas ``score`` scores forward
        pairs only.
    density_weighting : float in [0, 1], default=0.0
        Exponent ``a`` of start-density weighting: each training pair counts with weight
        ``p(x_t) ** -a``, where ``p`` is the density of training frames at the pair's start
        (a 20-nearest-neighbour estimate in the scaled latent space, from at most 20,000
        reference frames). Weights are capped at 100 times the median weight and scaled to
        mean 1; held-out pairs stay unweighted. 0 is plain maximum likelihood. Because a
        weight depends on the start frame alone, the weighted likelihood is still maximised
        by the true transition density; what changes is where a network of finite size puts
        its accuracy. Plain maximum likelihood spends it where frames are dense and smooths
        the sparse regions, the barriers and rare states whose transitions set the rates
        of rare events: on alanine dipeptide at 400 K (m = 3), 0.5 raised the simulated
        entries into alpha_L from 0.22-0.26 to 0.47-0.76 per ns, against 0.46 and 0.68 in
        two independent MD sets (``benchmarks/bench_alanine_dipeptide.py``). The weight also
        makes a small leak of probability out of a dense basin cheaper: on newer MD of the
        same system, with ``patience=30``, 0.5 overshot (0.95-1.15 entries per ns against
        the training MD's 0.79, three seeds) and 0 gave 0.57-0.74 (two seeds). Choose it by
        the kinetics that matter, on training data. ``train_nll`` in ``history_`` is then
        the weighted mean.
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
    init_errors_ : ndarray of shape (n_init,) or None
        With ``n_init > 1``, the ``rollout_error`` of each fit on the training data, in kT;
        ``None`` with ``n_init=1``.
    best_init_ : int
        Index of the fit kept (0 with ``n_init=1``).
    n_features_in_ : int
        Number of features ``m`` seen in ``fit``.
    wall_hit_rate_ : float
        Set by ``sample``: the fraction of its draws (``n_starts * (n_steps - 1)``) that left
        ``[data_min_, data_max_]`` and were rejected. Absent until ``sample`` is called.
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
    where the network was never fitted and can extrapolate without bound. The paper does not
    guard against this beyond bounding the kernel means with a sigmoid. ``sample`` keeps every
    trajectory inside the per-feature box ``[data_min_, data_max_]`` by reject-and-stay: when
    the new draw of a trajectory leaves the box in any feature, the trajectory keeps its
    current state (all features) for that step. This is a Metropolis step whose target
    density is the stationary density truncated to the box: for a kernel in detailed
    balance, ``pi(x) p(y | x) = pi(y) p(x | y)`` still holds between any two points inside,
    so the stationary density inside the box is exactly the untruncated one, renormalised.
    Folding a draw back off the wall (reflection) or clipping it onto the wall moves mass
    that belonged beyond the wall to the wrong places inside and biases the density near
    the edges: on an exact Ornstein-Uhlenbeck kernel with walls at two standard deviations,
    reflection puts the edge bins 0.2-0.4 kT too low. A learned kernel is in detailed balance
    only approximately (``flux_asymmetry`` measures how far, for one feature); the walls
    then add no error of their own beyond that. ``wall_hit_rate_`` reports the fraction of
    rejected draws; above ``WALL_HIT_WARNING_RATE`` (1 %) ``sample`` warns. A start frame
    outside the box is accepted, with a warning; a rejected first draw from it is clipped
    into the box, so that every later frame lies inside. ``predict`` and ``score_samples``
    report the learned mixture itself, without the walls; ``transition_matrix`` treats the
    ends of its bins as walls of the same kind.

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
        **LAGGED_TRAINING_PARAMETERS,
        "n_kernels": [Interval(Integral, 1, None, closed="left")],
        "sigma_floor": [Interval(Real, 0, None, closed="neither")],
        "reversible": ["boolean"],
        "density_weighting": [Interval(Real, 0, 1, closed="both")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
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
        n_init=1,
        sigma_floor=1e-3,
        reversible=False,
        density_weighting=0.0,
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
        self.n_init = n_init
        self.sigma_floor = sigma_floor
        self.reversible = reversible
        self.density_weighting = density_weighting
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
        if self.n_init > 1:
            return fit_best_of_inits(self, X)
        setup = start_fit(self, X)
        trajs = setup.trajs
        count_pairs(trajs, self.lag_time)
        self._fit_scaling(trajs)
        weights = None
        if self.density_weighting > 0:
            weights = start_density_weights(
                trajs, self._scale, self.density_weighting, setup.seeds[0]
            )
        pairs, valid = training_pairs(
            trajs,
            self.lag_time,
            self.validation_fraction,
            transform=self._scale,
            monitored="log-likelihood",
            reversible=self.reversible,
            start_weights=weights,
        )
        monitor = monitor_for(valid)
        net = build_net(
            _MDNNet,
            self,
            callbacks=standard_callbacks(
                self, "MDNPropagator", trajs, monitor=monitor, lr_plateau=True
            ),
            n_train=len(pairs["x0"]),
            valid=valid,
            device=setup.device,
            lr=self.learning_rate,
            valid_batch_size=INFERENCE_CHUNK,
            module=_MixtureDensityModule,
            module__n_features=self.n_features_in_,
            module__hidden_layer_sizes=setup.hidden,
            module__n_kernels=self.n_kernels,
            module__activation=self.activation,
            module__sigma_floor=self.sigma_floor,
            criterion=_NegativeLogLikelihood,
        )
        train(net, pairs, setup.seeds[0], setup.device, component="MDNPropagator")
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
        self.init_errors_ = None
        self.best_init_ = 0
        return self

    def __setstate__(self, state):
        # A model pickled before ``n_init`` existed: give it the parameter and the attributes
        # that came with it, as a single fit, so that get_params, clone and repr work.
        state = {"n_init": 1, **state}
        if "net_" in state:
            state = {"init_errors_": None, "best_init_": 0, **state}
        super().__setstate__(state)

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
        count_pairs(trajs, lag)
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

    def transition_matrix(self, edges):
        """Transition probabilities of one step between the bins ``edges`` (one feature only).

        ``T[i, j]`` is the probability that one step (one lag time) of the learned transition
        density, started at the centre of bin ``i``, lands in bin ``j``. It is computed exactly
        from the Gaussian mixture, with its cumulative distribution function, without drawing.
        Mass that lands outside ``[edges[0], edges[-1]]`` is added to ``T[i, i]``: that step
        is rejected and the chain stays in its bin, as ``sample`` does at the walls of
        ``[data_min_, data_max_]``, so for edges spanning that box ``T`` is a coarse-grained
        picture of the chain that ``sample`` runs. Rows therefore sum to 1.

        With ``sklss.propagator.stationary_distribution`` and ``flux_asymmetry`` it checks the
        learned kernel without any sampling: its stationary populations on the bins, and how
        far it is from detailed balance. Starting from the bin centres is accurate when the bins are
        narrow next to the kernel widths. Bins beyond ``[data_min_, data_max_]`` use the
        network's extrapolation, so keep the edges within that box.

        Parameters
        ----------
        edges : array-like of shape (n_bins + 1,)
            Strictly increasing, finite bin edges in the units of the data.

        Returns
        -------
        T : ndarray of shape (n_bins, n_bins)
            Row-stochastic, float64.

        Raises
        ------
        ValueError
            If the propagator was fitted on more than one feature, or ``edges`` is not a
            strictly increasing, finite sequence of at least two values.
        """
        check_is_fitted(self)
        if self.n_features_in_ != 1:
            raise ValueError(
                "transition_matrix needs a propagator of one feature; this one has "
                f"n_features_in_={self.n_features_in_}."
            )
        edges = np.asarray(edges, dtype=np.float64)
        if (
            edges.ndim != 1
            or len(edges) < 2
            or not np.isfinite(edges).all()
            or not (np.diff(edges) > 0).all()
        ):
            raise ValueError(
                "edges must be a 1-D, finite, strictly increasing sequence of at least two bin "
                f"edges; got shape {edges.shape}."
            )
        centres = 0.5 * (edges[:-1] + edges[1:])
        scaled = self._scale(centres[:, None], name="The bin centres")

        def mixture(module, x0, rows):
            log_w, mu, sigma = module.mixture(x0)
            return torch.cat([log_w, mu[..., 0], sigma[..., 0]], dim=1)

        C = self.net_.module_.n_kernels
        params = self._checked(
            self._forward_chunks(scaled, mixture), None, "the bin centres", "mixture"
        )
        weights = np.exp(params[:, :C])
        weights /= weights.sum(axis=1, keepdims=True)
        mu = params[:, C : 2 * C] * self.scale_[0] + self.mean_[0]
        sigma = params[:, 2 * C :] * self.scale_[0]
        # Mixture CDF at every edge, from every bin centre: (n_bins, n_edges).
        cdf = np.zeros((len(centres), len(edges)))
        for k in range(C):
            cdf += weights[:, k, None] * ndtr((edges - mu[:, k, None]) / sigma[:, k, None])
        T = np.diff(cdf, axis=1)
        np.clip(T, 0, None, out=T)
        T[np.diag_indices_from(T)] += np.clip(1 - T.sum(axis=1), 0, None)
        T /= T.sum(axis=1, keepdims=True)
        return T

    def rollout_error(self, X, *, n_starts=100, n_steps=None, bins=50, random_state=0):
        """Free-energy error of long generated trajectories against the data ``X``, in kT.

        ``n_starts`` frames are drawn from ``X`` and ``sample`` runs ``n_steps`` steps from
        each. Along every feature, the free-energy profile of the generated frames is compared
        with that of the frames of ``X`` on ``bins`` equal bins spanning both, with
        :func:`sklss.metrics.free_energy_rmse` and no cap: every bin either side populates
        counts, and a bin only one side populates counts as lying at the rarest populated
        level. The result is the mean of the per-feature RMSEs. Lower is better.

        Unlike ``score``, which rates one step at a time and is dominated by the densest
        basins, this rates where many steps lead: a kernel that lets trajectories linger on a
        barrier, or drift out of a rare state through it, raises the free-energy error there
        even when its one-step likelihood is as good as another's. The barrier bins hold a
        fraction of a percent of the frames, which is why no cap is applied: capped at 5 kT,
        the same comparisons could not tell the fits apart (see ``n_init``). The price is
        noise: the reference's sparse bins carry its sampling error into the result, so an
        exact kernel scored 0.4-1.0 kT against 50,000 frames of its own Ornstein-Uhlenbeck
        process. Compare models on the same ``X``; the number is not a threshold.

        Parameters
        ----------
        X : array-like of shape (n_frames, n_features) or list of such arrays
            Reference trajectories of latent coordinates (the training data, or held-out
            data).
        n_starts : int, default=100
            Start frames, drawn at random from the frames of ``X``.
        n_steps : int, default=None
            Steps per generated trajectory, the start included. ``None`` generates
            ``10 * n_frames / n_starts`` steps, ten frames for every frame of ``X``.
        bins : int, default=50
            Bins per feature.
        random_state : int, RandomState instance or None, default=0
            Draws the start frames and drives ``sample``. The default 0 gives every model
            the same starts and random numbers, so that fits are compared on equal terms.

        Returns
        -------
        error : float
            Mean over the features of the free-energy RMSE, in kT.
        """
        return self._rollout_error(X, n_starts, n_steps, bins, random_state)

    def sample(self, X0, n_steps, random_state=None, *, out=None, return_wall_hits=False):
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
        return_wall_hits : bool, default=False
            Also return the number of draws rejected at the walls of the box and the number
            of draws made, so that a caller that samples blocks of start frames in worker
            copies of the propagator (where ``wall_hit_rate_`` is set on the copy) can add
            them up.

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

        Notes
        -----
        After the call, ``wall_hit_rate_`` holds the fraction of draws rejected at the walls
        (see the class Notes).
        """
        check_is_fitted(self)
        return self._sample(X0, n_steps, random_state, out, return_wall_hits)

    def _noise_chunk(self):
        return _NOISE_CHUNK

    def _sampler(self, lo, hi):
        return MixtureSampler(self.net_.module_, lo, hi)

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


def stationary_distribution(T):
    """The stationary distribution ``pi`` of a row-stochastic matrix: ``pi T = pi``.

    The left eigenvector of ``T`` whose eigenvalue is closest to 1, made non-negative and
    normalised to sum to 1. For a chain that falls apart into parts that never exchange
    probability it is one of several stationary distributions.

    Parameters
    ----------
    T : array-like of shape (n_states, n_states)
        Non-negative, with rows that sum to 1, for example from
        ``MDNPropagator.transition_matrix``.

    Returns
    -------
    pi : ndarray of shape (n_states,)
    """
    T = _check_stochastic(T)
    values, vectors = np.linalg.eig(T.T)
    pi = np.abs(vectors[:, np.argmin(np.abs(values - 1))].real)
    return pi / pi.sum()


def flux_asymmetry(T, stationary=None):
    """How far a transition matrix is from detailed balance, as one number.

    With the stationary fluxes ``F_ij = pi_i T_ij``, it is ``max_ij |F_ij - F_ji|`` over the
    largest flux between two different states, ``max_{i != j} F_ij``. It is 0 for a chain in
    detailed balance (``F`` symmetric) and of order 1 when the largest net flux is as large as
    the largest flux itself. The diagonal, which is symmetric anyway, is left out of the
    normalisation so that a high probability of staying cannot hide the asymmetry. A chain
    whose stationary distribution sits on states that never move gives 0.

    Parameters
    ----------
    T : array-like of shape (n_states, n_states)
        Row-stochastic matrix, for example from ``MDNPropagator.transition_matrix``.
    stationary : array-like of shape (n_states,), default=None
        Its stationary distribution; ``None`` computes it with
        ``stationary_distribution``.

    Returns
    -------
    asymmetry : float
    """
    T = _check_stochastic(T)
    pi = stationary_distribution(T) if stationary is None else np.asarray(stationary, float)
    if pi.shape != (len(T),):
        raise ValueError(f"stationary must have shape ({len(T)},); got {pi.shape}.")
    F = pi[:, None] * T
    off_diagonal = F[~np.eye(len(T), dtype=bool)]
    largest = off_diagonal.max() if off_diagonal.size else 0.0
    if largest <= 0:
        return 0.0
    return float(np.abs(F - F.T).max() / largest)


def _check_stochastic(T):
    T = np.asarray(T, dtype=np.float64)
    if T.ndim != 2 or T.shape[0] != T.shape[1] or not len(T):
        raise ValueError(f"T must be a square, non-empty matrix; got shape {T.shape}.")
    if not np.isfinite(T).all() or (T < 0).any():
        raise ValueError("T must be finite and non-negative.")
    sums = T.sum(axis=1)
    if not np.allclose(sums, 1, rtol=0, atol=1e-8):
        row = int(np.argmax(np.abs(sums - 1)))
        raise ValueError(f"The rows of T must sum to 1; row {row} sums to {sums[row]:.6g}.")
    return T
