"""The SRV encoder: a state-free reversible VAMPnet that learns slow eigenfunctions."""

import copy
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import Bunch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._compat import Interval, StrOptions, _fit_context
from ._covariance import (
    covariances_from_moments,
    lagged_covariances,
    lagged_moments,
    vac_decomposition,
    vac_eigenvalues,
)
from ._frames import row_chunks
from ._nn import (
    SklssNet,
    history_to_dict,
    make_mlp,
)
from ._random import derive_seeds
from ._training import (
    LAGGED_TRAINING_PARAMETERS,
    build_net,
    count_pairs,
    fit_input_scaling,
    monitor_for,
    standard_callbacks,
    start_fit,
    train,
    training_pairs,
)
from ._validation import (
    as_output_form,
    check_lag_time,
    check_trajectories,
    lagged_pairs,
    stack_pairs,
)
from .metrics import eigenvalue_noise_floor, timescales_from_eigenvalues, vamp2_score

# Size of the learned basis when n_components="auto" and n_basis is not given.
_AUTO_BASIS_SIZE = 10


class _Lobe(nn.Module):
    """One network applied to both ends of each lagged pair (the SRV is a single-lobe VAMPnet)."""

    def __init__(self, n_features, hidden_layer_sizes, n_outputs, activation, batch_norm):
        super().__init__()
        self.mlp = make_mlp(
            n_features,
            hidden_layer_sizes,
            n_outputs,
            activation=activation,
            batch_norm=batch_norm,
        )

    def forward(self, x0, xt):
        # One pass over both halves, so batch-norm statistics cover the whole pair batch.
        out = self.mlp(torch.cat([x0, xt]))
        return out[: len(x0)], out[len(x0) :]


class _NegativeVAMP2(nn.Module):
    """``-VAMP2`` of a batch of lagged network outputs, computed in float64.

    The covariances are regularised as ``C + epsilon * I`` and whitened through Cholesky
    factors: ``||L0^-1 C0t Lt^-T||_F^2 = tr(C00^-1 C0t Ctt^-1 Ct0)``, the same Frobenius norm
    as with symmetric inverse square roots, but without the unstable gradients of an
    eigendecomposition with near-degenerate eigenvalues.
    """

    def __init__(self, reversible=True, epsilon=1e-6):
        super().__init__()
        self.reversible = reversible
        self.epsilon = epsilon

    def forward(self, f0, ft):
        f0, ft = f0.double(), ft.double()
        n = f0.shape[0]
        if self.reversible:
            mean = 0.5 * (f0.mean(0) + ft.mean(0))
            a, b = f0 - mean, ft - mean
            c00 = (a.T @ a + b.T @ b) / (2 * n)
            c0t = (a.T @ b + b.T @ a) / (2 * n)
            ctt = c00
        else:
            a, b = f0 - f0.mean(0), ft - ft.mean(0)
            c00, c0t, ctt = a.T @ a / n, a.T @ b / n, b.T @ b / n
        eye = self.epsilon * torch.eye(c00.shape[0], dtype=c00.dtype, device=c00.device)
        # cholesky_ex: the checking variant costs milliseconds per call on CPU. A failed
        # factorisation (only possible with non-finite outputs) surfaces as a NaN loss, which
        # FiniteLossGuard turns into a named error.
        l0 = torch.linalg.cholesky_ex(c00 + eye).L
        lt = l0 if self.reversible else torch.linalg.cholesky_ex(ctt + eye).L
        k = torch.linalg.solve_triangular(l0, c0t, upper=False)
        k = torch.linalg.solve_triangular(lt, k.T, upper=False)
        return -(1.0 + (k**2).sum())


