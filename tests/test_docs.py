"""The tutorials run (at small size), and the documentation covers the public API.

The Sphinx build itself, with warnings as errors, is ``make docs``, which CI runs after the
tests.
"""

import ast
import importlib
import re
import runpy
import sys
from pathlib import Path

import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs"
TUTORIALS = DOCS / "tutorials"


def run_tutorial(name, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SKLSS_SMALL", "1")
    monkeypatch.setenv("SKLSS_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    try:
        runpy.run_path(str(TUTORIALS / f"{name}.py"), run_name="__main__")
    finally:
        plt.close("all")
    return capsys.readouterr().out


@pytest.mark.filterwarnings("ignore:Too little data")
def test_four_well_tutorial_runs_and_draws_its_figure(tmp_path, monkeypatch, capsys):
    out = run_tutorial("four_well", tmp_path, monkeypatch, capsys)
    assert "free-energy RMSE against exact: MD" in out
    assert re.search(r"slowest timescale: MD \d+, LSS \d+, exact 334 frames", out)
    assert (tmp_path / "four_well.png").stat().st_size > 10_000


@pytest.mark.filterwarnings("ignore:Too little data")
def test_grid_search_tutorial_searches_the_whole_grid(tmp_path, monkeypatch, capsys):
    out = run_tutorial("grid_search", tmp_path, monkeypatch, capsys)
    rows = [line for line in out.splitlines() if re.match(r"\s+\d+\s+\d+\s+\d", line)]
    assert len(rows) == 6
    assert "best: {'lag_time':" in out


@pytest.mark.filterwarnings("ignore:Too little data")
def test_simulator_in_a_box_tutorial_round_trips_the_model(tmp_path, monkeypatch, capsys):
    out = run_tutorial("simulator_in_a_box", tmp_path, monkeypatch, capsys)
    assert "identical samples: True" in out
    assert "samples.npy: (8, 500, 20)" in out
    assert (tmp_path / "box" / "sklss-model.json").is_file()


@pytest.mark.filterwarnings("ignore:Too little data")
def test_lag_and_components_guide_runs(tmp_path, monkeypatch, capsys):
    out = run_tutorial("lag_and_components", tmp_path, monkeypatch, capsys)
    assert "m chosen at the largest gap:" in out
    assert len(re.findall(r"^lag +\d+: timescales", out, flags=re.M)) == 5
    assert (tmp_path / "lag_and_components.png").is_file()


@pytest.mark.filterwarnings("ignore:Too little data")
def test_alanine_dipeptide_tutorial_writes_a_dcd(tmp_path, monkeypatch, capsys):
    pytest.importorskip("mdtraj", reason="the alanine dipeptide tutorial needs mdtraj")
    pytest.importorskip("openmm", reason="the alanine dipeptide tutorial needs OpenMM")
    out = run_tutorial("alanine_dipeptide", tmp_path, monkeypatch, capsys)
    assert "wrote lss.dcd: 30 frames of 10 atoms" in out
    assert (tmp_path / "lss.dcd").stat().st_size > 0
    assert (tmp_path / "alanine_dipeptide.png").is_file()


def test_every_tutorial_script_is_a_gallery_example_that_runs(monkeypatch):
    # sphinx-gallery renders and executes every script in docs/tutorials/ whose name matches
    # the pattern; each needs a docstring whose first line is an underlined title.
    monkeypatch.chdir(DOCS)  # as Sphinx runs conf.py
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("SKLSS_SMALL", "1")
    namespace = runpy.run_path(str(DOCS / "conf.py"))
    conf = namespace["sphinx_gallery_conf"]
    assert conf["examples_dirs"] == "tutorials"
    scripts = sorted(TUTORIALS.glob("*.py"))
    assert len(scripts) >= 6
    for script in scripts:
        assert re.search(conf["filename_pattern"], str(script)), script.name
        doc = ast.get_docstring(ast.parse(script.read_text()))
        assert doc, script.name
        title, underline = doc.splitlines()[:2]
        assert underline == "=" * len(title), script.name


@pytest.mark.parametrize(
    "module",
    [
        "sklss",
        "sklss.metrics",
        "sklss.markov",
        "sklss.model_selection",
        "sklss.datasets",
        "sklss.features",
        "sklss.io",
        "sklss.plotting",
    ],
)
def test_api_reference_lists_every_public_name(module):
    text = (DOCS / "api.rst").read_text()
    # The names listed under ".. currentmodule:: module", up to the next currentmodule.
    section = text.split(f".. currentmodule:: {module}\n")[1].split(".. currentmodule::")[0]
    listed = set(re.findall(r"^   (\w+)$", section, flags=re.M))
    public = set(importlib.import_module(module).__all__) - {"__version__"}
    assert public <= listed, f"missing from docs/api.rst: {sorted(public - listed)}"


def test_validation_tutorial_runs_the_ck_test_and_draws_it(tmp_path, monkeypatch, capsys):
    out = run_tutorial("validation", tmp_path, monkeypatch, capsys)
    assert re.search(r"four-well, step of 10 frames: CK test (passed|FAILED), largest", out)
    assert re.search(r"hidden x, step of  1 frames: CK test (passed|FAILED), largest", out)
    assert re.search(r"hidden x, step of 40 frames: CK test (passed|FAILED)", out)
    assert (tmp_path / "ck_test.png").stat().st_size > 10_000
