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


@pytest.fixture(scope="module")
def ala2(tmp_path_factory):
    """Alanine dipeptide: its PDB, a PDB of its heavy atoms, and two short fake MD runs."""
    pytest.importorskip("mdtraj")
    from sklss._trajectory_files import write_trajectory
    from sklss.datasets import alanine_dipeptide_structure

    folder = tmp_path_factory.mktemp("ala2")
    structure = alanine_dipeptide_structure()
    structure.save_pdb(str(folder / "ala2.pdb"))
    structure.atom_slice(structure.topology.select("not element H")).save_pdb(
        str(folder / "heavy.pdb")
    )
    rng = np.random.default_rng(0)
    for i in range(2):
        xyz = structure.xyz + rng.normal(scale=0.01, size=(300, structure.n_atoms, 3))
        write_trajectory(xyz, structure.topology, folder / f"md{i}.dcd")
    (folder / "small.toml").write_text(SMALL)
    return folder


def fit_md(ala2, model, *flags):
    return [
        "fit",
        "--topology",
        ala2 / "ala2.pdb",
        "--trajectories",
        ala2 / "md0.dcd",
        ala2 / "md1.dcd",
        "--config",
        ala2 / "small.toml",
        "-o",
        model,
        *flags,
    ]


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
    # Every table of the config file reaches its estimator.
    assert lss.encoder_.batch_size == 256 and lss.propagator_.hidden_layer_sizes == (8,)
    decoder = lss.decoder_
    assert decoder.hidden_layer_sizes == (8,) and decoder.noise_dim == 2
    assert decoder.batch_size == 64 and decoder.max_epochs == 2


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


def test_fit_and_sample_from_md_files_write_dcd_and_xtc(ala2, tmp_path, capsys):
    import mdtraj as md

    from sklss._trajectory_files import read_trajectory

    model = tmp_path / "model"
    code, _, err = run(fit_md(ala2, model, "--lag-time", "1", "--verbose", "0"), capsys)
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
            ala2 / "md0.dcd",
            "--lag-time",
            "1",
        ],
        capsys,
    )
    assert code == 1 and "22 atoms per frame, but the topology has 10" in one_line(err)


DEMO_FILES = [
    "free_energy.png",
    "free_energy_2d.png",
    "implied_timescales.png",
    "transition_density.png",
    "latent_trajectory.png",
    "model/",
]


def check_toy_report(out):
    """The toy demo's report: its files, keys, and checks that agree with its numbers."""
    import sklss

    for name in DEMO_FILES[:-1]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    metrics = json.loads((out / "metrics.json").read_text())
    assert sorted(metrics) == sorted(
        ["sklss_version", "system", "seed", "seconds", "four_well", "hidden_wells"]
        + ["checks", "files"]
    )
    assert metrics["sklss_version"] == sklss.__version__ and metrics["system"] == "toy"
    assert metrics["seed"] == 0 and metrics["seconds"] > 0 and metrics["files"] == DEMO_FILES
    four, hidden = metrics["four_well"], metrics["hidden_wells"]
    for ts in (four["timescales_frames"], hidden["timescales_frames"]):
        assert len(ts["md"]) == len(ts["md_std_error"]) == len(ts["lss"]) == 2
        assert np.isfinite(ts["md"] + ts["lss"] + ts["md_std_error"] + ts["lss_std_error"]).all()
    assert four["timescales_frames"]["exact"][0] == pytest.approx(333.55, rel=1e-3)
    assert four["exact_timescales_steps"][0] == pytest.approx(3335.5, rel=1e-3)
    assert 1 <= hidden["vamp2_held_out"] <= 3 and 0 <= four["srv_vamp2_held_out"] <= 4
    assert four["free_energy_rmse_kT"]["lss"] >= 0 and four["free_energy_rmse_kT"]["md"] >= 0
    against_lag = hidden["timescales_against_lag_frames"]
    assert np.shape(against_lag["md"]["timescales"]) == (len(against_lag["md"]["lag_times"]), 2)
    # Each check is its target applied to a number of the report.
    four_ts, hidden_ts = four["timescales_frames"], hidden["timescales_frames"]
    expected = {
        "four-well SRV t1": (
            four["srv_timescales_steps"][0] / four["exact_timescales_steps"][0] - 1,
            0.1,
        ),
        "four-well LSS free energy": (four["free_energy_rmse_kT"]["lss"], 0.2),
        "four-well LSS t1": (four_ts["lss"][0] / four_ts["exact"][0] - 1, 0.15),
        "hidden-coordinate LSS t1": (hidden_ts["lss"][0] / hidden_ts["exact"][0] - 1, 0.15),
        "hidden-coordinate decoded features": (hidden["decoded_features_mean_js_bits"], 0.05),
    }
    assert [c["name"] for c in metrics["checks"]] == list(expected)
    for check in metrics["checks"]:
        value, target = expected[check["name"]]
        assert check["value"] == pytest.approx(value, rel=1e-12), check
        assert check["passed"] is (abs(value) <= target), check
    table = (out / "metrics.md").read_text()
    assert "| quantity | MD | LSS | exact |" in table and "free-energy RMSE" in table
    for check in metrics["checks"]:
        state = "met" if check["passed"] else "MISSED"
        assert f"- {state}: {check['name']}, {check['text']}" in table
    return metrics


