import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sklss import plotting  # noqa: E402
from sklss.metrics import free_energy_profile  # noqa: E402


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


@pytest.fixture(autouse=True)
def close_all():
    yield
    plt.close("all")


def test_free_energy_1d_draws_the_profile_of_the_chosen_column(ax):
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(3000, 2)), rng.normal(1.0, 0.5, size=(2000, 2))]
    edges = np.linspace(-4, 4, 41)
    out = plotting.free_energy_1d(x, coordinate=1, bins=edges, label="MD", ax=ax)
    assert out is ax
    F, _ = free_energy_profile(np.concatenate([t[:, 1] for t in x]), bins=edges)
    line = ax.lines[-1]
    np.testing.assert_allclose(line.get_xdata(), 0.5 * (edges[1:] + edges[:-1]))
    y = line.get_ydata()
    np.testing.assert_array_equal(np.isnan(y), ~np.isfinite(F))
    np.testing.assert_allclose(y[np.isfinite(F)], F[np.isfinite(F)])
    assert np.nanmin(y) == 0.0
    assert ax.get_xlabel() == "coordinate 1"
    assert ax.get_ylabel() == "free energy (kT)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["MD"]


def test_free_energy_1d_of_weighted_grid_matches_minus_log_density_and_overlays(ax):
    grid = np.linspace(-1, 1, 201)
    density = np.exp(-(grid**2) / 0.1)
    edges = np.linspace(-1.005, 1.005, 202)
    plotting.free_energy_1d(grid, bins=edges, weights=density, ax=ax)
    plotting.free_energy_1d(grid[:100], bins=edges, ax=ax, xlabel="x (nm)")
    assert len(ax.lines) == 2
    np.testing.assert_allclose(ax.lines[0].get_ydata(), grid**2 / 0.1, atol=1e-9)
    assert ax.get_xlabel() == "x (nm)"


def test_free_energy_1d_draws_into_the_current_axes_by_default():
    fig, ax = plt.subplots()
    assert plotting.free_energy_1d(np.arange(100.0)) is ax
    plt.close(fig)


def test_free_energy_2d_maps_minus_log_density_with_first_coordinate_along_x(ax):
    rng = np.random.default_rng(1)
    # A 3-D stack of trajectories, as LatentSpaceSimulator.sample returns.
    x = np.stack([rng.normal([0, 3, 0], [1, 0.3, 1], size=(4000, 3)) for _ in range(2)])
    plotting.free_energy_2d(x, coordinates=(0, 1), bins=[20, 10], max_free_energy=6, ax=ax)
    mesh = ax.collections[-1]
    q, xe, ye = np.histogram2d(x[..., 0].ravel(), x[..., 1].ravel(), bins=[20, 10], density=True)
    with np.errstate(divide="ignore"):
        F = -np.log(q)
    F -= F[np.isfinite(F)].min()
    shown = mesh.get_array()
    assert shown.shape == (10, 20)  # rows along y (coordinate 1), columns along x
    np.testing.assert_array_equal(shown.mask, ~np.isfinite(F.T))
    np.testing.assert_allclose(shown.compressed(), F.T[np.isfinite(F.T)])
    assert mesh.get_clim() == (0.0, 6.0)
    assert ax.get_xlabel() == "coordinate 0" and ax.get_ylabel() == "coordinate 1"
    colorbar_axes = [a for a in ax.figure.axes if a is not ax]
    assert colorbar_axes and colorbar_axes[0].get_ylabel() == "free energy (kT)"


def test_free_energy_2d_takes_labels_and_rejects_a_missing_column(ax):
    x = np.random.default_rng(0).normal(size=(500, 2))
    plotting.free_energy_2d(x, labels=("phi", "psi"), colorbar=False, ax=ax)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("phi", "psi")
    assert len(ax.figure.axes) == 1
    with pytest.raises(ValueError, match="coordinates=2 is out of range for data with 2"):
        plotting.free_energy_2d(x, coordinates=(0, 2), ax=ax)


