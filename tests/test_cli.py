import json
import subprocess
import sys

import numpy as np
import pytest

from sklss.cli import main
from sklss.datasets import hidden_wells

# Tiny networks, so that each fit takes a second or two.
SMALL = """
lag_time = 7
max_epochs = 2
n_kernels = 3
[encoder]
hidden_layer_sizes = [8]
batch_size = 256
[propagator]
hidden_layer_sizes = [8]
[decoder]
hidden_layer_sizes = [8]
noise_dim = 2
batch_size = 64
"""


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    folder = tmp_path_factory.mktemp("features")
    X = np.stack(hidden_wells(600, n_trajectories=2, n_features=4, random_state=0))
    np.save(folder / "X.npy", X)  # (2, 600, 4): a stack of two trajectories
    (folder / "small.toml").write_text(SMALL)
    return folder


@pytest.fixture(scope="module")
def fitted(features):
    code = main(
        [
            "fit",
            "--features",
            str(features / "X.npy"),
            "--lag-time",
            "2",
            "--config",
            str(features / "small.toml"),
            "--output",
            str(features / "model"),
            "--verbose",
            "0",
        ]
    )
    assert code == 0
    return features / "model"


def test_help_of_every_command_lists_its_options(capsys):
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    for command in ("demo", "fit", "sample"):
        assert command in out
    code, out, _ = run(["fit", "--help"], capsys)
    assert code == 0
    for flag in (
        "--features",
        "--configurations",
        "--topology",
        "--trajectories",
        "--featurizer",
        "--lag-time",
        "--n-components",
        "--n-kernels",
        "--max-epochs",
        "--no-decoder",
        "--config",
        "--output",
        "--seed",
        "--verbose",
    ):
        assert flag in out, flag
    code, out, _ = run(["sample", "--help"], capsys)
    assert code == 0
    for flag in ("--n-trajectories", "--n-steps", "--start", "--latent-output", "--output"):
        assert flag in out, flag
    code, out, _ = run(["demo", "--help"], capsys)
    assert code == 0
    for flag in ("--system", "--out", "--check", "--epochs"):
        assert flag in out, flag


def test_bad_flags_are_one_line_errors_with_status_2(capsys):
    code, out, err = run(["fit", "--bogus"], capsys)
    assert code == 2 and out == ""
    assert one_line(err).startswith("sklss fit: error: unrecognized arguments: --bogus")
    code, _, err = run(["fit", "--lag-time", "ten"], capsys)
    assert code == 2
    assert "argument --lag-time: invalid int value: 'ten'" in one_line(err)
    code, _, err = run(["sample", "m", "--n-steps", "0"], capsys)
    assert code == 2 and "must be at least 1, got 0" in one_line(err)
    code, _, err = run([], capsys)
    assert code == 2 and "required: COMMAND" in one_line(err)


def test_missing_files_are_one_line_errors_naming_the_file(tmp_path, capsys):
    missing = tmp_path / "nope.npy"
    code, _, err = run(["fit", "--features", missing, "--lag-time", "1"], capsys)
    assert code == 1
    assert one_line(err) == f"sklss fit: error: features file '{missing}' does not exist"
    code, _, err = run(["sample", tmp_path / "no-model", "--n-steps", "5", "-o", "x.npy"], capsys)
    assert code == 1 and "model folder" in one_line(err) and "does not exist" in err
    code, _, err = run(["fit", "--features", missing, "--config", tmp_path / "c.toml"], capsys)
    assert code == 1 and one_line(err).endswith(
        f"config file '{tmp_path / 'c.toml'}' does not exist"
    )


def test_user_mistakes_in_fit_are_named(features, tmp_path, capsys):
    X = features / "X.npy"
    code, _, err = run(["fit", "--features", X], capsys)
    assert code == 1 and "--lag-time is required" in one_line(err)
    code, _, err = run(["fit", "--lag-time", "1"], capsys)
    assert code == 1 and "give either --features" in one_line(err)
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not an array")
    code, _, err = run(["fit", "--features", bad, "--lag-time", "1"], capsys)
    assert code == 1 and f"could not read features file '{bad}'" in one_line(err)
    short = tmp_path / "Y.npy"
    np.save(short, np.zeros((2, 599, 3)))
    code, _, err = run(
        ["fit", "--features", X, "--configurations", short, "--lag-time", "1"], capsys
    )
    assert code == 1
    assert f"configurations '{short}[0]' have 599 frames but features '{X}[0]' have 600" in (
        one_line(err)
    )
    # An estimator's own parameter check comes back as one line too.
    code, _, err = run(["fit", "--features", X, "--lag-time", "5000", "--max-epochs", "1"], capsys)
    assert code == 1 and "lag_time=5000" in one_line(err)


