"""The two propagators side by side: MDNPropagator against InterpolantPropagator.

Both run as the propagator of a `LatentSpaceSimulator` with passthrough encoder and decoder,
trained on the same latent trajectories, and are scored the same ways:

- against exact answers: the free-energy RMSE of long synthetic runs against the exact
  profile (bins with F <= 4 kT) and the leading implied timescales of a Markov model on the
  synthetic runs against the exact ones;
- through the composite's own scores on held-out MD from other seeds: `compare` (free-energy
  RMSE against the held-out MD, with missing mass), `implied_timescales` (autocorrelation fits
  with 5-block standard errors) and `ck_test`;
- cost: sampling time per step and per 10^6 latent frames (100 trajectories at once, and one
  trajectory), and for the interpolant its scaling with ``n_integration_steps`` and its numpy
  sampler against a torch inference loop of the same scheme.

Systems:

- ``four_well``: x of `sklss.datasets.four_well`, 2 x 10^6 steps saved every 10, lag 10 frames
  (100 steps), the test suite's settings (MDN with C = 8 and 2 x 100 ReLU);
- ``two_d``: the latent positions (x, y) of the hidden-coordinate toy (`hidden_wells`, three
  wells in 2-D), 4 x 50,000 frames, lag 20 frames, where one lag step reaches across the
  curved paths between wells: transition densities are curved, correlated and, from the
  saddles, several-modal. Also scored: one-step transition densities from five start points
  against exact Brownian-dynamics ensembles (sliced Wasserstein distance, against the floor
  of two exact ensembles).

Timing: every sampling cost (and the torch loop it is compared with) is the best and the
median of 3 timed calls after one untimed warm-up call; the numpy sampler and the torch loop
alternate within each repetition. Fit times are single fits.

Writes ``results/propagators.json``.

Usage::

    python benchmarks/bench_propagators.py                       # everything, about 15 minutes
    python benchmarks/bench_propagators.py --parts four_well cost
    python benchmarks/bench_propagators.py --quick --output /tmp/propagators.json  # smoke run
"""

import argparse
import time
import warnings

import numpy as np
import torch
from _common import RESULTS, start_run, time_interleaved, time_repeated, write_result

from sklss import InterpolantPropagator, LatentSpaceSimulator, MDNPropagator
from sklss.datasets import four_well, four_well_reference, hidden_wells, hidden_wells_reference
from sklss.markov import discretize
from sklss.metrics import free_energy_profile, free_energy_rmse, markov_timescales

MAX_FREE_ENERGY = 4.0
WARMUP, REPEATS = 1, 3
# Sizes of the held-out data and the exact ensembles; --quick shrinks them.
SIZES = {
    "four_well_test": (20, 20_000),  # trajectories x steps of held-out MD
    "four_well_syn_steps": 8000,  # synthetic steps of the composite's scores
    "two_d_test_frames": 250_000,  # per trajectory, 4 trajectories
    "n_ens": 4000,  # exact one-step end points per start point
    "cost_steps": {"MDN": (10_000, 20_000), "interpolant": (2000, 1000)},
    "scaling_steps": (2000, 500),
    "numpy_vs_torch": ((1, 200), (100, 200), (1000, 40)),
}
QUICK_SIZES = {
    "four_well_test": (4, 5_000),
    "four_well_syn_steps": 1000,
    "two_d_test_frames": 5_000,
    "n_ens": 300,
    "cost_steps": {"MDN": (500, 1000), "interpolant": (100, 50)},
    "scaling_steps": (200, 50),
    "numpy_vs_torch": ((1, 20), (100, 20), (1000, 5)),
}
MAX_EPOCHS = None  # --quick: a cap on every propagator's epochs


def propagators(system):
    """The two candidates, with the settings of the test suite for the four-well system."""
    if system == "four_well":
        props = {
            "MDN": MDNPropagator(
                n_kernels=8, hidden_layer_sizes=(100, 100), max_epochs=30, patience=6
            ),
            "interpolant": InterpolantPropagator(max_epochs=25, patience=10),
        }
    else:
        props = {
            "MDN": MDNPropagator(max_epochs=60),
            "interpolant": InterpolantPropagator(max_epochs=40, patience=10),
        }
    if MAX_EPOCHS is not None:
        for prop in props.values():
            prop.set_params(max_epochs=min(prop.max_epochs, MAX_EPOCHS))
    return props


