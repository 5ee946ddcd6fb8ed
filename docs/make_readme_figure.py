"""Draw docs/_static/free_energy.png, the README's picture: four-well free energies.

The paper's section 3.1 at reduced size: Brownian dynamics in the four-well potential
(10 trajectories of 500,000 steps, every 10th saved), an MDN propagator with lag 100 steps
and C = 8 kernels on x itself, and a simulation as long as the MD; their free energies
against the exact one. About a minute on one CPU core.

    python docs/make_readme_figure.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sklss import LatentSpaceSimulator, MDNPropagator, plotting  # noqa: E402
from sklss.datasets import four_well, four_well_reference  # noqa: E402
from sklss.metrics import free_energy_profile, free_energy_rmse  # noqa: E402

OUT = Path(__file__).resolve().parent / "_static" / "free_energy.png"

X = four_well(500_000, n_trajectories=10, stride=10, random_state=0)
lss = LatentSpaceSimulator(
    "passthrough",
    MDNPropagator(n_kernels=8, hidden_layer_sizes=(100, 100), max_epochs=40),
    "passthrough",
    lag_time=10,
    random_state=0,
).fit(X)
synthetic = lss.sample(np.stack([x[0] for x in X]), len(X[0]), random_state=1).latent

exact = four_well_reference(stride=10)
edges = np.linspace(-1.1, 1.1, 51)
p = np.histogram(exact.grid, edges, weights=exact.stationary_density)[0]
F_exact = -np.log(p / p.max())
F_lss, _ = free_energy_profile(list(synthetic), bins=edges)
rmse = free_energy_rmse(F_exact, F_lss, max_free_energy=4)

fig, ax = plt.subplots(figsize=(6, 3.6), layout="constrained")
ax.plot(0.5 * (edges[1:] + edges[:-1]), F_exact, color="k", linewidth=2.5, label="exact")
plotting.free_energy_1d(X, bins=edges, label="MD (5 x 10$^6$ steps)", ax=ax)
plotting.free_energy_1d(
    list(synthetic), bins=edges, label=f"LSS (RMSE {rmse:.2f} kT)", linestyle="--", ax=ax
)
ax.set_ylim(0, 5)
ax.set_title("Four-well system: MD against a latent space simulator")
OUT.parent.mkdir(exist_ok=True)
fig.savefig(OUT, dpi=110)
print(f"wrote {OUT}: free-energy RMSE of the LSS against exact {rmse:.3f} kT")
