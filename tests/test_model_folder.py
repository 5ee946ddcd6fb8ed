"""The model folder of sklss.io: save_model_folder and load_model_folder."""

import json
import shutil

import numpy as np
import pytest

from sklss import CWGANDecoder, LatentSpaceSimulator, MDNPropagator, SRVTransformer
from sklss.cli import main
from sklss.datasets import hidden_wells
from sklss.io import InvalidModelFileError, load, load_model_folder, save_model_folder

# Tiny, briefly trained simulators draw outside their training data now and then.
pytestmark = pytest.mark.filterwarnings("ignore:.*draws left the range:UserWarning")


def tiny_simulator(lag_time=2, random_state=0):
    """SRV + MDN + cWGAN with networks so small that a fit takes a second or two."""
    return LatentSpaceSimulator(
        SRVTransformer(n_components=2, hidden_layer_sizes=(8,), batch_size=256, max_epochs=2),
        MDNPropagator(n_kernels=3, hidden_layer_sizes=(8,), max_epochs=2),
        CWGANDecoder(hidden_layer_sizes=(8,), noise_dim=2, batch_size=64, max_epochs=2),
        lag_time=lag_time,
        random_state=random_state,
    )


@pytest.fixture(scope="module")
def data():
    return hidden_wells(600, n_trajectories=2, n_features=4, random_state=0)


@pytest.fixture(scope="module")
def fitted(data):
    return tiny_simulator().fit(data)


@pytest.fixture(scope="module")
def folder(fitted, data, tmp_path_factory):
    return save_model_folder(
        fitted, tmp_path_factory.mktemp("saved") / "model", data, info={"system": "toy"}
    )


def test_save_writes_the_documented_files_and_info(folder, data):
    assert sorted(p.name for p in folder.iterdir()) == [
        "simulator.sklss",
        "sklss-model.json",
        "start_frames.npy",
    ]
    info = json.loads((folder / "sklss-model.json").read_text())
    assert info["format"] == "sklss model folder" and info["format_version"] == 1
    assert info["model"] == "simulator.sklss" and info["start_frames"] == "start_frames.npy"
    assert info["topology"] is None and info["interrupted"] is None
    assert info["lag_time"] == 2 and info["n_features"] == 4 and info["decoded"] is True
    assert info["system"] == "toy"
    # 100 start frames spread evenly over the data: the first and the last frame among them.
    starts = np.load(folder / "start_frames.npy")
    frames = np.concatenate(data)
    assert starts.shape == (100, 4)
    np.testing.assert_array_equal(starts[0], frames[0])
    np.testing.assert_array_equal(starts[-1], frames[-1])
    rows = {tuple(f) for f in frames}
    assert all(tuple(s) in rows for s in starts)


def test_round_trip_samples_equal_the_original_for_the_same_seed(folder, fitted, data):
    model = load_model_folder(folder)
    assert model.folder == folder and model.topology is None
    assert model.info["system"] == "toy"
    np.testing.assert_array_equal(model.start_frames, np.load(folder / "start_frames.npy"))
    X0 = model.start_frames[[0, 50, 99]]
    mine = fitted.sample(X0, 20, random_state=5)
    theirs = model.simulator.sample(X0, 20, random_state=5)
    np.testing.assert_array_equal(theirs.latent, mine.latent)
    np.testing.assert_array_equal(theirs.configurations, mine.configurations)
    assert mine.configurations.shape == (3, 20, 4)
    other = model.simulator.sample(X0, 20, random_state=6)
    assert not np.array_equal(other.latent, mine.latent)


def test_info_overrides_and_fewer_start_frames(fitted, data, tmp_path):
    folder = save_model_folder(
        fitted, tmp_path / "m", data[0], info={"lag_time": 99, "note": [1, 2]}, n_start_frames=7
    )
    model = load_model_folder(str(folder))
    assert model.info["lag_time"] == 99 and model.info["note"] == [1, 2]
    assert model.start_frames.shape == (7, 4)
    # Saving again into the same folder replaces the model.
    save_model_folder(fitted, folder, data)
    assert load_model_folder(folder).start_frames.shape == (100, 4)


def test_topology_is_saved_from_a_structure_or_copied_from_a_file(fitted, data, tmp_path):
    md = pytest.importorskip("mdtraj")
    from sklss.datasets import alanine_dipeptide_structure

    structure = alanine_dipeptide_structure()
    model = load_model_folder(save_model_folder(fitted, tmp_path / "a", data, topology=structure))
    assert model.topology == tmp_path / "a" / "topology.pdb"
    assert model.info["topology"] == "topology.pdb"
    assert md.load_topology(str(model.topology)).n_atoms == 22
    pdb = tmp_path / "given.pdb"
    structure.atom_slice(structure.topology.select("not element H")).save_pdb(str(pdb))
    model = load_model_folder(save_model_folder(fitted, tmp_path / "b", data, topology=pdb))
    assert md.load_topology(str(model.topology)).n_atoms == 10