def fit(prop, X, lag):
    lss = LatentSpaceSimulator("passthrough", prop, "passthrough", lag_time=lag, random_state=0)
    start = time.perf_counter()
    lss.fit(X)
    return lss, time.perf_counter() - start


def msm_timescales(dtrajs, lag, k):
    """Leading ``k`` implied timescales (frames of the dtrajs) of a reversible MSM."""
    from deeptime.markov import TransitionCountEstimator
    from deeptime.markov.msm import MaximumLikelihoodMSM

    counts = TransitionCountEstimator(lag, "sliding").fit_fetch(dtrajs)
    msm = MaximumLikelihoodMSM(reversible=True).fit_fetch(counts.submodel_largest())
    return msm.timescales(k)


def composite_scores(lss, X_test, n_steps, n_states, coordinate):
    """compare, implied_timescales and ck_test of the composite on held-out MD."""
    cmp = lss.compare(X_test, coordinate=coordinate, n_steps=n_steps)
    its = lss.implied_timescales(X_test, n_steps=n_steps)
    ck = lss.ck_test(X_test, n_states=n_states, k_max=5, n_samples=50, n_steps=n_steps)
    return {
        "fe_rmse_vs_md": float(cmp["free_energy_rmse"]),
        "missing_mass": float(cmp["missing_mass"]),
        "extra_mass": float(cmp["extra_mass"]),
        "js_vs_md": float(cmp["js_divergence"]),
        "its_md": its["md"].tolist(),
        "its_md_se": its["md_std_error"].tolist(),
        "its_lss": its["lss"].tolist(),
        "its_lss_se": its["lss_std_error"].tolist(),
        "ck_passed": bool(ck.passed),
        "ck_max_deviation": float(ck.max_model_deviation),
    }


def _sampler(prop, starts, n_steps):
    def call():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prop.sample(starts, n_steps, random_state=0)

    return call


def _cost(timing, n_starts, n_steps):
    """Seconds per trajectory-step (best and median) and per 10^6 frames."""
    per_step = timing["best"] / (n_starts * (n_steps - 1))
    return {
        "starts": n_starts,
        "n_steps": n_steps,
        "seconds": timing["best"],
        "seconds_median": timing["median"],
        "seconds_all": timing["all"],
        "us_per_step": 1e6 * per_step,
        "us_per_step_median": 1e6 * timing["median"] / (n_starts * (n_steps - 1)),
        "s_per_million_frames": 1e6 * per_step,
    }


def sampling_cost(prop, starts, n_steps):
    """Time of ``sample`` (best and median of REPEATS after WARMUP untimed calls)."""
    timing = time_repeated(_sampler(prop, starts, n_steps), warmup=WARMUP, repeats=REPEATS)
    return _cost(timing, len(starts), n_steps)


# --- four-well ---------------------------------------------------------------------------------


