"""Pieces shared by the demo systems: progress, checks, error bars and figures."""

import numpy as np

from .._errors import CommandError


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
