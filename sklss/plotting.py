"""Plots for latent space simulators: free energies, implied timescales, transition densities
and latent trajectories.

Every function draws into the matplotlib Axes given as ``ax`` (by default the current Axes,
``plt.gca()``, so that calls in a row overlay, for example MD and a simulation), labels its
axes and returns the Axes. Data in trajectory form (one array or a list of them) is accepted
wherever a coordinate is histogrammed; times are in frames unless a ``dt`` is given.

matplotlib is needed (``pip install matplotlib``); it is imported when a function is called.
"""

import numpy as np

from ._validation import as_float_trajectories, check_lag_time
from .metrics import free_energy_profile

__all__ = [
    "ck_test",
    "free_energy_1d",
    "free_energy_2d",
    "implied_timescales",
    "latent_trajectory",
    "transition_density",
]


def _axes(ax):
    if ax is not None:
        return ax
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "sklss.plotting needs matplotlib; install it with 'pip install matplotlib'."
        ) from exc
    return plt.gca()


def _column(trajs, index, name):
    n = trajs[0].shape[1]
    if not -n <= index < n:
        raise ValueError(f"{name}={index} is out of range for data with {n} coordinates.")
    return [t[:, index] for t in trajs]


def _default_label(index, n_columns):
    return "x" if n_columns == 1 else f"coordinate {index}"


def free_energy_1d(
    x,
    *,
    coordinate=0,
    bins=50,
    range=None,
    kT=1.0,
    weights=None,
    label=None,
    xlabel=None,
    ax=None,
    **kwargs,
):
    """Plot the free energy ``F = -kT ln q`` along one coordinate.

    Parameters
    ----------
    x : array-like of shape (n_frames,) or (n_frames, n_features), or a list of them
        Trajectory data; a 3-D array ``(n_trajectories, n_frames, n_features)`` (the latent
        trajectories of :meth:`sklss.LatentSpaceSimulator.sample`) is read as a list.
    coordinate : int, default=0
        The column of ``x`` to histogram.
    bins : int or array-like, default=50
        Number of bins or bin edges, as in :func:`numpy.histogram`. Give the same edges to
        compare two profiles.
    range : (float, float), default=None
        Lower and upper edge when ``bins`` is a number.
    kT : float, default=1.0
        Thermal energy; the profile is in its units.
    weights : array-like, default=None
        Weights of the frames (for example an exact density on a grid), one per frame of the
        concatenated trajectories.
    label : str, default=None
        Legend label of the curve.
    xlabel : str, default=None
        Label of the x-axis; ``None`` names the coordinate.
    ax : matplotlib.axes.Axes, default=None
        Where to draw; ``None`` uses the current Axes.
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.plot`.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The Axes drawn into. The curve is ``ax.lines[-1]``: bin centres against ``F``, with
        empty bins as gaps (NaN). The minimum is at 0.

    See Also
    --------
    sklss.metrics.free_energy_profile : the profile itself, as arrays.
    free_energy_2d : the free energy over two coordinates.
    """
    trajs = as_float_trajectories(x, "x", stacks=True)
    values = np.concatenate(_column(trajs, coordinate, "coordinate"))
    F, edges = free_energy_profile(values, bins=bins, range=range, kT=kT, weights=weights)
    centres = 0.5 * (edges[1:] + edges[:-1])
    ax = _axes(ax)
    ax.plot(centres, np.where(np.isfinite(F), F, np.nan), label=label, **kwargs)
    ax.set_xlabel(xlabel or _default_label(coordinate, trajs[0].shape[1]))
    ax.set_ylabel("free energy (kT)" if kT == 1.0 else "free energy (energy units of kT)")
    if label is not None:
        ax.legend()
    return ax


