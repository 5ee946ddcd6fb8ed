"""Latent space simulator of alanine dipeptide judged on held-out MD (OpenMM).

Two cases:

* ``--case rare`` (default): 400 K, where the flip of the backbone dihedral phi into
  alpha_L / C7ax (phi > 0) is a rare event, about 0.8 entries per ns with stays of about
  10 ps (``sklss.datasets.alanine_dipeptide_rare_event``). Training set: seeds of
  ``"train"``; every figure is measured against the independent ``"validation"`` set, and
  the synthetic trajectories start from validation frames.
* ``--case fast``: 300 K (``sklss.datasets.alanine_dipeptide``, seed 0), where the slowest
  sampled process is the psi rotamer; the first trajectories train, the last ones (other
  seeds) are held out.

Steps:

1. MD from the cache (generated on first use). Features: sin/cos of phi and psi plus the 45
   heavy-atom distances for the encoder; decoder targets are the heavy atoms' internal
   coordinates (``InternalCoordinates("heavy")``: bond lengths, angles, torsions), and, for
   comparison, their superposed Cartesian coordinates (``SuperposedCoordinates("heavy")``).
2. The lag: SRVs fitted on the training set at each lag of the scan, their implied
   timescales measured on the validation set with bootstrap error bars
   (``sklss.metrics.implied_timescales_vs_lag``). The lag is the shortest at which the slowest
   timescale agrees with that at the next lag within their error bars or ``--converged``.
   m: the largest gap between the eigenvalues at that lag, above the noise floor
   (``SRVTransformer(n_components="auto")``).
3. An LSS (SRV, MDN, cWGAN on internal coordinates) fitted on the training set; a second
   cWGAN on Cartesian coordinates on the same latent space (``--no-cartesian`` skips it).
   The MDN is chosen among fits with each start-density weighting of
   ``--density-weighting`` (0.5, 0.25 and 0) and ``--mdn-seeds`` seeds (2) on the training
   latent data: the one whose trajectories from training frames best keep the training MD's
   entries into and stays in alpha_L/C7ax, counted on psi_1 with the core sets carried over
   from phi (``--mdn-choice kinetics``), or the lowest ``rollout_error``
   (``--mdn-choice rollout``). Only training data enter the choice. ``--load-model`` keeps
   the encoder and decoder of a saved LSS and fits only the MDN candidates.
4. Synthetic trajectories from ``--n-starts`` validation frames, ``--factor`` times the
   validation set's time in all. The decoders decode the same latent trajectories.
5. Held-out MD against LSS: the alpha_L population, entries and stays (core sets: enter at
   0.3 < phi < 2.0 rad, leave at phi < -1 rad), the slowest timescale of a Markov model on
   (phi, psi) states with Bayesian error bars, free energies along phi, psi and psi_1..psi_m
   (bins missing in either count), the Ramachandran JS divergence (all, and phi > 0 alone),
   how well each psi_i separates phi > 0 from phi < 0 (ROC AUC), and the geometry of the
   decoded heavy atoms: each bond and bond angle (mean error, spread ratio), frames with a
   bond beyond 5 MD standard deviations, and the chirality of C-alpha.
6. Cost: a fresh MD run of ``--timing-ns`` and the LSS's generation, the same warm-up and
   repetitions, alternating, in this run; the break-even counts the training MD.

Prints Markdown tables and writes ``results/alanine_dipeptide_<case>.json`` with two
figures beside it (``--output`` moves them). ``--quick`` is a smoke run on tiny MD.

    python benchmarks/bench_alanine_dipeptide.py              # rare event, 400 K
    python benchmarks/bench_alanine_dipeptide.py --case fast  # 300 K
"""

import argparse
import time
from pathlib import Path

import mdtraj as md
import numpy as np
import torch
from _common import RESULTS, start_run, time_interleaved, write_result
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from sklss import (
    CWGANDecoder,
    InterpolantPropagator,
    LatentSpaceSimulator,
    MDNPropagator,
    SRVTransformer,
)
from sklss.datasets import (
    alanine_dipeptide,
    alanine_dipeptide_rare_event,
    alanine_dipeptide_structure,
)
from sklss.features import InternalCoordinates, SuperposedCoordinates, make_encoder_features
from sklss.markov import discretize, msm_timescales
from sklss.metrics import (
    excursion_statistics,
    free_energy_profile,
    free_energy_rmse,
    geometry_fidelity,
    implied_timescales_vs_lag,
    js_divergence,
)

ENTER, LEAVE = (0.3, 2.0), (-np.inf, -1.0)  # rad: the alpha_L / C7ax core sets
ANGLE_BINS = np.linspace(-np.pi, np.pi, 37)  # 10 degree bins
FE_CAP_KT = 7.0  # alpha_L holds about 1 % at 400 K: about 5 kT above the minimum
N_MSM_STATES = 24
MIN_TRAINING_ENTRIES = 20  # to rate MDN candidates by entries and stays

TARGETS = {
    "population_factor": 1.5,
    "entries_rel": 0.30,
    "stay_rel": 0.30,
    "msm_timescale_rel": 0.25,
    "free_energy_kT": 0.5,
    "rama_js": 0.05,
    "bond_mean_nm": 0.002,
    "angle_mean_deg": 2.0,
    "spread_ratio": (0.8, 1.25),
    "beyond_5sd_fraction": 0.001,
    "chirality_kept": 0.999,
}


# --- data ----------------------------------------------------------------------------------
def load_md(args):
    """Training and held-out MD trajectories (lists of mdtraj.Trajectory)."""
    if args.case == "rare":
        kw = dict(n_ns=args.n_ns, verbose=1)
        train = alanine_dipeptide_rare_event("train", n_trajectories=args.n_train, **kw)
        held = alanine_dipeptide_rare_event("validation", n_trajectories=args.n_held_out, **kw)
        return train, held
    trajs = alanine_dipeptide(
        args.n_ns, n_trajectories=args.n_train + args.n_held_out, random_state=0
    )
    return trajs[: args.n_train], trajs[args.n_train :]