def four_well_part(n_steps_md, seed):
    stride, lag = 10, 10
    x = four_well(n_steps_md, stride=stride, random_state=seed)
    n_test, test_steps = SIZES["four_well_test"]
    X_test = four_well(test_steps, n_trajectories=n_test, stride=stride, random_state=seed + 1)
    ref = four_well_reference(stride=stride)
    edges = np.linspace(-1.1, 1.1, 51)
    p = (ref.stationary_density * np.diff(ref.edges)) @ _overlap(ref.edges, edges)
    F_exact = -np.log(p) + np.log(p.max())
    starts = x[:: len(x) // 100][:100]
    n_syn = len(x) // 100
    out = {"data": {"frames": len(x), "lag_frames": lag, "exact_t1": float(ref.timescales[0])}}
    md_t1 = markov_timescales(x[:, 0], edges, lag)[0]
    md_F, _ = free_energy_profile(x[:, 0], bins=edges)
    out["data"]["md_fe_rmse"] = float(free_energy_rmse(F_exact, md_F, max_free_energy=4.0))
    out["data"]["md_t1"] = float(md_t1)
    fitted = {}
    for name, prop in propagators("four_well").items():
        lss, seconds = fit(prop, x, lag)
        fitted[name] = lss
        start = time.perf_counter()
        syn = lss.sample(starts, n_syn, random_state=1).latent[:, :, 0]
        sample_s = time.perf_counter() - start
        F, _ = free_energy_profile(syn.ravel(), bins=edges)
        t1 = markov_timescales(list(syn[:, :, None]), edges, 1)[0] * lag
        row = {
            "fit_s": seconds,
            "epochs": lss.propagator_.n_iter_,
            "fe_rmse_exact": float(free_energy_rmse(F_exact, F, max_free_energy=MAX_FREE_ENERGY)),
            "t1": float(t1),
            "t1_error": float(t1 / ref.timescales[0] - 1),
            "wall_hit_rate": float(lss.propagator_.wall_hit_rate_),
            "sample_s": sample_s,
        }
        row.update(composite_scores(lss, X_test, SIZES["four_well_syn_steps"], 4, 0))
        out[name] = row
        print(f"four-well {name}: {_short(row)}", flush=True)
    return out, fitted, starts, F_exact, edges, ref


def _overlap(fine_edges, edges):
    lo = np.maximum(fine_edges[:-1, None], edges[None, :-1])
    hi = np.minimum(fine_edges[1:, None], edges[None, 1:])
    return np.clip(hi - lo, 0, None) / np.diff(fine_edges)[:, None]


def _short(row):
    keys = ("fit_s", "fe_rmse_exact", "t1_error", "fe_rmse_vs_md", "missing_mass", "ck_passed")
    return ", ".join(
        f"{k}={row[k]:.3g}" if not isinstance(row[k], bool) else f"{k}={row[k]}"
        for k in keys
        if k in row
    )


def integration_scaling(lss, starts, F_exact, edges, ref, lag):
    """The interpolant at 2, 5, 10 and 20 integration steps: cost and exact scores."""
    prop = lss.propagator_
    kept = prop.n_integration_steps
    rows = []
    n_syn, n_cost = SIZES["scaling_steps"]
    for n in (2, 5, 10, 20):
        prop.n_integration_steps = n
        syn = prop.sample(starts, n_syn, random_state=1)[:, :, 0]
        F, _ = free_energy_profile(syn.ravel(), bins=edges)
        t1 = markov_timescales(list(syn[:, :, None]), edges, 1)[0] * lag
        cost = sampling_cost(prop, starts, n_cost)
        rows.append(
            {
                "n_integration_steps": n,
                "fe_rmse_exact": float(
                    free_energy_rmse(F_exact, F, max_free_energy=MAX_FREE_ENERGY)
                ),
                "t1_error": float(t1 / ref.timescales[0] - 1),
                "us_per_step": cost["us_per_step"],
                "us_per_step_median": cost["us_per_step_median"],
                "s_per_million_frames": cost["s_per_million_frames"],
            }
        )
        print(f"  n_integration_steps={n}: {rows[-1]}", flush=True)
    prop.n_integration_steps = kept
    return rows


# --- two-dimensional latent ------------------------------------------------------------------


def _sliced_wasserstein(a, b, n_projections=64, seed=0):
    from scipy.stats import wasserstein_distance

    angles = np.random.default_rng(seed).uniform(0, np.pi, n_projections)
    directions = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return float(np.mean([wasserstein_distance(a @ d, b @ d) for d in directions]))


# Start points: one well bottom, and points on the three paths between the wells.
TWO_D_STARTS = np.array([[-1.3, 0.0], [-0.35, 0.55], [0.85, 0.25], [-0.1, -0.3], [1.1, -0.6]])


def two_d_part(seed, n_frames, lag):
    kw = dict(n_trajectories=4, n_features=2, return_latent=True)
    _, Z = hidden_wells(n_frames, random_state=seed, **kw)
    _, Z_test = hidden_wells(SIZES["two_d_test_frames"], random_state=seed + 1, **kw)
    ref = hidden_wells_reference()
    all_z = np.concatenate(Z)
    lo, hi = all_z.min(axis=0), all_z.max(axis=0)
    ex, ey = np.linspace(lo[0], hi[0], 31), np.linspace(lo[1], hi[1], 31)
    cell = np.outer(np.diff(ref.edges_x), np.diff(ref.edges_y))
    gx, gy = np.meshgrid(ref.grid_x, ref.grid_y, indexing="ij")
    p_exact, _, _ = np.histogram2d(
        gx.ravel(), gy.ravel(), [ex, ey], weights=(ref.stationary_density * cell).ravel()
    )
    with np.errstate(divide="ignore"):
        F_exact = -np.log(p_exact / p_exact.max())
    dtrajs_md, centers = discretize(Z, 100)
    md_ts = msm_timescales(dtrajs_md, lag, 2)
    out = {
        "data": {
            "frames": int(sum(len(z) for z in Z)),
            "lag_frames": lag,
            "exact_timescales": ref.timescales[:2].tolist(),
            "md_msm_timescales": md_ts.tolist(),
        }
    }
    # Exact one-step ensembles from the start points, and a second set for the noise floor.
    n_ens = SIZES["n_ens"]
    exact = []
    for i, z0 in enumerate(TWO_D_STARTS):
        pair = []
        for rep in range(2):
            _, ends = hidden_wells(
                lag + 1,
                n_trajectories=n_ens,
                n_features=2,
                x0=z0,
                return_latent=True,
                random_state=1000 + 10 * i + rep,
            )
            pair.append(np.stack([e[-1] for e in ends]))
        exact.append(pair)
    out["data"]["transition_floor"] = [_sliced_wasserstein(a, b) for a, b in exact]
    starts = np.stack([z[:: len(z) // 25][:25] for z in Z]).reshape(-1, 2)
    n_syn = sum(len(z) for z in Z) // len(starts) * 4
    for name, prop in propagators("two_d").items():
        lss, seconds = fit(prop, Z, lag)
        syn = lss.sample(starts, n_syn, random_state=1).latent
        h, _, _ = np.histogram2d(syn[..., 0].ravel(), syn[..., 1].ravel(), [ex, ey])
        with np.errstate(divide="ignore"):
            F = -np.log(h / h.max())
        dtrajs, _ = discretize(list(syn), 100, fit_on=Z)
        ts = msm_timescales(dtrajs, 1, 2) * lag
        one_step = []
        for z0, (e, _) in zip(TWO_D_STARTS, exact):
            draws = lss.propagator_.sample(np.repeat(z0[None], n_ens, 0), 2, random_state=3)
            one_step.append(_sliced_wasserstein(draws[:, 1], e))
        row = {
            "fit_s": seconds,
            "epochs": lss.propagator_.n_iter_,
            "fe_rmse_exact": float(
                free_energy_rmse(F_exact.ravel(), F.ravel(), max_free_energy=MAX_FREE_ENERGY)
            ),
            "timescales": ts.tolist(),
            "timescale_errors": (ts / ref.timescales[:2] - 1).tolist(),
            "transition_distance": one_step,
            "wall_hit_rate": float(lss.propagator_.wall_hit_rate_),
        }
        n_test = SIZES["two_d_test_frames"]
        row.update(composite_scores(lss, Z_test, 4 * n_test // lag, 3, [0, 1]))
        out[name] = row
        print(
            f"2-D {name}: {_short(row)}, t1/t2 errors {row['timescale_errors']}, "
            f"one-step distances {np.round(one_step, 4).tolist()} "
            f"(floor {np.round(out['data']['transition_floor'], 4).tolist()})",
            flush=True,
        )
    return out


# --- cost ----------------------------------------------------------------------------------


def torch_bridge_loop(module, x0, n_steps, n_integration_steps, seed):
    """The interpolant's Heun scheme as a plain torch inference loop (the baseline)."""
    gen = torch.Generator().manual_seed(seed)
    a = module.noise
    N = n_integration_steps
    h = 1.0 / N
    x = torch.as_tensor(x0, dtype=torch.float32)
    with torch.inference_mode():
        for _ in range(n_steps - 1):
            start = x
            for j in range(N):
                dW = torch.sqrt(a * h) * torch.randn(x.shape, generator=gen)
                s0 = torch.full((len(x), 1), j * h)
                s1 = torch.full((len(x), 1), (j + 1) * h)
                r0 = module.drift(start, x, s0)
                trial = x + h * r0 + dW
                x = x + 0.5 * h * (r0 + module.drift(start, trial, s1)) + dW
    return x


def cost_part(fitted, four_well_starts):
    out = {}
    for name, lss in fitted.items():
        prop = lss.propagator_
        n_batch, n_single = SIZES["cost_steps"][name]
        out[name] = {
            "batch": sampling_cost(prop, four_well_starts, n_batch),
            "single": sampling_cost(prop, four_well_starts[:1], n_single),
        }
        print(f"cost {name}: {out[name]}", flush=True)
    module = fitted["interpolant"].propagator_.net_.module_
    prop = fitted["interpolant"].propagator_
    scaled = ((four_well_starts - prop.mean_) / prop.scale_).astype(np.float32)
    rows = []
    for B, n in SIZES["numpy_vs_torch"]:
        x0 = np.resize(scaled, (B, scaled.shape[1]))
        starts = x0 * prop.scale_ + prop.mean_
        n_int = prop.n_integration_steps
        timing = time_interleaved(
            {
                "numpy": _sampler(prop, starts, n),
                "torch": lambda x0=x0, n=n, n_int=n_int: torch_bridge_loop(module, x0, n, n_int, 0),
            },
            warmup=WARMUP,
            repeats=REPEATS,
        )
        rows.append(
            {
                "starts": B,
                "n_steps": n,
                "numpy_s": timing["numpy"]["best"],
                "numpy_s_median": timing["numpy"]["median"],
                "torch_s": timing["torch"]["best"],
                "torch_s_median": timing["torch"]["median"],
                "torch_over_numpy": timing["torch"]["best"] / timing["numpy"]["best"],
                "torch_over_numpy_median": timing["torch"]["median"] / timing["numpy"]["median"],
            }
        )
        print(f"  numpy vs torch, {B} starts: {rows[-1]}", flush=True)
    out["numpy_vs_torch"] = rows
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["four_well", "cost", "two_d"],
        choices=["four_well", "cost", "two_d"],
    )
    parser.add_argument("--n-steps", type=int, default=2_000_000, help="four-well MD steps")
    parser.add_argument("--two-d-frames", type=int, default=50_000)
    parser.add_argument("--two-d-lag", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=str(RESULTS / "propagators.json"))
    parser.add_argument(
        "--quick",
        action="store_true",
        help="200,000 four-well steps, 4 x 5,000 2-D frames, 3 epochs, small held-out sets",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the process")
    args = parser.parse_args()
    global MAX_EPOCHS
    if args.quick:
        args.n_steps, args.two_d_frames = 200_000, 5_000
        SIZES.update(QUICK_SIZES)
        MAX_EPOCHS = 3
    torch.set_num_threads(args.threads)
    run = start_run()
    results = {
        "timing": (
            f"sampling costs: {WARMUP} untimed warm-up call, then best and median of {REPEATS} "
            "timed calls; numpy sampler and torch loop alternate within each repetition; fit "
            "times are single fits"
        ),
        "quick": bool(args.quick),
    }
    if "four_well" in args.parts or "cost" in args.parts:
        fw, fitted, starts, F_exact, edges, ref = four_well_part(args.n_steps, args.seed)
        results["four_well"] = fw
        results["four_well"]["integration_steps"] = integration_scaling(
            fitted["interpolant"], starts, F_exact, edges, ref, 10
        )
        if "cost" in args.parts:
            results["cost"] = cost_part(fitted, starts)
    if "two_d" in args.parts:
        results["two_d"] = two_d_part(args.seed, args.two_d_frames, args.two_d_lag)
    write_result(args.output, results, run)
    print_table(results)
    print(f"wrote {args.output}")


def print_table(results):
    print(
        "\n| system | propagator | fit s | FE RMSE vs exact (kT) | t1 vs exact | "
        "FE RMSE vs held-out MD | missing mass | CK | us / step (100 traj.) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    cost = results.get("cost", {})
    for system in ("four_well", "two_d"):
        if system not in results:
            continue
        for name in ("MDN", "interpolant"):
            r = results[system][name]
            t1 = r["t1_error"] if "t1_error" in r else r["timescale_errors"][0]
            step = cost.get(name, {}).get("batch", {}).get("us_per_step", float("nan"))
            print(
                f"| {system} | {name} | {r['fit_s']:.0f} | {r['fe_rmse_exact']:.3f} | "
                f"{t1:+.1%} | {r['fe_rmse_vs_md']:.3f} | {r['missing_mass']:.4f} | "
                f"{'pass' if r['ck_passed'] else 'fail'} ({r['ck_max_deviation']:.3f}) | "
                f"{step:.2f} |"
            )


if __name__ == "__main__":
    main()