def free_energy_2d(
    x,
    *,
    coordinates=(0, 1),
    bins=50,
    range=None,
    kT=1.0,
    weights=None,
    max_free_energy=None,
    cmap="viridis",
    colorbar=True,
    labels=None,
    ax=None,
):
    """Plot the free energy ``F = -kT ln q`` over two coordinates as a colour map.

    Parameters
    ----------
    x : array-like of shape (n_frames, n_features) or a list of them
        Trajectory data with at least two columns; a 3-D array is read as a list.
    coordinates : (int, int), default=(0, 1)
        The columns on the x- and y-axis.
    bins : int or [int, int] or [array, array], default=50
        Bins, as in :func:`numpy.histogram2d`.
    range : [[xmin, xmax], [ymin, ymax]], default=None
        Histogram range, as in :func:`numpy.histogram2d` (for torsions, ``[[-pi, pi]] * 2``).
    kT : float, default=1.0
        Thermal energy; the map is in its units.
    weights : array-like, default=None
        Weights of the frames of the concatenated trajectories.
    max_free_energy : float, default=None
        Upper end of the colour scale; higher values are drawn in its top colour.
    cmap : str or Colormap, default="viridis"
        Colour map.
    colorbar : bool, default=True
        Draw a colour bar labelled with the units.
    labels : (str, str), default=None
        Axis labels; ``None`` names the coordinates.
    ax : matplotlib.axes.Axes, default=None
        Where to draw; ``None`` uses the current Axes.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The Axes drawn into. The map is ``ax.collections[-1]`` (a QuadMesh), whose array is
        ``F`` with the first coordinate along x, masked where no frame fell; its minimum is 0.
    """
    trajs = as_float_trajectories(x, "x", stacks=True)
    i, j = coordinates
    a = np.concatenate(_column(trajs, i, "coordinates"))
    b = np.concatenate(_column(trajs, j, "coordinates"))
    q, xedges, yedges = np.histogram2d(a, b, bins=bins, range=range, weights=weights, density=True)
    with np.errstate(divide="ignore"):
        F = -kT * np.log(q)
    F -= F[np.isfinite(F)].min()
    ax = _axes(ax)
    # pcolormesh wants rows along y, so the histogram (rows along x) is transposed.
    mesh = ax.pcolormesh(
        xedges,
        yedges,
        np.ma.masked_invalid(F.T),
        cmap=cmap,
        vmin=0.0,
        vmax=max_free_energy,
        shading="flat",
    )
    xl, yl = labels if labels is not None else (f"coordinate {i}", f"coordinate {j}")
    ax.set_xlabel(xl)
    ax.set_ylabel(yl)
    if colorbar:
        bar = ax.figure.colorbar(mesh, ax=ax)
        bar.set_label("free energy (kT)" if kT == 1.0 else "free energy (energy units of kT)")
    return ax