def encoder(lag, m, args, seed=0):
    # A basis of 10 functions: with a basis of only m, training can settle on the psi
    # rotamer and miss the rarer, slower phi process (measured at m = 2).
    return SRVTransformer(
        lag,
        n_components=m,
        n_basis=10,
        hidden_layer_sizes=(100, 100),
        batch_size=4096,
        max_epochs=args.srv_epochs,
        random_state=seed,
    )


def propagator(args):
    """The MDN (the first count of ``--mdn-kernels`` and the first weighting of
    ``--density-weighting``, 2 x 100 ReLU, early-stopping patience ``--mdn-patience``) or the
    stochastic interpolant (its defaults, at most ``--mdn-epochs`` epochs), both trained on the
    pairs in both directions when ``--reversible`` (the default)."""
    if args.propagator == "interpolant":
        return InterpolantPropagator(max_epochs=args.mdn_epochs, reversible=args.reversible)
    return MDNPropagator(
        n_kernels=args.mdn_kernels[0],
        hidden_layer_sizes=(100, 100),
        max_epochs=args.mdn_epochs,
        patience=args.mdn_patience,
        n_init=args.mdn_n_init,
        reversible=args.reversible,
        density_weighting=args.density_weighting[0],
    )


def latent_core_sets(psi, phis):
    """The alpha_L/C7ax core sets carried onto psi_1: ``(sign, enter, leave)`` such that
    ``sign * psi_1`` enters at or above the 5th percentile of the training frames inside the
    phi core set and leaves at or below the 99th percentile of those in the leave set.
    ``None`` where the training MD enters alpha_L/C7ax fewer than ``MIN_TRAINING_ENTRIES``
    times: too few to rate a candidate by."""
    if excursion_statistics(phis, ENTER, LEAVE).n_entries < MIN_TRAINING_ENTRIES:
        return None
    z = np.concatenate(psi)[:, 0]
    phi = np.concatenate(phis)
    inside = z[(phi >= ENTER[0]) & (phi <= ENTER[1])]
    outside = z[phi <= LEAVE[1]]
    sign = 1.0 if np.median(inside) > np.median(outside) else -1.0
    enter = (float(np.quantile(sign * inside, 0.05)), np.inf)
    leave = (-np.inf, float(np.quantile(sign * outside, 0.99)))
    return sign, enter, leave


def kinetics_reference(train_psi, core, lag, n_starts):
    """What every candidate is rated against, built once: the training MD's excursions on
    the core sets carried onto psi_1 (at the simulator's step ``lag``) and the start
    frames the candidates' trajectories run from."""
    sign, enter, leave = core
    md = excursion_statistics([sign * p[::lag, 0] for p in train_psi], enter, leave, dt=lag)
    pool = np.concatenate(train_psi)
    starts = pool[np.random.default_rng(7).choice(len(pool), n_starts, replace=False)]
    return md, starts


def propagator_kinetics(mdn, core, reference, n_steps):
    """Entries and stays of trajectories the MDN generates from training frames, against
    the training MD's (``kinetics_reference``), on the alpha_L/C7ax core sets carried onto
    psi_1 (``latent_core_sets``), and the error that ranks candidate fits: the larger of
    ``|ln(entries ratio)|`` and ``|ln(stay ratio)|``. Training data only."""
    sign, enter, leave = core
    md, starts = reference
    sim = mdn.sample(starts, n_steps, random_state=8)
    lag = float(mdn.lag_time)
    gen = excursion_statistics([sign * t[:, 0] for t in sim], enter, leave, dt=lag)
    entries = gen.entries_per_time / md.entries_per_time
    stay = gen.mean_stay / md.mean_stay
    finite = np.isfinite([entries, stay]).all() and entries > 0 and stay > 0
    return {
        "md_entries_per_ns": md.entries_per_time * 1000.0,
        "md_mean_stay_ps": md.mean_stay,
        "entries_per_ns": gen.entries_per_time * 1000.0,
        "mean_stay_ps": gen.mean_stay,
        "error": float(max(abs(np.log(entries)), abs(np.log(stay)))) if finite else np.inf,
    }