def test_demo_at_tiny_size_writes_the_report_and_reports_missed_targets(tmp_path, capsys):
    from sklss.io import load_model_folder

    out = tmp_path / "report"
    argv = ["demo", "--out", out, "--n-steps", "200000", "--hidden-frames", "4000"]
    code, stdout, err = run(argv + ["--epochs", "2", "--verbose", "0"], capsys)
    # So little data cannot meet the fidelity targets, and --check turns that into status 1.
    assert code == 1 and "fidelity target(s) missed" in err
    assert f"Report written to '{out}'" in stdout
    metrics = check_toy_report(out)
    assert any(not c["passed"] for c in metrics["checks"])
    for check in metrics["checks"]:
        state = "ok" if check["passed"] else "MISSED"
        assert f"[{state}] {check['name']}: {check['text']}" in stdout
    against_lag = metrics["hidden_wells"]["timescales_against_lag_frames"]
    assert against_lag["lss"]["lag_times"] == [5, 10, 20]
    # The saved model is the hidden-coordinate simulator, and it samples through the CLI.
    model = load_model_folder(out / "model")
    assert model.info["system"] == "hidden_wells" and model.info["n_features"] == 20
    assert model.simulator.lag_time_ == 5
    code, _, _ = run(["sample", out / "model", "--n-steps", "5", "-o", tmp_path / "s.npy"], capsys)
    assert code == 0 and np.load(tmp_path / "s.npy").shape == (1, 5, 20)


def test_demo_exit_status_follows_the_targets_and_check(tmp_path, monkeypatch, capsys):
    from sklss.cli import demo
    from sklss.cli.demo._common import _check

    def system(passed):
        def run_system(args, out):
            (out / "figure.png").write_bytes(b"")
            return {
                "title": "A test system",
                "system": "toy",
                "metrics": {"part": {"x": np.float64(1.5), "ts": np.arange(2)}},
                "sections": [
                    {"title": "S", "text": "t", "columns": ("a", "b"), "rows": [("1", "2")]}
                ],
                "checks": [_check("target", np.float32(0.25), passed, "the text")],
                "files": ["figure.png"],
            }

        return run_system

    out = tmp_path / "report"
    monkeypatch.setattr(demo, "_demo_toy", system(True))
    code, stdout, err = run(["demo", "--out", out, "--seed", "3"], capsys)
    assert code == 0 and err == "" and "[ok] target: the text" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["part"] == {"x": 1.5, "ts": [0, 1]} and metrics["seed"] == 3
    assert metrics["checks"] == [
        {"name": "target", "value": 0.25, "passed": True, "text": "the text"}
    ]
    assert "| a | b |\n|---|---|\n| 1 | 2 |" in (out / "metrics.md").read_text()
    monkeypatch.setattr(demo, "_demo_toy", system(False))
    code, stdout, err = run(["demo", "--out", out], capsys)
    assert code == 1 and "[MISSED] target: the text" in stdout
    assert err.strip() == "sklss demo: 1 fidelity target(s) missed"
    code, _, err = run(["demo", "--out", out, "--no-check"], capsys)
    assert code == 0 and err == ""
    (tmp_path / "file").write_text("")
    code, _, err = run(["demo", "--out", tmp_path / "file"], capsys)
    assert code == 1 and "exists and is not a folder" in one_line(err)