def implied_timescales(
    lag_times,
    timescales,
    std_errors=None,
    *,
    dt=1.0,
    time_unit="frames",
    labels=None,
    color=None,
    show_lag=True,
    ax=None,
    **kwargs,
):
    """Plot implied timescales against the lag time, with error bands.

    Converged timescales are flat in the lag time: pick a lag where they have levelled off.
    Timescales below the line ``t = lag`` decay within one lag and are not resolved.

    ``nan`` marks a timescale that does not exist (an eigenvalue at or below the noise floor,
    or not positive, as :func:`sklss.metrics.implied_timescales` reports it): such a point is
    left out, with no marker and no band, and the line has a gap there rather than bridging
    it. A process that is ``nan`` at every lag gets an empty line. Infinite timescales cannot
    be drawn on a log axis and are left out the same way. The y-limits come from the finite
    timescales only.

    Parameters
    ----------
    lag_times : array-like of shape (n_lags,)
        Lag times, in frames (or steps).
    timescales : array-like of shape (n_lags,) or (n_lags, n_processes)
        Implied timescales at each lag, in the same units as ``lag_times``, for example from
        :func:`sklss.metrics.implied_timescales_vs_lag`, :func:`sklss.metrics.implied_timescales`
        or ``SRVTransformer(...).timescales_``; ``nan`` where there is none.
    std_errors : array-like of the shape of ``timescales``, default=None
        Standard errors; a band of one standard error is drawn on each side, where both the
        timescale and its error are finite.
    dt : float, default=1.0
        Time per frame; lags and timescales are multiplied by it.
    time_unit : str, default="frames"
        Unit of ``lag_times * dt``, for the axis labels.
    labels : str or list of str, default=None
        Legend labels, one per process (a single string labels the first process).
        ``None`` labels them "process 1", "process 2", ...; pass ``[]`` for no legend.
    color : color, default=None
        One colour for every process (to tell two models apart); ``None`` cycles colours.
    show_lag : bool, default=True
        Draw the line ``t = lag`` and shade the region below it.
    ax : matplotlib.axes.Axes, default=None
        Where to draw; ``None`` uses the current Axes.
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.plot`.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The Axes drawn into, with a logarithmic y-axis. Process ``i`` is the line
        ``ax.lines[i]`` (among those drawn by this call, in order), whose y-data is a masked
        array with the left-out points masked, and its band the matching
        :class:`~matplotlib.collections.FillBetweenPolyCollection`.
    """
    lags = np.asarray(lag_times, dtype=np.float64).ravel() * dt
    ts = np.asarray(timescales, dtype=np.float64) * dt
    if ts.ndim == 1:
        ts = ts[:, None]
    if ts.ndim != 2 or len(ts) != len(lags):
        raise ValueError(
            f"timescales must have shape (n_lags,) or (n_lags, n_processes) with "
            f"n_lags={len(lags)}; got shape {np.shape(timescales)}."
        )
    se = None
    if std_errors is not None:
        se = np.asarray(std_errors, dtype=np.float64) * dt
        se = se[:, None] if se.ndim == 1 else se
        if se.shape != ts.shape:
            raise ValueError(
                f"std_errors must have the shape of timescales, {ts.shape}; got {se.shape}."
            )
    n_processes = ts.shape[1]
    if labels is None:
        labels = [f"process {k + 1}" for k in np.arange(n_processes)]
    elif isinstance(labels, str):
        labels = [labels]
    ax = _axes(ax)
    shown = np.isfinite(ts) & (ts > 0)
    for k in np.arange(n_processes):
        label = labels[k] if k < len(labels) else None
        y = np.ma.masked_array(ts[:, k], mask=~shown[:, k])
        (line,) = ax.plot(lags, y, marker="o", color=color, label=label, **kwargs)
        if se is not None:
            band = shown[:, k] & np.isfinite(se[:, k])
            low = np.where(band, ts[:, k] - se[:, k], np.nan)
            high = np.where(band, ts[:, k] + se[:, k], np.nan)
            ax.fill_between(lags, low, high, where=band, color=line.get_color(), alpha=0.25)
    if show_lag:
        ax.fill_between(lags, np.full_like(lags, 1e-300), lags, color="0.85", zorder=0)
        ax.plot(lags, lags, color="0.4", linestyle="--", linewidth=1, zorder=0)
    ax.set_yscale("log")
    finite = ts[shown]
    if finite.size:
        ax.set_ylim(min(finite.min(), lags.min()) / 2, finite.max() * 2)
    ax.set_xlabel(f"lag time ({time_unit})")
    ax.set_ylabel(f"implied timescale ({time_unit})")
    if len(labels):
        ax.legend()
    return ax


