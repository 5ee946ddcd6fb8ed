"""``sklss demo``: fit latent space simulators to systems with known answers and write a report.

The toy demo runs the four-well system (an SRV encoder, and an MDN propagator on x itself) and
SRV + MDN + cWGAN on the hidden-coordinate toy; ``--system alanine-dipeptide`` runs on real
OpenMM MD. The report folder holds ``metrics.md``, ``metrics.json``, PNG figures and the saved
model.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

from .cli import CommandError, _save_model_folder


def run_demo(args):
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out '{out}' exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if args.system == "alanine-dipeptide":
        report = _demo_alanine(args, out)
    else:
        report = _demo_toy(args, out)
    report["seconds"] = time.perf_counter() - t0
    _write_report(out, report, args)
    failed = [c for c in report["checks"] if not c["passed"]]
    print(f"\nReport written to '{out}' in {report['seconds']:.0f} s:")
    for name in ["metrics.md", "metrics.json"] + report["files"]:
        print(f"   {out / name}")
    for check in report["checks"]:
        print(f"   [{'ok' if check['passed'] else 'MISSED'}] {check['name']}: {check['text']}")
    if failed and args.check:
        print(f"sklss demo: {len(failed)} fidelity target(s) missed", file=sys.stderr)
        return 1
    return 0


def _stage(args, message):
    if args.verbose:
        print(message, flush=True)


def _check(name, value, passed, text):
    return {"name": name, "value": float(value), "passed": bool(passed), "text": text}


def _blocks(trajs, n_blocks=5):
    """``n_blocks`` contiguous blocks of every trajectory: block ``k`` holds their k-th parts."""
    return [[np.array_split(t, n_blocks)[k] for t in trajs] for k in range(n_blocks)]


def _with_errors(trajs, estimate):
    """An estimate on all trajectories, and its standard error from 5 contiguous blocks."""
    from threadpoolctl import threadpool_limits

    from .metrics import block_average

    # Tall, thin covariance products: extra BLAS threads cost more than they give, and on a
    # busy machine far more.
    with threadpool_limits(limits=1, user_api="blas"):
        _, se = block_average([estimate(b) for b in _blocks(trajs)])
        return estimate(trajs), se


def _its_against_lag(trajs, lags, estimate, unit=1):
    """Lags (times ``unit``), timescales and standard errors; ``estimate(trajs, lag)``.

    Lags that do not fit into the shortest of 5 blocks are left out.
    """
    shortest = min(len(t) for t in trajs) // 5
    lags = np.array([k for k in lags if k < shortest], dtype=int)
    pairs = [_with_errors(trajs, lambda t, lag=lag: estimate(t, lag)) for lag in lags]
    ts = np.array([p[0] for p in pairs]).reshape(len(lags), -1) * unit
    se = np.array([p[1] for p in pairs]).reshape(len(lags), -1) * unit
    return lags * unit, ts, se


def _its_json(its):
    return {
        key: dict(zip(("lag_times", "timescales", "std_errors"), its[key])) for key in ("md", "lss")
    }


def _fmt(value, se=None, digits=0):
    text = f"{value:,.{digits}f}"
    return text if se is None else f"{text} ± {se:,.{digits}f}"


def _figure(n_cols, n_rows=1, width=5.2, height=3.9):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * n_cols, height * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    return fig, list(axes.ravel())


def _save(fig, out, name, files):
    fig.savefig(out / name, dpi=110)
    files.append(name)


def _demo_toy(args, out):
    _require_matplotlib()
    print("sklss demo: latent space simulators on two toy systems with known answers")
    four = _demo_four_well(args)
    hidden = _demo_hidden_wells(args)
    files = _demo_toy_figures(four["plot"], hidden["plot"], out)
    _stage(args, "saving the hidden-coordinate simulator")
    _save_model_folder(
        hidden["lss"],
        out / "model",
        hidden["X"],
        info={"input": "features", "output": "features", "system": "hidden_wells"},
    )
    files.append("model/")
    return {
        "title": "Latent space simulators on toy systems with known answers",
        "system": "toy",
        "metrics": {"four_well": four["metrics"], "hidden_wells": hidden["metrics"]},
        "sections": four["sections"] + hidden["sections"],
        "checks": four["checks"] + hidden["checks"],
        "files": files,
    }


def _require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CommandError(
            "the demo draws its figures with matplotlib; install it with 'pip install matplotlib'"
        ) from None


def _demo_four_well(args):
    from . import LatentSpaceSimulator, MDNPropagator, SRVTransformer
    from .datasets import four_well, four_well_reference
    from .metrics import free_energy_profile, free_energy_rmse, markov_timescales

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


def _demo_hidden_wells(args):
    from . import CWGANDecoder, LatentSpaceSimulator, MDNPropagator, SRVTransformer
    from .datasets import hidden_wells, hidden_wells_reference
    from .metrics import (
        autocorrelation_timescales,
        free_energy_profile,
        free_energy_rmse,
        implied_timescales,
        js_divergence,
    )

    fit_verbose = max(args.verbose - 1, 0)
    t0 = time.perf_counter()
    lag, n_traj = 5, 4
    X = hidden_wells(
        max(args.hidden_frames // n_traj, 50), n_trajectories=n_traj, random_state=args.seed + 2
    )
    # Held-out MD twice as long as the training data: timescale estimates need the length.
    X_test = hidden_wells(
        max(args.hidden_frames // 2, 50), n_trajectories=n_traj, random_state=args.seed + 3
    )
    lss = LatentSpaceSimulator(
        SRVTransformer(
            n_components=2,
            hidden_layer_sizes=(64, 64),
            batch_size=2048,
            max_epochs=args.epochs,
            verbose=fit_verbose,
        ),
        MDNPropagator(
            n_kernels=12, hidden_layer_sizes=(64, 64), max_epochs=args.epochs, verbose=fit_verbose
        ),
        CWGANDecoder(
            noise_dim=8,
            hidden_layer_sizes=(64, 64),
            batch_size=256,
            max_epochs=args.epochs,
            verbose=fit_verbose,
        ),
        lag_time=lag,
        random_state=args.seed,
        verbose=min(args.verbose, 1),
    ).fit(X)
    fit_seconds = time.perf_counter() - t0

    psi = lss.transform(X_test)
    starts = np.stack([x[0] for x in X_test])
    n_steps = max(len(X_test[0]) // lag, 2)
    result = lss.sample(starts, n_steps, random_state=args.seed)
    latent = list(result.latent)
    md1 = np.concatenate([p[:, 0] for p in psi])
    edges = np.linspace(md1.min(), md1.max(), 51)
    F_md, _ = free_energy_profile(md1, bins=edges)
    F_lss, _ = free_energy_profile(result.latent[..., 0].ravel(), bins=edges)
    rmse = free_energy_rmse(F_md, F_lss)
    t_md, se_md = autocorrelation_timescales(psi)
    t_lss, se_lss = autocorrelation_timescales(latent, dt=lag)
    exact = hidden_wells_reference().timescales[:2]
    vamp2 = lss.vamp2_score(X_test)
    md_features = np.concatenate(X_test)
    decoded = result.configurations.reshape(-1, md_features.shape[1])
    js = []
    for j in range(md_features.shape[1]):
        bins = np.linspace(md_features[:, j].min(), md_features[:, j].max(), 41)
        js.append(
            js_divergence(
                np.histogram(md_features[:, j], bins)[0] + 1e-12,
                np.histogram(decoded[:, j], bins)[0] + 1e-12,
            )
        )
    mean_js = float(np.mean(js))

    def vac(trajs, lag_frames):
        return implied_timescales(trajs, lag_frames, n_components=2)

    md_lags = np.array([1, 2, 5, 10, 20])
    lss_steps = np.array([1, 2, 4])
    its = {
        "md": _its_against_lag(psi, md_lags, vac),
        "lss": _its_against_lag(latent, lss_steps, vac, unit=lag),
        "exact": exact,
    }
    n_frames = sum(len(x) for x in X)
    print(
        f"3. hidden-coordinate toy, SRV + MDN + cWGAN on {n_frames:,} frames x "
        f"{X[0].shape[1]} features ({fit_seconds:.0f} s): free-energy RMSE along psi_1 "
        f"{rmse:.3f} kT, t1 MD {t_md[0]:.0f} ± {se_md[0]:.0f}, LSS {t_lss[0]:.0f} ± "
        f"{se_lss[0]:.0f} frames (exact {exact[0]:.0f})"
    )
    n_test = sum(len(x) for x in X_test)
    sections = [
        {
            "title": "Hidden-coordinate toy (sklss.datasets.hidden_wells), SRV + MDN + cWGAN",
            "text": (
                f"A 2-D three-well system seen only through {X[0].shape[1]} noisy nonlinear "
                f"features. Training: {n_frames:,} frames; held-out MD: {n_test:,} frames in "
                f"{len(X_test)} trajectories. SRV (m = 2), MDN (C = 12) and cWGAN decoder, "
                f"2 x 64 units each, lag 5 frames, at most {args.epochs} epochs each. The "
                f"simulator runs {len(latent)} trajectories from the held-out trajectories' "
                f"first frames, each as long. Timescales from exponential fits to the "
                f"autocorrelation of each latent coordinate (the paper's section 3.2), "
                f"standard errors from 5 contiguous blocks; exact values from the reference "
                f"generator of the latent dynamics."
            ),
            "columns": ("quantity", "MD", "LSS", "exact"),
            "rows": [
                ("free-energy RMSE along psi_1, LSS against MD (kT)", "", _fmt(rmse, digits=3), ""),
                (
                    "slowest timescale t1 (frames)",
                    _fmt(t_md[0], se_md[0]),
                    _fmt(t_lss[0], se_lss[0]),
                    _fmt(exact[0]),
                ),
                (
                    "second timescale t2 (frames)",
                    _fmt(t_md[1], se_md[1]),
                    _fmt(t_lss[1], se_lss[1]),
                    _fmt(exact[1]),
                ),
                (
                    "SRV implied timescales t1, t2 at lag 5 (frames)",
                    ", ".join(_fmt(t) for t in lss.encoder_.timescales_),
                    "",
                    ", ".join(_fmt(t) for t in exact),
                ),
                ("VAMP-2 on held-out MD (lag 5)", _fmt(vamp2, digits=3), "", "3 at most"),
                (
                    "mean JS divergence of decoded feature marginals (bits)",
                    "",
                    _fmt(mean_js, digits=4),
                    "0",
                ),
            ],
        }
    ]
    checks = [
        _check(
            "hidden-coordinate LSS t1",
            t_lss[0] / exact[0] - 1,
            abs(t_lss[0] / exact[0] - 1) <= 0.15,
            f"{t_lss[0] / exact[0] - 1:+.1%} against exact (target within 15 %)",
        ),
        _check(
            "hidden-coordinate decoded features",
            mean_js,
            mean_js <= 0.05,
            f"mean JS divergence {mean_js:.4f} bits against MD (target at most 0.05)",
        ),
    ]
    metrics = {
        "fit_seconds": fit_seconds,
        "free_energy_rmse_psi1_kT": rmse,
        "timescales_frames": {
            "md": t_md.tolist(),
            "md_std_error": se_md.tolist(),
            "lss": t_lss.tolist(),
            "lss_std_error": se_lss.tolist(),
            "exact": exact.tolist(),
            "srv": lss.encoder_.timescales_.tolist(),
        },
        "vamp2_held_out": float(vamp2),
        "decoded_features_mean_js_bits": mean_js,
    }
    metrics["timescales_against_lag_frames"] = _its_json(its)
    plot = {"psi": psi, "latent": latent, "edges": edges, "its": its}
    return {
        "metrics": metrics,
        "sections": sections,
        "checks": checks,
        "plot": plot,
        "lss": lss,
        "X": X,
    }


def _demo_alanine(args, out):
    from . import CWGANDecoder, LatentSpaceSimulator, MDNPropagator, SRVTransformer, plotting
    from ._trajectory_files import import_md, write_trajectory
    from .datasets import alanine_dipeptide
    from .features import SuperposedCoordinates, Torsions
    from .metrics import (
        autocorrelation_timescales,
        free_energy_profile,
        free_energy_rmse,
        implied_timescales,
    )

    _require_matplotlib()
    md = import_md("mdtraj", feature="sklss demo --system alanine-dipeptide")
    import_md("openmm", feature="sklss demo --system alanine-dipeptide")
    if not args.md_ns > 0:
        raise CommandError(f"--md-ns must be positive; got {args.md_ns}")
    n_traj, lag = 4, 10
    print(
        f"sklss demo: alanine dipeptide, {n_traj} x {args.md_ns:g} ns of implicit-solvent MD "
        "(OpenMM, cached for the next run)"
    )
    t0 = time.perf_counter()
    trajs = alanine_dipeptide(
        args.md_ns, n_trajectories=n_traj, random_state=args.seed, verbose=min(args.verbose, 1)
    )
    trajs = trajs if isinstance(trajs, list) else [trajs]
    frame_ps = float(trajs[0].timestep) if trajs[0].n_frames > 1 else 1.0
    _stage(args, f"   MD ready ({time.perf_counter() - t0:.0f} s); fitting the simulator")
    torsions = Torsions("backbone").fit(trajs)
    coords = SuperposedCoordinates("heavy").fit(trajs)
    X, Y = torsions.transform(trajs), coords.transform(trajs)
    fit_verbose = max(args.verbose - 1, 0)
    t0 = time.perf_counter()
    lss = LatentSpaceSimulator(
        SRVTransformer(
            n_components=2,
            hidden_layer_sizes=(64, 64),
            batch_size=1024,
            max_epochs=args.epochs,
            verbose=fit_verbose,
        ),
        MDNPropagator(
            n_kernels=12, hidden_layer_sizes=(64, 64), max_epochs=args.epochs, verbose=fit_verbose
        ),
        # A few MD frames give few generator updates per epoch: ten times the epochs.
        CWGANDecoder(
            noise_dim=16,
            hidden_layer_sizes=(128, 128),
            max_epochs=10 * args.epochs,
            verbose=fit_verbose,
        ),
        lag_time=lag,
        random_state=args.seed,
        verbose=min(args.verbose, 1),
    ).fit(X, Y)
    fit_seconds = time.perf_counter() - t0

    psi = lss.transform(X)
    # As many steps as the MD has frames: ten times its duration, for tighter statistics.
    n_steps = len(X[0])
    result = lss.sample(np.stack([x[0] for x in X]), n_steps, random_state=args.seed)
    latent = list(result.latent)
    generated = coords.inverse_transform(result.configurations, dt=frame_ps * lag)

    def ramachandran(traj_list):
        angles = [
            np.column_stack([md.compute_phi(t)[1][:, 0], md.compute_psi(t)[1][:, 0]])
            for t in traj_list
        ]
        return angles

    rama_md, rama_lss = ramachandran(trajs), ramachandran(generated)
    grid = np.linspace(-np.pi, np.pi, 31)

    def rama_free_energy(angles):
        a = np.concatenate(angles)
        q, _, _ = np.histogram2d(a[:, 0], a[:, 1], bins=[grid, grid], density=True)
        with np.errstate(divide="ignore"):
            F = -np.log(q)
        return F - F[np.isfinite(F)].min()

    rmse_rama = free_energy_rmse(
        rama_free_energy(rama_md), rama_free_energy(rama_lss), max_free_energy=4.0
    )
    md1 = np.concatenate([p[:, 0] for p in psi])
    edges = np.linspace(md1.min(), md1.max(), 51)
    F_md, _ = free_energy_profile(md1, bins=edges)
    F_lss, _ = free_energy_profile(result.latent[..., 0].ravel(), bins=edges)
    rmse_psi = free_energy_rmse(F_md, F_lss)
    t_md, se_md = autocorrelation_timescales(psi, dt=frame_ps)
    t_lss, se_lss = autocorrelation_timescales(latent, dt=frame_ps * lag)
    vamp2 = lss.vamp2_score(X)

    def vac(data, lag_frames):
        return implied_timescales(data, lag_frames, n_components=2)

    md_lags = np.array([1, 2, 5, 10, 20, 50])
    lss_steps = np.array([1, 2, 5])
    its = {
        "md": _its_against_lag(psi, md_lags, vac),
        "lss": _its_against_lag(latent, lss_steps, vac, unit=lag),
        "exact": [],
    }
    print(
        f"alanine dipeptide LSS on {sum(len(x) for x in X):,} frames ({fit_seconds:.0f} s): "
        f"Ramachandran free-energy RMSE {rmse_rama:.2f} kT, t1 MD {t_md[0]:.0f} ± "
        f"{se_md[0]:.0f} ps, LSS {t_lss[0]:.0f} ± {se_lss[0]:.0f} ps"
    )

    files = []
    fig, axes = _figure(2)
    for ax, angles, name in zip(axes, (rama_md, rama_lss), ("MD", "LSS, decoded")):
        plotting.free_energy_2d(
            angles,
            bins=[grid, grid],
            max_free_energy=8,
            labels=("phi (rad)", "psi (rad)"),
            ax=ax,
        )
        ax.set_title(f"alanine dipeptide, {name}")
    _save(fig, out, "free_energy_2d.png", files)
    fig, (a,) = _figure(1)
    plotting.free_energy_1d(psi, bins=edges, label="MD", xlabel=r"$\psi_1$", ax=a)
    plotting.free_energy_1d(
        latent, bins=edges, label="LSS", xlabel=r"$\psi_1$", ax=a, linestyle="--"
    )
    a.set_title(r"free energy along $\psi_1$")
    _save(fig, out, "free_energy.png", files)
    fig, (a,) = _figure(1)
    _draw_its(a, its, f"VAC of the latent coordinates (frames of {frame_ps:g} ps)")
    _save(fig, out, "implied_timescales.png", files)
    fig, (a, b) = _figure(2)
    plotting.transition_density(psi, lag, bins=edges, label=r"$\psi_1$", ax=a)
    a.set_title(f"MD, tau = {lag} frames")
    plotting.transition_density(latent, 1, bins=edges, label=r"$\psi_1$", ax=b)
    b.set_title("LSS, one step (tau)")
    _save(fig, out, "transition_density.png", files)
    fig, (a, b) = _figure(1, 2, width=10, height=3.2)
    plotting.latent_trajectory(psi[0], dt=frame_ps, time_unit="ps", ax=a)
    a.set_title("MD, encoded")
    plotting.latent_trajectory(latent[0], dt=frame_ps * lag, time_unit="ps", ax=b)
    b.set_title(f"latent space simulator (one step = {lag} frames)")
    _save(fig, out, "latent_trajectory.png", files)
    write_trajectory(
        result.configurations[0],
        generated[0].topology,
        out / "lss_trajectory.dcd",
        dt=frame_ps * lag,
    )
    files.append("lss_trajectory.dcd")
    structure = coords.inverse_transform(coords.reference_xyz_.reshape(1, -1))
    _save_model_folder(
        lss,
        out / "model",
        X,
        info={
            "input": "md",
            "output": "coordinates",
            "system": "alanine_dipeptide",
            "featurizer": "torsions",
            "featurizer_params": {"angles": "backbone"},
            "decoder_selection": "heavy",
            "frame_time_ps": frame_ps,
        },
        topology=structure,
    )
    files.append("model/")
    n_frames = sum(len(x) for x in X)
    section = {
        "title": "Alanine dipeptide in implicit solvent (OpenMM, AMBER ff96 + OBC2)",
        "text": (
            f"{n_traj} trajectories of {args.md_ns:g} ns, frames every {frame_ps:g} ps "
            f"({n_frames:,} frames). Encoder input: sin/cos of phi and psi; decoder output: "
            f"superposed coordinates of the 10 heavy atoms. SRV (m = 2), MDN (C = 12), cWGAN; "
            f"lag {lag} frames. The simulator runs {len(latent)} trajectories from the MD's first "
            f"frames, each with as many steps as the MD has frames (so {lag} times as long); "
            f"its decoded structures give the Ramachandran plot. "
            f"Timescales from autocorrelation fits of the latent coordinates, standard errors "
            f"from 5 contiguous blocks. The MD is short, so its own timescales are uncertain."
        ),
        "columns": ("quantity", "MD", "LSS", ""),
        "rows": [
            (
                "Ramachandran free-energy RMSE, decoded LSS against MD (kT, F <= 4 kT)",
                "",
                _fmt(rmse_rama, digits=2),
                "",
            ),
            ("free-energy RMSE along psi_1, LSS against MD (kT)", "", _fmt(rmse_psi, digits=3), ""),
            ("slowest timescale t1 (ps)", _fmt(t_md[0], se_md[0]), _fmt(t_lss[0], se_lss[0]), ""),
            ("second timescale t2 (ps)", _fmt(t_md[1], se_md[1]), _fmt(t_lss[1], se_lss[1]), ""),
            (f"VAMP-2 of the training MD (lag {lag})", _fmt(vamp2, digits=3), "", ""),
        ],
    }
    checks = [
        _check(
            "alanine dipeptide Ramachandran free energy",
            rmse_rama,
            rmse_rama <= 1.0,
            f"RMSE {rmse_rama:.2f} kT, decoded LSS against MD (target at most 1 kT)",
        )
    ]
    return {
        "title": "A latent space simulator of alanine dipeptide",
        "system": "alanine-dipeptide",
        "metrics": {
            "alanine_dipeptide": {
                "n_frames": n_frames,
                "frame_time_ps": frame_ps,
                "lag_time_frames": lag,
                "fit_seconds": fit_seconds,
                "ramachandran_free_energy_rmse_kT": rmse_rama,
                "free_energy_rmse_psi1_kT": rmse_psi,
                "timescales_ps": {
                    "md": t_md.tolist(),
                    "md_std_error": se_md.tolist(),
                    "lss": t_lss.tolist(),
                    "lss_std_error": se_lss.tolist(),
                },
                "vamp2_training": float(vamp2),
                "timescales_against_lag_frames": _its_json(its),
            }
        },
        "sections": [section],
        "checks": checks,
        "files": files,
    }


def _draw_its(ax, its, title):
    from . import plotting

    for key, color, name in (("md", "C0", "MD"), ("lss", "C1", "LSS")):
        lags, ts, se = its[key]
        if len(lags):
            plotting.implied_timescales(
                lags, ts, se, labels=[name], color=color, show_lag=key == "md", ax=ax
            )
    for k, t in enumerate(its["exact"]):
        ax.axhline(t, color="k", linestyle=":", linewidth=1, label="exact" if k == 0 else None)
    ax.legend(fontsize="small")
    ax.set_title(title)


def _demo_toy_figures(four, hidden, out):
    from . import plotting

    files = []
    fig, (a, b) = _figure(2)
    centres = 0.5 * (four["edges"][1:] + four["edges"][:-1])
    a.plot(centres, four["F_exact"], color="k", linewidth=2, label="exact")
    plotting.free_energy_1d(four["x"], bins=four["edges"], label="MD", ax=a)
    plotting.free_energy_1d(four["syn"], bins=four["edges"], label="LSS", ax=a, linestyle="--")
    a.set_ylim(0, 6)
    a.set_title("four-well: free energy along x")
    plotting.free_energy_1d(
        hidden["psi"], bins=hidden["edges"], label="MD", xlabel=r"$\psi_1$", ax=b
    )
    plotting.free_energy_1d(
        hidden["latent"],
        bins=hidden["edges"],
        label="LSS",
        xlabel=r"$\psi_1$",
        ax=b,
        linestyle="--",
    )
    b.set_title("hidden-coordinate toy: free energy along psi_1")
    _save(fig, out, "free_energy.png", files)

    fig, axes = _figure(2)
    both = np.concatenate(hidden["psi"])
    span = [[both[:, 0].min(), both[:, 0].max()], [both[:, 1].min(), both[:, 1].max()]]
    for ax, data, name in zip(axes, (hidden["psi"], hidden["latent"]), ("MD", "LSS")):
        plotting.free_energy_2d(
            data, bins=40, range=span, max_free_energy=8, labels=(r"$\psi_1$", r"$\psi_2$"), ax=ax
        )
        ax.set_title(f"hidden-coordinate toy, {name}")
    _save(fig, out, "free_energy_2d.png", files)

    fig, (a, b) = _figure(2)
    _draw_its(a, four["its"], "four-well: Markov model timescales")
    _draw_its(b, hidden["its"], "hidden-coordinate toy: VAC of the latent coordinates")
    _save(fig, out, "implied_timescales.png", files)

    fig, (a, b) = _figure(2)
    edges = four["edges"]
    plotting.transition_density(four["x"], 10, bins=edges, ax=a)
    a.set_title("four-well MD, tau = 10 frames")
    plotting.transition_density(four["syn"], 1, bins=edges, ax=b)
    b.set_title("four-well LSS, one step (tau)")
    _save(fig, out, "transition_density.png", files)

    fig, (a, b) = _figure(1, 2, width=10, height=3.2)
    md = hidden["psi"][0][:5000]
    plotting.latent_trajectory(md, ax=a)
    a.set_title("hidden-coordinate toy: held-out MD, encoded")
    plotting.latent_trajectory(hidden["latent"][0][: max(len(md) // 5, 2)], dt=5, ax=b)
    b.set_title("latent space simulator (one step = 5 frames)")
    _save(fig, out, "latent_trajectory.png", files)
    return files


def _write_report(out, report, args):
    from . import __version__

    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, np.generic):
            return value.item()
        return value

    data = {
        "sklss_version": __version__,
        "system": report["system"],
        "seed": args.seed,
        "seconds": report["seconds"],
        **plain(report["metrics"]),
        "checks": plain(report["checks"]),
        "files": report["files"],
    }
    (out / "metrics.json").write_text(json.dumps(data, indent=2) + "\n")
    lines = [f"# {report['title']}", ""]
    lines.append(
        f"Written by `sklss demo` (sklss {__version__}, seed {args.seed}) in "
        f"{report['seconds']:.0f} s."
    )
    for section in report["sections"]:
        lines += ["", f"## {section['title']}", "", section["text"], ""]
        lines.append("| " + " | ".join(section["columns"]) + " |")
        lines.append("|" + "---|" * len(section["columns"]))
        for row in section["rows"]:
            lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Targets", ""]
    for check in report["checks"]:
        lines.append(
            f"- {'met' if check['passed'] else 'MISSED'}: {check['name']}, {check['text']}"
        )
    lines += ["", "## Files", ""]
    for name in report["files"]:
        lines.append(f"- `{name}`" + (f"\n\n  ![{name}]({name})" if name.endswith(".png") else ""))
    lines += [
        "",
        "The simulator in `model/` runs on its own:",
        "",
        "```bash",
        f"sklss sample {out / 'model'} -n 4 --n-steps 10000 -o samples.npy",
        "```",
        "",
    ]
    (out / "metrics.md").write_text("\n".join(lines))