@pytest.mark.slow
def test_demo_at_its_default_size_meets_every_target(tmp_path, capsys):
    # What 'sklss demo' promises: every fidelity target met, so status 0 under --check.
    out = tmp_path / "report"
    code, stdout, err = run(["demo", "--out", out, "--verbose", "0"], capsys)
    assert code == 0, err
    metrics = check_toy_report(out)
    assert all(c["passed"] for c in metrics["checks"]), metrics["checks"]
    assert "MISSED" not in stdout and "MISSED" not in (out / "metrics.md").read_text()


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


def fit_features(features, model, *flags):
    argv = ["fit", "--features", features / "X.npy", "--config", features / "small.toml"]
    return argv + ["-o", model, *flags]


def epoch_rows(text):
    """The rows of the per-epoch tables that networks print from --verbose 2 on."""
    return [line for line in text.splitlines() if line.split()[:1] and line.split()[0].isdigit()]


def test_fit_model_flags_reach_the_saved_simulator(features, ala2, tmp_path, capsys):
    from sklss.io import load_model_folder

    model = tmp_path / "model"
    flags = ["--lag-time", "3", "--n-components", "3", "--n-kernels", "5", "--max-epochs", "1"]
    flags += ["--no-decoder", "--device", "cpu", "--seed", "7", "--frame-time", "2.5"]
    code, out, err = run(fit_features(features, model, *flags, "--verbose", "2"), capsys)
    assert code == 0, err
    folder = load_model_folder(model)
    lss, info = folder.simulator, folder.info
    assert lss.lag_time_ == 3 and info["lag_time"] == 3 and lss.propagator_.lag_time == 3
    assert lss.encoder_.n_components == 3 and lss.encoder_.timescales_.shape == (3,)
    assert lss.propagator_.n_kernels == 5  # the flag wins over the file's 3
    assert lss.decoder_ == "passthrough" and info["decoded"] is False
    assert lss.random_state == 7 and info["frame_time_ps"] == 2.5
    for net in (lss.encoder_, lss.propagator_):
        assert net.max_epochs == 1 and net.device == "cpu" and len(net.net_.history) == 1
    # --verbose 2: one line per epoch of each network; here one epoch each.
    assert len(epoch_rows(out)) == 2 and "encoder implied timescales (frames): " in out
    # Without a decoder the output is the latent trajectory, m = 3 wide.
    code, _, err = run(
        ["sample", model, "-n", "2", "--n-steps", "5", "-o", tmp_path / "s.npy"], capsys
    )
    assert code == 0, err
    assert np.load(tmp_path / "s.npy").shape == (2, 5, 3)
    code, _, err = run(
        [
            "sample",
            model,
            "--topology",
            ala2 / "heavy.pdb",
            "--n-steps",
            "5",
            "-o",
            tmp_path / "s.dcd",
        ],
        capsys,
    )
    assert code == 1 and "the model has no decoder, so it cannot write .dcd" in one_line(err)