def transition_density(
    x,
    lag_time=1,
    *,
    coordinate=0,
    bins=50,
    range=None,
    cmap="viridis",
    colorbar=True,
    label=None,
    ax=None,
):
    """Plot the transition density ``p(x_{t+tau} | x_t)`` of one coordinate as a colour map.

    Pairs ``(x_t, x_{t+tau})`` are taken within each trajectory, ``lag_time`` frames apart,
    and histogrammed on a square grid; each column (start bin) is normalised to a density in
    ``x_{t+tau}``. For a simulator's trajectories, where one step is one lag time, pass
    ``lag_time=1``.

    Parameters
    ----------
    x : array-like of shape (n_frames,) or (n_frames, n_features), or a list of them
        Trajectory data; a 3-D array ``(n_trajectories, n_frames, n_features)`` is read as a
        list.
    lag_time : int, default=1
        Lag in frames.
    coordinate : int, default=0
        The column of ``x`` to use.
    bins : int or array-like, default=50
        Number of bins or bin edges, used on both axes.
    range : (float, float), default=None
        Lower and upper edge when ``bins`` is a number; ``None`` uses the data's range.
    cmap : str or Colormap, default="viridis"
        Colour map.
    colorbar : bool, default=True
        Draw a colour bar.
    label : str, default=None
        Name of the coordinate for the axis labels; ``None`` names it by its column.
    ax : matplotlib.axes.Axes, default=None
        Where to draw; ``None`` uses the current Axes.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The Axes drawn into, ``x_t`` along the x-axis and ``x_{t+tau}`` along the y-axis.
        The map is ``ax.collections[-1]``, whose array (rows along ``x_{t+tau}``) is masked
        for start bins that no pair starts from.
    """
    lag = check_lag_time(lag_time)
    trajs = as_float_trajectories(x, "x", stacks=True)
    column = _column(trajs, coordinate, "coordinate")
    starts = [c[:-lag] for c in column if len(c) > lag]
    if not starts:
        longest = max(len(c) for c in column)
        raise ValueError(
            f"No trajectory is longer than lag_time={lag}; the longest has {longest} frames."
        )
    ends = [c[lag:] for c in column if len(c) > lag]
    a, b = np.concatenate(starts), np.concatenate(ends)
    if range is None and np.ndim(bins) == 0:
        values = np.concatenate(column)
        range = (values.min(), values.max())
    counts, edges, _ = np.histogram2d(a, b, bins=[bins, bins], range=[range, range])
    widths = np.diff(edges)
    rows = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        density = counts / rows / widths[None, :]
    ax = _axes(ax)
    mesh = ax.pcolormesh(edges, edges, np.ma.masked_invalid(density.T), cmap=cmap, shading="flat")
    name = label or _default_label(coordinate, trajs[0].shape[1])
    ax.set_xlabel(f"{name} at t")
    ax.set_ylabel(f"{name} at t + {lag}")
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax).set_label("transition density")
    return ax


def latent_trajectory(
    latent,
    *,
    components=None,
    trajectory=0,
    dt=1.0,
    time_unit="frames",
    labels=None,
    ax=None,
    **kwargs,
):
    """Plot latent coordinates against time.

    Parameters
    ----------
    latent : array-like or SimulationResult
        A latent trajectory of shape (n_frames,) or (n_frames, n_components) (for example
        ``SRVTransformer.transform`` of MD), several of shape (n_trajectories, n_frames,
        n_components) or as a list, or the result of :meth:`sklss.LatentSpaceSimulator.sample`
        (its ``latent`` is drawn).
    components : list of int, default=None
        Columns to draw; ``None`` draws all.
    trajectory : int, default=0
        Which trajectory of a 3-D array (or list) to draw.
    dt : float, default=1.0
        Time per frame. A simulator advances one lag time per step, so pass ``dt=lag_time``
        to put its steps in frames of the training data.
    time_unit : str, default="frames"
        Unit of time, for the axis label.
    labels : list of str, default=None
        Legend labels; ``None`` labels column ``i`` as ``psi_{i+1}``.
    ax : matplotlib.axes.Axes, default=None
        Where to draw; ``None`` uses the current Axes.
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.plot`.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The Axes drawn into; one line per component, time ``arange(n_frames) * dt`` against
        its value.
    """
    latent = getattr(latent, "latent", latent)
    trajs = as_float_trajectories(latent, "latent", stacks=True)
    if not -len(trajs) <= trajectory < len(trajs):
        raise ValueError(f"trajectory={trajectory} is out of range for {len(trajs)} trajectories.")
    traj = trajs[trajectory]
    components = np.arange(traj.shape[1]) if components is None else np.atleast_1d(components)
    if labels is None:
        labels = [rf"$\psi_{{{int(c) + 1}}}$" for c in components]
    time = np.arange(len(traj)) * dt
    ax = _axes(ax)
    for c, label in zip(components, labels):
        ax.plot(time, _column([traj], int(c), "components")[0], label=label, **kwargs)
    ax.set_xlabel(f"time ({time_unit})")
    ax.set_ylabel("latent coordinate")
    if len(labels):
        ax.legend()
    return ax