def choose_propagator(lss, psi_train, train_phis, args, n_steps):
    """Fit the MDN for every kernel count (``--mdn-kernels``), start-density weighting
    (``--density-weighting``) and seed (``--mdn-seeds`` per setting) on the latent training
    data, and give the LSS the fit whose trajectories from training frames best keep the
    training MD's entries into and stays in alpha_L/C7ax (``propagator_kinetics``), or, with
    ``--mdn-choice rollout``, the lowest ``rollout_error``. Everything is rated on the
    training data with the same starts and seeds; the LSS's own fit is the first candidate
    unless the model was loaded. Returns the records for the JSON."""
    # The training settings come from the command line, also for a loaded model's MDN.
    base = lss.propagator_
    seed0 = int(base.random_state)
    training = {"max_epochs": args.mdn_epochs, "patience": args.mdn_patience}
    training["n_init"] = args.mdn_n_init
    core = latent_core_sets(psi_train, train_phis)
    if core is not None:
        reference = kinetics_reference(psi_train, core, int(base.lag_time), args.n_starts)
    choice = args.mdn_choice
    if core is None and choice == "kinetics":
        print(f"  fewer than {MIN_TRAINING_ENTRIES} entries in the training MD: rollout choice")
        choice = "rollout"
    fits = []
    for count in dict.fromkeys(args.mdn_kernels):
        for weighting in dict.fromkeys(args.density_weighting):
            for j in range(args.mdn_seeds):
                settings = {"n_kernels": count, "density_weighting": weighting}
                t0 = time.perf_counter()
                own = not args.load_model and not fits
                mdn = (
                    base
                    if own
                    else clone(base).set_params(**settings, **training, random_state=seed0 + j)
                )
                if not own:
                    mdn.fit(psi_train)
                seconds = time.perf_counter() - t0
                record = {**settings, "seed": seed0 + j, "fit_seconds": round(seconds, 1)}
                record["epochs_run"] = int(mdn.n_iter_)
                # Rated here on one rollout seed for all (n_init's own ratings use seeds
                # derived from each fit's, so they do not compare across candidates).
                record["rollout_error_kT"] = round(float(mdn.rollout_error(psi_train)), 4)
                record["training_kinetics"] = (
                    None if core is None else propagator_kinetics(mdn, core, reference, n_steps)
                )
                fits.append((mdn, record))
                k = record["training_kinetics"]
                if k is None:
                    print(f"  MDN {settings}, seed {seed0 + j}: {record}", flush=True)
                    continue
                print(
                    f"  MDN {count} kernels, weighting {weighting}, seed {seed0 + j}: "
                    f"{record['epochs_run']} epochs, rollout error "
                    f"{record['rollout_error_kT']} kT; "
                    f"on training data {k['entries_per_ns']:.2f} entries/ns (MD "
                    f"{k['md_entries_per_ns']:.2f}), stay {k['mean_stay_ps']:.1f} ps (MD "
                    f"{k['md_mean_stay_ps']:.1f}), error {k['error']:.3f}",
                    flush=True,
                )
    if choice == "kinetics":
        best = min(range(len(fits)), key=lambda i: fits[i][1]["training_kinetics"]["error"])
    else:
        best = min(range(len(fits)), key=lambda i: fits[i][1]["rollout_error_kT"])
    print(f"  kept candidate {best} (by {choice})")
    lss.propagator_ = fits[best][0]
    records = [r for _, r in fits]
    return {
        "choice": choice,
        "kept": best,
        "latent_core_sets": None
        if core is None
        else {"sign": core[0], "enter": core[1][0], "leave": core[2][1]},
        "candidates": records,
        "extra_fit_seconds": sum(r["fit_seconds"] for r in records),
    }


def choose_lag(X_train, X_held, args):
    """Held-out implied timescales at each lag of the scan; the plateau lag."""
    scan = implied_timescales_vs_lag(
        encoder(args.lags[0], args.scan_components, args),
        X_held,
        args.lags,
        X_train=X_train,
        n_bootstrap=100,
        random_state=0,
    )
    t, se = scan.timescales[:, 0], scan.std_error[:, 0]
    for i, lag in enumerate(args.lags):
        print(
            f"  lag {lag:4d} ps: t = {np.round(scan.timescales[i], 1)} ± "
            f"{np.round(scan.std_error[i], 1)} ps",
            flush=True,
        )
    chosen = None
    for i in range(len(args.lags) - 1):
        if not (np.isfinite(t[i]) and np.isfinite(t[i + 1]) and t[i] > args.lags[i + 1]):
            continue
        allowed = max(args.converged * t[i], 2 * np.hypot(se[i], se[i + 1]))
        if abs(t[i + 1] - t[i]) <= allowed:
            chosen = args.lags[i]
            break
    if chosen is None:
        chosen = args.lags[int(np.nanargmax(t))] if np.isfinite(t).any() else args.lags[0]
        print(f"  no plateau within the scan; using the lag of the longest timescale, {chosen}")
    return scan, chosen


# --- observables of heavy-atom trajectories ------------------------------------------------
def phi_psi(traj):
    return md.compute_phi(traj)[1][:, 0], md.compute_psi(traj)[1][:, 0]


def geometry_table(md_trajs, lss_trajs):
    """Per bond and bond angle: MD mean and spread, LSS mean error and spread ratio."""
    g = geometry_fidelity(md_trajs, lss_trajs)
    rows = []
    for kind, names, err, ratio, mean, sd in (
        ("bond", g.bond_names, g.bond_mean_error, g.bond_spread_ratio, "bond_mean", "bond_sd"),
        (
            "angle",
            g.angle_names,
            g.angle_mean_error,
            g.angle_spread_ratio,
            "angle_mean",
            "angle_sd",
        ),
    ):
        for j, name in enumerate(names):
            rows.append(
                {
                    "kind": kind,
                    "atoms": name,
                    "md_mean": float(g.reference_md[mean][j]),
                    "md_sd": float(g.reference_md[sd][j]),
                    "mean_error": float(err[j]),
                    "spread_ratio": float(ratio[j]),
                }
            )
    return {
        "rows": rows,
        "beyond_5sd_fraction": g.bond_outlier_fraction,
        "beyond_5sd_fraction_md": g.bond_outlier_fraction_reference,
        "stereocentres": g.stereocentres,
        "chirality_kept": g.chirality_kept,
        "chirality_kept_md": geometry_fidelity(md_trajs, md_trajs).chirality_kept,
    }


def rama_hist(phi, psi, mask=None):
    if mask is not None:
        phi, psi = phi[mask], psi[mask]
    return np.histogram2d(phi, psi, bins=[ANGLE_BINS, ANGLE_BINS])[0]


def fe_rmse(x_md, x_lss, edges):
    F_md, _ = free_energy_profile(np.concatenate(x_md), bins=edges)
    F_lss, _ = free_energy_profile(np.concatenate(x_lss), bins=edges)
    return free_energy_rmse(F_md, F_lss, max_free_energy=FE_CAP_KT), F_md, F_lss


def torus(phi, psi):
    return np.column_stack([np.cos(phi), np.sin(phi), np.cos(psi), np.sin(psi)])


def excursions(phis, dt):
    ex = excursion_statistics(phis, ENTER, LEAVE, dt=dt)
    return {
        "phi_positive_population": float(np.mean(np.concatenate(phis) > 0)),
        "core_population": ex.inside_fraction,
        "entries": ex.n_entries,
        "entries_per_ns": ex.entries_per_time * 1000.0,
        "mean_stay_ps": ex.mean_stay,
        "mean_stay_se_ps": ex.mean_stay_std_error,
        "total_ns": ex.total_time / 1000.0,
    }


