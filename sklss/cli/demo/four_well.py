"""The four-well demo: an SRV encoder, and an MDN propagator on x itself, against exact answers."""

import time

import numpy as np

from ._common import _check, _fmt, _its_against_lag, _its_json, _with_errors


def _demo_four_well(args):
    from ... import LatentSpaceSimulator, MDNPropagator, SRVTransformer
    from ...datasets import four_well, four_well_reference
    from ...metrics import free_energy_profile, free_energy_rmse, markov_timescales

    fit_verbose = max(args.verbose - 1, 0)
    # 1. The encoder: 20 trajectories, every 100th step saved, lag 3 frames (300 steps).
    t0 = time.perf_counter()
    stride, lag = 100, 3
    X = four_well(args.n_steps // 20, n_trajectories=20, stride=stride, random_state=args.seed)
    X_test = four_well(
        max(args.n_steps // 50, 10 * stride),
        n_trajectories=4,
        stride=stride,
        random_state=args.seed + 1,
    )
    srv = SRVTransformer(
        lag_time=lag,
        n_components=3,
        batch_size=1024,
        max_epochs=args.epochs,
        random_state=args.seed,
        verbose=fit_verbose,
    ).fit(X)
    exact = four_well_reference(stride=stride).timescales[:3] * stride
    srv_steps = srv.timescales_ * stride
    vamp2 = srv.score(X_test)
    n_frames = sum(len(x) for x in X)
    print(
        f"1. four-well SRV encoder on {n_frames:,} frames ({time.perf_counter() - t0:.0f} s): "
        f"t1 {srv_steps[0]:.0f} steps (exact {exact[0]:.0f}), held-out VAMP-2 {vamp2:.3f}"
    )

    # 2. The paper's section 3.1: an MDN on x itself (encoder and decoder passthrough).
    t0 = time.perf_counter()
    stride, lag = 10, 10
    x = four_well(args.n_steps // 5, stride=stride, random_state=args.seed)
    lss = LatentSpaceSimulator(
        "passthrough",
        MDNPropagator(
            n_kernels=8,
            hidden_layer_sizes=(100, 100),
            max_epochs=args.epochs,
            patience=6,
            verbose=fit_verbose,
        ),
        "passthrough",
        lag_time=lag,
        random_state=args.seed,
    ).fit(x)
    syn = lss.sample(x[:1], len(x), random_state=args.seed).latent[0]
    ref = four_well_reference(stride=stride)
    edges = np.linspace(-1.1, 1.1, 51)
    weights = np.histogram(ref.grid, edges, weights=ref.stationary_density)[0]
    with np.errstate(divide="ignore"):
        F_exact = -np.log(weights / weights.max())
    F_md, _ = free_energy_profile(x, bins=edges)
    F_lss, _ = free_energy_profile(syn, bins=edges)
    rmse_lss = free_energy_rmse(F_exact, F_lss, max_free_energy=4.0)
    rmse_md = free_energy_rmse(F_exact, F_md, max_free_energy=4.0)

    def markov(trajs, lag_frames):
        return markov_timescales(trajs, edges, lag_frames, n_components=2)

    t_md, se_md = _with_errors([x], lambda t: markov(t, lag))
    # One simulator step is one lag: its lag-1 Markov model is at tau, in steps.
    t_lss, se_lss = _with_errors([syn], lambda t: markov(t, 1) * lag)
    t_exact = ref.timescales[:2]
    md_lags = np.array([1, 2, 5, 10, 20, 50])
    lss_steps = np.array([1, 2, 5])
    its = {
        "md": _its_against_lag([x], md_lags, markov),
        "lss": _its_against_lag([syn], lss_steps, markov, unit=lag),
        "exact": t_exact,
    }
    print(
        f"2. four-well LSS (MDN, C = 8, tau = 100 steps) on {len(x):,} frames, run for as many "
        f"({time.perf_counter() - t0:.0f} s): free-energy RMSE {rmse_lss:.3f} kT, "
        f"t1 {t_lss[0]:.0f} frames (exact {t_exact[0]:.0f})"
    )
    sections = [
        {
            "title": "Four-well system (Sidky, Chen & Ferguson 2020, section 3.1)",
            "text": (
                f"SRV encoder: {n_frames:,} frames of 100 integration steps, lag 3 frames, "
                f"m = 3. Simulator: an MDN (C = 8, 2 x 100 ReLU) on x itself (encoder and "
                f"decoder passthrough), {len(x):,} frames of 10 steps, tau = 10 frames "
                f"(100 steps), run for {len(syn):,} steps. Free energies on 50 bins over "
                f"[-1.1, 1.1], counting bins with F <= 4 kT. Timescales from a Markov model "
                f"on the same bins, at tau; standard errors from 5 contiguous blocks."
            ),
            "columns": ("quantity", "MD", "LSS", "exact"),
            "rows": [
                (
                    "free-energy RMSE against exact (kT)",
                    _fmt(rmse_md, digits=3),
                    _fmt(rmse_lss, digits=3),
                    "0",
                ),
                (
                    "slowest timescale t1 (frames of 10 steps)",
                    _fmt(t_md[0], se_md[0]),
                    _fmt(t_lss[0], se_lss[0]),
                    _fmt(t_exact[0]),
                ),
                (
                    "second timescale t2 (frames of 10 steps)",
                    _fmt(t_md[1], se_md[1], 1),
                    _fmt(t_lss[1], se_lss[1], 1),
                    _fmt(t_exact[1], digits=1),
                ),
                (
                    "SRV implied timescales t1, t2, t3 (steps)",
                    ", ".join(_fmt(t) for t in srv_steps),
                    "",
                    ", ".join(_fmt(t) for t in exact),
                ),
                ("SRV VAMP-2 on held-out MD (lag 300 steps)", _fmt(vamp2, digits=3), "", ""),
            ],
        }
    ]
    checks = [
        _check(
            "four-well SRV t1",
            srv_steps[0] / exact[0] - 1,
            abs(srv_steps[0] / exact[0] - 1) <= 0.1,
            f"{srv_steps[0] / exact[0] - 1:+.1%} against exact (target within 10 %)",
        ),
        _check(
            "four-well LSS free energy",
            rmse_lss,
            rmse_lss <= 0.2,
            f"RMSE {rmse_lss:.3f} kT against exact (target at most 0.2 kT)",
        ),
        _check(
            "four-well LSS t1",
            t_lss[0] / t_exact[0] - 1,
            abs(t_lss[0] / t_exact[0] - 1) <= 0.15,
            f"{t_lss[0] / t_exact[0] - 1:+.1%} against exact (target within 15 %)",
        ),
    ]
    metrics = {
        "srv_timescales_steps": srv_steps.tolist(),
        "exact_timescales_steps": exact.tolist(),
        "srv_vamp2_held_out": float(vamp2),
        "free_energy_rmse_kT": {"md": rmse_md, "lss": rmse_lss},
        "timescales_frames": {
            "md": t_md.tolist(),
            "md_std_error": se_md.tolist(),
            "lss": t_lss.tolist(),
            "lss_std_error": se_lss.tolist(),
            "exact": t_exact.tolist(),
        },
    }
    metrics["timescales_against_lag_frames"] = _its_json(its)
    plot = {"F_exact": F_exact, "edges": edges, "x": x, "syn": syn, "its": its}
    return {"metrics": metrics, "sections": sections, "checks": checks, "plot": plot}