def test_config_file_mistakes_name_the_file_and_key(features, tmp_path, capsys):
    X = features / "X.npy"
    config = tmp_path / "c.toml"
    config.write_text("lag_time = 2\nlag_tme = 3\n")
    code, _, err = run(["fit", "--features", X, "--config", config], capsys)
    assert code == 1 and f"config file '{config}': unknown option 'lag_tme'" in one_line(err)
    config.write_text("lag_time = 2\n[propagator]\nn_kernal = 3\n")
    code, _, err = run(["fit", "--features", X, "--config", config], capsys)
    assert code == 1 and "[propagator] has no parameter 'n_kernal'" in one_line(err)
    config.write_text("lag_time = \n")
    code, _, err = run(["fit", "--features", X, "--config", config], capsys)
    assert code == 1 and "is not valid TOML" in one_line(err)
    config.write_text('lag_time = "ten"\n')
    code, _, err = run(["fit", "--features", X, "--config", config], capsys)
    assert code == 1
    assert one_line(err).endswith("lag_time must be a positive integer; got 'ten'")
    config.write_text('lag_time = 2\n[encoder]\nactivation = "sigmoidal"\n')
    code, _, err = run(["fit", "--features", X, "--config", config], capsys)
    assert code == 1 and "'activation' parameter of SRVTransformer" in one_line(err)


def test_config_file_paths_are_relative_to_its_folder(features, tmp_path, monkeypatch, capsys):
    config = features / "inputs.toml"
    config.write_text(
        'features = ["X.npy"]\noutput = "from-config"\nlag_time = 3\ndecode = false\n'
        + SMALL.split("[decoder]")[0].replace("lag_time = 7\n", "")
    )
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["fit", "--config", config, "--verbose", "0"], capsys)
    assert code == 0, err
    info = json.loads((features / "from-config" / "sklss-model.json").read_text())
    assert info["lag_time"] == 3 and info["decoded"] is False


def test_fit_writes_a_model_folder_and_flags_win_over_the_config(fitted, features):
    from sklss.io import load

    info = json.loads((fitted / "sklss-model.json").read_text())
    assert info["input"] == "features" and info["output"] == "features"
    assert info["lag_time"] == 2 and info["n_features"] == 4 and info["decoded"] is True
    starts = np.load(fitted / "start_frames.npy")
    assert starts.shape == (100, 4)
    X = np.load(features / "X.npy")
    # Start frames are training frames.
    assert all((np.abs(X.reshape(-1, 4) - s).sum(1) == 0).any() for s in starts[:5])
    lss = load(fitted / "simulator.sklss")
    assert lss.propagator_.n_kernels == 3 and lss.encoder_.hidden_layer_sizes == (8,)
    assert lss.lag_time_ == 2 and lss.encoder_.max_epochs == 2


def test_sample_writes_npy_of_the_requested_shape_reproducibly(fitted, tmp_path, capsys):
    out = tmp_path / "run" / "samples.npy"
    argv = ["sample", fitted, "-n", "3", "--n-steps", "25", "-o", out, "--seed", "4"]
    code, stdout, _ = run(argv + ["--latent-output", tmp_path / "latent.npy"], capsys)
    assert code == 0 and "sampled 3 trajectories x 25 steps" in stdout
    configurations = np.load(out)
    latent = np.load(tmp_path / "latent.npy")
    assert configurations.shape == (3, 25, 4) and latent.shape == (3, 25, 2)
    assert np.isfinite(configurations).all()
    assert sorted(p.name for p in out.parent.iterdir()) == ["samples.npy"]  # no leftovers
    code, _, _ = run(argv[:-2] + ["-o", tmp_path / "again.npy", "--seed", "4"], capsys)
    assert code == 0
    np.testing.assert_array_equal(np.load(tmp_path / "again.npy"), configurations)


def test_sample_from_given_start_frames(fitted, features, tmp_path, capsys):
    X = np.load(features / "X.npy")
    start = tmp_path / "start.npy"
    np.save(start, X[1, :2])
    code, _, _ = run(
        ["sample", fitted, "--start", start, "--n-steps", "4", "-o", tmp_path / "s.npy"], capsys
    )
    assert code == 0
    assert np.load(tmp_path / "s.npy").shape == (2, 4, 4)
    np.save(start, X[1, :2, :3])
    code, _, err = run(
        ["sample", fitted, "--start", start, "--n-steps", "4", "-o", tmp_path / "s.npy"], capsys
    )
    assert code == 1 and "start frames have 3 features, but the model expects 4" in err


def test_sample_refuses_formats_it_cannot_write(fitted, tmp_path, capsys):
    code, _, err = run(["sample", fitted, "--n-steps", "4", "-o", tmp_path / "s.csv"], capsys)
    assert code == 1 and "cannot tell the format of output" in one_line(err)
    code, _, err = run(["sample", fitted, "--n-steps", "4", "-o", tmp_path / "s.dcd"], capsys)
    assert code == 1 and "without a topology; pass --topology" in one_line(err)