def test_config_file_options_act_like_flags(features, tmp_path, capsys):
    from sklss.io import load_model_folder

    config = tmp_path / "options.toml"
    config.write_text(
        f"features = '{features / 'X.npy'}'\nlag_time = 4\nn_components = 1\nn_kernels = 2\n"
        "max_epochs = 1\ndecode = false\nseed = 11\nframe_time = 0.5\ndevice = 'cpu'\n"
        "verbose = 1\n[encoder]\nhidden_layer_sizes = [6, 5]\n[propagator]\nlearning_rate = 0.002\n"
    )
    code, out, err = run(["fit", "--config", config, "-o", tmp_path / "model"], capsys)
    assert code == 0, err
    folder = load_model_folder(tmp_path / "model")
    lss, info = folder.simulator, folder.info
    assert lss.lag_time_ == 4 and lss.encoder_.n_components == 1
    assert lss.propagator_.n_kernels == 2 and lss.encoder_.max_epochs == 1
    assert lss.decoder_ == "passthrough" and lss.random_state == 11
    assert info["frame_time_ps"] == 0.5
    assert lss.encoder_.hidden_layer_sizes == (6, 5) and lss.propagator_.learning_rate == 0.002
    # verbose = 1: a line per stage, no epoch tables.
    assert "read 2 trajectories: 1,200 frames x 4 features" in out
    assert "[LatentSpaceSimulator] fitting the encoder SRVTransformer" in out
    assert epoch_rows(out) == []


def test_the_seed_makes_fits_and_samples_reproducible(features, tmp_path, capsys):
    samples = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        model = tmp_path / name
        code, out, err = run(
            fit_features(features, model, "--lag-time", "2", "--seed", seed, "--verbose", "0"),
            capsys,
        )
        assert code == 0, err
        # --verbose 0 prints the result only.
        assert out.strip().splitlines() == [
            f"fitted in {out.split()[2]} s; model saved to '{model}'"
        ]
        out_file = tmp_path / f"{name}.npy"
        argv = ["sample", model, "-n", "2", "--n-steps", "10", "-o", out_file, "--seed", "0"]
        assert run(argv + ["--latent-output", tmp_path / f"{name}-latent.npy"], capsys)[0] == 0
        samples[name] = np.load(out_file), np.load(tmp_path / f"{name}-latent.npy")
    for same, other in zip(samples["a"], samples["b"]):
        np.testing.assert_array_equal(same, other)
    assert not np.allclose(samples["a"][1], samples["c"][1])
    assert not np.allclose(samples["a"][0], samples["c"][0])
    # Another sampling seed draws other start frames and noise from the same model.
    code, _, _ = run(
        [
            "sample",
            tmp_path / "a",
            "-n",
            "2",
            "--n-steps",
            "10",
            "-o",
            tmp_path / "d.npy",
            "--seed",
            "1",
        ],
        capsys,
    )
    assert code == 0 and not np.allclose(np.load(tmp_path / "d.npy"), samples["a"][0])


def test_fit_md_featurisation_options(ala2, tmp_path, capsys):
    import mdtraj as md

    from sklss.io import load_model_folder

    model = tmp_path / "distances"
    flags = ["--featurizer", "distances", "--selection", "heavy"]
    flags += ["--decoder-selection", "backbone", "--stride", "2", "--lag-time", "1"]
    code, out, err = run(fit_md(ala2, model, *flags, "--verbose", "1"), capsys)
    assert code == 0, err
    folder = load_model_folder(model)
    info = folder.info
    # 10 heavy atoms: 45 distances; --stride 2 keeps 150 of each run's 300 frames.
    assert "read 2 trajectories: 300 frames x 45 features" in out
    assert info["featurizer"] == "distances" and info["featurizer_params"]["selection"] == "heavy"
    assert info["n_features"] == 45 and len(info["feature_names"]) == 45
    assert info["feature_names"][0] == "dist(ACE1-CH3, ACE1-C)"
    assert info["decoder_selection"] == "backbone" and info["frame_time_ps"] == 2.0
    backbone = md.load_topology(str(folder.topology))
    assert backbone.n_atoms == 8 and {a.name for a in backbone.atoms} >= {"N", "CA", "C", "O"}
    assert folder.start_frames.shape == (100, 45)
    # The decoder generates the 8 backbone atoms' coordinates.
    code, _, err = run(["sample", model, "--n-steps", "4", "-o", tmp_path / "b.npy"], capsys)
    assert code == 0, err
    assert np.load(tmp_path / "b.npy").shape == (1, 4, 8 * 3)

    model = tmp_path / "both"
    flags = ["--featurizer", "torsions+distances", "--angles", "backbone", "--selection", "heavy"]
    code, _, err = run(fit_md(ala2, model, *flags, "--no-decoder", "--lag-time", "1"), capsys)
    assert code == 0, err
    info = load_model_folder(model).info
    assert info["n_features"] == 4 + 45 and info["decoded"] is False
    assert info["output"] == "features" and info["topology"] is None
    assert info["feature_names"][:2] == ["torsions__sin(phi ALA2)", "torsions__cos(phi ALA2)"]
    assert info["feature_names"][4].startswith("distances__dist(")

    # Alanine dipeptide has no side-chain torsions: --angles reaches the featuriser.
    code, _, err = run(
        fit_md(ala2, tmp_path / "x", "--angles", "sidechain", "--lag-time", "1"), capsys
    )
    assert code == 1 and "No torsion of kinds ['chi1'" in one_line(err)


