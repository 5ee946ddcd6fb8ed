"""
The four-well system: reproducing the paper
===========================================

Section 3.1 of Sidky, Chen & Ferguson (2020) tests the propagator alone on Brownian
dynamics in a one-dimensional potential with four wells. Because the system is
one-dimensional, the encoder and the decoder are ``"passthrough"``: the mixture density
network learns ``p(x_{t+tau} | x_t)`` directly, with the paper's settings (a lag of 100
integration steps, C = 8 kernels, two hidden layers of 100 ReLU units).
:func:`sklss.datasets.four_well_reference` gives the exact stationary density, implied
timescales and transition kernels of the dynamics, so every number can be checked.

.. note::

   The output on this page comes from the documentation build, which runs the script at CI
   size (``SKLSS_SMALL=1``: 10\\ :sup:`5` steps and two epochs, seconds), so its numbers
   and figures are meaningless. Run it yourself, ``python four_well.py``, for the full size.

**What to expect at full size** (5 x 10\\ :sup:`6` steps, about a minute on one core): a
free-energy RMSE against the exact profile below 0.2 kT over the region up to 4 kT, and a
slowest implied timescale within a few per cent of the exact 334 frames. The script prints
both and draws the free energies, the implied timescales against the lag, and the
transition densities of MD and of the simulator side by side. A run of the same size
(``docs/make_readme_figure.py``: 5 x 10\\ :sup:`6` steps in ten trajectories, at most 40
epochs) gives these free energies:

.. image:: /_static/free_energy.png
   :alt: Free energy of the four-well system at full size: exact, MD and a latent space simulator
   :width: 60%
"""

import os

import matplotlib.pyplot as plt
import numpy as np

from sklss import LatentSpaceSimulator, MDNPropagator, plotting
from sklss.datasets import four_well, four_well_reference
from sklss.metrics import free_energy_profile, free_energy_rmse, markov_timescales

SMALL = os.environ.get("SKLSS_SMALL") == "1"
N_STEPS = 100_000 if SMALL else 5_000_000  # integration steps of dt = 0.001, in total
MAX_EPOCHS = 2 if SMALL else 100

# %%
# "MD"
# ----
#
# Five trajectories of Brownian dynamics, every 10th step saved. The data are a list of
# trajectories: lagged pairs are formed within each one, never across the boundary between
# two.

stride, lag = 10, 10  # a frame is 10 steps, so the lag of 10 frames is 100 steps
X = four_well(N_STEPS // 5, n_trajectories=5, stride=stride, random_state=0)
exact = four_well_reference(stride=stride)  # exact density, timescales (frames), kernels
print(f"MD: {len(X)} trajectories of {len(X[0]):,} frames")

# %%
# The simulator
# -------------
#
# An MDN on x, fitted on lagged pairs within each trajectory.

lss = LatentSpaceSimulator(
    "passthrough",
    MDNPropagator(n_kernels=8, hidden_layer_sizes=(100, 100), max_epochs=MAX_EPOCHS),
    "passthrough",
    lag_time=lag,
    random_state=0,
).fit(X)
print(f"trained for {lss.propagator_.n_iter_} epochs")

# %%
# Generate as many frames as the MD had, from the same start frames. ``sample`` takes one
# start frame per trajectory and returns an array of shape
# ``(n_starts, n_steps, n_features)``. One step of the simulator is one lag time, so these
# trajectories cover ten times the MD's duration.

starts = np.stack([x[0] for x in X])
synthetic = lss.sample(starts, n_steps=len(X[0]), random_state=1).latent  # (5, n_frames, 1)

# %%
# Free energies
# -------------
#
# Free energies on 50 bins; the RMSE counts bins up to 4 kT above the minimum.

edges = np.linspace(-1.1, 1.1, 51)
p_exact = np.histogram(exact.grid, edges, weights=exact.stationary_density)[0]
F_exact = -np.log(p_exact / p_exact.max())
F_md, _ = free_energy_profile(X, bins=edges)
F_lss, _ = free_energy_profile(list(synthetic), bins=edges)
print(
    f"free-energy RMSE against exact: MD {free_energy_rmse(F_exact, F_md, max_free_energy=4):.3f}"
    f" kT, LSS {free_energy_rmse(F_exact, F_lss, max_free_energy=4):.3f} kT"
)

# %%
# Timescales
# ----------
#
# The slowest implied timescale of a Markov model on the same bins, in frames. A Markov
# model of the synthetic trajectories at one step is one at the lag of the MD.

t_md = markov_timescales(X, edges, lag)[0]
t_lss = markov_timescales(list(synthetic), edges, 1)[0] * lag
print(f"slowest timescale: MD {t_md:.0f}, LSS {t_lss:.0f}, exact {exact.timescales[0]:.0f} frames")

# %%
# Figures
# -------
#
# The free energy, the implied timescales against the lag, and the transition densities of
# MD and of the simulator.

lags = np.array([1, 2, 5, 10, 20])
its_md = np.array([markov_timescales(X, edges, k, n_components=2) for k in lags])
steps = np.array([1, 2])
its_lss = np.array([markov_timescales(list(synthetic), edges, k, n_components=2) for k in steps])

fig, axes = plt.subplots(1, 4, figsize=(20, 4), layout="constrained")
axes[0].plot(0.5 * (edges[1:] + edges[:-1]), F_exact, "k", label="exact")
plotting.free_energy_1d(X, bins=edges, label="MD", ax=axes[0])
plotting.free_energy_1d(list(synthetic), bins=edges, label="LSS", linestyle="--", ax=axes[0])
plotting.implied_timescales(lags, its_md, labels=["MD t1", "MD t2"], color="C0", ax=axes[1])
plotting.implied_timescales(
    steps * lag,
    its_lss * lag,
    labels=["LSS t1", "LSS t2"],
    color="C1",
    show_lag=False,
    ax=axes[1],
)
plotting.transition_density(X, lag, bins=edges, ax=axes[2])
axes[2].set_title("MD")
plotting.transition_density(list(synthetic), 1, bins=edges, ax=axes[3])
axes[3].set_title("LSS")
fig.savefig("four_well.png", dpi=100)
