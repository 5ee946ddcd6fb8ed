"""The toy-system demo: the four-well and hidden-coordinate systems, and their figures."""

import numpy as np

from ._common import _draw_its, _figure, _require_matplotlib, _save, _stage
from .four_well import _demo_four_well
from .hidden_wells import _demo_hidden_wells


def _demo_toy(args, out):
    from ...io import save_model_folder

    _require_matplotlib()
    print("sklss demo: latent space simulators on two toy systems with known answers")
    four = _demo_four_well(args)
    hidden = _demo_hidden_wells(args)
    files = _demo_toy_figures(four["plot"], hidden["plot"], out)
    _stage(args, "saving the hidden-coordinate simulator")
    save_model_folder(
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


def _demo_toy_figures(four, hidden, out):
    from ... import plotting

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