def test_implied_timescales_draws_each_process_with_its_band(ax):
    lags = np.array([1, 2, 5, 10])
    ts = np.array([[300.0, 90.0], [310, 95], [330, 98], [335, 99]])
    se = np.array([[20.0, 5.0], [21, 5], [22, 6], [25, 7]])
    plotting.implied_timescales(lags, ts, se, dt=0.5, time_unit="ps", ax=ax)
    lines = ax.lines[:2]
    for k, line in enumerate(lines):
        np.testing.assert_allclose(line.get_xdata(), lags * 0.5)
        np.testing.assert_allclose(line.get_ydata(), ts[:, k] * 0.5)
    bands = ax.collections[:2]
    for k, band in enumerate(bands):
        y = band.get_paths()[0].vertices[:, 1]
        assert y.min() == pytest.approx((ts[:, k] - se[:, k]).min() * 0.5)
        assert y.max() == pytest.approx((ts[:, k] + se[:, k]).max() * 0.5)
    # The t = lag line.
    np.testing.assert_allclose(ax.lines[2].get_ydata(), lags * 0.5)
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel() == "lag time (ps)" and ax.get_ylabel() == "implied timescale (ps)"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["process 1", "process 2"]


def test_implied_timescales_of_one_process_without_errors_or_lag_line(ax):
    plotting.implied_timescales([1, 2, 3], [10.0, 11.0, 12.0], labels="MD", show_lag=False, ax=ax)
    assert len(ax.lines) == 1 and len(ax.collections) == 0
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [10, 11, 12])
    with pytest.raises(ValueError, match="n_lags=3"):
        plotting.implied_timescales([1, 2, 3], [10.0, 11.0], ax=ax)
    with pytest.raises(ValueError, match="std_errors must have the shape"):
        plotting.implied_timescales([1, 2, 3], [10.0, 11.0, 12.0], [1.0, 2.0], ax=ax)


def test_transition_density_normalises_each_start_bin_and_keeps_pairs_in_trajectories(ax):
    # Two trajectories that alternate between 0.25 and 0.75; a pair across their boundary
    # (0.75 -> 0.75) would put mass on the diagonal.
    a = np.tile([0.25, 0.75], 50)
    x = [a[:, None], a[:, None]]
    plotting.transition_density(x, lag_time=1, bins=2, range=(0, 1), ax=ax)
    shown = ax.collections[-1].get_array()
    # Rows along x_{t+tau}, columns along x_t; a density of 2 per unit length (bin width 0.5).
    np.testing.assert_allclose(shown, [[0, 2], [2, 0]])
    assert ax.get_xlabel() == "x at t" and ax.get_ylabel() == "x at t + 1"


def test_transition_density_at_a_lag_matches_a_direct_histogram(ax):
    rng = np.random.default_rng(3)
    x = np.cumsum(rng.normal(size=(5000, 2)), axis=0)
    edges = np.linspace(x[:, 1].min(), x[:, 1].max(), 16)
    plotting.transition_density(x, lag_time=7, coordinate=1, bins=edges, label="psi", ax=ax)
    counts, _, _ = np.histogram2d(x[:-7, 1], x[7:, 1], bins=[edges, edges])
    with np.errstate(invalid="ignore"):
        expected = counts / counts.sum(1, keepdims=True) / np.diff(edges)[None, :]
    shown = ax.collections[-1].get_array()
    np.testing.assert_array_equal(shown.mask, np.isnan(expected.T))
    np.testing.assert_allclose(shown.compressed(), expected.T[~np.isnan(expected.T)])
    assert ax.get_ylabel() == "psi at t + 7"
    with pytest.raises(ValueError, match="No trajectory is longer than lag_time=9000"):
        plotting.transition_density(x, lag_time=9000, ax=ax)


def test_latent_trajectory_plots_each_component_against_time(ax):
    from sklss import SimulationResult

    latent = np.random.default_rng(0).normal(size=(3, 50, 2))
    result = SimulationResult(latent, None, lag_time=5)
    plotting.latent_trajectory(result, trajectory=1, dt=5, ax=ax)
    assert len(ax.lines) == 2
    for k, line in enumerate(ax.lines):
        np.testing.assert_allclose(line.get_xdata(), np.arange(50) * 5)
        np.testing.assert_allclose(line.get_ydata(), latent[1, :, k])
    assert ax.get_xlabel() == "time (frames)" and ax.get_ylabel() == "latent coordinate"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [r"$\psi_{1}$", r"$\psi_{2}$"]


def test_latent_trajectory_of_one_chosen_component(ax):
    latent = np.random.default_rng(1).normal(size=(40, 3))
    plotting.latent_trajectory(latent, components=[2], labels=["slowest"], ax=ax)
    assert len(ax.lines) == 1
    np.testing.assert_allclose(ax.lines[0].get_ydata(), latent[:, 2])
    with pytest.raises(ValueError, match="trajectory=4 is out of range for 1"):
        plotting.latent_trajectory(latent, trajectory=4, ax=ax)