def kinetics(md_angles, lss_angles, lss_dt, msm_lag, md_dt=1.0):
    """Population, entries, stays and the (phi, psi) Markov timescale at ``msm_lag`` (ps),
    MD (frames ``md_dt`` ps apart) against LSS (frames ``lss_dt`` ps apart).

    The simulator cannot show an excursion shorter than its step, so the MD's entries and
    stays are counted on its frames ``lss_dt`` apart, the simulator's time resolution
    (``md``); every MD frame is counted as well (``md_every_frame``)."""
    stride = max(1, int(round(lss_dt / md_dt)))
    out = {
        "md": excursions([a[::stride] for a, _ in md_angles], stride * md_dt),
        "md_every_frame": excursions([a for a, _ in md_angles], md_dt),
        "lss": excursions([a for a, _ in lss_angles], float(lss_dt)),
    }
    out["md"]["phi_positive_population"] = out["md_every_frame"]["phi_positive_population"]
    # States: k-means on (phi, psi) of held-out MD, embedded on the torus.
    md_dtrajs, centres = discretize([torus(*a) for a in md_angles], N_MSM_STATES, random_state=0)
    lss_dtrajs, _ = discretize(
        [torus(*a) for a in lss_angles], N_MSM_STATES, fit_on=[torus(*a) for a in md_angles]
    )
    ts_md = msm_timescales(md_dtrajs, int(round(msm_lag / md_dt)), dt=md_dt, n_samples=100)
    ts_lss = msm_timescales(
        lss_dtrajs, int(round(msm_lag / lss_dt)), dt=float(lss_dt), n_samples=100
    )
    for name, ts in (("md", ts_md), ("lss", ts_lss)):
        out[name].update(
            msm_timescale_ps=float(ts.timescales[0]),
            msm_timescale_se_ps=float(ts.std_error[0]),
            msm_timescale_interval_ps=[float(ts.lower[0]), float(ts.upper[0])],
            msm_states_connected=int(ts.n_states_connected),
        )
    out["msm"] = {"states": N_MSM_STATES, "lag_ps": float(msm_lag), "features": "cos/sin phi, psi"}
    return out


def separation(psi, phis):
    """ROC AUC of each latent coordinate (0.5: no separation; 1: perfect) for phi > 0, and
    for the alpha_L/C7ax basin alone (0 < phi < 2.6 rad: phi > 0 also holds the edge of the
    beta basin, which wraps around phi = 180 degrees)."""
    phi = np.concatenate(phis)
    z = np.concatenate(psi)
    out = {}
    for name, y in (("phi_positive", phi > 0), ("alpha_l_basin", (phi > 0) & (phi < 2.6))):
        if y.all() or not y.any():
            out[name] = [float("nan")] * z.shape[1]
            continue
        auc = [float(roc_auc_score(y, z[:, i])) for i in range(z.shape[1])]
        out[name] = [max(a, 1 - a) for a in auc]
    return out


def decoder_alone(decoder, internal, psi_held, md_angles, msm_lag):
    """Kinetics of structures decoded from the held-out MD's own latent trajectory: the
    decoder's share of any kinetic error, apart from the propagator's. Entries, stays and
    the (phi, psi) Markov timescale, as in ``kinetics``."""
    decoded = internal.inverse_transform(list(decoder.sample(psi_held, random_state=4)))
    k = kinetics(md_angles, [phi_psi(t) for t in decoded], 1.0, msm_lag)
    return {"md": k["md"], "decoded_md_latent": k["lss"]}


