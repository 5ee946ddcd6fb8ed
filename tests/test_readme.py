"""The README's notebook example runs as written, at a small size, and its comments hold."""

import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from sklss.datasets import hidden_wells_reference

README = Path(__file__).resolve().parents[1] / "README.md"

# What the test shrinks: each text must appear exactly once in the example.
SMALLER = {
    "hidden_wells(25_000, n_trajectories=4, random_state=0)": (
        "hidden_wells(1_500, n_trajectories=4, random_state=0)"
    ),
    "hidden_wells(25_000, n_trajectories=4, random_state=1)": (
        "hidden_wells(1_500, n_trajectories=4, random_state=1)"
    ),
    "SRVTransformer(n_components=2)": "SRVTransformer(n_components=2, max_epochs=3)",
    "MDNPropagator(n_kernels=12)": "MDNPropagator(n_kernels=12, max_epochs=3)",
    "max_epochs=30": "max_epochs=2",
    "n_steps=100_000": "n_steps=300",
}


def notebook_example():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1, "the README has one notebook example"
    return blocks[0]


def test_the_readme_comments_state_the_exact_timescales_and_shapes():
    code = notebook_example()
    exact = hidden_wells_reference().timescales[:2]
    stated = re.search(r"exact: (\d+) and (\d+)", code).groups()
    np.testing.assert_allclose([float(s) for s in stated], exact, atol=0.5)
    n_steps = int(re.search(r"n_steps=([\d_]+)", code).group(1).replace("_", ""))
    assert f"(1, {n_steps}, 2), (1, {n_steps}, 20)" in code
    lag = int(re.search(r"lag_time=(\d+)", code).group(1))
    assert f"{lag * n_steps:,} frames" in code


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_readme_example_runs(monkeypatch):
    matplotlib.use("Agg")
    code = notebook_example()
    for old, new in SMALLER.items():
        assert code.count(old) == 1, f"the README example no longer contains {old!r}"
        code = code.replace(old, new)
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)
    run, lss = namespace["run"], namespace["lss"]
    assert run.latent.shape == (1, 300, 2)
    assert run.configurations.shape == (1, 300, 20)
    assert np.isfinite(run.configurations).all()
    assert lss.encoder_.timescales_.shape == (2,)
    report = lss.compare(namespace["X_test"])
    assert {"free_energy_rmse", "js_divergence", "missing_mass", "extra_mass"} <= set(report)
    assert 0 <= report["js_divergence"] <= 1


def test_the_readme_layout_names_every_module():
    text = README.read_text()
    layout = text[text.index("## Layout") : text.index("## Conventions")]
    package = README.parent / "sklss"
    names = [p.name for p in package.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    names += [f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").is_file()]
    missing = [n for n in sorted(names) if f"`{n}`" not in layout]
    assert not missing, f"README's Layout does not name {missing}"
