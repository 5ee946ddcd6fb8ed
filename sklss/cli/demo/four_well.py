"""The four-well demo: an SRV encoder, and an MDN propagator on x itself, against exact answers."""

import time

import numpy as np

from ._common import (
    _check,
    _fmt,
    _fmt_all,
    _its_json,
    _its_md_lss,
    _relative_check,
    _timescale_rows,
    _timescales_json,
    _with_errors,
)

# The encoder sees every 100th integration step at a lag of 3 frames (300 steps); the
# simulator every 10th step at a lag of 10 frames (100 steps).
_ENCODER_STRIDE, _ENCODER_LAG = 100, 3
_STRIDE, _LAG = 10, 10


def _demo_four_well(args):
    encoder = _four_well_encoder(args)
    t0 = time.perf_counter()
    x, syn = _four_well_simulator(args)
    sim = _four_well_measures(x, syn)
    print(
        f"2. four-well LSS (MDN, C = 8, tau = 100 steps) on {len(x):,} frames, run for as many "
        f"({time.perf_counter() - t0:.0f} s): free-energy RMSE {sim['rmse_lss']:.3f} kT, "
        f"t1 {sim['lss'][0][0]:.0f} frames (exact {sim['exact'][0]:.0f})"
    )
    metrics = {
        "srv_timescales_steps": encoder["srv_steps"].tolist(),
        "exact_timescales_steps": encoder["exact"].tolist(),
        "srv_vamp2_held_out": float(encoder["vamp2"]),
        "free_energy_rmse_kT": {"md": sim["rmse_md"], "lss": sim["rmse_lss"]},
        "timescales_frames": _timescales_json(sim["md"], sim["lss"], exact=sim["exact"]),
        "timescales_against_lag_frames": _its_json(sim["its"]),
    }
    plot = {"F_exact": sim["F_exact"], "edges": sim["edges"], "x": x, "syn": syn, "its": sim["its"]}
    return {
        "metrics": metrics,
        "sections": [_four_well_section(encoder, sim, len(x), len(syn))],
        "checks": _four_well_checks(encoder, sim),
        "plot": plot,
    }