def main():
    args = parse_args()
    torch.set_num_threads(1)
    run = start_run()
    out = Path(args.output or RESULTS / f"alanine_dipeptide_{args.case}.json")
    out.parent.mkdir(parents=True, exist_ok=True)

    # --- 1. MD and features -----------------------------------------------------------
    t0 = time.perf_counter()
    train, held = load_md(args)
    load_s = time.perf_counter() - t0
    train_ns = sum(t.n_frames for t in train) / 1000.0
    held_ns = sum(t.n_frames for t in held) / 1000.0
    print(
        f"MD ({args.case}): train {len(train)} x {args.n_ns} ns, held out {len(held)} x "
        f"{args.n_ns} ns (loaded in {load_s:.0f} s)"
    )
    features = make_encoder_features("heavy")
    X_train = features.fit_transform(train)
    X_held = features.transform(held)
    internal = InternalCoordinates("heavy").fit(train)
    Y_int = internal.transform(train)
    cartesian = SuperposedCoordinates("heavy", reference=alanine_dipeptide_structure())
    Y_cart = cartesian.fit_transform(train)

    # --- 2. lag and m -----------------------------------------------------------------
    t0 = time.perf_counter()
    if args.load_model:
        import joblib

        loaded = joblib.load(args.load_model)
        scan, lag = None, int(loaded.lag_time_)
        print(f"encoder and decoder loaded from {Path(args.load_model).name}: lag {lag} ps")
    elif args.lag is None:
        print("held-out implied-timescale scan:")
        scan, lag = choose_lag(X_train, X_held, args)
    else:
        scan, lag = None, args.lag
    scan_s = time.perf_counter() - t0
    m = args.m if args.m is not None else "auto"
    print(f"chosen lag {lag} ps; m = {m} ({scan_s:.0f} s)")

    # --- 3. LSS -----------------------------------------------------------------------
    n_steps = int(np.ceil(args.factor * held_ns * 1000.0 / lag / args.n_starts))
    t0 = time.perf_counter()
    if args.load_model:
        lss = loaded
    else:
        lss = LatentSpaceSimulator(
            encoder(lag, m, args),
            propagator(args),
            CWGANDecoder(max_epochs=args.gan_epochs),
            lag_time=lag,
            random_state=0,
        )
        lss.fit(X_train, Y_int)
    fit_s = time.perf_counter() - t0
    m = lss.encoder_.n_components_
    psi_train = lss.transform(X_train)
    train_angles = [phi_psi(t.atom_slice(internal.atom_indices_)) for t in train]
    choice = None
    if args.propagator == "mdn":
        t0 = time.perf_counter()
        choice = choose_propagator(lss, psi_train, [a for a, _ in train_angles], args, n_steps)
        fit_s += time.perf_counter() - t0
    cart_decoder, cart_fit_s = None, None
    if args.cartesian:
        t0 = time.perf_counter()
        cart_decoder = CWGANDecoder(max_epochs=args.gan_epochs, random_state=0)
        cart_decoder.fit(psi_train, Y_cart)
        cart_fit_s = time.perf_counter() - t0
    cart = "not fitted" if cart_fit_s is None else f"{cart_fit_s:.0f} s"
    print(f"LSS fitted in {fit_s:.0f} s (m = {m}); Cartesian decoder {cart}")
    if args.save_model:
        import joblib

        joblib.dump(lss, args.save_model)

    # --- 4. synthetic trajectories from held-out frames -------------------------------------
    rng = np.random.default_rng(1)
    pooled = np.concatenate(X_held)
    starts = pooled[rng.choice(len(pooled), args.n_starts, replace=False)]
    state = {}

    def generate():
        state["sim"] = lss.sample(starts, n_steps, random_state=2)

    def fresh_md():
        alanine_dipeptide(
            args.timing_ns,
            temperature=args.temperature,
            random_state=None,
            equilibration_ps=0.0,
            verbose=0,
        )

    timing = time_interleaved(
        {"md": fresh_md, "lss_generation": generate}, warmup=1, repeats=args.repeats
    )
    sim = state["sim"]
    lss_ns = args.n_starts * n_steps * lag / 1000.0
    decoded = {"internal": internal.inverse_transform(list(sim.configurations), dt=float(lag))}
    if cart_decoder is not None:
        decoded["cartesian"] = cartesian.inverse_transform(
            list(cart_decoder.sample(list(sim.latent), random_state=3)), dt=float(lag)
        )

    # --- 5. held-out MD against LSS ---------------------------------------------------
    heavy = [t.atom_slice(internal.atom_indices_) for t in held]
    md_angles = [phi_psi(t) for t in heavy]
    psi_held = lss.transform(X_held)
    result = {
        "case": args.case,
        "temperature_K": args.temperature,
        "md": {
            "train_ns": train_ns,
            "held_out_ns": held_ns,
            "train_trajectories": len(train),
            "held_out_trajectories": len(held),
        },
        "lag_ps": lag,
        "m": int(m),
        "propagator": args.propagator,
        "loaded_model": Path(args.load_model).name if args.load_model else None,
        "density_weighting": (
            float(lss.propagator_.density_weighting) if args.propagator == "mdn" else None
        ),
        "mdn_training": (
            {
                "max_epochs": args.mdn_epochs,
                "patience": args.mdn_patience,
                "epochs_run": int(lss.propagator_.n_iter_),
                "n_kernels": int(lss.propagator_.n_kernels),
                "n_init": args.mdn_n_init,
                "choice": choice,
            }
            if args.propagator == "mdn"
            else None
        ),
        "scan": None
        if scan is None
        else {
            "lags_ps": [int(v) for v in scan.lag_times],
            "timescales_ps": scan.timescales.tolist(),
            "std_error_ps": scan.std_error.tolist(),
            "components": args.scan_components,
        },
        "srv_eigenvalues": lss.encoder_.eigenvalues_.tolist(),
        "srv_all_eigenvalues": np.asarray(lss.encoder_.all_eigenvalues_).tolist(),
        "latent_separation_auc": separation(psi_held, [a for a, _ in md_angles]),
        "decoder_alone": decoder_alone(lss.decoder_, internal, psi_held, md_angles, lag),
        "targets": TARGETS,
        "decoders": {},
    }
    psi_edges = [
        np.linspace(np.concatenate(psi_held)[:, i].min(), np.concatenate(psi_held)[:, i].max(), 51)
        for i in range(m)
    ]
    fe_latent = [
        fe_rmse([p[:, i] for p in psi_held], [p[:, i] for p in sim.latent], psi_edges[i])[0]
        for i in range(m)
    ]
    result["free_energy_rmse_kT"] = {f"psi_{i + 1}": v for i, v in enumerate(fe_latent)}
    profiles = {}
    for name, trajs in decoded.items():
        lss_angles = [phi_psi(t) for t in trajs]
        entry = {"kinetics": kinetics(md_angles, lss_angles, lag, lag)}
        for k, axis in ((0, "phi"), (1, "psi")):
            rmse, F_md, F_lss = fe_rmse(
                [a[k] for a in md_angles], [a[k] for a in lss_angles], ANGLE_BINS
            )
            entry[f"free_energy_rmse_{axis}_kT"] = rmse
            profiles[(name, axis)] = (F_md, F_lss)
        H_md = sum(rama_hist(a, b) for a, b in md_angles)
        H_lss = sum(rama_hist(a, b) for a, b in lss_angles)
        H_md_pos = sum(rama_hist(a, b, a > 0) for a, b in md_angles)
        H_lss_pos = sum(rama_hist(a, b, a > 0) for a, b in lss_angles)
        entry["rama_js"] = js_divergence(H_md, H_lss)
        entry["rama_js_phi_positive"] = (
            js_divergence(H_md_pos, H_lss_pos) if H_lss_pos.sum() else float("nan")
        )
        entry["geometry"] = geometry_table(heavy, trajs)
        result["decoders"][name] = entry
        profiles[(name, "rama")] = (H_md, H_lss)
    # The training MD itself against the held-out MD, on the same measures: how far two
    # independent MD sets of this size differ, and what the simulator was shown.
    result["training_md_vs_held_out"] = {
        "kinetics": kinetics(md_angles, train_angles, 1.0, lag),
        "rama_js": js_divergence(
            sum(rama_hist(a, b) for a, b in md_angles),
            sum(rama_hist(a, b) for a, b in train_angles),
        ),
    }
    # A figure on training data, beside the held-out ones: the simulator from training
    # frames (the same number of starts and steps), decoded, against the training MD. It
    # tells a shortfall the propagator has on the data it learned from apart from one that
    # appears only on held-out MD.
    train_pool = np.concatenate(X_train)
    pick = np.random.default_rng(5).choice(len(train_pool), args.n_starts, replace=False)
    train_starts = train_pool[pick]
    from_train = lss.sample(train_starts, n_steps, random_state=6)
    from_train_angles = [
        phi_psi(t)
        for t in internal.inverse_transform(list(from_train.configurations), dt=float(lag))
    ]
    result["training_starts_vs_training_md"] = {
        "kinetics": kinetics(train_angles, from_train_angles, lag, lag)
    }
    # Floors: the held-out MD's two halves against each other.
    half = len(heavy) // 2
    if half:
        result["md_halves"] = {
            "kinetics": kinetics(md_angles[:half], md_angles[half:], 1.0, lag),
            "rama_js": js_divergence(
                sum(rama_hist(a, b) for a, b in md_angles[:half]),
                sum(rama_hist(a, b) for a, b in md_angles[half:]),
            ),
        }
    md_s_per_ns = timing["md"]["best"] / args.timing_ns
    gen_s_per_ns = timing["lss_generation"]["best"] / lss_ns
    training_cost = train_ns * md_s_per_ns + fit_s + scan_s
    result["cost"] = {
        "all_times": timing,
        "md_seconds_per_ns": md_s_per_ns,
        "md_seconds_per_ns_median": timing["md"]["median"] / args.timing_ns,
        "lss_generation_seconds_per_ns": gen_s_per_ns,
        "generation_speedup": md_s_per_ns / gen_s_per_ns,
        "fit_seconds": fit_s,
        "scan_seconds": scan_s,
        "cartesian_decoder_fit_seconds": cart_fit_s,
        "training_md_seconds": train_ns * md_s_per_ns,
        "break_even_ns_counting_training_md": training_cost / (md_s_per_ns - gen_s_per_ns),
        "lss_ns": lss_ns,
        "n_starts": args.n_starts,
        "n_steps": n_steps,
    }
    print_tables(result)
    plot(result, profiles, scan, out)
    write_result(out, result, run)
    print(f"\nwrote {out}")


