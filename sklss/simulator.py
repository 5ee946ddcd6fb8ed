"""The latent space simulator: encoder, propagator and decoder fitted and run as one."""

import warnings
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils.validation import check_is_fitted

from ._compat import HasMethods, Interval, StrOptions, _fit_context
from ._nn import derive_seeds
from ._validation import as_output_form, check_trajectories
from .metrics import (
    autocorrelation_timescales,
    free_energy_profile,
    free_energy_rmse,
    vamp2_score,
)

# Latent frames decoded per call when generating configurations: bounds the memory in use.
_DECODE_CHUNK = 262_144
# Trajectories per independently seeded block in sample: fixed, so that samples do not depend
# on how many workers propagate the blocks.
_STARTS_PER_BLOCK = 256
_SCORING = ("free_energy_rmse", "vamp2", "log_likelihood", "timescale_error")


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
    """

    latent: np.ndarray
    configurations: np.ndarray | None
    lag_time: int

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
        Sets ``lag_time`` of both encoder and propagator; ``None`` keeps their own values.
    scoring : str, default="free_energy_rmse"
        What :meth:`score` returns (higher is better): ``"free_energy_rmse"`` (negated, along
        psi_1), ``"timescale_error"`` (negated relative error of the slowest timescale),
        ``"vamp2"`` or ``"log_likelihood"`` (the propagator's). Only the first two compare
        models with different lag times.
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
    n_features_in_ : int
        Number of features of ``X``.
    interrupted_ : str or None
        The stage in which ``fit`` was interrupted by Ctrl-C, or ``None``. An interrupted
        stage keeps its best weights and history; the later stages are not fitted.

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
        scoring="free_energy_rmse",
        random_state=None,
        verbose=0,
    ):
        self.encoder = encoder
        self.propagator = propagator
        self.decoder = decoder
        self.lag_time = lag_time
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

        self.interrupted_ = None
        if self.encoder_ == "passthrough":
            psi = X
        else:
            self._log(f"fitting the encoder {type(self.encoder_).__name__}")
            psi = self.encoder_.fit(X).transform(X)
            if self._stop_after("encoder"):
                return self
        self._log(f"fitting the propagator {type(self.propagator_).__name__}")
        self.propagator_.fit(psi)
        self.lag_time_ = int(self.propagator_.lag_time)
        if self._stop_after("propagator"):
            return self
        if self.decoder_ != "passthrough":
            self._log(f"fitting the decoder {type(self.decoder_).__name__}")
            self.decoder_.fit(psi, X if Y is None else Y)
            self._stop_after("decoder")
        return self

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
        latent = self._propagate(psi0, int(n_steps), seed_p, latent_out, n_jobs)
        if folder is not None:
            latent.flush()
            del latent, latent_out
            latent = np.load(folder / "latent.npy", mmap_mode="r")
        configurations = None
        if decode:
            path = None if folder is None else folder / "configurations.npy"
            configurations = self._decode(latent, seed_d, path)
        return SimulationResult(latent, configurations, self.lag_time_)

    def _propagate(self, psi0, n_steps, seed, out, n_jobs):
        """Latent trajectories, block by block of start frames, in order or in parallel."""
        from joblib import Parallel, delayed

        blocks = [slice(s, s + _STARTS_PER_BLOCK) for s in range(0, len(psi0), _STARTS_PER_BLOCK)]
        seeds = derive_seeds(seed, len(blocks))
        if out is None:
            out = np.empty((len(psi0), n_steps, psi0.shape[1]), dtype=psi0.dtype)
        sample = self.propagator_.sample
        if n_jobs in (None, 1):
            # In order, each block written straight into ``out`` (which may be a memory map).
            for block, s in zip(blocks, seeds):
                sample(psi0[block], n_steps, random_state=s, out=out[block])
            return out
        parts = Parallel(n_jobs=n_jobs)(
            delayed(sample)(psi0[block], n_steps, random_state=s) for block, s in zip(blocks, seeds)
        )
        for block, part in zip(blocks, parts):
            out[block] = part
        return out

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
        elif not isinstance(n_steps, Integral) or isinstance(n_steps, bool) or n_steps < 2:
            raise ValueError(f"n_steps must be an integer of at least 2; got {n_steps!r}.")
        return self.propagator_.sample(starts, int(n_steps), random_state=random_state)

    def _latent_trajs(self, X):
        psi = self.transform(X)
        return _frames(psi)

    def _score_seed(self, random_state):
        if random_state is not None:
            return random_state
        return derive_seeds(self.random_state, 1)[0] if self.random_state is not None else 0

    def vamp2_score(self, X):
        """VAMP-2 of held-out trajectory data under the encoder (at the encoder's lag).

        Values at different lag times are not comparable.
        """
        check_is_fitted(self)
        if self.encoder_ == "passthrough":
            return vamp2_score(self.transform(X), self.lag_time_)
        trajs, is_list = check_trajectories(self, X, reset=False)
        return self.encoder_.score(as_output_form(trajs, is_list))

    def implied_timescales(self, X, *, n_steps=None, n_blocks=5, random_state=None):
        """Implied timescales of MD and of the LSS, from autocorrelation fits (in frames).

        Each latent coordinate of the held-out data ``X`` and of synthetic trajectories
        (started from the first frame of each held-out trajectory) gets an exponential fit to
        its autocorrelation, as in the paper's section 3.2; standard errors come from
        ``n_blocks`` contiguous blocks.

        Parameters
        ----------
        X : array-like of shape (n_frames, n_features) or list of them
            Held-out trajectory data.
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
            shape (n_components,), in frames of ``X``.
        """
        check_is_fitted(self)
        psi = self._latent_trajs(X)
        md, md_se = autocorrelation_timescales(psi, n_blocks=n_blocks)
        synthetic = self._simulate_like(psi, self._score_seed(random_state), n_steps)
        lss, lss_se = autocorrelation_timescales(
            list(synthetic), dt=self.lag_time_, n_blocks=n_blocks
        )
        return {"md": md, "md_std_error": md_se, "lss": lss, "lss_std_error": lss_se}

    def free_energy_rmse(
        self,
        X,
        *,
        coordinate=0,
        n_steps=None,
        bins=50,
        kT=1.0,
        max_free_energy=None,
        random_state=None,
    ):
        """RMSE (in kT) between MD and LSS free-energy profiles along one latent coordinate.

        Synthetic latent trajectories start from the first frame of each held-out trajectory;
        both profiles share ``bins`` bins over the held-out data's range, and the RMSE is taken
        over bins both populate, after the optimal additive shift
        (:func:`sklss.metrics.free_energy_rmse`).

        Parameters
        ----------
        X : array-like of shape (n_frames, n_features) or list of them
            Held-out trajectory data.
        coordinate : int, default=0
            The latent coordinate (0 is psi_1, the slowest).
        n_steps : int, default=None
            Length of each synthetic trajectory in propagator steps; ``None`` makes them as
            long as the longest held-out trajectory.
        bins : int, default=50
            Number of bins over the held-out range.
        kT : float, default=1.0
            Thermal energy; the RMSE is in these units.
        max_free_energy : float, default=None
            If given, only bins whose MD free energy is at most this far above the MD minimum
            count (in units of ``kT``): sparsely visited tails are noisy in both profiles.
        random_state : int, RandomState instance or None, default=None
            Seeds the simulation; ``None`` uses a seed fixed by the simulator's
            ``random_state``.
        """
        check_is_fitted(self)
        psi = self._latent_trajs(X)
        m = psi[0].shape[1]
        if not isinstance(coordinate, Integral) or not 0 <= coordinate < m:
            raise ValueError(
                f"coordinate must be an integer in [0, {m}) (the latent dimension); "
                f"got {coordinate!r}."
            )
        synthetic = self._simulate_like(psi, self._score_seed(random_state), n_steps)
        md = np.concatenate([t[:, coordinate] for t in psi])
        lss = synthetic[:, :, coordinate].ravel()
        lo, hi = md.min(), md.max()
        F_md, _ = free_energy_profile(md, bins=bins, range=(lo, hi), kT=kT)
        F_lss, _ = free_energy_profile(lss, bins=bins, range=(lo, hi), kT=kT)
        if max_free_energy is not None:
            max_free_energy = max_free_energy * kT
        return free_energy_rmse(F_md, F_lss, max_free_energy=max_free_energy)

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
