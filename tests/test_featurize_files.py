"""featurize_files: MD files featurised one joblib task each into .npy memory maps."""

import json
import os
import re
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("mdtraj")
pytest.importorskip("openmm")

from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.utils.validation import check_is_fitted  # noqa: E402

from sklss.datasets import alanine_dipeptide, alanine_dipeptide_structure  # noqa: E402
from sklss.features import Torsions, make_encoder_features  # noqa: E402
from sklss.io import featurize_files, read_trajectory, write_trajectory  # noqa: E402

N_FRAMES = 20  # 0.02 ns saved every ps
N_FEATURES = 2 * 2 + 45  # sin/cos of phi and psi, distances of the 10 heavy atoms


@pytest.fixture(scope="module")
def md_runs(tmp_path_factory):
    """Three short OpenMM runs of alanine dipeptide as DCD and XTC files, with their PDB."""
    root = tmp_path_factory.mktemp("featurize")
    trajs = alanine_dipeptide(
        0.02, n_trajectories=3, random_state=7, cache_dir=root / "cache", verbose=0
    )
    folder = root / "md"
    folder.mkdir()
    structure = alanine_dipeptide_structure()
    pdb = folder / "ala2.pdb"  # sits among the runs: folder and glob inputs must leave it out
    structure.save_pdb(str(pdb))
    files = [folder / "run0.dcd", folder / "run1.xtc", folder / "run2.dcd"]
    for traj, path in zip(trajs, files):
        write_trajectory(traj.xyz, structure.topology, path, dt=1.0)
    return SimpleNamespace(folder=folder, files=files, pdb=pdb, structure=structure, trajs=trajs)


@pytest.fixture(scope="module")
def heavy(md_runs):
    return make_encoder_features("heavy").fit(md_runs.structure)


def expected_features(featurizer, path, topology, stride=1):
    return featurizer.transform(read_trajectory(path, topology, stride=stride))