def test_nan_input_is_an_error_naming_trajectory_and_frame(ax):
    x = [np.zeros((10, 1)), np.zeros((10, 1))]
    x[1][4] = np.nan
    with pytest.raises(ValueError, match="trajectory 1, frame 4"):
        plotting.free_energy_1d(x, ax=ax)


def test_row27_implied_timescales_leave_nan_out_even_for_a_whole_column(ax):
    lags = np.array([1, 2, 5, 10])
    ts = np.array([[300.0, np.nan], [np.nan, np.nan], [330, np.nan], [335, np.nan]])
    se = np.array([[20.0, np.nan], [np.nan, np.nan], [np.nan, np.nan], [25, np.nan]])
    plotting.implied_timescales(lags, ts, se, ax=ax)
    first, second = ax.lines[:2]
    y = first.get_ydata()
    np.testing.assert_array_equal(np.ma.getmaskarray(y), [False, True, False, False])
    np.testing.assert_allclose(y.compressed(), [300, 330, 335])
    # What is drawn has no vertex at the NaN lag, and the line restarts after it (a gap, not
    # a point and not a bridge from lag 1 to lag 5).
    from matplotlib.path import Path

    segments = list(first.get_path().iter_segments())
    np.testing.assert_allclose([v for v, _ in segments], [[1, 300], [5, 330], [10, 335]])
    assert [c for _, c in segments] == [Path.MOVETO, Path.MOVETO, Path.LINETO]
    assert np.ma.getmaskarray(second.get_ydata()).all()
    assert list(second.get_path().iter_segments()) == []
    band, empty_band = ax.collections[:2]
    band_x = np.concatenate([p.vertices[:, 0] for p in band.get_paths()])
    assert set(np.unique(band_x)) <= {1.0, 10.0}  # only lags with a timescale and an error
    assert sum(len(p.vertices) for p in empty_band.get_paths()) == 0
    # y-limits from the finite timescales (and lags) only.
    low, high = ax.get_ylim()
    assert low == pytest.approx(0.5) and high == pytest.approx(670.0)


def test_row27_implied_timescales_all_nan_does_not_fail(ax):
    plotting.implied_timescales([1, 2], [[np.nan], [np.nan]], [[np.nan], [np.nan]], ax=ax)
    assert np.ma.getmaskarray(ax.lines[0].get_ydata()).all()
    assert ax.get_yscale() == "log"


def test_ck_test_plot_draws_md_prediction_and_simulation_per_state():
    from sklearn.utils import Bunch

    lags = np.array([0, 10, 20])
    md = np.array([[1.0, 1.0], [0.8, 0.7], [0.65, np.nan]])
    result = Bunch(
        lag_times=lags,
        md=md,
        md_lower=md - 0.05,
        md_upper=md + 0.05,
        predicted=np.array([[1.0, 1.0], [0.8, 0.7], [0.64, 0.49]]),
        predicted_lower=np.array([[1.0, 1.0], [0.75, 0.65], [0.6, 0.45]]),
        predicted_upper=np.array([[1.0, 1.0], [0.85, 0.75], [0.7, 0.55]]),
        model=np.array([[1.0, 1.0], [0.7, 0.72], [0.5, 0.5]]),
        model_lower=np.array([[1.0, 1.0], [0.68, 0.7], [0.45, 0.45]]),
        model_upper=np.array([[1.0, 1.0], [0.72, 0.74], [0.55, 0.55]]),
    )
    axes = plotting.ck_test(result, dt=0.5, time_unit="ps")
    assert len(axes) == 2
    first, second = axes
    # MD points: the NaN at the last lag of state 2 is left out.
    np.testing.assert_allclose(
        first.containers[0].lines[0].get_xydata(), [[0, 1], [5, 0.8], [10, 0.65]]
    )
    np.testing.assert_allclose(second.containers[0].lines[0].get_xydata(), [[0, 1], [5, 0.7]])
    labels = [line.get_label() for line in first.lines if not line.get_label().startswith("_")]
    assert labels == ["MSM prediction", "simulation"]
    simulation = [line for line in second.lines if line.get_label() == "simulation"][0]
    np.testing.assert_allclose(simulation.get_ydata(), [1.0, 0.72, 0.5])
    assert first.get_xlabel() == "lag time (ps)" and first.get_title() == "state 1"
    with pytest.raises(ValueError, match="one Axes per state"):
        plotting.ck_test(result, axes=[first])
    plt.close(first.figure)
