"""Pieces shared by the demo systems: the simulator, measures, checks, tables and figures."""

import numpy as np

from .._errors import CommandError


def _stage(args, message):
    if args.verbose:
        print(message, flush=True)


def _check(name, value, passed, text):
    return {"name": name, "value": float(value), "passed": bool(passed), "text": text}


def _relative_check(name, value, exact, tolerance):
    """A check that ``value`` is within ``tolerance`` (a fraction) of ``exact``."""
    error = value / exact - 1
    return _check(
        name,
        error,
        abs(error) <= tolerance,
        f"{error:+.1%} against exact (target within {round(100 * tolerance)} %)",
    )


def _srv_mdn_cwgan(args, *, lag, encoder_batch_size, decoder):
    """The unfitted SRV + MDN + cWGAN simulator of the hidden-coordinate and alanine demos.

    Both networks of the encoder and propagator have 2 x 64 units; ``decoder`` holds the
    cWGAN's parameters.
    """
    from ... import CWGANDecoder, LatentSpaceSimulator, MDNPropagator, SRVTransformer

    # The networks print from verbose 2 on.
    verbose = max(args.verbose - 1, 0)
    return LatentSpaceSimulator(
        SRVTransformer(
            n_components=2,
            hidden_layer_sizes=(64, 64),
            batch_size=encoder_batch_size,
            max_epochs=args.epochs,
            verbose=verbose,
        ),
        MDNPropagator(
            n_kernels=12, hidden_layer_sizes=(64, 64), max_epochs=args.epochs, verbose=verbose
        ),
        CWGANDecoder(**decoder, verbose=verbose),
        lag_time=lag,
        random_state=args.seed,
        verbose=min(args.verbose, 1),
    )


def _latent_measures(lss, X, psi, latent, *, lag, dt=1.0, md_lags, lss_steps, exact=()):
    """MD against simulation in latent space: free energy along psi_1 and timescales.

    ``psi`` is the encoded MD ``X`` (frames ``dt`` apart), ``latent`` the simulator's latent
    trajectories (steps of ``lag`` frames). Timescales come from autocorrelation fits and,
    against the lag time, from VAC at ``md_lags`` frames and ``lss_steps`` steps.
    """
    from ...metrics import autocorrelation_timescales, implied_timescales

    def vac(trajs, lag_frames):
        return implied_timescales(trajs, lag_frames, n_components=2)

    rmse, edges = _free_energy_psi1(psi, latent)
    return {
        "rmse_psi": rmse,
        "edges": edges,
        "md": autocorrelation_timescales(psi, dt=dt),
        "lss": autocorrelation_timescales(latent, dt=dt * lag),
        "vamp2": lss.vamp2_score(X),
        "its": _its_md_lss(psi, latent, vac, lag, exact, md_lags, lss_steps),
    }


def _free_energy_psi1(psi, latent):
    """RMSE between the free energies along psi_1 of MD and simulation; the 50 bins' edges."""
    from ...metrics import free_energy_profile, free_energy_rmse

    md1 = np.concatenate([p[:, 0] for p in psi])
    edges = np.linspace(md1.min(), md1.max(), 51)
    F_md, _ = free_energy_profile(md1, bins=edges)
    F_lss, _ = free_energy_profile(np.concatenate([t[:, 0] for t in latent]), bins=edges)
    return free_energy_rmse(F_md, F_lss), edges


def _blocks(trajs, n_blocks=5):
    """``n_blocks`` contiguous blocks of every trajectory: block ``k`` holds their k-th parts."""
    return [[np.array_split(t, n_blocks)[k] for t in trajs] for k in range(n_blocks)]


def _with_errors(trajs, estimate):
    """An estimate on all trajectories, and its standard error from 5 contiguous blocks."""
    from threadpoolctl import threadpool_limits

    from ...metrics import block_average

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


def _its_md_lss(md, lss, estimate, lag, exact, md_lags, lss_steps):
    """Timescales against the lag time of MD and simulation, for the table and the figure."""
    return {
        "md": _its_against_lag(md, md_lags, estimate),
        "lss": _its_against_lag(lss, lss_steps, estimate, unit=lag),
        "exact": exact,
    }


def _its_json(its):
    return {
        key: dict(zip(("lag_times", "timescales", "std_errors"), its[key])) for key in ("md", "lss")
    }


def _timescales_json(md, lss, **more):
    """Timescales of MD and simulation, with standard errors, and ``more`` lists, for JSON."""
    (t_md, se_md), (t_lss, se_lss) = md, lss
    lists = {"md": t_md, "md_std_error": se_md, "lss": t_lss, "lss_std_error": se_lss, **more}
    return {key: np.asarray(value).tolist() for key, value in lists.items()}


def _fmt(value, se=None, digits=0):
    text = f"{value:,.{digits}f}"
    return text if se is None else f"{text} ± {se:,.{digits}f}"


def _fmt_all(values):
    return ", ".join(_fmt(v) for v in values)


def _psi1_row(rmse):
    """The table row of the free-energy RMSE along psi_1, simulation against MD."""
    return ("free-energy RMSE along psi_1, LSS against MD (kT)", "", _fmt(rmse, digits=3), "")


def _timescale_rows(unit, md, lss, exact=None, digits=(0, 0)):
    """Table rows of t1 and t2: MD and simulation with standard errors, and exact values."""
    (t_md, se_md), (t_lss, se_lss) = md, lss
    rows = []
    for k, name in enumerate(("slowest timescale t1", "second timescale t2")):
        rows.append(
            (
                f"{name} ({unit})",
                _fmt(t_md[k], se_md[k], digits[k]),
                _fmt(t_lss[k], se_lss[k], digits[k]),
                "" if exact is None else _fmt(exact[k], digits=digits[k]),
            )
        )
    return rows


def _figure(n_cols, n_rows=1, width=5.2, height=3.9):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * n_cols, height * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    return fig, list(axes.ravel())


def _save(fig, out, name, files):
    fig.savefig(out / name, dpi=110)
    files.append(name)


def _require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CommandError(
            "the demo draws its figures with matplotlib; install it with 'pip install matplotlib'"
        ) from None


def _draw_its(ax, its, title):
    from ... import plotting

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