def _components_at_largest_gap(eigenvalues, floor):
    """Number of leading eigenvalues before the largest gap above the noise floor.

    The descending ``eigenvalues`` are clipped from below at ``floor`` (and a last value at
    the floor appended), so gaps within the noise or the negative tail are zero, and the drop
    from the last resolved eigenvalue down to the floor counts. At least 1; with no
    eigenvalue above the floor, 1 with a warning.
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    if not (lam > floor).any():
        warnings.warn(
            f"No eigenvalue of the learned basis is above the noise floor {floor:.3g}; "
            f"n_components='auto' keeps one component, whose timescale is undefined (nan).",
            UserWarning,
            stacklevel=4,
        )
        return 1
    clipped = np.append(np.maximum(lam, floor), floor)
    return int(np.argmax(clipped[:-1] - clipped[1:])) + 1


def _decay_factor(eigenvalues):
    """Real eigenvalues as they are; complex ones by their modulus (what sets their decay)."""
    lam = np.asarray(eigenvalues)
    if not np.iscomplexobj(lam):
        return lam.astype(np.float64)
    return np.where(np.imag(lam) == 0, np.real(lam), np.abs(lam))


class _SRVNet(SklssNet):
    def get_loss(self, y_pred, y_true=None, X=None, training=False):
        f0, ft = y_pred
        return self.criterion_(f0, ft)


class SRVTransformer(TransformerMixin, BaseEstimator):
    """State-free reversible VAMPnet (SRV): learn the slow eigenfunctions of the dynamics.

    A neural network maps each frame to ``n_basis`` functions and is trained to maximise the
    VAMP-2 score of time-lagged pairs ``(x_t, x_{t+lag_time})``. A final variational approach
    to conformational dynamics (VAC) step on the network's outputs gives the leading
    eigenfunctions ``psi_1..psi_m`` of the transfer operator, their eigenvalues ``lambda_i``
    and implied timescales ``t_i = -lag_time / ln(lambda_i)``.

    Parameters
    ----------
    lag_time : int, default=1
        Lag time tau in frames.
    n_components : int or "auto", default=2
        Number of eigenfunctions ``m`` that ``transform`` returns. ``"auto"`` picks ``m`` at the
        largest gap between consecutive eigenvalues of the learned basis among those above
        the noise floor ``noise_floor_``: eigenvalues are clipped from below at the floor
        before the gaps are taken, so noise and negative eigenvalues (which the VAMP-2 loss
        also rewards, as it squares them) never decide ``m``, and the drop from the last
        resolved eigenvalue to the floor counts as a gap. At least one component is kept.
    n_basis : int, default=None
        Number of network outputs (basis functions). ``None`` means ``n_components`` (or 10
        with ``"auto"``). A larger basis may resolve the leading eigenfunctions better.
    hidden_layer_sizes : tuple of int, default=(100, 100)
        Widths of the network's hidden layers.
    activation : str, default="tanh"
        Hidden activation: "tanh", "relu", "swish", "elu", "gelu", "sigmoid", "softplus" or
        "leaky_relu".
    batch_norm : bool, default=True
        Batch normalisation in the hidden layers.
    learning_rate : float, default=1e-2
        Adam learning rate.
    batch_size : int, default=2048
        Lagged pairs per training batch. The VAMP-2 loss needs covariance estimates, so it must
        exceed the basis size; the larger, the less biased the per-batch score.
    max_epochs : int, default=100
        Maximum number of passes over the training pairs.
    validation_fraction : float, default=0.1
        Fraction of the data held out for early stopping: whole trajectories when there are
        several, otherwise the final block of each trajectory (never shuffled frames). 0 turns
        early stopping on held-out data off (training VAMP-2 is monitored instead).
    patience : int, default=10
        Epochs without improvement of the monitored VAMP-2 before training stops. The weights
        of the best epoch are restored.
    epsilon : float, default=1e-6
        Regularisation of the covariance matrices: added to the diagonal in the training loss,
        and the eigenvalue cut-off of the final VAC step. Covariances are in float64.
    reversible : bool, default=True
        Symmetrise the covariances over both directions of time (detailed balance), which gives
        real eigenvalues and orthogonal eigenfunctions. With ``False`` the VAMP singular
        functions and singular values are used instead.
    device : {"cpu", "cuda", "auto"}, default="cpu"
        Torch device; ``"auto"`` uses CUDA when available.
    checkpoint : str or path-like, default=None
        A file that ``fit`` writes the training state to after every epoch (weights, optimizer
        and early-stopping state, history, random number generator state), in the safe format of
        :mod:`sklss.io` (never pickled), each time replaced atomically. A ``fit`` that finds a
        checkpoint written for the same parameters and data resumes from it and, on the CPU,
        ends with the same model as an uninterrupted fit. ``max_epochs``, ``device`` and
        ``verbose`` may differ, so raising ``max_epochs`` extends a finished fit. A checkpoint
        from other parameters or data is replaced, with a warning. Give every fit its own file
        (not one shared by the fits of a grid search).
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation and batch shuffling. The same int gives bitwise identical
        results on CPU; the caller's global random state is never touched.
    verbose : int, default=0
        0 is silent, 1 prints a line per epoch, 2 also shows a progress bar per epoch.

    Attributes
    ----------
    eigenvalues_ : ndarray of shape (n_components,)
        Eigenvalues ``lambda_i`` of the transfer operator at ``lag_time``, descending (VAMP
        singular values when ``reversible=False``).
    timescales_ : ndarray of shape (n_components,)
        Implied timescales in frames, from the training data. ``nan`` where the eigenvalue
        is at or below ``noise_floor_`` or not positive: such an eigenvalue has no
        relaxation timescale. With ``reversible=False`` they come from the VAMP singular
        values, which exceed the eigenvalues' moduli for a non-normal process and so
        overestimate its timescales. :meth:`implied_timescales` gives held-out estimates
        with error bars, from eigenvalues in either case.
    noise_floor_ : float
        Eigenvalues at or below it are treated as noise:
        :func:`sklss.metrics.eigenvalue_noise_floor` of the number of training pairs and the
        numerical rank of the learned basis, ``3 * sqrt(rank / n_pairs)``.
    n_components_ : int
        Number of eigenfunctions returned by ``transform``.
    all_eigenvalues_ : ndarray
        Eigenvalues of the whole learned basis (used by ``n_components="auto"``).
    history_ : dict of lists
        Per-epoch ``"epoch"``, ``"train_vamp2"`` (mean over training batches) and
        ``"valid_vamp2"`` (on the held-out blocks; ``None`` without validation data).
    n_features_in_ : int
        Number of features seen in ``fit``.
    net_ : skorch.NeuralNet
        The trained network (private use; the public state is the attributes above).

    See Also
    --------
    sklss.MDNPropagator : learns transition densities in the latent space.
    deeptime.decomposition.deep.VAMPNet : the general two-lobe VAMPnet.

    Notes
    -----
    The network is trained on pairs from all trajectories, never across their boundaries.
    After training the VAC generalised eigenproblem ``C0t v = lambda C00 v`` is solved on the
    network outputs for every frame passed to ``fit``. The outputs of ``transform`` have
    zero mean and unit variance under the training distribution, are uncorrelated, and are
    ordered by eigenvalue. Each eigenfunction's sign is fixed so that its value of largest
    magnitude on the training data is positive.

    Inputs are standardised feature by feature before the network; constant features are
    passed through unscaled and reported with a warning.

    References
    ----------
    W. Chen, H. Sidky and A. L. Ferguson, "Nonlinear discovery of slow molecular modes using
    state-free reversible VAMPnets", J. Chem. Phys. 150, 214114 (2019).

    H. Sidky, W. Chen and A. L. Ferguson, "Molecular latent space simulators", Chem. Sci. 11,
    9459 (2020).

    Examples
    --------
    >>> import numpy as np
    >>> from sklss import SRVTransformer
    >>> rng = np.random.default_rng(0)
    >>> x = np.zeros((2000, 1))
    >>> for t in range(1, 2000):
    ...     x[t] = 0.9 * x[t - 1] + rng.normal()
    >>> srv = SRVTransformer(lag_time=1, n_components=1, max_epochs=5, random_state=0).fit(x)
    >>> srv.transform(x).shape
    (2000, 1)
    """

    _parameter_constraints = {
        **LAGGED_TRAINING_PARAMETERS,
        "n_components": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "n_basis": [Interval(Integral, 1, None, closed="left"), None],
        "batch_norm": ["boolean"],
        "batch_size": [Interval(Integral, 2, None, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "reversible": ["boolean"],
    }

    def __init__(
        self,
        lag_time=1,
        *,
        n_components=2,
        n_basis=None,
        hidden_layer_sizes=(100, 100),
        activation="tanh",
        batch_norm=True,
        learning_rate=1e-2,
        batch_size=2048,
        max_epochs=100,
        validation_fraction=0.1,
        patience=10,
        epsilon=1e-6,
        reversible=True,
        device="cpu",
        checkpoint=None,
        random_state=None,
        verbose=0,
    ):
        self.lag_time = lag_time
        self.n_components = n_components
        self.n_basis = n_basis
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.batch_norm = batch_norm
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.epsilon = epsilon
        self.reversible = reversible
        self.device = device
        self.checkpoint = checkpoint
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the network on time-lagged pairs of ``X`` and solve the VAC eigenproblem.

        Parameters
        ----------
        X : array-like of shape (n_frames, n_features) or list of such arrays
            Trajectory data. Pairs are built within each trajectory; a trajectory with at most
            ``lag_time`` frames is skipped with a warning.
        y : None
            Ignored.

        Returns
        -------
        self : SRVTransformer
        """
        setup = start_fit(self, X)
        trajs, lag = setup.trajs, self.lag_time
        n_basis = self._basis_size()
        if self.batch_size <= n_basis:
            raise ValueError(
                f"batch_size={self.batch_size} is too small to estimate the {n_basis}x{n_basis} "
                f"covariance of the basis: it must be at least n_basis + 1 = {n_basis + 1}."
            )
        # Raises with lag_time and the longest length when no pairs exist; warns on skips.
        n_pairs = count_pairs(trajs, lag)
        if n_pairs <= n_basis:
            raise ValueError(
                f"n_components={self.n_components} (basis size {n_basis}) is too large for "
                f"{n_pairs} lagged pairs: the basis size must be below the number of pairs."
            )
        self._input_mean, self._input_scale = fit_input_scaling(
            trajs,
            all_constant="there is no variance to learn slow coordinates from.",
            constant="they carry no information.",
        )
        pairs, valid = training_pairs(
            trajs,
            lag,
            self.validation_fraction,
            transform=self._scale,
            min_valid_pairs=n_basis + 2,
            monitored="VAMP-2",
        )
        net = build_net(
            _SRVNet,
            self,
            callbacks=standard_callbacks(self, "SRVTransformer", trajs, monitor=monitor_for(valid)),
            n_train=len(pairs["x0"]),
            valid=valid,
            device=setup.device,
            lr=self.learning_rate,
            valid_batch_size=-1,
            module=_Lobe,
            module__n_features=self.n_features_in_,
            module__hidden_layer_sizes=setup.hidden,
            module__n_outputs=n_basis,
            module__activation=self.activation,
            module__batch_norm=self.batch_norm,
            criterion=_NegativeVAMP2,
            criterion__reversible=self.reversible,
            criterion__epsilon=self.epsilon,
        )
        self.net_ = train(net, pairs, setup.seeds[0], setup.device)
        self.history_ = history_to_dict(
            net.history,
            {"train_loss": ("train_vamp2", -1.0), "valid_loss": ("valid_vamp2", -1.0)},
        )
        self.n_iter_ = len(self.history_["epoch"])
        # On the CPU, so a model trained on CUDA unpickles on a machine without a GPU.
        self._mlp64 = copy.deepcopy(net.module_.mlp).double().eval().cpu()
        self._fit_vac(trajs, lag)
        return self

    def _basis_size(self):
        if self.n_basis is not None:
            if self.n_components != "auto" and self.n_basis < self.n_components:
                raise ValueError(
                    f"n_basis={self.n_basis} must be at least n_components={self.n_components}."
                )
            return self.n_basis
        return _AUTO_BASIS_SIZE if self.n_components == "auto" else self.n_components

    def _scale(self, traj, dtype=np.float32):
        # ((traj - mean) / scale) with one temporary: the frames may be many.
        if dtype == np.float32 and traj.dtype == np.float32:
            # float32 in and out: computed in float32, three times faster than through
            # float64 on the batches gathered from wide memory maps (a third of an epoch).
            x = np.subtract(traj, self._input_mean.astype(np.float32), dtype=np.float32)
            x /= self._input_scale.astype(np.float32)
            return x
        x = np.subtract(traj, self._input_mean)
        x /= self._input_scale
        return x.astype(dtype, copy=False)

    def _basis(self, traj, exact=True):
        """Network outputs for one validated trajectory, as float64.

        With ``exact`` (``transform``), inference runs a float64 copy of the trained network
        on the CPU:
        float32 matrix products change in the last bits with the batch shape, and a frame's
        projection must not depend on which other frames it is transformed with. The VAC
        step in ``fit`` only needs covariances and uses the faster float32 network.
        """
        mlp = self._mlp64 if exact else self.net_.module_.mlp.eval()
        dtype = np.float64 if exact else np.float32
        device = next(mlp.parameters()).device
        out = np.empty((len(traj), self.net_.module__n_outputs), dtype=np.float64)
        with torch.inference_mode():
            # Scaled a chunk at a time, so a memory-mapped trajectory is never copied whole.
            for start, x in row_chunks(traj):
                x = torch.from_numpy(self._scale(x, dtype)).to(device)
                out[start : start + len(x)] = mlp(x).cpu().numpy()
        return out

    def _fit_vac(self, trajs, lag):
        basis = [self._basis(t, exact=False) for t in trajs]
        F0, Ft = stack_pairs([b for b in basis if len(b) > lag], lag)
        C00, C0t, Ctt, mean0, _ = lagged_covariances(F0, Ft, reversible=self.reversible)
        lam, coef = vac_decomposition(
            C00, C0t, Ctt, reversible=self.reversible, epsilon=self.epsilon
        )
        rank = coef.shape[1]
        if rank < C00.shape[0]:
            warnings.warn(
                f"The learned basis has numerical rank {rank} of {C00.shape[0]}; directions with "
                f"covariance eigenvalues below epsilon={self.epsilon} were cut off.",
                UserWarning,
                stacklevel=3,
            )
        floor = eigenvalue_noise_floor(len(F0), rank)
        if self.n_components == "auto":
            m = _components_at_largest_gap(lam, floor)
        else:
            m = self.n_components
            if m > rank:
                raise ValueError(
                    f"n_components={m} exceeds the numerical rank {rank} of the learned basis."
                )
        coef = coef[:, :m]
        # Sign convention: the value of largest magnitude on the training data is positive.
        psi = np.concatenate(basis) @ coef - mean0 @ coef
        extreme = psi[np.argmax(np.abs(psi), axis=0), np.arange(m)]
        coef = coef * np.where(extreme < 0, -1.0, 1.0)
        self._coef = coef
        self._basis_mean = mean0
        self.all_eigenvalues_ = lam
        self.n_components_ = m
        self.eigenvalues_ = lam[:m].copy()
        self.noise_floor_ = floor
        self.timescales_ = timescales_from_eigenvalues(self.eigenvalues_, lag, noise_floor=floor)

    def transform(self, X):
        """Project trajectory data onto the learned eigenfunctions ``psi_1..psi_m``.

        Parameters
        ----------
        X : array-like of shape (n_frames, n_features) or list of such arrays

        Returns
        -------
        psi : ndarray of shape (n_frames, n_components) or list of such arrays
            The same form as ``X``. Columns are ordered by eigenvalue; float32 input gives
            float32 output, anything else float64.
        """
        check_is_fitted(self)
        trajs, is_list = check_trajectories(self, X, reset=False)
        out = []
        for t in trajs:
            psi = (self._basis(t) - self._basis_mean) @ self._coef
            out.append(psi.astype(t.dtype, copy=False))
        return as_output_form(out, is_list)

    def score(self, X, y=None):
        """VAMP-2 score of held-out trajectory data under the fitted model.

        The covariances of the held-out data are projected on the learned eigenfunctions
        (the outputs of ``transform``) and the score is ``1 + sum_i s_i^2`` over their
        ``n_components_`` singular values (reversibly symmetrised when ``reversible``). It is
        at most ``1 + n_components_``. Scores at different lag times are not comparable.

        Parameters
        ----------
        X : array-like of shape (n_frames, n_features) or list of such arrays
        y : None
            Ignored.

        Returns
        -------
        score : float
        """
        psi = self.transform(X)
        return vamp2_score(psi, self.lag_time, reversible=self.reversible, epsilon=self.epsilon)

    def implied_timescales(
        self,
        X,
        *,
        lag_time=None,
        n_bootstrap=100,
        n_blocks=10,
        confidence=0.95,
        noise_floor="auto",
        random_state=None,
    ):
        """Implied timescales measured on held-out data, with bootstrap error bars.

        ``X`` is projected on the fitted eigenfunctions (the output of ``transform``) and the
        VAC eigenproblem ``C0t v = lambda C00 v`` of that projection is solved at
        ``lag_time``: reversibly symmetrised when the model is reversible, otherwise the
        eigenvalues of ``C00^{-1} C0t`` (a complex pair gives the timescale of its modulus).
        Unlike ``timescales_``, which are measured on the training frames the network was
        optimised on, these are not inflated by overfitting, and they come with an error.

        Error bars come from a bootstrap over independent units of the held-out data, since
        frames inside a trajectory are correlated: whole trajectories when ``X`` has at least
        ``n_blocks`` of them, otherwise each trajectory's lagged pairs are cut into
        ``ceil(n_blocks / n_trajectories)`` contiguous blocks (by the start frame of each
        pair, so no pair is lost). Blocks should be much longer than the slowest timescale,
        or the error bars come out too small. Each resample re-weights the sums of the units'
        pairs (no frame is revisited), so many resamples are cheap.

        An eigenvalue gives ``nan`` (no timescale, no error bar) when it is not positive or
        at or below the noise floor. With ``noise_floor="auto"`` the floor of component
        ``i`` is the larger of :func:`sklss.metrics.eigenvalue_noise_floor` of the held-out
        pairs (three standard errors of uncorrelated data) and two bootstrap standard errors
        of that eigenvalue: an eigenvalue that its own bootstrap cannot tell from zero has no
        timescale. The second term accounts for the time correlation that the first ignores.

        Parameters
        ----------
        X : array-like of shape (n_frames, n_features) or list of such arrays
            Held-out trajectory data.
        lag_time : int, default=None
            Lag in frames at which to measure; ``None`` uses the model's ``lag_time``.
            Measuring the same eigenfunctions at several lags tests whether they are
            accurate: the timescales are flat in the lag only for true eigenfunctions.
        n_bootstrap : int, default=100
            Bootstrap resamples; 0 gives no error bars (``nan``) and the analytic floor alone.
        n_blocks : int, default=10
            Minimum number of resampled units (see above); at least 2.
        confidence : float, default=0.95
            Coverage of the percentile interval ``lower``, ``upper``.
        noise_floor : "auto" or float, default="auto"
            Eigenvalues at or below it give ``nan``.
        random_state : int, RandomState instance or None, default=None
            Seeds the bootstrap. ``None`` uses a seed fixed by the model's ``random_state``
            (0 if that is not an int), so the result is deterministic.

        Returns
        -------
        result : sklearn.utils.Bunch
            ``timescales``, ``std_error``, ``lower`` and ``upper``: arrays of shape
            ``(n_components_,)`` in frames. ``std_error`` is the bootstrap standard error of the
            eigenvalue carried to the timescale by the delta method
            (``lag * se / (lambda ln(lambda)^2)``); ``lower`` and ``upper`` are the timescales
            at the percentile interval of the bootstrap eigenvalues (``lower`` is 0 where that
            interval reaches zero, ``upper`` is ``inf`` where it reaches 1). ``eigenvalues``
            (complex when some are), ``eigenvalues_std_error`` and ``noise_floor`` (per
            component), and ``lag_time``, ``n_pairs``, ``n_units``, ``confidence``.
        """
        check_is_fitted(self)
        lag = check_lag_time(self.lag_time if lag_time is None else lag_time)
        if (
            isinstance(n_bootstrap, bool)
            or not isinstance(n_bootstrap, Integral)
            or n_bootstrap < 0
        ):
            raise ValueError(f"n_bootstrap must be a non-negative int; got {n_bootstrap!r}.")
        if isinstance(n_blocks, bool) or not isinstance(n_blocks, Integral) or n_blocks < 2:
            raise ValueError(f"n_blocks must be an int of at least 2; got {n_blocks!r}.")
        if not isinstance(confidence, Real) or not 0 < confidence < 1:
            raise ValueError(f"confidence must be in (0, 1); got {confidence!r}.")
        trajs, _ = check_trajectories(self, X, reset=False)
        psi = [(self._basis(t) - self._basis_mean) @ self._coef for t in trajs]
        lagged_pairs(psi, lag)  # an error when no pair exists, a warning naming skipped ones
        used = [p for p in psi if len(p) > lag]
        pieces = 1 if len(used) >= n_blocks else -(-n_blocks // len(used))
        units = []
        for p in used:
            for idx in np.array_split(np.arange(len(p) - lag), pieces):
                if len(idx):
                    units.append(lagged_moments(p[idx], p[idx + lag]))
        sums = {key: np.stack([u[key] for u in units]) for key in units[0]}

        def eigenvalues(weights):
            moments = {key: np.tensordot(weights, v, axes=1) for key, v in sums.items()}
            C00, C0t, _ = covariances_from_moments(moments, reversible=self.reversible)
            return vac_eigenvalues(C00, C0t, reversible=self.reversible, epsilon=self.epsilon)

        m = self.n_components_
        lam = eigenvalues(np.ones(len(units)))
        rank = len(lam)
        lam = np.concatenate([lam[:m], np.full(max(m - rank, 0), np.nan)])
        value = _decay_factor(lam)
        boot = np.full((n_bootstrap, m), np.nan)
        if n_bootstrap:
            if random_state is None:
                random_state = self.random_state if isinstance(self.random_state, Integral) else 0
            rng = np.random.default_rng(derive_seeds(random_state, 1)[0])
            counts = rng.multinomial(len(units), np.full(len(units), 1 / len(units)), n_bootstrap)
            for b, w in enumerate(counts):
                v = _decay_factor(eigenvalues(w.astype(np.float64)))[:m]
                boot[b, : len(v)] = v
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-nan columns
            se = np.nanstd(boot, axis=0, ddof=1) if n_bootstrap > 1 else np.full(m, np.nan)
            alpha = 0.5 * (1 - confidence)
            lo, hi = (
                np.nanquantile(boot, [alpha, 1 - alpha], axis=0)
                if n_bootstrap
                else np.full((2, m), np.nan)
            )
        n_pairs = int(sums["n"].sum())
        if isinstance(noise_floor, str):
            if noise_floor != "auto":
                raise ValueError(f"noise_floor must be 'auto' or a number; got {noise_floor!r}.")
            floor = np.full(m, eigenvalue_noise_floor(n_pairs, max(rank, 1)))
            floor = np.fmax(floor, 2 * se)
        else:
            floor = np.full(m, float(noise_floor))
        ts = timescales_from_eigenvalues(value, lag, noise_floor=floor)
        decaying = np.isfinite(ts)
        std_error = np.full(m, np.nan)
        std_error[decaying] = lag * se[decaying] / (value[decaying] * np.log(value[decaying]) ** 2)
        lower = np.where(lo <= 0, 0.0, timescales_from_eigenvalues(np.fmax(lo, 0), lag))
        upper = timescales_from_eigenvalues(hi, lag)
        lower[np.isnan(ts)] = np.nan
        upper[np.isnan(ts)] = np.nan
        return Bunch(
            timescales=ts,
            std_error=std_error,
            lower=lower,
            upper=upper,
            eigenvalues=lam,
            eigenvalues_std_error=se,
            noise_floor=floor,
            lag_time=lag,
            n_pairs=n_pairs,
            n_units=len(units),
            confidence=float(confidence),
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.non_deterministic = False
        return tags