def _ratio(a, b):
    """a / b, nan where b is 0 or either is nan (tiny smoke runs see no excursion)."""
    return float(a) / float(b) if b and np.isfinite(b) and np.isfinite(a) else float("nan")


def _verdict(ok):
    return "met" if ok else "**missed**"


def print_tables(r):
    t = TARGETS
    lo, hi = t["spread_ratio"]
    print(
        f"\n### Alanine dipeptide, {r['case']} case ({r['temperature_K']:.0f} K): held-out MD "
        f"({r['md']['held_out_ns']:.0f} ns) against LSS (lag {r['lag_ps']} ps, m = {r['m']}, "
        f"{r['cost']['lss_ns']:.0f} ns)\n"
    )
    for name, auc in r["latent_separation_auc"].items():
        print(f"latent separation of {name} (ROC AUC per psi_i): {np.round(auc, 3).tolist()}")
    d, dm = r["decoder_alone"]["decoded_md_latent"], r["decoder_alone"]["md"]
    print(
        f"decoded from the held-out MD's own latent trajectory: {d['entries_per_ns']:.2f} "
        f"entries per ns (MD {dm['entries_per_ns']:.2f}), mean stay {d['mean_stay_ps']:.1f} ps "
        f"(MD {dm['mean_stay_ps']:.1f})"
        + (
            f", Markov timescale {d['msm_timescale_ps']:.1f} ps (MD {dm['msm_timescale_ps']:.1f})"
            if "msm_timescale_ps" in d
            else ""
        )
    )
    tk = r["training_md_vs_held_out"]["kinetics"]
    print(
        f"training MD against held-out MD: phi > 0 population "
        f"{tk['lss']['phi_positive_population']:.2%} vs {tk['md']['phi_positive_population']:.2%}"
        f"; entries {tk['lss']['entries_per_ns']:.2f} ({tk['lss']['entries']}) vs "
        f"{tk['md']['entries_per_ns']:.2f} ({tk['md']['entries']}) per ns; mean stay "
        f"{tk['lss']['mean_stay_ps']:.1f} vs {tk['md']['mean_stay_ps']:.1f} ps; MSM timescale "
        f"{tk['lss']['msm_timescale_ps']:.1f} vs {tk['md']['msm_timescale_ps']:.1f} ps; "
        f"Ramachandran JS {r['training_md_vs_held_out']['rama_js']:.3f}"
    )
    fk = r["training_starts_vs_training_md"]["kinetics"]
    print(
        f"training data only: LSS from training frames against the training MD: phi > 0 "
        f"population {fk['lss']['phi_positive_population']:.2%} vs "
        f"{fk['md']['phi_positive_population']:.2%}; entries {fk['lss']['entries_per_ns']:.2f} "
        f"vs {fk['md']['entries_per_ns']:.2f} per ns; mean stay {fk['lss']['mean_stay_ps']:.1f} "
        f"vs {fk['md']['mean_stay_ps']:.1f} ps; MSM timescale "
        f"{fk['lss']['msm_timescale_ps']:.1f} vs {fk['md']['msm_timescale_ps']:.1f} ps"
    )
    for name, e in r["decoders"].items():
        k = e["kinetics"]
        kmd, kl = k["md"], k["lss"]
        pop_ratio = _ratio(kl["phi_positive_population"], kmd["phi_positive_population"])
        ent = _ratio(kl["entries_per_ns"], kmd["entries_per_ns"]) - 1
        stay = _ratio(kl["mean_stay_ps"], kmd["mean_stay_ps"]) - 1
        tsr = _ratio(kl["msm_timescale_ps"], kmd["msm_timescale_ps"]) - 1
        print(f"\n#### decoder targets: {name}\n")
        print("| measure | held-out MD | LSS | difference | target |")
        print("|---|---|---|---|---|")
        print(
            f"| phi > 0 population | {kmd['phi_positive_population']:.2%} | "
            f"{kl['phi_positive_population']:.2%} | x{pop_ratio:.2f} | within x1.5: "
            f"{_verdict(1 / t['population_factor'] <= pop_ratio <= t['population_factor'])} |"
        )
        print(
            f"| entries into alpha_L/C7ax per ns | {kmd['entries_per_ns']:.2f} "
            f"({kmd['entries']}) | {kl['entries_per_ns']:.2f} ({kl['entries']}) | {ent:+.0%} "
            f"| 30 %: {_verdict(abs(ent) <= t['entries_rel'])} |"
        )
        kev = k["md_every_frame"]
        print(
            f"| MD on every 1 ps frame: entries per ns, mean stay | {kev['entries_per_ns']:.2f},"
            f" {kev['mean_stay_ps']:.1f} ps | | | reported |"
        )
        print(
            f"| mean stay (ps) | {kmd['mean_stay_ps']:.1f} ± {kmd['mean_stay_se_ps']:.1f} | "
            f"{kl['mean_stay_ps']:.1f} ± {kl['mean_stay_se_ps']:.1f} | {stay:+.0%} | 30 %: "
            f"{_verdict(abs(stay) <= t['stay_rel'])} |"
        )
        print(
            f"| slowest (phi, psi) MSM timescale (ps) | {kmd['msm_timescale_ps']:.1f} "
            f"[{kmd['msm_timescale_interval_ps'][0]:.1f}, "
            f"{kmd['msm_timescale_interval_ps'][1]:.1f}] | {kl['msm_timescale_ps']:.1f} "
            f"[{kl['msm_timescale_interval_ps'][0]:.1f}, "
            f"{kl['msm_timescale_interval_ps'][1]:.1f}] | {tsr:+.0%} | 25 %: "
            f"{_verdict(abs(tsr) <= t['msm_timescale_rel'])} |"
        )
        fes = {"phi": e["free_energy_rmse_phi_kT"], "psi": e["free_energy_rmse_psi_kT"]}
        fes.update(r["free_energy_rmse_kT"])
        for axis, v in fes.items():
            print(
                f"| free energy along {axis}, RMSE (kT) | | | {v:.2f} | 0.5: "
                f"{_verdict(v <= t['free_energy_kT'])} |"
            )
        print(
            f"| Ramachandran JS (bits) | | | {e['rama_js']:.3f} | 0.05: "
            f"{_verdict(e['rama_js'] <= t['rama_js'])} |"
        )
        print(
            f"| Ramachandran JS, phi > 0 alone (bits) | | | {e['rama_js_phi_positive']:.3f} |"
            " reported |"
        )
        g = e["geometry"]
        bonds = [row for row in g["rows"] if row["kind"] == "bond"]
        angs = [row for row in g["rows"] if row["kind"] == "angle"]
        worst_b = max(abs(row["mean_error"]) for row in bonds)
        worst_a = max(abs(row["mean_error"]) for row in angs)
        sb = [row["spread_ratio"] for row in bonds]
        sa = [row["spread_ratio"] for row in angs]
        print(
            f"| bonds: largest mean error (nm) | | | {worst_b:.4f} | 0.002: "
            f"{_verdict(worst_b <= t['bond_mean_nm'])} |"
        )
        print(
            f"| bonds: spread ratio LSS/MD, range | | | {min(sb):.2f}-{max(sb):.2f} | "
            f"0.8-1.25: {_verdict(lo <= min(sb) and max(sb) <= hi)} |"
        )
        print(
            f"| angles: largest mean error (deg) | | | {worst_a:.2f} | 2: "
            f"{_verdict(worst_a <= t['angle_mean_deg'])} |"
        )
        print(
            f"| angles: spread ratio, range | | | {min(sa):.2f}-{max(sa):.2f} | 0.8-1.25: "
            f"{_verdict(lo <= min(sa) and max(sa) <= hi)} |"
        )
        print(
            f"| frames with a bond beyond 5 MD SD | {g['beyond_5sd_fraction_md']:.3%} | "
            f"{g['beyond_5sd_fraction']:.3%} | | 0.1 %: "
            f"{_verdict(g['beyond_5sd_fraction'] <= t['beyond_5sd_fraction'])} |"
        )
        print(
            f"| C-alpha chirality kept (L) | {g['chirality_kept_md']:.2%} | "
            f"{g['chirality_kept']:.3%} | | 99.9 %: "
            f"{_verdict(g['chirality_kept'] >= t['chirality_kept'])} |"
        )
    names = list(r["decoders"])
    print(f"\n#### per bond and angle ({', then '.join(names)} decoder)\n")
    print(
        "| item | MD mean | MD SD | "
        + " | ".join(f"error ({n}) | spread ({n})" for n in names)
        + " |"
    )
    print("|---|---|---|" + "---|---|" * len(names))
    rows = [r["decoders"][n]["geometry"]["rows"] for n in names]
    for items in zip(*rows):
        a = items[0]
        f = ".4f" if a["kind"] == "bond" else ".1f"
        print(
            f"| {a['kind']} {a['atoms']} | {a['md_mean']:{f}} | {a['md_sd']:{f}} | "
            + " | ".join(f"{b['mean_error']:+{f}} | {b['spread_ratio']:.2f}" for b in items)
            + " |"
        )
    c = r["cost"]
    print(
        f"\ncost: MD {c['md_seconds_per_ns']:.1f} s/ns (this run, best; median "
        f"{c['md_seconds_per_ns_median']:.1f}); LSS generation "
        f"{c['lss_generation_seconds_per_ns']:.3f} s/ns ({c['generation_speedup']:,.0f}x); "
        f"fit {c['fit_seconds']:.0f} s + scan "
        f"{c['scan_seconds']:.0f} s + training MD {c['training_md_seconds']:.0f} s: break-even "
        f"at {c['break_even_ns_counting_training_md']:.0f} ns of simulation"
    )


