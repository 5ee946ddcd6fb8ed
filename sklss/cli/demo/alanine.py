"""The alanine dipeptide demo, on OpenMM molecular dynamics."""

import time

import numpy as np

from .._errors import CommandError
from .._model_folder import _save_model_folder
from ._common import (
    _check,
    _draw_its,
    _figure,
    _fmt,
    _its_against_lag,
    _its_json,
    _require_matplotlib,
    _save,
    _stage,
)


def _demo_alanine(args, out):
    from ... import CWGANDecoder, LatentSpaceSimulator, MDNPropagator, SRVTransformer, plotting
    from ..._trajectory_files import import_md, write_trajectory
    from ...datasets import alanine_dipeptide
    from ...features import SuperposedCoordinates, Torsions
    from ...metrics import (
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
