"""The alanine dipeptide demo, on OpenMM molecular dynamics."""

import time

import numpy as np

from .._errors import CommandError
from ._common import (
    _check,
    _draw_its,
    _figure,
    _fmt,
    _its_json,
    _latent_measures,
    _psi1_row,
    _require_matplotlib,
    _save,
    _srv_mdn_cwgan,
    _stage,
    _timescale_rows,
    _timescales_json,
)

_N_TRAJ, _LAG = 4, 10
# Bins of the Ramachandran plot, in radians.
_GRID = np.linspace(-np.pi, np.pi, 31)


def _demo_alanine(args, out):
    _require_matplotlib()
    _check_alanine_args(args)
    print(
        f"sklss demo: alanine dipeptide, {_N_TRAJ} x {args.md_ns:g} ns of implicit-solvent MD "
        "(OpenMM, cached for the next run)"
    )
    md = _alanine_md(args)
    t0 = time.perf_counter()
    # A few MD frames give few generator updates per epoch: ten times the epochs.
    decoder = dict(noise_dim=16, hidden_layer_sizes=(128, 128), max_epochs=10 * args.epochs)
    lss = _srv_mdn_cwgan(args, lag=_LAG, encoder_batch_size=1024, decoder=decoder)
    lss.fit(md["X"], md["Y"])
    fit_seconds = time.perf_counter() - t0
    m = _alanine_measures(lss, md, args.seed)
    (t_md, se_md), (t_lss, se_lss) = m["md"], m["lss"]
    print(
        f"alanine dipeptide LSS on {sum(len(x) for x in md['X']):,} frames ({fit_seconds:.0f} s): "
        f"Ramachandran free-energy RMSE {m['rmse_rama']:.2f} kT, t1 MD {t_md[0]:.0f} ± "
        f"{se_md[0]:.0f} ps, LSS {t_lss[0]:.0f} ± {se_lss[0]:.0f} ps"
    )
    files = _alanine_figures(m, md["frame_ps"], out)
    files += _alanine_outputs(lss, md, m["result"], out)
    return _alanine_report(args, md, m, fit_seconds, files)


def _check_alanine_args(args):
    from ..._optional import import_md

    import_md("mdtraj", feature="sklss demo --system alanine-dipeptide")
    import_md("openmm", feature="sklss demo --system alanine-dipeptide")
    if not args.md_ns > 0:
        raise CommandError(f"--md-ns must be positive; got {args.md_ns}")


def _alanine_md(args):
    """The MD (run or read from the cache), its backbone torsions and heavy-atom coordinates."""
    from ...datasets import alanine_dipeptide
    from ...features import SuperposedCoordinates, Torsions

    t0 = time.perf_counter()
    trajs = alanine_dipeptide(
        args.md_ns, n_trajectories=_N_TRAJ, random_state=args.seed, verbose=min(args.verbose, 1)
    )
    trajs = trajs if isinstance(trajs, list) else [trajs]
    frame_ps = float(trajs[0].timestep) if trajs[0].n_frames > 1 else 1.0
    _stage(args, f"   MD ready ({time.perf_counter() - t0:.0f} s); fitting the simulator")
    torsions = Torsions("backbone").fit(trajs)
    coords = SuperposedCoordinates("heavy").fit(trajs)
    X, Y = torsions.transform(trajs), coords.transform(trajs)
    return {"trajs": trajs, "frame_ps": frame_ps, "coords": coords, "X": X, "Y": Y}


def _alanine_measures(lss, md, seed):
    """Simulations from the MD's first frames, decoded, against the MD."""
    from ...metrics import free_energy_rmse

    X, frame_ps = md["X"], md["frame_ps"]
    psi = lss.transform(X)
    # As many steps as the MD has frames: ten times its duration, for tighter statistics.
    result = lss.sample(np.stack([x[0] for x in X]), len(X[0]), random_state=seed)
    latent = list(result.latent)
    generated = md["coords"].inverse_transform(result.configurations, dt=frame_ps * _LAG)
    rama_md, rama_lss = _ramachandran(md["trajs"]), _ramachandran(generated)
    rmse_rama = free_energy_rmse(
        _ramachandran_free_energy(rama_md),
        _ramachandran_free_energy(rama_lss),
        max_free_energy=4.0,
    )
    measures = _latent_measures(
        lss,
        X,
        psi,
        latent,
        lag=_LAG,
        dt=frame_ps,
        md_lags=(1, 2, 5, 10, 20, 50),
        lss_steps=(1, 2, 5),
    )
    measures.update(
        psi=psi,
        latent=latent,
        result=result,
        rama_md=rama_md,
        rama_lss=rama_lss,
        rmse_rama=rmse_rama,
    )
    return measures


def _ramachandran(trajs):
    """The phi and psi angles (radians) of each trajectory."""
    from ..._optional import import_md

    md = import_md("mdtraj", feature="sklss demo --system alanine-dipeptide")
    return [
        np.column_stack([md.compute_phi(t)[1][:, 0], md.compute_psi(t)[1][:, 0]]) for t in trajs
    ]


def _ramachandran_free_energy(angles):
    a = np.concatenate(angles)
    q, _, _ = np.histogram2d(a[:, 0], a[:, 1], bins=[_GRID, _GRID], density=True)
    with np.errstate(divide="ignore"):
        F = -np.log(q)
    return F - F[np.isfinite(F)].min()