def test_sample_with_topology_writes_trajectories_of_its_atoms(features, ala2, tmp_path, capsys):
    import mdtraj as md

    heavy = md.load(str(ala2 / "heavy.pdb"))
    X = np.load(features / "X.npy")
    # Decoder targets: heavy-atom coordinates that follow the first feature.
    rng = np.random.default_rng(1)
    Y = heavy.xyz.reshape(1, 1, -1) + 0.05 * X[..., :1] + rng.normal(scale=0.01, size=(2, 600, 30))
    np.save(tmp_path / "Y.npy", Y)
    model = tmp_path / "model"
    flags = ["--configurations", tmp_path / "Y.npy", "--lag-time", "2", "--frame-time", "0.5"]
    code, _, err = run(fit_features(features, model, *flags, "--verbose", "0"), capsys)
    assert code == 0, err
    # Fitted on features: no atoms in the folder, so --topology supplies them.
    argv = ["sample", model, "-n", "2", "--n-steps", "7", "--seed", "3"]
    code, _, err = run(argv + ["-o", tmp_path / "g.xtc"], capsys)
    assert code == 1 and "pass --topology" in one_line(err)
    code, out, err = run(
        argv + ["--topology", ala2 / "heavy.pdb", "-o", tmp_path / "g.xtc"], capsys
    )
    assert code == 0, err
    assert f"wrote '{tmp_path / 'g_000.xtc'}', '{tmp_path / 'g_001.xtc'}'" in out
    code, _, err = run(argv + ["-o", tmp_path / "g.npy"], capsys)
    assert code == 0, err
    expected = np.load(tmp_path / "g.npy").reshape(2, 7, 10, 3)
    for i in range(2):
        traj = md.load(str(tmp_path / f"g_{i:03d}.xtc"), top=str(ala2 / "heavy.pdb"))
        assert traj.n_frames == 7 and traj.n_atoms == 10
        assert [a.name for a in traj.topology.atoms] == [a.name for a in heavy.topology.atoms]
        # The decoded coordinates, to XTC's precision of 0.001 nm; one frame per lag of 1 ps.
        np.testing.assert_allclose(traj.xyz, expected[i], atol=1e-3)
        np.testing.assert_allclose(traj.time, np.arange(7) * 0.5 * 2)
    # Atoms that do not match the decoder's output, or no such file, are named.
    code, _, err = run(argv + ["--topology", ala2 / "ala2.pdb", "-o", tmp_path / "w.dcd"], capsys)
    # (found when writing, after the decoding progress bars)
    assert code == 1 and "but the topology has 22 atoms" in err.strip().splitlines()[-1]
    assert not (tmp_path / "w_000.dcd").exists()
    missing = tmp_path / "nope.pdb"
    code, _, err = run(argv + ["--topology", missing, "-o", tmp_path / "w.dcd"], capsys)
    assert code == 1 and one_line(err).endswith(f"topology file '{missing}' does not exist")