def _four_well_encoder(args):
    """1. An SRV encoder on 20 trajectories, against the exact timescales (in steps)."""
    from ... import SRVTransformer
    from ...datasets import four_well, four_well_reference

    t0 = time.perf_counter()
    stride = _ENCODER_STRIDE
    X = four_well(args.n_steps // 20, n_trajectories=20, stride=stride, random_state=args.seed)
    X_test = four_well(
        max(args.n_steps // 50, 10 * stride),
        n_trajectories=4,
        stride=stride,
        random_state=args.seed + 1,
    )
    srv = SRVTransformer(
        lag_time=_ENCODER_LAG,
        n_components=3,
        batch_size=1024,
        max_epochs=args.epochs,
        random_state=args.seed,
        verbose=max(args.verbose - 1, 0),
    ).fit(X)
    exact = four_well_reference(stride=stride).timescales[:3] * stride
    srv_steps = srv.timescales_ * stride
    vamp2 = srv.score(X_test)
    n_frames = sum(len(x) for x in X)
    print(
        f"1. four-well SRV encoder on {n_frames:,} frames ({time.perf_counter() - t0:.0f} s): "
        f"t1 {srv_steps[0]:.0f} steps (exact {exact[0]:.0f}), held-out VAMP-2 {vamp2:.3f}"
    )
    return {"srv_steps": srv_steps, "exact": exact, "vamp2": vamp2, "n_frames": n_frames}


def _four_well_simulator(args):
    """2. The paper's section 3.1: an MDN on x itself (encoder and decoder passthrough).

    Returns the MD and a simulation as long, from the MD's first frame.
    """
    from ... import LatentSpaceSimulator, MDNPropagator
    from ...datasets import four_well

    x = four_well(args.n_steps // 5, stride=_STRIDE, random_state=args.seed)
    lss = LatentSpaceSimulator(
        "passthrough",
        MDNPropagator(
            n_kernels=8,
            hidden_layer_sizes=(100, 100),
            max_epochs=args.epochs,
            patience=6,
            verbose=max(args.verbose - 1, 0),
        ),
        "passthrough",
        lag_time=_LAG,
        random_state=args.seed,
    ).fit(x)
    return x, lss.sample(x[:1], len(x), random_state=args.seed).latent[0]


def _four_well_measures(x, syn):
    """Free energies along x and Markov-model timescales of MD and simulation, and exact."""
    from ...datasets import four_well_reference
    from ...metrics import free_energy_profile, free_energy_rmse, markov_timescales

    ref = four_well_reference(stride=_STRIDE)
    edges = np.linspace(-1.1, 1.1, 51)
    weights = np.histogram(ref.grid, edges, weights=ref.stationary_density)[0]
    with np.errstate(divide="ignore"):
        F_exact = -np.log(weights / weights.max())
    F_md, _ = free_energy_profile(x, bins=edges)
    F_lss, _ = free_energy_profile(syn, bins=edges)

    def markov(trajs, lag_frames):
        return markov_timescales(trajs, edges, lag_frames, n_components=2)

    exact = ref.timescales[:2]
    return {
        "edges": edges,
        "F_exact": F_exact,
        "rmse_lss": free_energy_rmse(F_exact, F_lss, max_free_energy=4.0),
        "rmse_md": free_energy_rmse(F_exact, F_md, max_free_energy=4.0),
        "md": _with_errors([x], lambda t: markov(t, _LAG)),
        # One simulator step is one lag: its lag-1 Markov model is at tau, in steps.
        "lss": _with_errors([syn], lambda t: markov(t, 1) * _LAG),
        "exact": exact,
        "its": _its_md_lss([x], [syn], markov, _LAG, exact, (1, 2, 5, 10, 20, 50), (1, 2, 5)),
    }


def _four_well_section(encoder, sim, n_md, n_syn):
    return {
        "title": "Four-well system (Sidky, Chen & Ferguson 2020, section 3.1)",
        "text": (
            f"SRV encoder: {encoder['n_frames']:,} frames of 100 integration steps, lag 3 "
            f"frames, m = 3. Simulator: an MDN (C = 8, 2 x 100 ReLU) on x itself (encoder and "
            f"decoder passthrough), {n_md:,} frames of 10 steps, tau = 10 frames "
            f"(100 steps), run for {n_syn:,} steps. Free energies on 50 bins over "
            f"[-1.1, 1.1], counting bins with F <= 4 kT. Timescales from a Markov model "
            f"on the same bins, at tau; standard errors from 5 contiguous blocks."
        ),
        "columns": ("quantity", "MD", "LSS", "exact"),
        "rows": [
            (
                "free-energy RMSE against exact (kT)",
                _fmt(sim["rmse_md"], digits=3),
                _fmt(sim["rmse_lss"], digits=3),
                "0",
            ),
            *_timescale_rows("frames of 10 steps", sim["md"], sim["lss"], sim["exact"], (0, 1)),
            (
                "SRV implied timescales t1, t2, t3 (steps)",
                _fmt_all(encoder["srv_steps"]),
                "",
                _fmt_all(encoder["exact"]),
            ),
            (
                "SRV VAMP-2 on held-out MD (lag 300 steps)",
                _fmt(encoder["vamp2"], digits=3),
                "",
                "",
            ),
        ],
    }


def _four_well_checks(encoder, sim):
    rmse = sim["rmse_lss"]
    return [
        _relative_check("four-well SRV t1", encoder["srv_steps"][0], encoder["exact"][0], 0.1),
        _check(
            "four-well LSS free energy",
            rmse,
            rmse <= 0.2,
            f"RMSE {rmse:.3f} kT against exact (target at most 0.2 kT)",
        ),
        _relative_check("four-well LSS t1", sim["lss"][0][0], sim["exact"][0], 0.15),
    ]
