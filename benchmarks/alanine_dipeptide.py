"""Latent space simulator of alanine dipeptide against real MD (OpenMM), as in the LSS paper.

1. MD: 5 x 10 ns of Ace-Ala-Nme (AMBER ff96, OBC2 implicit solvent, 300 K, Langevin, 4 fs
   with hydrogen mass repartitioning, frames every 1 ps) from
   ``sklss.datasets.alanine_dipeptide``, read from the cache when it is there. The cost of MD
   is measured on a fresh, uncached run of ``--timing-ns``.
2. Features: sin/cos of phi and psi plus the 45 heavy-atom distances for the encoder
   (``make_encoder_features("heavy")``), the 10 heavy atoms superposed on the energy
   minimum for the decoder (``SuperposedCoordinates("heavy")``).
3. Lag and m from the convergence of the SRV's implied timescales over a scan of lag times
   (plot: ``results/alanine_dipeptide_its.png``). The lag is the shortest at which every
   resolved timescale (one longer than the lag) changes by less than ``--converged`` up to
   the next lag in the scan; m is the number of resolved timescales there.
4. An LSS (SRV, MDN, cWGAN) at that lag, sampling 50 trajectories whose decoded frames
   total 10x the MD frames (each step is one lag time, so they cover far more time).
5. MD against LSS, with standard errors from 5 blocks (the 5 MD trajectories; 5 groups of
   synthetic trajectories): free energy along psi_1, autocorrelation timescales of the
   latent coordinates, the (phi, psi) distribution of the decoded heavy atoms, decoded bond
   lengths, transitions of the slowest process, and wall times.

Cost: a fresh MD run of ``--timing-ns`` (the baseline) and the LSS's generation of its
trajectories get the same warm-up (one untimed call each) and the same number of timed calls
(``--repeats``), alternating; per-ns costs come from the best call, medians alongside.

Prints a Markdown table and writes ``results/alanine_dipeptide.json``,
``results/alanine_dipeptide.png`` and ``results/alanine_dipeptide_its.png`` (``--output``
moves all three). ``--quick`` is a smoke run on 2 x 0.05 ns of MD (cached like the rest;
point ``SKLSS_CACHE`` at a temporary folder to keep it out of the real cache).

    python benchmarks/alanine_dipeptide.py     # about 10 minutes once the MD is cached
"""

import argparse
import tempfile
import time
from pathlib import Path

import mdtraj as md
import numpy as np
import torch
from _common import RESULTS, start_run, time_interleaved, write_result

from sklss import CWGANDecoder, LatentSpaceSimulator, MDNPropagator, SRVTransformer
from sklss._trajectory_files import read_trajectory, write_trajectory
from sklss.datasets import alanine_dipeptide, alanine_dipeptide_structure
from sklss.features import SuperposedCoordinates, make_encoder_features
from sklss.metrics import (
    autocorrelation_timescales,
    block_average,
    free_energy_profile,
    free_energy_rmse,
    js_divergence,
)

N_BLOCKS = 5
RAMA_BINS = np.linspace(-np.pi, np.pi, 37)  # 10 degree bins


def encoder(lag, m, args, seed=0):
    return SRVTransformer(
        lag,
        n_components=m,
        hidden_layer_sizes=(100, 100),
        batch_size=4096,
        max_epochs=args.srv_epochs,
        random_state=seed,
    )


