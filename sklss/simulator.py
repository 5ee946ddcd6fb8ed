"""The latent space simulator: encoder, propagator and decoder fitted and run as one."""

import time
import warnings
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from ._compat import HasMethods, Interval, StrOptions, _fit_context
from ._frames import lagged_chunks, row_chunks
from ._random import derive_seeds
from ._validation import as_output_form, check_int, check_trajectories
from .metrics import (
    autocorrelation,
    autocorrelation_timescales,
    block_average,
    compare_distributions,
    vamp2_score,
)

# Latent frames decoded per call when generating configurations: bounds the memory in use.
_DECODE_CHUNK = 262_144
# Trajectories per independently seeded block in sample: fixed, so that samples do not depend
# on how many workers propagate the blocks.
_STARTS_PER_BLOCK = 256
_SCORING = (
    "fidelity",
    "free_energy_rmse",
    "js_divergence",
    "timescale_error",
    "vamp2",
    "log_likelihood",
)
# Training frames kept to look up the observable of latent points when the simulator does not
# generate features itself (a latent-only simulator, or a decoder trained on other targets).
_LOOKUP_FRAMES = 20_000
# Dimensions of the default observable: the leading linear VAC (TICA) coordinates of X.
_OBSERVABLE_DIM = 2


@dataclass
class SimulationResult:
    """What :meth:`LatentSpaceSimulator.sample` returns.

    Attributes
    ----------
    latent : ndarray of shape (n_starts, n_steps, n_components)
        Latent trajectories; consecutive steps are one ``lag_time`` apart.
    configurations : ndarray of shape (n_starts, n_steps, n_outputs) or None
        Decoded configurations, or ``None`` when not decoded.
    lag_time : int
        Frames of the training data per step.
    wall_hit_rate : float or None
        Fraction of the propagator's draws that left the box of the training data and were
        rejected (the trajectory kept its state for that step); ``None`` for a propagator
        that does not report it.
    """

    latent: np.ndarray
    configurations: np.ndarray | None
    lag_time: int
    wall_hit_rate: float | None = None

    def __iter__(self):
        yield self.latent
        yield self.configurations


def _default(component, kind):
    if component is not None:
        return component
    from .decoder import CWGANDecoder
    from .encoder import SRVTransformer
    from .propagator import MDNPropagator

    return {"encoder": SRVTransformer, "propagator": MDNPropagator, "decoder": CWGANDecoder}[kind]()


def _frames(data):
    return data if isinstance(data, list) else [data]


def _project(traj, mean, coef):
    """``(traj - mean) @ coef`` block by block, with no float64 copy of all the frames."""
    blocks = [c @ coef for _, c in row_chunks(traj)]
    out = np.concatenate(blocks) if blocks else np.empty((0, coef.shape[1]))
    out -= mean @ coef
    return out


def _fit_decay(acf, step):
    """Fit ``A exp(-k step / t)`` to ``acf[1:]`` (``acf[k]`` at ``k`` steps); return ``t``.

    The fit runs from one step until the curve first falls below ``exp(-2)`` of its value at
    one step (at least three points), the range where the slowest exponential dominates.
    """
    from scipy.optimize import curve_fit

    a = np.asarray(acf[1:], dtype=np.float64)
    if len(a) < 3 or not a[0] > 0:
        return np.nan
    below = np.flatnonzero(a < a[0] * np.exp(-2))
    a = a[: max(below[0] + 1, 3)] if len(below) else a
    k = np.arange(1, len(a) + 1, dtype=np.float64)
    ratio = a[1] / a[0] if a[1] > 0 else np.exp(-1)
    guess = -1.0 / np.log(min(max(ratio, 1e-6), 1 - 1e-6))
    try:
        (amp, tau), _ = curve_fit(
            lambda k, amp, tau: amp * np.exp(-k / tau),
            k,
            a,
            p0=[a[0] * np.exp(1 / guess), guess],
            bounds=([0, 1e-9], [np.inf, np.inf]),
        )
    except RuntimeError:
        tau = guess
    return float(tau) * step


def _grid_timescales(trajs, step, n_blocks):
    """Relaxation time of each column on the time grid of ``step`` frames, with block errors."""

    def fit(data):
        longest = max(len(t) for t in data)
        acf = autocorrelation(data, longest - 1)[::step]
        return np.array([_fit_decay(acf[:, j], step) for j in range(acf.shape[1])])

    ts = fit(trajs)
    if n_blocks <= 1:
        return ts, np.full_like(ts, np.nan)
    blocks = [[np.array_split(t, n_blocks)[b] for t in trajs] for b in range(n_blocks)]
    return ts, block_average([fit(b) for b in blocks])[1]