def ck_test(result, *, dt=1.0, time_unit="frames", axes=None):
    """Plot a Chapman-Kolmogorov test: one panel per state.

    Each panel shows, against the lag time, the probability of being in the state again:
    measured from the MD directly (black points with error bars), predicted by the MD's
    Markov state model at the base lag (grey dashed line with its band) and, where the result
    holds a simulator, estimated from the simulation (coloured line with its band). A
    simulator is faithful where its line runs through the MD's error bars.

    Parameters
    ----------
    result : Bunch
        From :meth:`sklss.LatentSpaceSimulator.ck_test` or
        :func:`sklss.markov.chapman_kolmogorov_test`.
    dt : float, default=1.0
        Time per frame; lag times are multiplied by it.
    time_unit : str, default="frames"
        Unit of the lag axis.
    axes : sequence of matplotlib.axes.Axes, default=None
        One Axes per state; ``None`` makes a new figure with a row of panels.

    Returns
    -------
    axes : ndarray of matplotlib.axes.Axes
        The panels, in state order. Panel ``i`` holds the MD error bars as its first
        container and, in order, the lines "MSM prediction" and "simulation" (if any).
    """
    n_states = np.shape(result.md)[1]
    if axes is None:
        import matplotlib.pyplot as plt

        _, axes = plt.subplots(1, n_states, figsize=(3 * n_states, 3), sharey=True, squeeze=False)
        axes = axes[0]
    axes = np.asarray(axes, dtype=object).ravel()
    if len(axes) != n_states:
        raise ValueError(f"axes must hold one Axes per state ({n_states}); got {len(axes)}.")
    lags = np.asarray(result.lag_times, dtype=np.float64) * dt
    has_model = "model" in result
    for i, ax in enumerate(axes):
        md = np.asarray(result.md)[:, i]
        err = np.vstack(
            [md - np.asarray(result.md_lower)[:, i], np.asarray(result.md_upper)[:, i] - md]
        )
        ok = np.isfinite(md)
        ax.errorbar(lags[ok], md[ok], yerr=err[:, ok], fmt="o", color="k", capsize=3, label="MD")
        ax.plot(lags, result.predicted[:, i], "--", color="0.4", label="MSM prediction")
        ax.fill_between(
            lags, result.predicted_lower[:, i], result.predicted_upper[:, i], color="0.8"
        )
        if has_model:
            model = np.asarray(result.model)[:, i]
            ok = np.isfinite(model)
            (line,) = ax.plot(lags[ok], model[ok], "-", color="C1", label="simulation")
            ax.fill_between(
                lags[ok],
                np.asarray(result.model_lower)[ok, i],
                np.asarray(result.model_upper)[ok, i],
                color=line.get_color(),
                alpha=0.3,
            )
        ax.set_title(f"state {i + 1}")
        ax.set_xlabel(f"lag time ({time_unit})")
        ax.set_ylim(0, 1.05)
    axes[0].set_ylabel("probability to be in the state again")
    axes[0].legend(loc="lower left", fontsize="small")
    return axes