def stats(folder):
    """(inode, mtime) of every .npy file: a rewritten file gets a new inode from os.replace."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.glob("*.npy")}


def test_memmaps_equal_direct_featurisation_in_input_order(md_runs, heavy, tmp_path):
    files = [md_runs.files[2], md_runs.files[0], md_runs.files[1]]
    X = featurize_files(files, heavy, tmp_path / "out", topology=md_runs.structure)
    assert len(X) == 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "run0.npy",
        "run1.npy",
        "run2.npy",
    ]
    for x, path in zip(X, files):
        assert isinstance(x, np.memmap) and x.mode == "r" and not x.flags.writeable
        assert x.dtype == np.float32 and x.shape == (N_FRAMES, N_FEATURES)
        assert os.path.samefile(x.filename, tmp_path / "out" / f"{path.stem}.npy")
        np.testing.assert_allclose(x, expected_features(heavy, path, md_runs.structure), rtol=1e-6)
    # DCD keeps single precision: the simulated frames themselves; XTC rounds to 1e-3 nm.
    np.testing.assert_allclose(X[1], heavy.transform(md_runs.trajs[0]), rtol=1e-5, atol=1e-6)
    assert 0 < np.abs(X[2] - heavy.transform(md_runs.trajs[1])).max() < 0.02
    # The rows are the frames, not a shuffled copy: distinct frames give distinct rows.
    assert len(np.unique(X[0], axis=0)) == N_FRAMES


def test_stride_keeps_every_nth_frame_and_a_stride_change_recomputes(md_runs, heavy, tmp_path):
    out = tmp_path / "out"
    full = featurize_files(md_runs.files, heavy, out, topology=md_runs.pdb)
    full = [np.array(x) for x in full]
    strided = featurize_files(md_runs.files, heavy, out, topology=md_runs.pdb, stride=3)
    assert [x.shape for x in strided] == [(7, N_FEATURES)] * 3  # frames 0, 3, ..., 18
    for x, f, path in zip(strided, full, md_runs.files):
        np.testing.assert_array_equal(x, f[::3])
        np.testing.assert_allclose(x, expected_features(heavy, path, md_runs.pdb, 3), rtol=1e-6)


def test_an_unfitted_featuriser_is_fitted_on_a_copy_and_gives_the_same_features(
    md_runs, heavy, tmp_path
):
    unfitted = make_encoder_features("heavy")
    X = featurize_files(md_runs.files, unfitted, tmp_path / "a", topology=md_runs.pdb)
    reference = featurize_files(md_runs.files, heavy, tmp_path / "b", topology=md_runs.pdb)
    for x, r in zip(X, reference):
        np.testing.assert_array_equal(x, r)
    with pytest.raises(NotFittedError):
        check_is_fitted(unfitted)


def test_folder_and_glob_inputs_equal_the_sorted_list(md_runs, heavy, tmp_path):
    options = dict(topology=md_runs.pdb)
    listed = featurize_files(md_runs.files, heavy, tmp_path / "list", **options)
    in_folder = featurize_files(md_runs.folder, heavy, tmp_path / "folder", **options)
    globbed = featurize_files(str(md_runs.folder / "run*"), heavy, tmp_path / "glob", **options)
    # The topology PDB in the folder is not one of the trajectories.
    assert len(in_folder) == len(globbed) == 3
    for a, b, c in zip(listed, in_folder, globbed):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    only_xtc = featurize_files(str(md_runs.folder / "*.xtc"), heavy, tmp_path / "xtc", **options)
    assert len(only_xtc) == 1
    np.testing.assert_array_equal(only_xtc[0], listed[1])


def test_a_rerun_skips_current_files_and_overwrite_rewrites_them(md_runs, heavy, tmp_path):
    out = tmp_path / "out"
    first = [np.array(x) for x in featurize_files(md_runs.files, heavy, out, topology=md_runs.pdb)]
    before = stats(out)
    again = featurize_files(md_runs.files, heavy, out, topology=md_runs.pdb)
    assert stats(out) == before
    for x, f in zip(again, first):
        np.testing.assert_array_equal(x, f)

    # A trajectory file newer than its features, and features of the wrong width, are redone.
    newer = md_runs.files[1].stat().st_mtime_ns
    os.utime(out / "run1.npy", ns=(newer - 10**9, newer - 10**9))
    np.save(out / "run2.npy", np.zeros((N_FRAMES, 3), dtype=np.float32))
    wrong_width = stats(out)["run2.npy"]
    again = featurize_files(md_runs.files, heavy, out, topology=md_runs.pdb)
    after = stats(out)
    assert after["run0.npy"] == before["run0.npy"]
    assert after["run1.npy"][0] != before["run1.npy"][0]
    assert after["run2.npy"][0] != wrong_width[0]
    np.testing.assert_array_equal(again[2], first[2])

    featurize_files(md_runs.files, heavy, out, topology=md_runs.pdb, overwrite=True)
    rewritten = stats(out)
    assert all(rewritten[name][0] != after[name][0] for name in after)


class BreaksOnSecondFile(Torsions):
    """Torsions that fail on the second trajectory they see, as on a bad file."""

    def _featurize(self, traj, md):
        self.n_seen_ = getattr(self, "n_seen_", 0) + 1
        if self.n_seen_ == 2:
            raise RuntimeError("simulated failure")
        return super()._featurize(traj, md)


def test_a_failing_file_is_named_and_the_others_are_kept_for_the_rerun(md_runs, tmp_path):
    out = tmp_path / "out"
    breaking = BreaksOnSecondFile().fit(md_runs.structure)
    message = (
        f"Could not featurise trajectory file '{md_runs.files[1]}' with BreaksOnSecondFile: "
        "RuntimeError: simulated failure"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        featurize_files(md_runs.files, breaking, out, topology=md_runs.pdb, n_jobs=1)
    assert sorted(p.name for p in out.iterdir()) == ["run0.npy"]  # no temporary files
    kept = stats(out)
    torsions = Torsions().fit(md_runs.structure)
    X = featurize_files(md_runs.files, torsions, out, topology=md_runs.pdb)
    assert stats(out)["run0.npy"] == kept["run0.npy"]
    assert sorted(p.name for p in out.iterdir()) == ["run0.npy", "run1.npy", "run2.npy"]
    np.testing.assert_allclose(X[1], expected_features(torsions, md_runs.files[1], md_runs.pdb))


def test_an_interrupted_write_leaves_the_previous_file_and_no_partial_one(
    md_runs, heavy, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    old = np.array(featurize_files(md_runs.files[:1], heavy, out, topology=md_runs.pdb)[0])
    before = stats(out)

    def write_half_then_fail(file, arr, allow_pickle=True):
        file.write(b"\x93NUMPY\x01\x00partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", write_half_then_fail)
    message = f"Could not write '{out / 'run0.npy'}', the features of trajectory file "
    message += f"'{md_runs.files[0]}': [Errno 28] No space left on device"
    with pytest.raises(OSError, match=re.escape(message)):
        featurize_files(md_runs.files[:2], heavy, out, topology=md_runs.pdb, overwrite=True)
    monkeypatch.undo()
    # The old features stay whole, and neither a partial file nor a temporary one is left.
    assert sorted(p.name for p in out.iterdir()) == ["run0.npy"]
    assert stats(out) == before
    np.testing.assert_array_equal(np.load(out / "run0.npy"), old)


def test_bad_inputs_are_errors_naming_the_file_or_pattern(md_runs, heavy, tmp_path):
    out = tmp_path / "out"
    top = md_runs.pdb
    pattern = str(md_runs.folder / "nothing*.xtc")
    with pytest.raises(ValueError, match=re.escape(f"the pattern '{pattern}' matches no files")):
        featurize_files(pattern, heavy, out, topology=top)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a trajectory")
    with pytest.raises(ValueError, match=re.escape(f"the directory '{empty}' holds no traj")):
        featurize_files(empty, heavy, out, topology=top)
    with pytest.raises(ValueError, match="'paths' parameter is an empty list"):
        featurize_files([], heavy, out, topology=top)

    missing = md_runs.folder / "missing.dcd"
    with pytest.raises(FileNotFoundError, match=re.escape(f"'{missing}' does not exist")):
        featurize_files([md_runs.files[0], missing], heavy, out, topology=top)

    garbage = tmp_path / "garbage.xtc"
    garbage.write_bytes(os.urandom(4000))
    with pytest.raises(ValueError, match=re.escape(f"Could not read trajectory file '{garbage}'")):
        featurize_files([md_runs.files[0], garbage], heavy, out, topology=top)
    # The good file before it was written and stays for the rerun.
    assert sorted(p.name for p in out.iterdir()) == ["run0.npy"]

    heavy_pdb = tmp_path / "heavy.pdb"
    s = md_runs.structure
    s.atom_slice(s.topology.select("not element H")).save_pdb(str(heavy_pdb))
    with pytest.raises(ValueError, match=re.escape(f"'{md_runs.files[2]}' holds 22 atoms per")):
        featurize_files(md_runs.files[2], heavy, out, topology=heavy_pdb)
    with pytest.raises(ValueError, match=re.escape(f"Reading '{md_runs.files[0]}' needs a top")):
        featurize_files(md_runs.files, heavy, out)
    with pytest.raises(ValueError, match="'stride' parameter must be an int in the range"):
        featurize_files(md_runs.files, heavy, out, topology=top, stride=0)
    with pytest.raises(TypeError, match="'featurizer' parameter must be a featuriser"):
        featurize_files(md_runs.files, "heavy", out, topology=top)


def test_files_that_would_share_a_npy_file_are_refused(md_runs, heavy, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(md_runs.files[1], other / "run0.xtc")
    files = [md_runs.files[0], other / "run0.xtc"]
    with pytest.raises(ValueError) as info:
        featurize_files(files, heavy, tmp_path / "out", topology=md_runs.pdb)
    message = str(info.value)
    assert f"'{files[0]}' and '{files[1]}' would both write" in message
    assert str(tmp_path / "out" / "run0.npy") in message
    with pytest.raises(ValueError, match=re.escape(f"'{files[0]}' is listed twice")):
        featurize_files([files[0], files[0]], heavy, tmp_path / "out", topology=md_runs.pdb)
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_an_srv_fits_on_the_memory_maps(md_runs, heavy, tmp_path):
    from sklss import SRVTransformer

    X = featurize_files(md_runs.folder, heavy, tmp_path / "out", topology=md_runs.pdb)
    srv = SRVTransformer(lag_time=1, n_components=1, max_epochs=2, random_state=0).fit(X)
    psi = srv.transform(X)
    assert [p.shape for p in psi] == [(N_FRAMES, 1)] * 3
    assert np.isfinite(np.concatenate(psi)).all() and srv.eigenvalues_.shape == (1,)
    # The same fit on the arrays in memory: the memory maps are ordinary trajectory data.
    in_memory = SRVTransformer(lag_time=1, n_components=1, max_epochs=2, random_state=0)
    in_memory.fit([np.array(x) for x in X])
    np.testing.assert_allclose(in_memory.eigenvalues_, srv.eigenvalues_, rtol=1e-6)


class DiesOnOneFile(Torsions):
    """Torsions whose worker process dies on the trajectory starting at ``die_on``."""

    def _featurize(self, traj, md):
        if os.getpid() != self.parent_pid and np.abs(traj.xyz[0] - self.die_on).max() < 2e-3:
            os._exit(1)  # as a worker killed for its memory
        return super()._featurize(traj, md)


@pytest.mark.slow
def test_joblib_processes_match_the_serial_run_and_a_dead_worker_names_its_files(
    md_runs, heavy, tmp_path
):
    serial = featurize_files(md_runs.files, heavy, tmp_path / "serial", topology=md_runs.pdb)
    parallel = featurize_files(
        md_runs.files, heavy, tmp_path / "parallel", topology=md_runs.pdb, n_jobs=2
    )
    assert len(parallel) == 3
    for x, s in zip(parallel, serial):
        np.testing.assert_array_equal(x, s)

    out = tmp_path / "dies"
    dying = DiesOnOneFile().fit(md_runs.structure)
    dying.parent_pid = os.getpid()
    dying.die_on = read_trajectory(md_runs.files[1], md_runs.pdb).xyz[0]
    with pytest.raises(RuntimeError, match="Cause: TerminatedWorkerError") as info:
        featurize_files(md_runs.files, dying, out, topology=md_runs.pdb, n_jobs=2)
    listed = str(info.value).split("Trajectory files without features", 1)[1].split("Cause")[0]
    assert f"'{md_runs.files[1]}'" in listed
    for path in md_runs.files:
        assert (f"'{path}'" in listed) != (out / f"{path.stem}.npy").is_file()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    # The rerun finishes what is missing and keeps the rest.
    written = stats(out)
    X = featurize_files(md_runs.files, Torsions().fit(md_runs.structure), out, topology=md_runs.pdb)
    assert len(X) == 3 and all(stats(out)[name] == written[name] for name in written)


@pytest.mark.slow
def test_tasks_run_on_dask_workers_and_match_the_serial_run(md_runs, heavy, tmp_path):
    joblib = pytest.importorskip("joblib")
    distributed = pytest.importorskip("dask.distributed")
    serial = featurize_files(md_runs.files, heavy, tmp_path / "serial", topology=md_runs.pdb)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        workers = set(client.scheduler_info()["workers"])
        with distributed.get_task_stream(client) as stream, joblib.parallel_backend("dask"):
            X = featurize_files(md_runs.files, heavy, tmp_path / "dask", topology=md_runs.pdb)
    # The scheduler's record of every task: joblib sends each file as one call of
    # _featurize_file (batched as "batch_of__featurize_file_<n>_calls-..."), run by a worker.
    calls = 0
    for task in stream.data:
        found = re.match(r"batch_of__featurize_file_(\d+)_calls", task["key"])
        if found:
            assert task["worker"] in workers
            assert [s["action"] for s in task["startstops"]].count("compute") == 1
            calls += int(found.group(1))
    assert calls == len(md_runs.files)
    for x, s in zip(X, serial):
        assert x.dtype == np.float32
        np.testing.assert_array_equal(x, s)


def test_cli_fit_featurises_a_folder_into_features_dir_and_reuses_it(md_runs, tmp_path, capsys):
    from sklss.cli import main
    from sklss.io import load_model_folder

    (tmp_path / "small.toml").write_text(
        "max_epochs = 2\nn_kernels = 2\n[encoder]\nhidden_layer_sizes = [8]\n"
        "[propagator]\nhidden_layer_sizes = [8]\n[decoder]\nhidden_layer_sizes = [8]\n"
        "noise_dim = 2\nbatch_size = 16\n"
    )
    features = tmp_path / "features"

    def fit(*flags):
        argv = ["fit", "--topology", md_runs.pdb, "--trajectories", md_runs.folder]
        argv += ["--features-dir", features, "--lag-time", "1", "--config", tmp_path / "small.toml"]
        code = main([str(a) for a in [*argv, *flags]])
        return code, *capsys.readouterr()

    code, out, err = fit("-o", tmp_path / "model", "--n-jobs", "1", "--verbose", "0")
    assert code == 0, err
    assert sorted(p.name for p in features.glob("*.npy")) == ["run0.npy", "run1.npy", "run2.npy"]
    coordinates = sorted((features / "coordinates").glob("*.npy"))
    assert [p.name for p in coordinates] == ["run0.npy", "run1.npy", "run2.npy"]
    # Default options: phi/psi torsions for the encoder, 10 heavy atoms for the decoder.
    x0 = np.load(features / "run0.npy")
    torsions = Torsions().fit(md_runs.structure)
    np.testing.assert_allclose(x0, expected_features(torsions, md_runs.files[0], md_runs.pdb))
    assert np.load(coordinates[1]).shape == (N_FRAMES, 30)
    stamp = json.loads((features / "sklss-features.json").read_text())
    assert stamp["featurizer"] == "torsions" and stamp["stride"] == 1
    folder = load_model_folder(tmp_path / "model")
    assert folder.info["input"] == "md" and folder.info["output"] == "coordinates"
    assert folder.info["n_features"] == 4 and folder.start_frames.shape[1] == 4
    assert folder.info["frame_time_ps"] == pytest.approx(1.0)

    # A rerun reuses the files; other options for the same folder are refused.
    before = stats(features)
    code, out, err = fit("-o", tmp_path / "model2", "--verbose", "0")
    assert code == 0, err
    assert stats(features) == before
    code, out, err = fit("-o", tmp_path / "model3", "--stride", "2")
    assert code == 1 and "holds features made with stride = 1" in err and out == ""
    code, out, err = fit("-o", tmp_path / "model4", "--n-jobs", "0")
    assert code == 2 and "must be at least 1" in err


def test_cli_trajectories_accept_a_quoted_glob(md_runs, tmp_path, capsys):
    from sklss.cli import main

    argv = ["fit", "--topology", md_runs.pdb, "--trajectories", md_runs.folder / "*.dcd"]
    argv += ["--lag-time", "1", "--max-epochs", "1", "--no-decoder", "--n-kernels", "2"]
    code = main([str(a) for a in [*argv, "-o", tmp_path / "model"]])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "read 2 trajectories: 40 frames x 4 features" in out
    code = main([str(a) for a in [*argv[:4], md_runs.folder / "none*.dcd", *argv[5:]]])
    err = capsys.readouterr().err
    assert code == 1 and "matches no files" in err
    code = main([str(a) for a in [*argv, "--n-jobs", "2", "-o", tmp_path / "m2"]])
    assert code == 1 and "--n-jobs goes with --features-dir" in capsys.readouterr().err