def _relaxation_error(md, lss, lag_time):
    """Relative error of the simulation's relaxation time of column 0 against the MD's.

    ``md`` is in frames, ``lss`` in steps of ``lag_time`` frames. Where either cannot be
    measured (trajectories too short for the lag), the error counts as 1, with a warning.
    """
    t_md = _grid_timescales([t[:, :1] for t in md], lag_time, 1)[0][0]
    t_lss = _grid_timescales([t[:, :1] for t in lss], 1, 1)[0][0] * lag_time
    if not (np.isfinite(t_md) and np.isfinite(t_lss)) or t_md <= 0:
        warnings.warn(
            f"The relaxation time could not be measured (MD {t_md}, simulation {t_lss} "
            "frames): the held-out trajectories are too short for the lag time. The "
            "score counts it as a 100 % timescale error.",
            UserWarning,
            stacklevel=4,
        )
        return 1.0
    return abs(t_lss / t_md - 1.0)


class LatentSpaceSimulator(TransformerMixin, BaseEstimator):
    """A molecular latent space simulator (LSS): encode, propagate, decode.

    ``fit`` trains the three components in sequence: the encoder on the features ``X``, the
    propagator on the encoded trajectories (keeping their trajectory structure), and the
    decoder on pairs of latent points and configurations ``Y``. ``sample`` encodes start
    frames, samples long latent trajectories with the propagator and decodes every frame.

    Parameters
    ----------
    encoder : estimator, "passthrough" or None, default=None
        Maps features to latent coordinates (``fit``/``transform``). ``None`` means
        ``SRVTransformer()``; ``"passthrough"`` propagates in ``X`` directly, as in the
        paper's one-dimensional four-well test.
    propagator : estimator or None, default=None
        Learns and samples ``p(psi_{t+tau} | psi_t)`` (``fit``/``sample``/``score``). ``None``
        means ``MDNPropagator()``.
    decoder : estimator, "passthrough" or None, default=None
        Generates configurations from latent points (``fit(psi, Y)``/``sample``). ``None``
        means ``CWGANDecoder()``; ``"passthrough"`` gives a latent-only simulator.
    lag_time : int, default=None
        Sets ``lag_time`` of both encoder and propagator. ``None`` keeps their own values,
        which must then agree (an error names both otherwise): the simulator steps at the
        propagator's lag, and the encoder's coordinates are only slow at its own.
    observable : callable, transformer or None, default=None
        The fixed coordinates that :meth:`score`, :meth:`compare`, :meth:`ck_test` and the
        model-independent scorers compare MD and simulation on. ``None`` fits the leading
        two linear VAC (TICA) coordinates of the training features ``X`` at ``lag_time_``
        with deeptime, once, in ``fit``. A callable maps a feature trajectory
        ``(n_frames, n_features)`` to ``(n_frames, d)``; a fitted transformer is applied
        with ``transform``. Neither depends on the encoder, so scores are comparable across
        encoders, lag times and kernel counts. The simulator's features come from its
        latent points (passthrough encoder), from its decoded configurations (a decoder
        trained on ``X`` itself, ``Y=None``) or, otherwise, from the training frame nearest
        to each simulated latent point (up to 20,000 training frames are kept for this).
    scoring : str, default="fidelity"
        What :meth:`score` returns (higher is better): ``"fidelity"`` (the negated sum of the
        free-energy RMSE in kT and the relative error of the slowest relaxation time, both
        on the first observable coordinate and from one simulation: a model must get both
        the populations and the kinetics right; where held-out data are too short to measure
        a relaxation time, that term counts as 1, with a warning), ``"free_energy_rmse"``
        (negated, along the first observable coordinate, missing and extra states charged),
        ``"js_divergence"`` (negated, on the first two observable coordinates),
        ``"timescale_error"`` (negated relative error of the slowest relaxation time of the
        observable), ``"vamp2"`` or ``"log_likelihood"`` (the propagator's). Only the first
        four compare models with different lag times or encoders. A free-energy score alone
        cannot see wrong kinetics: an encoder that learns a fast mode can reproduce the
        populations while its simulation relaxes far too fast.
    random_state : int, RandomState instance or None, default=None
        When given, the three components get distinct seeds derived from it (overriding
        their own ``random_state``), and :meth:`score` simulates with a fixed seed.
    verbose : int, default=0
        0 is silent; 1 reports each stage and shows a progress bar while decoding.

    Attributes
    ----------
    encoder_, propagator_, decoder_ : estimator or "passthrough"
        Fitted clones of the components; the constructor arguments are never modified.
    lag_time_ : int
        The lag time in frames that the propagator advances per step.
    observable_mean_, observable_coef_ : ndarray
        The default observable, ``(X - observable_mean_) @ observable_coef_``: the leading
        TICA coordinates of the training features (only with ``observable=None``).
    n_features_in_ : int
        Number of features of ``X``.
    interrupted_ : str or None
        The stage in which ``fit`` was interrupted by Ctrl-C, or ``None``. An interrupted
        stage keeps its best weights and history; the later stages are not fitted.
    fit_seconds_ : dict
        Wall-clock seconds of each stage of the last ``fit``: ``"encoder"`` (its fit and the
        encoding of the training data), ``"propagator"``, ``"observable"`` (the fixed
        scoring coordinates) and ``"decoder"``, for the stages that ran, and ``"total"``.

    See Also
    --------
    sklss.SRVTransformer, sklss.MDNPropagator, sklss.CWGANDecoder

    Examples
    --------
    >>> from sklss import LatentSpaceSimulator, MDNPropagator
    >>> from sklss.datasets import four_well
    >>> X = four_well(200_000, stride=10, random_state=0)
    >>> lss = LatentSpaceSimulator(
    ...     "passthrough", MDNPropagator(n_kernels=4, max_epochs=3), "passthrough",
    ...     lag_time=10, random_state=0,
    ... ).fit(X)
    >>> lss.sample(X[:2], n_steps=100, random_state=0).latent.shape
    (2, 100, 1)
    """

    _parameter_constraints = {
        "encoder": [None, StrOptions({"passthrough"}), HasMethods(["fit", "transform"])],
        "propagator": [None, HasMethods(["fit", "sample"])],
        "decoder": [None, StrOptions({"passthrough"}), HasMethods(["fit", "sample"])],
        "lag_time": [Interval(Integral, 1, None, closed="left"), None],
        "observable": [None, callable, HasMethods(["transform"])],
        "scoring": [StrOptions(set(_SCORING))],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        encoder=None,
        propagator=None,
        decoder=None,
        *,
        lag_time=None,
        observable=None,
        scoring="fidelity",
        random_state=None,
        verbose=0,
    ):
        self.encoder = encoder
        self.propagator = propagator
        self.decoder = decoder
        self.lag_time = lag_time
        self.observable = observable
        self.scoring = scoring
        self.random_state = random_state
        self.verbose = verbose

    def _log(self, message):
        if self.verbose:
            print(f"[LatentSpaceSimulator] {message}", flush=True)

    def _component(self, kind, seed):
        est = _default(getattr(self, kind), kind)
        if isinstance(est, str):
            return est
        est = clone(est)
        params = est.get_params(deep=False)
        if self.lag_time is not None and kind in ("encoder", "propagator"):
            est.set_params(lag_time=self.lag_time)
        if self.random_state is not None and "random_state" in params:
            est.set_params(random_state=seed)
        return est

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, Y=None):
        """Fit the encoder on ``X``, the propagator on the encoded ``X``, the decoder on both.

        Parameters
        ----------
        X : array-like of shape (n_frames, n_features) or list of such arrays
            Trajectory data of features.
        Y : array-like of shape (n_frames, n_outputs) or list of such arrays, default=None
            Configurations, aligned with ``X`` frame by frame (trajectory by trajectory).
            ``None`` decodes to ``X`` itself.

        Returns
        -------
        self : LatentSpaceSimulator
        """
        trajs, is_list = check_trajectories(self, X, reset=True)
        X = as_output_form(trajs, is_list)
        seeds = derive_seeds(self.random_state, 3) if self.random_state is not None else [None] * 3
        self.encoder_ = self._component("encoder", seeds[0])
        self.propagator_ = self._component("propagator", seeds[1])
        self.decoder_ = self._component("decoder", seeds[2])
        self._check_one_lag()

        self.interrupted_ = None
        self.fit_seconds_ = {}
        start = clock = time.perf_counter()

        def lap(stage):
            nonlocal clock
            now = time.perf_counter()
            self.fit_seconds_[stage] = now - clock
            self.fit_seconds_["total"] = now - start
            clock = now

        if self.encoder_ == "passthrough":
            psi = X
        else:
            self._log(f"fitting the encoder {type(self.encoder_).__name__}")
            psi = self.encoder_.fit(X).transform(X)
            lap("encoder")
            if self._stop_after("encoder"):
                return self
        self._log(f"fitting the propagator {type(self.propagator_).__name__}")
        self.propagator_.fit(psi)
        self.lag_time_ = int(self.propagator_.lag_time)
        lap("propagator")
        self._fit_observable(trajs, psi, decodes_features=Y is None)
        lap("observable")
        if self._stop_after("propagator"):
            return self
        if self.decoder_ != "passthrough":
            self._log(f"fitting the decoder {type(self.decoder_).__name__}")
            self.decoder_.fit(psi, X if Y is None else Y)
            lap("decoder")
            self._stop_after("decoder")
        return self

    def _check_one_lag(self):
        """With ``lag_time=None`` the encoder and propagator must already agree on the lag."""
        if self.lag_time is not None or self.encoder_ == "passthrough":
            return
        lags = [getattr(c, "lag_time", None) for c in (self.encoder_, self.propagator_)]
        if None not in lags and lags[0] != lags[1]:
            raise ValueError(
                f"The encoder's lag_time={lags[0]} differs from the propagator's "
                f"lag_time={lags[1]}: the simulator would step at the propagator's lag while "
                "its coordinates were learned at the encoder's. Set lag_time on the "
                "LatentSpaceSimulator (it sets both) or give both components the same lag."
            )

    def _fit_observable(self, trajs, psi, *, decodes_features):
        """The fixed coordinates that scores compare MD and simulation on.

        By default the leading linear VAC (TICA) coordinates of the training features at the
        simulator's lag, fitted once here with deeptime; they do not depend on the encoder,
        so scores are comparable across encoders, lag times and kernel counts.
        """
        if self.observable is None:
            from deeptime.decomposition import TICA

            dim = min(_OBSERVABLE_DIM, trajs[0].shape[1])
            tica = TICA(lagtime=self.lag_time_, dim=dim)
            # One thread: the same bits in joblib workers as in the caller (RELIABILITY 22).
            # The pairs go in chunks (one for small data, as fit(trajs) would stack them), so
            # memory-mapped features are never copied whole; trajectories shorter than the
            # lag give none, as the components skip them.
            with threadpool_limits(limits=1):
                for chunk in lagged_chunks(trajs, self.lag_time_):
                    tica.partial_fit(chunk)
                model = tica.fetch_model()
            coef = model.singular_vectors_left[:, : model.output_dimension]
            projected = np.concatenate([_project(t, model.mean_0, coef) for t in trajs])
            extreme = projected[np.argmax(np.abs(projected), axis=0), np.arange(coef.shape[1])]
            self.observable_mean_ = np.asarray(model.mean_0, dtype=np.float64)
            self.observable_coef_ = coef * np.where(extreme < 0, -1.0, 1.0)
        # Whether sampled configurations are features that the observable applies to.
        self._decodes_features = bool(decodes_features) and self.decoder_ != "passthrough"
        self._lookup_latent = self._lookup_observed = None
        if self.encoder_ != "passthrough" and not self._decodes_features:
            lengths = np.cumsum([0] + [len(t) for t in trajs])
            every = max(1, -(-lengths[-1] // _LOOKUP_FRAMES))
            rows = np.arange(0, lengths[-1], every)
            which = np.searchsorted(lengths, rows, side="right") - 1
            frames = np.stack([trajs[w][r - lengths[w]] for w, r in zip(which, rows)])
            latent = _frames(psi)
            self._lookup_latent = np.stack(
                [latent[w][r - lengths[w]] for w, r in zip(which, rows)]
            ).astype(np.float64)
            self._lookup_observed = self._observe([frames])[0]

    def _stop_after(self, kind):
        """After Ctrl-C in a stage: keep what was trained, skip the later stages, and warn."""
        net = getattr(getattr(self, kind + "_"), "net_", None)
        if not getattr(net, "interrupted_", False):
            return False
        self.interrupted_ = kind
        stages = ("encoder", "propagator", "decoder")
        later = [
            k for k in stages[stages.index(kind) + 1 :] if getattr(self, k + "_") != "passthrough"
        ]
        warnings.warn(
            f"Fitting was interrupted in the {kind}; it keeps its best weights so far"
            + (f", and the {' and '.join(later)} were not fitted" if later else "")
            + ". Call fit again to finish.",
            UserWarning,
            stacklevel=3,
        )
        return True

    def transform(self, X):
        """Latent coordinates of trajectory data (the encoder's output, or ``X``)."""
        check_is_fitted(self)
        trajs, is_list = check_trajectories(self, X, reset=False)
        X = as_output_form(trajs, is_list)
        return X if self.encoder_ == "passthrough" else self.encoder_.transform(X)

    def sample(
        self,
        X0,
        n_steps,
        random_state=None,
        *,
        decode=True,
        out=None,
        n_jobs=None,
    ):
        """Generate trajectories from start frames.

        Parameters
        ----------
        X0 : array-like of shape (n_starts, n_features)
            Start frames in feature space, one per trajectory.
        n_steps : int
            Frames per trajectory, step 0 included; consecutive frames are ``lag_time_``
            frames of the training data apart.
        random_state : int, RandomState instance or None, default=None
            Seeds propagation and decoding; the same int gives identical samples.
        decode : bool, default=True
            Decode the latent trajectories into configurations (ignored with a passthrough
            decoder).
        out : str or path-like, default=None
            A directory to stream the results into, as ``latent.npy`` and
            ``configurations.npy`` (memory-mapped ``.npy`` files), for runs larger than
            memory. The arrays in the result are then read-only memory maps of those files.
        n_jobs : int, default=None
            Propagate blocks of start frames in parallel joblib workers (and so on a Dask
            cluster under ``joblib.parallel_backend("dask")``). Trajectories are split into
            fixed blocks of 256 with their own derived seeds, so the samples do not depend on
            ``n_jobs``.

        Returns
        -------
        result : SimulationResult
            ``.latent`` of shape (n_starts, n_steps, n_components) and ``.configurations``
            of shape (n_starts, n_steps, n_outputs) or ``None``.
        """
        check_is_fitted(self)
        starts, is_list = check_trajectories(self, X0, reset=False, name="X0")
        if is_list:
            raise ValueError("X0 must be one 2-D array of start frames, not a list.")
        psi0 = starts[0] if self.encoder_ == "passthrough" else self.encoder_.transform(starts[0])
        seed_p, seed_d = derive_seeds(random_state, 2)
        decode = decode and self.decoder_ != "passthrough"
        latent_out = None
        folder = None
        if out is not None:
            folder = Path(out)
            folder.mkdir(parents=True, exist_ok=True)
            shape = (len(psi0), int(n_steps), psi0.shape[1])
            latent_out = open_memmap(
                folder / "latent.npy", mode="w+", dtype=psi0.dtype, shape=shape
            )
        self._log(f"sampling {len(psi0)} x {n_steps} latent steps")
        latent, wall_hit_rate = self._propagate(psi0, int(n_steps), seed_p, latent_out, n_jobs)
        if folder is not None:
            latent.flush()
            del latent, latent_out
            latent = np.load(folder / "latent.npy", mmap_mode="r")
        configurations = None
        if decode:
            path = None if folder is None else folder / "configurations.npy"
            configurations = self._decode(latent, seed_d, path)
        return SimulationResult(latent, configurations, self.lag_time_, wall_hit_rate)

    def _propagate(self, psi0, n_steps, seed, out, n_jobs):
        """Latent trajectories, block by block of start frames, in order or in parallel.

        Returns the trajectories and the fraction of draws rejected at the walls of the
        training box over all blocks (``None`` if the propagator does not count them); one
        warning covers the whole run.
        """
        import inspect

        from joblib import Parallel, delayed

        blocks = [slice(s, s + _STARTS_PER_BLOCK) for s in range(0, len(psi0), _STARTS_PER_BLOCK)]
        seeds = derive_seeds(seed, len(blocks))
        if out is None:
            out = np.empty((len(psi0), n_steps, psi0.shape[1]), dtype=psi0.dtype)
        sample = self.propagator_.sample
        counts = "return_wall_hits" in inspect.signature(sample).parameters
        extra = {"return_wall_hits": True} if counts else {}
        hits = draws = 0
        with warnings.catch_warnings():
            if counts:
                # Reported once below, for the whole run rather than block by block.
                warnings.filterwarnings("ignore", message=".*of the draws left the range")
            if n_jobs in (None, 1):
                # In order, each block written straight into ``out`` (which may be a memory map).
                for block, s in zip(blocks, seeds):
                    result = sample(psi0[block], n_steps, random_state=s, out=out[block], **extra)
                    if counts:
                        hits, draws = hits + result[1], draws + result[2]
            else:
                parts = Parallel(n_jobs=n_jobs)(
                    delayed(sample)(psi0[block], n_steps, random_state=s, **extra)
                    for block, s in zip(blocks, seeds)
                )
                for block, part in zip(blocks, parts):
                    if counts:
                        part, hits, draws = part[0], hits + part[1], draws + part[2]
                    out[block] = part
        if not counts:
            return out, None
        rate = hits / draws if draws else 0.0
        from .propagator import WALL_HIT_WARNING_RATE as threshold

        if rate > threshold:
            warnings.warn(
                f"{rate:.2%} of the propagator's draws left the range of the training data and "
                f"were rejected (more than {threshold:.0%}): the simulation keeps running into "
                "the edge of the training data, for example from start frames outside it.",
                UserWarning,
                stacklevel=3,
            )
        return out, rate

    def _decode(self, latent, seed, path):
        """Decode every latent frame, in chunks, into an array or straight into a file.

        A file is written sequentially with ordinary writes rather than through a memory map,
        so the written pages never count against this process's memory.
        """
        n_starts, n_steps, m = latent.shape
        n_outputs = self.decoder_.n_outputs_
        flat = latent.reshape(-1, m)
        total = len(flat)
        shape = (n_starts, n_steps, n_outputs)
        seeds = derive_seeds(seed, -(-total // _DECODE_CHUNK))
        progress = None
        if self.verbose:
            from tqdm.auto import tqdm

            progress = tqdm(total=total, desc="decoding", unit="frame")
        if path is None:
            result = np.empty(shape, dtype=latent.dtype)
            flat_out = result.reshape(total, n_outputs)
        else:
            header = open_memmap(path, mode="w+", dtype=latent.dtype, shape=shape)
            offset = header.offset
            del header
            handle = open(path, "r+b")
            handle.seek(offset)
        try:
            for i, start in enumerate(range(0, total, _DECODE_CHUNK)):
                chunk = np.array(flat[start : start + _DECODE_CHUNK])  # writable, for torch
                decoded = self.decoder_.sample(chunk, random_state=seeds[i])
                if path is None:
                    flat_out[start : start + len(chunk)] = decoded
                else:
                    handle.write(np.ascontiguousarray(decoded, dtype=latent.dtype).tobytes())
                if progress is not None:
                    progress.update(len(chunk))
        finally:
            if progress is not None:
                progress.close()
            if path is not None:
                handle.close()
        return result if path is None else np.load(path, mmap_mode="r")

    # --- scoring ----------------------------------------------------------------------------

    def _simulate_like(self, psi_trajs, random_state, n_steps=None):
        """Latent LSS trajectories from the first frame of each held-out trajectory.

        ``n_steps`` (propagator steps of one lag each) defaults to as many as cover the
        longest held-out trajectory.
        """
        starts = np.stack([t[0] for t in psi_trajs])
        if n_steps is None:
            longest = max(len(t) for t in psi_trajs)
            n_steps = max(2, -(-longest // self.lag_time_))
        else:
            n_steps = check_int("n_steps", n_steps, 2)
        return self.propagator_.sample(starts, int(n_steps), random_state=random_state)

    def _latent_trajs(self, X):
        psi = self.transform(X)
        return _frames(psi)

    def _score_seed(self, random_state):
        if random_state is not None:
            return random_state
        return derive_seeds(self.random_state, 1)[0] if self.random_state is not None else 0

    # --- the fixed observable ----------------------------------------------------------------

    def _observe(self, trajs):
        """The observable of feature trajectories (a list), as a list of 2-D float64 arrays."""
        out = []
        for t in trajs:
            if self.observable is None:
                with threadpool_limits(limits=1, user_api="blas"):
                    o = _project(t, self.observable_mean_, self.observable_coef_)
            elif hasattr(self.observable, "transform"):
                o = self.observable.transform(t)
            else:
                o = self.observable(t)
            o = np.asarray(o, dtype=np.float64)
            o = o[:, None] if o.ndim == 1 else o
            if o.ndim != 2 or len(o) != len(t) or not np.isfinite(o).all():
                raise ValueError(
                    "The observable must give one finite row per frame; got shape "
                    f"{o.shape} (finite: {bool(np.isfinite(o).all())}) for {len(t)} frames."
                )
            out.append(o)
        return out

    def _observe_synthetic(self, latent, seed):
        """The observable along synthetic latent trajectories ``(n_starts, n_steps, m)``.

        The simulator's own features where it has them: the latent points themselves with a
        passthrough encoder, or the decoded configurations when the decoder was trained on
        the features. Otherwise each latent point takes the observable of the training frame
        nearest to it in the latent space.
        """
        n_starts, n_steps, m = latent.shape
        if self.encoder_ == "passthrough":
            return self._observe(list(latent))
        if self._decodes_features:
            decoded = self._decode(latent, seed, None)
            return self._observe(list(decoded))
        from scipy.spatial import cKDTree

        tree = cKDTree(self._lookup_latent)
        _, index = tree.query(latent.reshape(-1, m).astype(np.float64), k=1)
        observed = self._lookup_observed[index]
        return list(observed.reshape(n_starts, n_steps, -1))

    def _md_and_simulation(self, X, n_steps, random_state, space):
        """Held-out MD and synthetic trajectories from its start frames, in ``space``."""
        if space not in ("observable", "latent"):
            raise ValueError(f"space must be 'observable' or 'latent'; got {space!r}.")
        check_is_fitted(self)
        trajs, is_list = check_trajectories(self, X, reset=False)
        psi = _frames(self.transform(as_output_form(trajs, is_list)))
        seed = self._score_seed(random_state)
        synthetic = self._simulate_like(psi, seed, n_steps)
        if space == "latent":
            return psi, list(synthetic)
        return self._observe(trajs), self._observe_synthetic(synthetic, seed)

    @staticmethod
    def _check_coordinate(coordinate, d, space):
        if isinstance(coordinate, Integral) and not isinstance(coordinate, bool):
            coordinate = [coordinate]
        coordinate = list(coordinate) if coordinate is not None else list(range(min(2, d)))
        if not coordinate or any(
            not isinstance(c, Integral) or isinstance(c, bool) or not 0 <= c < d for c in coordinate
        ):
            raise ValueError(
                f"coordinate must be an integer in [0, {d}) (the dimension of the {space}), or "
                f"a list of them; got {coordinate!r}."
            )
        return coordinate

    def compare(
        self,
        X,
        *,
        coordinate=0,
        space="observable",
        n_steps=None,
        bins=50,
        kT=1.0,
        max_free_energy=5.0,
        random_state=None,
    ):
        """Distribution scores of simulation against held-out MD, missing states included.

        Synthetic trajectories start from the first frame of each held-out trajectory. Both
        are projected on fixed coordinates and histogrammed on the same bins over the MD's
        range, with one more cell for everything outside it
        (:func:`sklss.metrics.compare_distributions`): a simulator that never visits a state
        of the MD, or puts mass where the MD has none, pays for it.

        Parameters
        ----------
        X : array-like of shape (n_frames, n_features) or list of them
            Held-out trajectory data.
        coordinate : int, list of int or None, default=0
            Which coordinates of ``space`` (one or two) to compare on; ``None`` takes the
            first two (or the only one).
        space : {"observable", "latent"}, default="observable"
            ``"observable"`` compares on coordinates that do not depend on the candidate:
            ``observable`` if given, else the leading TICA coordinates of the training
            features (``observable_coef_``). The simulator's features come from its latent
            points (passthrough encoder), its decoded configurations (a decoder trained on
            the features), or else the training frame nearest in the latent space.
            ``"latent"`` compares on the simulator's own latent coordinates: a diagnostic,
            not comparable between encoders or lag times.
        n_steps : int, default=None
            Length of each synthetic trajectory in propagator steps; ``None`` makes them as
            long as the longest held-out trajectory.
        bins : int, default=50
            Bins per coordinate.
        kT : float, default=1.0
            Thermal energy; free energies are in these units.
        max_free_energy : float or None, default=5.0
            Cap of the free-energy RMSE, in units of ``kT`` above the MD minimum: bins where
            either side is empty, or above the cap, count at the cap, and bins above it on
            both sides do not count (see :func:`sklss.metrics.free_energy_rmse`). ``None``
            puts the cap at the highest populated bin of either side, so that sparsely
            visited tails count too.
        random_state : int, RandomState instance or None, default=None
            Seeds the simulation; ``None`` uses a seed fixed by the simulator's
            ``random_state``, so the result is deterministic.

        Returns
        -------
        scores : dict
            ``free_energy_rmse``, ``js_divergence``, ``kl_divergence``, ``missing_mass``,
            ``extra_mass`` and ``outside_mass``, as in
            :func:`sklss.metrics.compare_distributions`.
        """
        md, lss = self._md_and_simulation(X, n_steps, random_state, space)
        cols = self._check_coordinate(coordinate, md[0].shape[1], space)
        md = np.concatenate([t[:, cols] for t in md])
        lss = np.concatenate([t[:, cols] for t in lss])
        return compare_distributions(md, lss, bins=bins, kT=kT, max_free_energy=max_free_energy)

    def vamp2_score(self, X):
        """VAMP-2 of held-out trajectory data under the encoder (at the encoder's lag).

        Values at different lag times are not comparable.
        """
        check_is_fitted(self)
        if self.encoder_ == "passthrough":
            return vamp2_score(self.transform(X), self.lag_time_)
        trajs, is_list = check_trajectories(self, X, reset=False)
        return self.encoder_.score(as_output_form(trajs, is_list))

    def implied_timescales(self, X, *, space="latent", n_steps=None, n_blocks=5, random_state=None):
        """Relaxation timescales of MD and of the LSS, from autocorrelation fits (in frames).

        With ``space="latent"`` (the paper's section 3.2), each latent coordinate of the
        held-out data ``X`` and of synthetic trajectories (started from the first frame of
        each held-out trajectory) gets an exponential fit to its autocorrelation; standard
        errors come from ``n_blocks`` contiguous blocks. This is a diagnostic: each
        candidate is measured along its own coordinates.

        With ``space="observable"`` both are measured on the fixed observable (see
        :meth:`compare`), on the simulator's time grid: the autocorrelation at multiples of
        ``lag_time_`` from one step on is fitted by ``A exp(-t / t_i)``, with a free
        amplitude ``A`` that absorbs the frame-to-frame scatter of decoded or looked-up
        features and fast processes within one lag. The figures are comparable across
        encoders, lag times and kernel counts.

        Parameters
        ----------
        X : array-like of shape (n_frames, n_features) or list of them
            Held-out trajectory data.
        space : {"latent", "observable"}, default="latent"
        n_steps : int, default=None
            Length of each synthetic trajectory in propagator steps (one lag time each).
            ``None`` makes them as long as the longest held-out trajectory. Longer runs shrink
            the LSS error bar; the MD one is set by the held-out data.
        n_blocks : int, default=5
            Blocks for the standard errors.
        random_state : int, RandomState instance or None, default=None
            Seeds the simulation; ``None`` uses a seed fixed by the simulator's
            ``random_state``, so the result is deterministic.

        Returns
        -------
        result : dict
            ``"md"``, ``"md_std_error"``, ``"lss"`` and ``"lss_std_error"``, each an array of
            shape (n_coordinates,), in frames of ``X``.
        """
        md, lss = self._md_and_simulation(X, n_steps, random_state, space)
        if space == "latent":
            t_md, se_md = autocorrelation_timescales(md, n_blocks=n_blocks)
            t_lss, se_lss = autocorrelation_timescales(lss, dt=self.lag_time_, n_blocks=n_blocks)
        else:
            lag = self.lag_time_
            t_md, se_md = _grid_timescales(md, lag, n_blocks)
            t_lss, se_lss = _grid_timescales(lss, 1, n_blocks)
            t_lss, se_lss = t_lss * lag, se_lss * lag
        return {"md": t_md, "md_std_error": se_md, "lss": t_lss, "lss_std_error": se_lss}

    def free_energy_rmse(
        self,
        X,
        *,
        coordinate=0,
        space="observable",
        n_steps=None,
        bins=50,
        kT=1.0,
        max_free_energy=5.0,
        random_state=None,
    ):
        """RMSE (in kT) between MD and LSS free-energy profiles, missing states included.

        The ``"free_energy_rmse"`` entry of :meth:`compare` (see there for the parameters):
        by default along the first fixed observable coordinate, so models with different
        encoders and lag times are compared on the same coordinate, and bins that only one
        side populates count at the cap instead of being skipped.
        """
        return self.compare(
            X,
            coordinate=coordinate,
            space=space,
            n_steps=n_steps,
            bins=bins,
            kT=kT,
            max_free_energy=max_free_energy,
            random_state=random_state,
        )["free_energy_rmse"]

    def _fidelity(self, X):
        """Free-energy RMSE (kT) plus relative relaxation-time error, on observable 0.

        Both from one simulation of the held-out start frames; see :meth:`compare` and
        :meth:`implied_timescales` (``space="observable"``).
        """
        md, lss = self._md_and_simulation(X, None, None, "observable")
        rmse = compare_distributions(
            np.concatenate([t[:, 0] for t in md]),
            np.concatenate([t[:, 0] for t in lss]),
            max_free_energy=5.0,
        )["free_energy_rmse"]
        return rmse + _relaxation_error(md, lss, self.lag_time_)

    def _timescale_error(self, X):
        """Relative relaxation-time error on observable 0 (the ``timescale_error`` score)."""
        md, lss = self._md_and_simulation(X, None, None, "observable")
        return _relaxation_error(md, lss, self.lag_time_)

    def ck_test(
        self,
        X,
        *,
        n_states=4,
        k_max=5,
        lag_time=None,
        coordinate=None,
        n_steps=None,
        n_samples=100,
        tolerance=0.05,
        random_state=None,
    ):
        """Chapman-Kolmogorov test of the simulator against held-out MD.

        The fixed observable of the MD (see :meth:`compare`) is cut into ``n_states``
        k-means states; synthetic trajectories from the held-out start frames are assigned to
        the same states. For ``k = 1..k_max`` the probability of staying in each state over
        ``k`` lag times is estimated from the MD directly, predicted by the MD's Markov state
        model at ``lag_time_`` and estimated from the simulation, with Bayesian error bars
        (deeptime); see :func:`sklss.markov.chapman_kolmogorov_test`. A simulator stepping
        at a lag too short to be Markovian relaxes at the wrong rate and fails.

        Parameters
        ----------
        X : array-like of shape (n_frames, n_features) or list of them
            Held-out trajectory data.
        n_states : int, default=4
            Number of states.
        k_max : int, default=5
            Largest multiple of the lag tested.
        lag_time : int, default=None
            Lag of the test in frames of ``X``: a multiple of ``lag_time_`` (the simulation
            is read every ``lag_time / lag_time_`` steps), so that simulators with different
            steps can be tested on one grid. ``None`` uses ``lag_time_``.
        coordinate : int or list of int, default=None
            Observable coordinates to cluster on; ``None`` uses the first (at most) two.
        n_steps : int, default=None
            Length of the synthetic trajectories in steps; ``None`` covers the held-out data.
        n_samples : int, default=100
            Bayesian samples for the error bars.
        tolerance : float, default=0.05
            Slack, in probability, around the MD interval for ``passed``.
        random_state : int, RandomState instance or None, default=None
            Seeds the simulation; ``None`` uses a seed fixed by the simulator's
            ``random_state``.

        Returns
        -------
        result : :class:`~sklearn.utils.Bunch`
            As :func:`sklss.markov.chapman_kolmogorov_test` (``lag_times`` in frames of
            ``X``; ``model`` is the simulator), with ``centers``, the state centres on the
            observable, and ``passed``. Plot it with :func:`sklss.plotting.ck_test`.
        """
        from .markov import chapman_kolmogorov_test, discretize

        md, lss = self._md_and_simulation(X, n_steps, random_state, "observable")
        d = md[0].shape[1]
        cols = self._check_coordinate(coordinate, d, "observable")
        md = [t[:, cols] for t in md]
        lss = [t[:, cols] for t in lss]
        if lag_time is None:
            lag_time = self.lag_time_
        if (
            isinstance(lag_time, bool)
            or not isinstance(lag_time, Integral)
            or lag_time < 1
            or lag_time % self.lag_time_
        ):
            raise ValueError(
                f"lag_time must be a positive multiple of the simulator's lag_time_="
                f"{self.lag_time_}; got {lag_time!r}."
            )
        every = lag_time // self.lag_time_
        md_states, centers = discretize(md, n_states)
        lss_states, _ = discretize([t[::every] for t in lss], n_states, fit_on=md)
        result = chapman_kolmogorov_test(
            md_states,
            int(lag_time),
            k_max=k_max,
            model_dtrajs=lss_states,
            n_states=n_states,
            n_samples=n_samples,
            tolerance=tolerance,
        )
        result.centers = centers
        return result

    def score(self, X, y=None):
        """Score on held-out trajectory data, higher is better; see ``scoring``.

        Deterministic: simulations inside use a seed fixed by ``random_state``.
        """
        from .model_selection import get_scorer

        check_is_fitted(self)
        return get_scorer(self.scoring)(self, X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