def test_fit_and_sample_from_md_files_write_dcd_and_xtc(tmp_path, capsys):
    md = pytest.importorskip("mdtraj")
    from sklss._trajectory_files import read_trajectory, write_trajectory
    from sklss.datasets import alanine_dipeptide_structure

    structure = alanine_dipeptide_structure()
    topology = tmp_path / "ala2.pdb"
    structure.save_pdb(str(topology))
    rng = np.random.default_rng(0)
    paths = []
    for i in range(2):
        xyz = structure.xyz + rng.normal(scale=0.01, size=(300, structure.n_atoms, 3))
        paths.append(write_trajectory(xyz, structure.topology, tmp_path / f"md{i}.dcd"))
    config = tmp_path / "small.toml"
    config.write_text(SMALL)
    model = tmp_path / "model"
    code, _, err = run(
        ["fit", "--topology", topology, "--trajectories", *paths, "--lag-time", "1"]
        + ["--config", config, "-o", model, "--verbose", "0"],
        capsys,
    )
    assert code == 0, err
    info = json.loads((model / "sklss-model.json").read_text())
    assert info["input"] == "md" and info["output"] == "coordinates"
    assert info["feature_names"] == [
        "sin(phi ALA2)",
        "cos(phi ALA2)",
        "sin(psi ALA2)",
        "cos(psi ALA2)",
    ]
    heavy = md.load_topology(str(model / "topology.pdb"))
    assert heavy.n_atoms == 10 and all(a.element.symbol != "H" for a in heavy.atoms)
    code, out, err = run(
        ["sample", model, "-n", "2", "--n-steps", "6", "-o", tmp_path / "g.dcd"], capsys
    )
    assert code == 0, err
    for i in range(2):
        traj = read_trajectory(tmp_path / f"g_{i:03d}.dcd", model / "topology.pdb")
        assert traj.n_frames == 6 and traj.n_atoms == 10
    code, _, err = run(["sample", model, "--n-steps", "3", "-o", tmp_path / "one.xtc"], capsys)
    assert code == 0, err
    assert read_trajectory(tmp_path / "one.xtc", model / "topology.pdb").n_frames == 3
    # The wrong atoms are refused before anything is fitted.
    code, _, err = run(
        [
            "fit",
            "--topology",
            model / "topology.pdb",
            "--trajectories",
            paths[0],
            "--lag-time",
            "1",
        ],
        capsys,
    )
    assert code == 1 and "22 atoms per frame, but the topology has 10" in one_line(err)


def test_demo_at_tiny_size_writes_the_report_and_reports_missed_targets(tmp_path, capsys):
    out = tmp_path / "report"
    argv = ["demo", "--out", out, "--n-steps", "200000", "--hidden-frames", "4000"]
    code, stdout, err = run(argv + ["--epochs", "2", "--verbose", "0"], capsys)
    # So little data cannot meet the fidelity targets, and --check turns that into status 1.
    assert code == 1 and "fidelity target(s) missed" in err
    assert f"Report written to '{out}'" in stdout
    for name in (
        "metrics.md",
        "metrics.json",
        "free_energy.png",
        "free_energy_2d.png",
        "implied_timescales.png",
        "transition_density.png",
        "latent_trajectory.png",
        "model/sklss-model.json",
    ):
        assert (out / name).is_file(), name
    assert (out / "free_energy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((out / "metrics.json").read_text())
    four, hidden = metrics["four_well"], metrics["hidden_wells"]
    for ts in (four["timescales_frames"], hidden["timescales_frames"]):
        assert len(ts["md"]) == len(ts["md_std_error"]) == len(ts["lss"]) == 2
        assert np.isfinite(ts["md"] + ts["lss"] + ts["md_std_error"] + ts["lss_std_error"]).all()
    assert four["timescales_frames"]["exact"][0] == pytest.approx(333.55, rel=1e-3)
    assert 1 <= hidden["vamp2_held_out"] <= 3
    assert four["free_energy_rmse_kT"]["lss"] >= 0
    assert any(not c["passed"] for c in metrics["checks"])
    against_lag = hidden["timescales_against_lag_frames"]
    assert against_lag["lss"]["lag_times"] == [5, 10, 20]
    assert np.shape(against_lag["md"]["timescales"]) == (len(against_lag["md"]["lag_times"]), 2)
    table = (out / "metrics.md").read_text()
    assert "| quantity | MD | LSS | exact |" in table and "free-energy RMSE" in table
    # The saved model samples through the CLI.
    code, _, _ = run(["sample", out / "model", "--n-steps", "5", "-o", tmp_path / "s.npy"], capsys)
    assert code == 0 and np.load(tmp_path / "s.npy").shape == (1, 5, 20)


def test_python_dash_m_runs_the_cli_with_one_line_errors(tmp_path):
    missing = tmp_path / "missing.npy"
    proc = subprocess.run(
        [sys.executable, "-m", "sklss", "fit", "--features", str(missing), "--lag-time", "1"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip() == f"sklss fit: error: features file '{missing}' does not exist"


def test_damaged_model_folders_are_refused_in_one_line(fitted, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(fitted, broken)
    (broken / "simulator.sklss").write_bytes(b"PK not really a model")
    code, _, err = run(["sample", broken, "--n-steps", "4", "-o", tmp_path / "s.npy"], capsys)
    assert code == 1 and "simulator.sklss" in one_line(err)
    (broken / "sklss-model.json").unlink()
    code, _, err = run(["sample", broken, "--n-steps", "4", "-o", tmp_path / "s.npy"], capsys)
    assert code == 1 and "is not a model folder" in one_line(err)
    assert not (tmp_path / "s.npy").exists()