def plot(r, profiles, scan, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sklss.plotting import implied_timescales

    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    if scan is not None:
        implied_timescales(
            scan.lag_times, scan.timescales, scan.std_error, time_unit="ps", ax=axes[0]
        )
        axes[0].axvline(r["lag_ps"], color="k", ls="--", lw=1)
        axes[0].set_title(f"held-out implied timescales; lag {r['lag_ps']} ps")
    centres = np.degrees(0.5 * (ANGLE_BINS[1:] + ANGLE_BINS[:-1]))
    for ax, axis in ((axes[1], "phi"), (axes[2], "psi")):
        F_md, F_lss = profiles[("internal", axis)]
        for F, name, colour in ((F_md, "held-out MD", "k"), (F_lss, "LSS", "C3")):
            ok = np.isfinite(F)
            ax.plot(centres[ok], F[ok] - F[ok].min(), color=colour, label=name)
        ax.set(xlabel=f"{axis} (deg)", ylabel="free energy (kT)")
        ax.legend(fontsize=8)
    H_md, H_lss = profiles[("internal", "rama")]
    deg = np.degrees(ANGLE_BINS)
    with np.errstate(divide="ignore"):
        F = -np.log(H_lss / H_lss.sum())
    axes[3].pcolormesh(deg, deg, (F - F[np.isfinite(F)].min()).T, vmin=0, vmax=8)
    axes[3].set(xlabel="phi (deg)", ylabel="psi (deg)", title="LSS decoded, -ln p")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)
    plt.close(fig)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--case", choices=("rare", "fast"), default="rare")
    p.add_argument("--n-ns", type=float, default=10.0, help="ns per MD trajectory")
    p.add_argument("--n-train", type=int, default=None, help="training trajectories")
    p.add_argument("--n-held-out", type=int, default=None, help="held-out trajectories")
    p.add_argument("--timing-ns", type=float, default=0.2, help="fresh MD run timed, ns")
    p.add_argument("--lags", type=int, nargs="+", default=[1, 2, 3, 5, 8])
    p.add_argument("--scan-components", type=int, default=3)
    p.add_argument("--converged", type=float, default=0.1)
    p.add_argument("--lag", type=int, default=None, help="skip the scan and use this lag")
    p.add_argument("--m", type=int, default=None, help="latent dimension (default: the gap)")
    p.add_argument("--srv-epochs", type=int, default=60)
    p.add_argument("--mdn-epochs", type=int, default=300)
    p.add_argument(
        "--mdn-patience",
        type=int,
        default=30,
        help="MDN early-stopping patience in epochs (the learning rate is cut after a third)",
    )
    p.add_argument(
        "--mdn-kernels",
        type=int,
        nargs="+",
        default=[24],
        help="MDN kernel counts to choose from (see --mdn-choice)",
    )
    p.add_argument(
        "--mdn-seeds", type=int, default=2, help="MDN fits per kernel count and weighting"
    )
    p.add_argument(
        "--mdn-choice",
        choices=("kinetics", "rollout"),
        default="kinetics",
        help="rate the MDN candidates by alpha_L entries and stays on the training data, or "
        "by rollout_error",
    )
    p.add_argument(
        "--mdn-n-init",
        type=int,
        default=1,
        help="n_init of every MDN fit (the best by rollout error, inside each candidate)",
    )
    p.add_argument("--gan-epochs", type=int, default=100)
    p.add_argument(
        "--reversible",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="train the MDN on the pairs in both directions (equilibrium MD is reversible)",
    )
    p.add_argument("--propagator", choices=("mdn", "interpolant"), default="mdn")
    p.add_argument(
        "--density-weighting",
        type=float,
        nargs="+",
        default=[0.5, 0.25, 0.0],
        help="MDN start-density weighting exponents to choose from (0: plain maximum "
        "likelihood); the first is the LSS's own fit",
    )
    p.add_argument(
        "--cartesian",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also fit and judge a cWGAN on Cartesian coordinates",
    )
    p.add_argument("--save-model", default=None, help="joblib file for the fitted LSS")
    p.add_argument(
        "--load-model",
        default=None,
        help="an LSS saved by --save-model: keep its encoder, decoder and lag, and fit only "
        "the MDN candidates on its latent space (the training MD must be the same)",
    )
    p.add_argument("--n-starts", type=int, default=100)
    p.add_argument("--factor", type=float, default=5.0, help="synthetic / held-out MD time")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="tiny MD and epochs: a smoke run")
    p.add_argument("--output", default=None)
    args = p.parse_args()
    args.temperature = 400.0 if args.case == "rare" else 300.0
    if args.n_train is None:
        args.n_train = 12 if args.case == "rare" else 3
    if args.n_held_out is None:
        args.n_held_out = 12 if args.case == "rare" else 2
    if args.quick:
        args.n_ns, args.n_train, args.n_held_out, args.timing_ns = 0.2, 2, 2, 0.02
        args.lags = [1, 2]
        args.srv_epochs = args.mdn_epochs = args.gan_epochs = 2
        args.n_starts, args.repeats, args.factor = 10, 2, 2.0
    return args


if __name__ == "__main__":
    main()