def _alanine_figures(m, frame_ps, out):
    from ... import plotting

    files = []
    psi, latent, edges = m["psi"], m["latent"], m["edges"]
    fig, axes = _figure(2)
    for ax, angles, name in zip(axes, (m["rama_md"], m["rama_lss"]), ("MD", "LSS, decoded")):
        plotting.free_energy_2d(
            angles,
            bins=[_GRID, _GRID],
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
    _draw_its(a, m["its"], f"VAC of the latent coordinates (frames of {frame_ps:g} ps)")
    _save(fig, out, "implied_timescales.png", files)
    fig, (a, b) = _figure(2)
    plotting.transition_density(psi, _LAG, bins=edges, label=r"$\psi_1$", ax=a)
    a.set_title(f"MD, tau = {_LAG} frames")
    plotting.transition_density(latent, 1, bins=edges, label=r"$\psi_1$", ax=b)
    b.set_title("LSS, one step (tau)")
    _save(fig, out, "transition_density.png", files)
    fig, (a, b) = _figure(1, 2, width=10, height=3.2)
    plotting.latent_trajectory(psi[0], dt=frame_ps, time_unit="ps", ax=a)
    a.set_title("MD, encoded")
    plotting.latent_trajectory(latent[0], dt=frame_ps * _LAG, time_unit="ps", ax=b)
    b.set_title(f"latent space simulator (one step = {_LAG} frames)")
    _save(fig, out, "latent_trajectory.png", files)
    return files


def _alanine_outputs(lss, md, result, out):
    """The first simulated trajectory as DCD, and the simulator as a model folder."""
    from ...io import save_model_folder, write_trajectory

    coords, frame_ps = md["coords"], md["frame_ps"]
    structure = coords.inverse_transform(coords.reference_xyz_.reshape(1, -1))
    write_trajectory(
        result.configurations[0], structure.topology, out / "lss_trajectory.dcd", dt=frame_ps * _LAG
    )
    info = {
        "input": "md",
        "output": "coordinates",
        "system": "alanine_dipeptide",
        "featurizer": "torsions",
        "featurizer_params": {"angles": "backbone"},
        "decoder_selection": "heavy",
        "frame_time_ps": frame_ps,
    }
    save_model_folder(lss, out / "model", md["X"], info=info, topology=structure)
    return ["lss_trajectory.dcd", "model/"]


def _alanine_report(args, md, m, fit_seconds, files):
    n_frames = sum(len(x) for x in md["X"])
    rmse_rama = m["rmse_rama"]
    checks = [
        _check(
            "alanine dipeptide Ramachandran free energy",
            rmse_rama,
            rmse_rama <= 1.0,
            f"RMSE {rmse_rama:.2f} kT, decoded LSS against MD (target at most 1 kT)",
        )
    ]
    metrics = {
        "n_frames": n_frames,
        "frame_time_ps": md["frame_ps"],
        "lag_time_frames": _LAG,
        "fit_seconds": fit_seconds,
        "ramachandran_free_energy_rmse_kT": rmse_rama,
        "free_energy_rmse_psi1_kT": m["rmse_psi"],
        "timescales_ps": _timescales_json(m["md"], m["lss"]),
        "vamp2_training": float(m["vamp2"]),
        "timescales_against_lag_frames": _its_json(m["its"]),
    }
    return {
        "title": "A latent space simulator of alanine dipeptide",
        "system": "alanine-dipeptide",
        "metrics": {"alanine_dipeptide": metrics},
        "sections": [_alanine_section(args, n_frames, md["frame_ps"], m)],
        "checks": checks,
        "files": files,
    }


def _alanine_section(args, n_frames, frame_ps, m):
    return {
        "title": "Alanine dipeptide in implicit solvent (OpenMM, AMBER ff96 + OBC2)",
        "text": (
            f"{_N_TRAJ} trajectories of {args.md_ns:g} ns, frames every {frame_ps:g} ps "
            f"({n_frames:,} frames). Encoder input: sin/cos of phi and psi; decoder output: "
            f"superposed coordinates of the 10 heavy atoms. SRV (m = 2), MDN (C = 12), cWGAN; "
            f"lag {_LAG} frames. The simulator runs {len(m['latent'])} trajectories from the "
            f"MD's first frames, each with as many steps as the MD has frames (so {_LAG} times "
            f"as long); its decoded structures give the Ramachandran plot. "
            f"Timescales from autocorrelation fits of the latent coordinates, standard errors "
            f"from 5 contiguous blocks. The MD is short, so its own timescales are uncertain."
        ),
        "columns": ("quantity", "MD", "LSS", ""),
        "rows": [
            (
                "Ramachandran free-energy RMSE, decoded LSS against MD (kT, F <= 4 kT)",
                "",
                _fmt(m["rmse_rama"], digits=2),
                "",
            ),
            _psi1_row(m["rmse_psi"]),
            *_timescale_rows("ps", m["md"], m["lss"]),
            (f"VAMP-2 of the training MD (lag {_LAG})", _fmt(m["vamp2"], digits=3), "", ""),
        ],
    }