def timescale_scan(X, args):
    """SRV implied timescales (ps) at each lag of the scan; the lag and m they select."""
    scan = {}
    for lag in args.lags:
        t0 = time.perf_counter()
        srv = encoder(lag, 3, args).fit(X)
        scan[lag] = srv.timescales_.tolist()
        print(
            f"  lag {lag:4d} ps: t = {np.round(srv.timescales_, 1)} ps "
            f"({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    chosen, m = None, None
    for a, b in zip(args.lags[:-1], args.lags[1:]):
        ta, tb = np.array(scan[a]), np.array(scan[b])
        resolved = int(np.sum(ta > b))  # still slower than the next lag: resolved at both
        if resolved and np.all(np.abs(tb[:resolved] / ta[:resolved] - 1) < args.converged):
            chosen, m = a, resolved
            break
    if chosen is None:
        chosen = args.lags[-2]
        m = max(1, int(np.sum(np.array(scan[chosen]) > chosen)))
        print(f"  no lag met the convergence rule; using lag {chosen}, m = {m}")
    return scan, chosen, m


def plot_scan(scan, lag, m, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lags = np.array(sorted(scan))
    t = np.array([scan[k] for k in lags])
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for i in range(t.shape[1]):
        ax.plot(lags, t[:, i], "o-", label=f"$t_{i + 1}$")
    ax.fill_between(lags, 1e-1, lags, color="0.85", label="t < lag (not resolved)")
    ax.axvline(lag, color="k", ls="--", lw=1, label=f"chosen lag {lag} ps, m = {m}")
    ax.set(xscale="log", yscale="log", xlabel="lag time (ps)", ylabel="implied timescale (ps)")
    finite = t[np.isfinite(t)]  # all nan when no timescale is resolved (tiny data)
    top = finite.max() * 2 if finite.size and finite.max() > 0.5 else 10 * lags.max()
    ax.set_ylim(1, 10 ** np.ceil(np.log10(top)))
    ax.set_title("SRV implied timescales, alanine dipeptide MD")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def rama_hist(phi, psi):
    return np.histogram2d(phi, psi, bins=[RAMA_BINS, RAMA_BINS])[0]


def phi_psi(traj):
    return md.compute_phi(traj)[1][:, 0], md.compute_psi(traj)[1][:, 0]


def bond_lengths(traj):
    pairs = np.array([[a.index, b.index] for a, b in traj.topology.bonds])
    return md.compute_distances(traj, pairs)


def core_transitions(state):
    """Transitions between cores 0 and 1 of a state sequence (-1 between the cores): a
    path counts when it reaches the other core, so recrossings of the barrier do not."""
    visited = state[state >= 0]
    return int(np.sum(visited[1:] != visited[:-1]))


def psi1_states(x, lo, hi):
    state = np.full(len(x), -1)
    state[x < lo], state[x > hi] = 0, 1
    return state


def phi_states(phi):
    """Core 1: alpha_L and C7ax (20 < phi < 120 degrees); core 0: phi < -20 or phi > 150
    (C7eq, beta, PPII and alpha_R, whose beta region wraps around phi = +-180)."""
    phi = np.degrees(phi)
    state = np.full(len(phi), -1)
    state[(phi < -20) | (phi > 150)] = 0
    state[(phi > 20) & (phi < 120)] = 1
    return state


def cores_from_profile(F, edges):
    """Core boundaries around the highest barrier between the two deepest basins."""
    centres = 0.5 * (edges[1:] + edges[:-1])
    finite = np.where(np.isfinite(F), F, np.nanmax(F[np.isfinite(F)]) + 5)
    # Smooth a little so that noise does not make spurious minima.
    smooth = np.convolve(finite, np.ones(3) / 3, mode="same")
    minima = [
        i for i in range(1, len(F) - 1) if smooth[i] <= smooth[i - 1] and smooth[i] <= smooth[i + 1]
    ]
    if len(minima) < 2:
        mid = centres[len(centres) // 2]
        return mid - 0.05 * np.ptp(edges), mid + 0.05 * np.ptp(edges), mid
    two = sorted(sorted(minima, key=lambda i: smooth[i])[:2])
    barrier = two[0] + int(np.argmax(smooth[two[0] : two[1] + 1]))
    # Cores: the half of each basin nearer its minimum.
    lo = centres[two[0]] + 0.5 * (centres[barrier] - centres[two[0]])
    hi = centres[barrier] + 0.5 * (centres[two[1]] - centres[barrier])
    return lo, hi, centres[barrier]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-ns", type=float, default=10.0, help="ns per MD trajectory")
    p.add_argument("--n-trajectories", type=int, default=5)
    p.add_argument("--timing-ns", type=float, default=0.5, help="fresh MD run timed, ns")
    p.add_argument("--lags", type=int, nargs="+", default=[1, 2, 5, 10, 20, 50, 100])
    p.add_argument("--converged", type=float, default=0.15)
    p.add_argument("--lag", type=int, default=None, help="skip the scan and use this lag")
    p.add_argument("--m", type=int, default=None, help="with --lag: latent dimension")
    p.add_argument("--srv-epochs", type=int, default=60)
    p.add_argument("--mdn-epochs", type=int, default=100)
    p.add_argument("--gan-epochs", type=int, default=100)
    p.add_argument("--n-starts", type=int, default=50)
    p.add_argument("--factor", type=float, default=10.0, help="synthetic / MD frames")
    p.add_argument("--repeats", type=int, default=3, help="timed MD runs and LSS generations")
    p.add_argument(
        "--quick",
        action="store_true",
        help="2 x 0.05 ns of MD, 0.02 ns timed, lags 1 2, 2 epochs each, 10 starts",
    )
    p.add_argument("--output", default=str(RESULTS / "alanine_dipeptide.json"))
    args = p.parse_args()
    if args.quick:
        args.n_ns, args.n_trajectories, args.timing_ns, args.lags = 0.05, 2, 0.02, [1, 2]
        args.srv_epochs = args.mdn_epochs = args.gan_epochs = 2
        args.n_starts, args.repeats = 10, 2
    torch.set_num_threads(1)
    run = start_run()
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {}

    # --- 1. MD -------------------------------------------------------------------------
    t0 = time.perf_counter()
    trajs = alanine_dipeptide(args.n_ns, n_trajectories=args.n_trajectories, random_state=0)
    load_s = time.perf_counter() - t0
    md_ns = args.n_ns * args.n_trajectories
    n_md = sum(t.n_frames for t in trajs)
    print(f"MD: {args.n_trajectories} x {args.n_ns} ns, {n_md} frames (loaded in {load_s:.1f} s)")

    # --- 2. features -------------------------------------------------------------------
    features = make_encoder_features("heavy")
    X = features.fit_transform(trajs)
    superposed = SuperposedCoordinates("heavy", reference=alanine_dipeptide_structure())
    Y = superposed.fit_transform(trajs)
    print(f"features: X {X[0].shape[1]} (torsions + heavy-atom distances), Y {Y[0].shape[1]}")

    # --- 3. lag and m ------------------------------------------------------------------
    t0 = time.perf_counter()
    if args.lag is None:
        print("implied-timescale scan:")
        scan, lag, m = timescale_scan(X, args)
        plot_scan(scan, lag, m, out.with_name(out.stem + "_its.png"))
    else:
        scan, lag, m = {}, args.lag, args.m or 2
    scan_s = time.perf_counter() - t0
    print(f"chosen lag {lag} ps, m = {m} ({scan_s:.0f} s)")

    # --- 4. LSS ------------------------------------------------------------------------
    lss = LatentSpaceSimulator(
        encoder(lag, m, args),
        MDNPropagator(n_kernels=24, hidden_layer_sizes=(100, 100), max_epochs=args.mdn_epochs),
        CWGANDecoder(max_epochs=args.gan_epochs),
        lag_time=lag,
        random_state=0,
    )
    t0 = time.perf_counter()
    lss.fit(X, Y)
    fit_s = time.perf_counter() - t0
    n_steps = int(np.ceil(args.factor * n_md / args.n_starts))
    rng = np.random.default_rng(1)
    pooled = np.concatenate(X)
    starts = pooled[rng.choice(len(pooled), args.n_starts, replace=False)]
    state = {}

    def generate():
        state["sim"] = lss.sample(starts, n_steps, random_state=2)

    def fresh_md():
        # OpenMM's CPU platform, as sklss.datasets.alanine_dipeptide sets it up; not cached.
        alanine_dipeptide(args.timing_ns, random_state=None, equilibration_ps=0.0, verbose=0)

    # The baseline (fresh MD) and the LSS's generation: the same warm-up and repetitions.
    timing = time_interleaved(
        {"md": fresh_md, "lss_generation": generate}, warmup=1, repeats=args.repeats
    )
    sim = state["sim"]
    sample_s = timing["lss_generation"]["best"]
    md_s_per_ns = timing["md"]["best"] / args.timing_ns
    n_lss = sim.configurations.shape[0] * sim.configurations.shape[1]
    lss_ns = n_lss * lag / 1000.0
    print(
        f"LSS: fit {fit_s:.0f} s, sampled {args.n_starts} x {n_steps} steps = {n_lss} frames"
        f" ({lss_ns:.0f} ns) in {sample_s:.1f} s (best of {args.repeats}; median "
        f"{timing['lss_generation']['median']:.1f} s); fresh MD costs {md_s_per_ns:.1f} s/ns"
        f" (best of {args.repeats}; median {timing['md']['median'] / args.timing_ns:.1f} s/ns)"
    )

    # Decoded frames as heavy-atom trajectories; one written to DCD and read back.
    decoded = superposed.inverse_transform(sim.configurations, dt=float(lag))
    with tempfile.TemporaryDirectory() as tmp:
        path = write_trajectory(sim.configurations[0], superposed.topology_, Path(tmp) / "lss.dcd")
        assert read_trajectory(path, superposed.topology_).n_frames == n_steps

    # --- 5. MD against LSS -------------------------------------------------------------
    psi_md = lss.transform(X)
    psi_lss = list(sim.latent)
    lss_blocks = np.array_split(np.arange(args.n_starts), N_BLOCKS)

    # Free energy along psi_1 on 50 bins over the MD range.
    x_md = [t[:, 0] for t in psi_md]
    lo_x, hi_x = min(t.min() for t in x_md), max(t.max() for t in x_md)
    edges = np.linspace(lo_x, hi_x, 51)
    F_md, _ = free_energy_profile(x_md, bins=edges)
    F_lss, _ = free_energy_profile(sim.latent[:, :, 0], bins=edges)
    F_md_blocks = [free_energy_profile(t, bins=edges)[0] for t in x_md]
    F_lss_blocks = [free_energy_profile(sim.latent[b, :, 0], bins=edges)[0] for b in lss_blocks]
    fe = {}
    for name, cut in (("F_md<=4kT", 4.0), ("all_shared_bins", None)):
        rmse = free_energy_rmse(F_md, F_lss, max_free_energy=cut)
        per_block = [free_energy_rmse(F_md, f, max_free_energy=cut) for f in F_lss_blocks]
        floor = [free_energy_rmse(F_md, f, max_free_energy=cut) for f in F_md_blocks]
        fe[name] = {
            "rmse_kT": rmse,
            "lss_block_rmse_kT": block_average(per_block)[0],
            "lss_block_rmse_se_kT": block_average(per_block)[1],
            "md_block_rmse_kT": block_average(floor)[0],
            "md_block_rmse_se_kT": block_average(floor)[1],
        }

    # Implied timescales from autocorrelation fits of the latent coordinates (ps).
    t_md, t_md_se = autocorrelation_timescales(psi_md, n_blocks=N_BLOCKS)
    t_lss, t_lss_se = autocorrelation_timescales(psi_lss, dt=lag, n_blocks=N_BLOCKS)
    within = np.abs(t_lss - t_md) <= np.maximum(0.2 * t_md, np.hypot(t_md_se, t_lss_se))

    # Ramachandran distribution of the decoded heavy atoms.
    phi_md, psi_md_angle = zip(*(phi_psi(t) for t in trajs))
    H_md_blocks = [rama_hist(a, b) for a, b in zip(phi_md, psi_md_angle)]
    H_md = np.sum(H_md_blocks, axis=0)
    angles_lss = [phi_psi(t) for t in decoded]
    H_lss_traj = [rama_hist(a, b) for a, b in angles_lss]
    H_lss = np.sum(H_lss_traj, axis=0)
    js = js_divergence(H_md, H_lss)
    js_blocks = [
        js_divergence(H_md, np.sum([H_lss_traj[i] for i in b], axis=0)) for b in lss_blocks
    ]
    js_floor = [js_divergence(H_md, h) for h in H_md_blocks]

    # Bond lengths of the decoded heavy atoms against MD (nm).
    heavy_md = [t.atom_slice(superposed.atom_indices_) for t in trajs]
    b_md = np.concatenate([bond_lengths(t) for t in heavy_md])
    b_lss_traj = [bond_lengths(t) for t in decoded]
    b_lss = np.concatenate(b_lss_traj)
    mean_err = b_lss.mean(0) - b_md.mean(0)
    bond_rms = float(np.sqrt(np.mean(mean_err**2)))
    bond_blocks = [
        np.sqrt(np.mean((np.concatenate([b_lss_traj[i] for i in b]).mean(0) - b_md.mean(0)) ** 2))
        for b in lss_blocks
    ]
    bond_labels = [f"{a}/{b}" for a, b in superposed.topology_.bonds]

    # Transitions of the slowest process: cores of psi_1 around its highest barrier.
    core_lo, core_hi, barrier = cores_from_profile(F_md, edges)
    n_tr_md = [core_transitions(psi1_states(t, core_lo, core_hi)) for t in x_md]
    n_tr_lss = [core_transitions(psi1_states(t[:, 0], core_lo, core_hi)) for t in sim.latent]
    # The rare exchange with alpha_L / C7ax, along phi of MD and of the decoded structures.
    phi_tr_md = [core_transitions(phi_states(a)) for a in phi_md]
    phi_tr_lss = [core_transitions(phi_states(a)) for a, _ in angles_lss]
    alpha_l_md = float(np.mean(np.concatenate([phi_states(a) == 1 for a in phi_md])))
    alpha_l_lss = float(np.mean(np.concatenate([phi_states(a) == 1 for a, _ in angles_lss])))

    lss_gen_s_per_ns = sample_s / lss_ns
    result.update(
        md={
            "trajectories": args.n_trajectories,
            "ns_per_trajectory": args.n_ns,
            "frames": n_md,
            "seconds_per_ns_one_core": md_s_per_ns,
            "seconds_per_ns_one_core_median": timing["md"]["median"] / args.timing_ns,
            "timing_ns": args.timing_ns,
            "seconds_for_all_md_estimated": md_s_per_ns * md_ns,
        },
        timescale_scan_ps={str(k): v for k, v in scan.items()},
        lag_ps=lag,
        m=m,
        lss={
            "fit_seconds": fit_s,
            "scan_seconds": scan_s,
            "sample_seconds": sample_s,
            "sample_seconds_median": timing["lss_generation"]["median"],
            "trajectories": args.n_starts,
            "steps": n_steps,
            "frames": n_lss,
            "ns": lss_ns,
            "srv_timescales_ps": lss.encoder_.timescales_.tolist(),
            "epochs": {
                "srv": lss.encoder_.n_iter_ if hasattr(lss.encoder_, "n_iter_") else None,
                "mdn": lss.propagator_.n_iter_ if hasattr(lss.propagator_, "n_iter_") else None,
                "gan": lss.decoder_.n_iter_,
            },
        },
        free_energy_psi1=fe,
        free_energy_profile={
            "edges": edges.tolist(),
            "md": np.where(np.isfinite(F_md), F_md, None).tolist(),
            "lss": np.where(np.isfinite(F_lss), F_lss, None).tolist(),
        },
        timescales_ps={
            "md": t_md.tolist(),
            "md_se": t_md_se.tolist(),
            "lss": t_lss.tolist(),
            "lss_se": t_lss_se.tolist(),
            "relative_error": (t_lss / t_md - 1).tolist(),
            "within_20pct_or_error_bars": within.tolist(),
        },
        ramachandran_js_bits={
            "lss_vs_md": js,
            "lss_block_mean": block_average(js_blocks)[0],
            "lss_block_se": block_average(js_blocks)[1],
            "md_trajectory_vs_md_all_mean": block_average(js_floor)[0],
        },
        bond_lengths_nm={
            "bonds": bond_labels,
            "md_mean": b_md.mean(0).tolist(),
            "md_sd": b_md.std(0).tolist(),
            "lss_mean": b_lss.mean(0).tolist(),
            "lss_sd": b_lss.std(0).tolist(),
            "rms_error_of_means": bond_rms,
            "rms_error_block_se": block_average(bond_blocks)[1],
            "rms_error_of_sd": float(np.sqrt(np.mean((b_lss.std(0) - b_md.std(0)) ** 2))),
        },
        transitions={
            "psi1_cores": [core_lo, core_hi],
            "psi1_md": int(sum(n_tr_md)),
            "psi1_lss": int(sum(n_tr_lss)),
            "psi1_md_per_ns": sum(n_tr_md) / md_ns,
            "psi1_lss_per_ns": sum(n_tr_lss) / lss_ns,
            "phi_md": int(sum(phi_tr_md)),
            "phi_lss_decoded": int(sum(phi_tr_lss)),
            "phi_md_per_ns": sum(phi_tr_md) / md_ns,
            "phi_lss_per_ns": sum(phi_tr_lss) / lss_ns,
            "alpha_l_population_md": alpha_l_md,
            "alpha_l_population_lss": alpha_l_lss,
        },
        cost={
            "timing": (
                f"fresh MD of {args.timing_ns} ns and LSS generation: 1 untimed warm-up call "
                f"each, then {args.repeats} timed calls each, alternating; per-ns costs from "
                "the best call"
            ),
            "all_times": timing,
            "md_seconds_per_ns": md_s_per_ns,
            "lss_generation_seconds_per_ns": lss_gen_s_per_ns,
            "generation_speedup": md_s_per_ns / lss_gen_s_per_ns,
            "break_even_ns": fit_s / (md_s_per_ns - lss_gen_s_per_ns),
        },
    )

    # --- tables --------------------------------------------------------------------------
    fe4 = fe["F_md<=4kT"]
    print(f"\n### Alanine dipeptide: MD ({md_ns:.0f} ns) against LSS (lag {lag} ps, m = {m})\n")
    print("| measure | MD | LSS | difference | target |")
    print("|---|---|---|---|---|")
    print(
        f"| free energy along psi_1, RMSE (bins with F_MD <= 4 kT) | one MD trajectory vs all: "
        f"{fe4['md_block_rmse_kT']:.2f} ± {fe4['md_block_rmse_se_kT']:.2f} kT | | "
        f"{fe4['rmse_kT']:.2f} kT (blocks {fe4['lss_block_rmse_kT']:.2f} ± "
        f"{fe4['lss_block_rmse_se_kT']:.2f}) | <= 0.5 kT |"
    )
    fea = fe["all_shared_bins"]
    print(
        f"| free energy along psi_1, RMSE (all shared bins) | {fea['md_block_rmse_kT']:.2f} ± "
        f"{fea['md_block_rmse_se_kT']:.2f} kT | | {fea['rmse_kT']:.2f} kT | |"
    )
    for i in range(m):
        print(
            f"| t_{i + 1} (ps, autocorrelation fit) | {t_md[i]:.0f} ± {t_md_se[i]:.0f} | "
            f"{t_lss[i]:.0f} ± {t_lss_se[i]:.0f} | {t_lss[i] / t_md[i] - 1:+.0%} | "
            f"20 % or error bars: {'met' if within[i] else 'missed'} |"
        )
    print(
        f"| Ramachandran JS (decoded heavy atoms, bits) | one MD trajectory vs all: "
        f"{block_average(js_floor)[0]:.3f} | | {js:.3f} (blocks {block_average(js_blocks)[0]:.3f} "
        f"± {block_average(js_blocks)[1]:.3f}) | <= 0.05 |"
    )
    print(
        f"| bond lengths, RMS error of means (nm) | | | {bond_rms:.4f} ± "
        f"{block_average(bond_blocks)[1]:.4f} | <= 0.005 |"
    )
    worst = int(np.argmax(np.abs(mean_err)))
    print(
        f"| bond lengths, largest error of a mean (nm) | | | {mean_err[worst]:+.4f} "
        f"({bond_labels[worst]}) | |"
    )
    print(
        f"| bond-length spread, mean over bonds (nm) | {b_md.std(0).mean():.4f} | "
        f"{b_lss.std(0).mean():.4f} | RMS error {result['bond_lengths_nm']['rms_error_of_sd']:.4f}"
        " | |"
    )
    print(
        f"| transitions along psi_1 (per ns) | {sum(n_tr_md)} ({sum(n_tr_md) / md_ns:.2f}) | "
        f"{sum(n_tr_lss)} ({sum(n_tr_lss) / lss_ns:.2f}) | | reported |"
    )
    print(
        f"| transitions to and from alpha_L along phi (per ns) | {sum(phi_tr_md)} "
        f"({sum(phi_tr_md) / md_ns:.2f}) | {sum(phi_tr_lss)} ({sum(phi_tr_lss) / lss_ns:.2f}) |"
        " | reported |"
    )
    print(f"| alpha_L / C7ax population | {alpha_l_md:.2%} | {alpha_l_lss:.2%} | | reported |")
    print(
        f"| wall time | {md_s_per_ns * md_ns:.0f} s for {md_ns:.0f} ns (est.) | fit "
        f"{fit_s:.0f} s (+ scan {scan_s:.0f} s), sample {sample_s:.1f} s for {lss_ns:.0f} ns"
        f" | {md_s_per_ns / lss_gen_s_per_ns:,.0f}x faster per ns | reported |"
    )

    plot_results(result, F_md_blocks, F_lss_blocks, edges, F_md, F_lss, H_md, H_lss, out)
    write_result(out, result, run)
    print(f"\nwrote {out}")


def profile_std_error(F, blocks):
    """Per-bin standard error of a profile from block profiles, each shifted onto ``F``."""
    aligned = []
    for b in blocks:
        both = np.isfinite(b) & np.isfinite(F)
        shifted = np.where(np.isfinite(b), b, np.nan)
        aligned.append(shifted + (np.mean(F[both] - b[both]) if both.any() else np.nan))
    aligned = np.array(aligned)
    n = np.sum(np.isfinite(aligned), axis=0)
    dev = np.where(np.isfinite(aligned), aligned - F, 0.0)
    var = np.sum(dev**2, axis=0) / np.maximum(n - 1, 1)
    return np.where(n >= 2, np.sqrt(var / np.maximum(n, 1)), np.nan)


def plot_results(result, F_md_blocks, F_lss_blocks, edges, F_md, F_lss, H_md, H_lss, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centres = 0.5 * (edges[1:] + edges[:-1])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ax = axes[0]
    for F, blocks, label, colour in (
        (F_md, F_md_blocks, "MD", "k"),
        (F_lss, F_lss_blocks, "LSS", "C3"),
    ):
        shift = np.nanmin(np.where(np.isfinite(F), F, np.nan))
        ok = np.isfinite(F)
        se = profile_std_error(F, blocks)
        ax.plot(centres[ok], F[ok] - shift, color=colour, label=label)
        ax.fill_between(
            centres[ok], (F - shift - se)[ok], (F - shift + se)[ok], color=colour, alpha=0.25, lw=0
        )
    ax.set(xlabel=r"$\psi_1$", ylabel="free energy (kT)", ylim=(0, 8))
    rmse = result["free_energy_psi1"]["F_md<=4kT"]["rmse_kT"]
    ax.set_title(f"free energy along $\\psi_1$ (RMSE {rmse:.2f} kT)")
    ax.legend()
    deg = np.degrees(RAMA_BINS)
    for ax, H, title in ((axes[1], H_md, "MD"), (axes[2], H_lss, "LSS, decoded heavy atoms")):
        with np.errstate(divide="ignore"):
            F = -np.log(H / H.sum())
        F -= np.nanmin(F[np.isfinite(F)])
        mesh = ax.pcolormesh(deg, deg, F.T, vmin=0, vmax=8, cmap="viridis")
        ax.set(xlabel=r"$\phi$ (deg)", ylabel=r"$\psi$ (deg)", aspect="equal")
        ax.set_title(f"{title}: -ln p")
    fig.colorbar(mesh, ax=axes[2], label="kT")
    fig.suptitle(
        f"alanine dipeptide, lag {result['lag_ps']} ps, m = {result['m']}; Ramachandran JS "
        f"{result['ramachandran_js_bits']['lss_vs_md']:.3f} bits",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