def test_saving_refuses_an_unfitted_simulator_and_frames_of_other_features(fitted, data, tmp_path):
    with pytest.raises(ValueError, match="needs a fitted simulator"):
        save_model_folder(tiny_simulator(), tmp_path / "m", data)
    with pytest.raises(ValueError, match="simulator's 4 features; got shape \\(1200, 3\\)"):
        save_model_folder(fitted, tmp_path / "m", [x[:, :3] for x in data])
    assert not (tmp_path / "m" / "sklss-model.json").exists()


def damaged(folder, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    return copy


def test_a_missing_folder_or_info_file_is_named(folder, tmp_path):
    with pytest.raises(FileNotFoundError, match=f"model folder '{tmp_path / 'nope'}' does not"):
        load_model_folder(tmp_path / "nope")
    copy = damaged(folder, tmp_path)
    (copy / "sklss-model.json").unlink()
    with pytest.raises(ValueError, match=r"is not a model folder .* \(no sklss-model.json in it\)"):
        load_model_folder(copy)
    with pytest.raises(ValueError, match="is not a model folder"):
        load_model_folder(folder / "start_frames.npy")  # a file, not a folder


@pytest.mark.parametrize("name", ["simulator.sklss", "start_frames.npy"])
def test_a_missing_file_names_the_folder_and_the_file(folder, tmp_path, name):
    copy = damaged(folder, tmp_path)
    (copy / name).unlink()
    with pytest.raises(FileNotFoundError) as err:
        load_model_folder(copy)
    assert str(err.value) == f"model folder '{copy}' has no {name}"


def test_a_topology_that_the_info_names_must_be_there(folder, tmp_path):
    copy = damaged(folder, tmp_path)
    info = json.loads((copy / "sklss-model.json").read_text())
    (copy / "sklss-model.json").write_text(json.dumps({**info, "topology": "topology.pdb"}))
    with pytest.raises(FileNotFoundError, match="has no topology.pdb"):
        load_model_folder(copy)


def test_damaged_files_are_refused_with_their_names(folder, tmp_path):
    copy = damaged(folder, tmp_path)
    info_text = (copy / "sklss-model.json").read_text()
    (copy / "sklss-model.json").write_text("{not json")
    with pytest.raises(ValueError, match="sklss-model.json' is not valid JSON"):
        load_model_folder(copy)
    info = json.loads(info_text)
    for bad, message in (
        ({**info, "format_version": 2}, "format_version 2; this sklss reads versions up to 1"),
        ({**info, "model": "../simulator.sklss"}, "model must be a file name"),
        ([1, 2], "must hold a JSON object; got list"),
    ):
        (copy / "sklss-model.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=message):
            load_model_folder(copy)
    (copy / "sklss-model.json").write_text(info_text)
    np.save(copy / "start_frames.npy", np.array(["a", "b"]))
    with pytest.raises(ValueError, match="start_frames.npy' must hold a 2-D numeric array"):
        load_model_folder(copy)
    shutil.copy(folder / "start_frames.npy", copy)
    (copy / "simulator.sklss").write_bytes(b"PK not really a model")
    with pytest.raises(InvalidModelFileError, match="simulator.sklss"):
        load_model_folder(copy)


def test_a_folder_written_by_the_cli_loads_and_samples_as_the_cli_does(data, tmp_path, capsys):
    np.save(tmp_path / "X.npy", np.stack(data))
    config = tmp_path / "small.toml"
    config.write_text(
        "max_epochs = 2\nn_kernels = 3\n[encoder]\nhidden_layer_sizes = [8]\nbatch_size = 256\n"
        "[propagator]\nhidden_layer_sizes = [8]\n"
        "[decoder]\nhidden_layer_sizes = [8]\nnoise_dim = 2\nbatch_size = 64\n"
    )
    model_dir = tmp_path / "model"
    argv = ["fit", "--features", tmp_path / "X.npy", "--lag-time", "3", "--config", config]
    assert main([str(a) for a in argv + ["-o", model_dir, "--verbose", "0"]]) == 0
    model = load_model_folder(model_dir)
    assert model.info["input"] == "features" and model.info["lag_time"] == 3
    assert model.simulator.lag_time_ == 3 and model.start_frames.shape == (100, 4)
    # The simulator is the one in simulator.sklss.
    lss = load(model_dir / "simulator.sklss")
    np.testing.assert_array_equal(
        lss.transform(model.start_frames), model.simulator.transform(model.start_frames)
    )
    # What 'sklss sample' writes is the loaded simulator's sample from the folder's frames.
    out = tmp_path / "s.npy"
    argv = ["sample", model_dir, "-n", "3", "--n-steps", "12", "-o", out, "--seed", "9"]
    assert main([str(a) for a in argv + ["--verbose", "0"]]) == 0
    capsys.readouterr()
    picks = np.random.default_rng(9).choice(100, size=3, replace=False)
    expected = model.simulator.sample(model.start_frames[picks], 12, random_state=9)
    np.testing.assert_allclose(np.load(out), expected.configurations, rtol=0, atol=1e-6)
