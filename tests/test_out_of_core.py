"""Fits on memory-mapped trajectories: the same models as in memory, with bounded memory."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import random_walks
from sklearn.base import BaseEstimator
from skorch.dataset import Dataset

from sklss import (
    CWGANDecoder,
    InterpolantPropagator,
    LatentSpaceSimulator,
    MDNPropagator,
    SRVTransformer,
    _frames,
)
from sklss._frames import Frames, LaggedPairs, Rows, is_memory_mapped, lagged_chunks
from sklss._nn import ChunkedBatch, TensorBatchLoader
from sklss._validation import (
    check_trajectories,
    feature_mean_and_scale,
    lagged_pairs,
    split_train_valid,
    train_valid_pairs,
)


def _memmaps(folder, arrays, name):
    """``arrays`` saved as ``.npy`` files and opened again as read-only memory maps."""
    paths = []
    for i, a in enumerate(arrays):
        paths.append(Path(folder) / f"{name}{i}.npy")
        np.save(paths[-1], a)
    return [np.load(p, mmap_mode="r") for p in paths]


def _in_memory(maps):
    return [np.array(m) for m in maps]


@pytest.fixture
def paths_taken(monkeypatch):
    """Count the fits that copied their data into arrays and the batches gathered by index."""
    counts = {"copied": 0, "gathered": 0}
    materialise, take = Rows.materialise, Frames.take

    def counted_materialise(self):
        counts["copied"] += 1
        return materialise(self)

    def counted_take(self, rows):
        counts["gathered"] += 1
        return take(self, rows)

    monkeypatch.setattr(Rows, "materialise", counted_materialise)
    monkeypatch.setattr(Frames, "take", counted_take)
    return counts


def _fit_both(make, maps, paths_taken, *args, only_gathered=True):
    """Fit ``make()`` on memory maps (gathered batches) and on copies in memory (arrays)."""
    on_disk = make().fit(maps, *args)
    assert paths_taken["gathered"] > 0
    assert paths_taken["copied"] == 0 or not only_gathered
    paths_taken.update(copied=0)
    copies = [_in_memory(a) if isinstance(a, list) else a for a in args]
    in_memory = make().fit(_in_memory(maps), *copies)
    assert paths_taken["copied"] > 0
    return on_disk, in_memory


# --- 1. memory maps give the models that the same data in memory give ---------------------


def test_srv_on_memory_maps_equals_the_fit_in_memory(tmp_path, paths_taken):
    X = [x.astype(np.float32) for x in random_walks(n_trajs=4, n_frames=400, n_features=5)]
    maps = _memmaps(tmp_path, X, "x")

    def make():
        kw = dict(hidden_layer_sizes=(8,), batch_size=128, max_epochs=3, random_state=0)
        return SRVTransformer(lag_time=2, n_components=2, **kw)

    on_disk, in_memory = _fit_both(make, maps, paths_taken)
    assert on_disk.history_ == in_memory.history_
    np.testing.assert_array_equal(on_disk.eigenvalues_, in_memory.eigenvalues_)
    for a, b in zip(on_disk.transform(maps), in_memory.transform(X)):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)


@pytest.mark.filterwarnings("ignore:.*of the draws left the range")
@pytest.mark.parametrize("reversible", [False, True])
def test_propagators_on_memory_maps_equal_the_fits_in_memory(tmp_path, paths_taken, reversible):
    psi = [x.astype(np.float32) for x in random_walks(n_trajs=3, n_frames=400, n_features=2)]
    maps = _memmaps(tmp_path, psi, "psi")
    common = dict(lag_time=2, hidden_layer_sizes=(8,), batch_size=128, max_epochs=3)
    common.update(random_state=0, reversible=reversible)
    for make in (
        lambda: MDNPropagator(n_kernels=2, **common),
        lambda: MDNPropagator(n_kernels=2, density_weighting=0.5, **common),
        lambda: InterpolantPropagator(n_integration_steps=4, **common),
    ):
        paths_taken.update(copied=0, gathered=0)
        on_disk, in_memory = _fit_both(make, maps, paths_taken)
        assert on_disk.history_ == in_memory.history_
        np.testing.assert_array_equal(on_disk.predict(psi[0]), in_memory.predict(psi[0]))
        np.testing.assert_array_equal(
            on_disk.sample(psi[0][:4], 10, random_state=1),
            in_memory.sample(psi[0][:4], 10, random_state=1),
        )


def test_decoder_on_memory_maps_equals_the_fit_in_memory(tmp_path, paths_taken):
    Y = [y.astype(np.float32) for y in random_walks(n_trajs=4, n_frames=300, n_features=6)]
    psi = [y[:, :2] + 0.01 for y in Y]
    y_maps, psi_maps = _memmaps(tmp_path, Y, "y"), _memmaps(tmp_path, psi, "psi")

    def make():
        return CWGANDecoder(hidden_layer_sizes=(8,), batch_size=32, max_epochs=2, random_state=0)

    on_disk, in_memory = _fit_both(make, psi_maps, paths_taken, y_maps)
    # Whitening a batch and whitening a whole trajectory are matrix products of other shapes,
    # which may round differently in the last bit.
    np.testing.assert_allclose(
        on_disk.history_["generator_loss"], in_memory.history_["generator_loss"], rtol=1e-5
    )
    for a, b in zip(on_disk.sample(psi, random_state=2), in_memory.sample(psi, random_state=2)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_simulator_on_memory_maps_equals_the_fit_in_memory(tmp_path, paths_taken):
    X = [x.astype(np.float32) for x in random_walks(n_trajs=3, n_frames=300, n_features=4)]
    maps = _memmaps(tmp_path, X, "x")
    tiny = dict(hidden_layer_sizes=(8,), batch_size=64, max_epochs=2)

    def make():
        return LatentSpaceSimulator(
            encoder=SRVTransformer(n_components=1, **tiny),
            propagator=MDNPropagator(n_kernels=2, **tiny),
            decoder=CWGANDecoder(**tiny),
            lag_time=2,
            random_state=0,
        )

    # The propagator trains on the latent trajectories, small arrays in memory either way.
    on_disk, in_memory = _fit_both(make, maps, paths_taken, only_gathered=False)
    np.testing.assert_array_equal(on_disk.observable_coef_, in_memory.observable_coef_)
    np.testing.assert_array_equal(on_disk.transform(maps)[0], in_memory.transform(X)[0])
    a = on_disk.sample(X[0][:2], 5, random_state=0)
    b = in_memory.sample(X[0][:2], 5, random_state=0)
    np.testing.assert_allclose(a.configurations, b.configurations, rtol=1e-4, atol=1e-5)


def test_validation_keeps_memory_maps_as_float32_views(tmp_path):
    X = [x.astype(np.float32) for x in random_walks(n_trajs=2, n_frames=50)]
    maps = _memmaps(tmp_path, X, "x")
    trajs, _ = check_trajectories(BaseEstimator(), maps, reset=True)
    for t, m in zip(trajs, maps):
        assert t.dtype == np.float32 and np.shares_memory(t, m) and is_memory_mapped(t)
    assert not is_memory_mapped(np.array(maps[0]))


# --- 2. peak memory stays far below the data ------------------------------------------------

_PEAK_SCRIPT = textwrap.dedent(
    """
    import re, sys, threading, time
    import numpy as np
    from sklss import SRVTransformer

    def rss_anon():
        with open("/proc/self/status") as f:
            return int(re.search(r"RssAnon:\\s+(\\d+) kB", f.read()).group(1)) * 1024

    class Peak(threading.Thread):
        def __init__(self):
            super().__init__(daemon=True)
            self.peak, self.done = rss_anon(), False

        def run(self):
            while not self.done:
                self.peak = max(self.peak, rss_anon())
                time.sleep(0.002)

    paths, mode = sys.argv[1:-1], sys.argv[-1]
    srv = SRVTransformer(
        n_components=1, hidden_layer_sizes=(8,), batch_size=8192, max_epochs=1, random_state=0
    )
    base = rss_anon()
    peak = Peak()
    peak.start()
    X = [np.load(p, mmap_mode="r" if mode == "mmap" else None) for p in paths]
    srv.fit(X)
    peak.done = True
    peak.join()
    print(peak.peak - base)
    """
)


def _peak_anonymous_memory(tmp_path, paths, mode):
    """Peak anonymous memory of a subprocess that loads ``paths`` and fits an SRV on them.

    It is counted from before the data were loaded; file-backed pages of memory maps are not
    anonymous, so they do not count however much of the files the kernel keeps in memory.
    """
    script = tmp_path / "peak.py"
    script.write_text(_PEAK_SCRIPT)
    out = subprocess.run(
        [sys.executable, str(script), *map(str, paths), mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return int(out.stdout.split()[-1])


def _feature_files(folder, n_files=8, n_frames=80_000, width=300):
    """``n_files`` float32 ``.npy`` files of shifted copies of one random block, written in
    blocks so that the test itself never holds a whole file."""
    block = np.random.default_rng(0).standard_normal((8000, width), dtype=np.float32)
    paths = []
    for i in range(n_files):
        paths.append(Path(folder) / f"features{i}.npy")
        m = np.lib.format.open_memmap(
            paths[-1], mode="w+", dtype=np.float32, shape=(n_frames, width)
        )
        for start in range(0, n_frames, 8000):
            m[start : start + 8000] = block + np.float32(0.01 * (i + start / 8000))
        m.flush()
        del m
    return paths


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_fit_on_memory_maps_holds_a_small_fraction_of_the_data_in_memory(tmp_path):
    # 8 files of 80,000 frames x 300 features: 732 MiB of float32 on disk. What a fit holds
    # beyond the memory maps grows with the batch and the width, not with the frames.
    paths = _feature_files(tmp_path)
    size = 8 * 80_000 * 300 * 4
    on_disk = _peak_anonymous_memory(tmp_path, paths, "mmap")
    in_memory = _peak_anonymous_memory(tmp_path, paths, "memory")
    mib = [round(v / 2**20) for v in (size, on_disk, in_memory)]
    print(
        "data {} MiB; peak anonymous memory: {} MiB on memory maps, {} MiB in memory".format(*mib)
    )
    assert on_disk < 0.4 * size
    # The measurement sees data in memory: the same fit on a copy holds all of it.
    assert in_memory > size


_CAPPED_SCRIPT = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    from sklss import LatentSpaceSimulator, MDNPropagator, SRVTransformer

    def vm_data():
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmData:"))

    # Private writable memory (heap, anonymous maps, torch's tensors) is capped at what the
    # imports took plus the allowance; read-only memory maps of files do not count.
    cap = vm_data() + int(sys.argv[-1]) * 2**20
    resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
    paths, mode = sys.argv[1:-2], sys.argv[-2]
    try:
        X = [np.load(p, mmap_mode="r" if mode == "mmap" else None) for p in paths]
    except MemoryError:
        print("MemoryError while loading")
        sys.exit(3)
    lss = LatentSpaceSimulator(
        SRVTransformer(n_components=1, hidden_layer_sizes=(8,), batch_size=8192, max_epochs=1),
        MDNPropagator(n_kernels=2, hidden_layer_sizes=(8,), batch_size=8192, max_epochs=1),
        "passthrough",
        lag_time=5,
        random_state=0,
    ).fit(X)
    latent = lss.sample(X[0][:2], n_steps=10, random_state=0).latent
    print("fitted", np.isfinite(latent).all())
    """
)


@pytest.mark.slow
@pytest.mark.skipif(
    not Path("/proc/self/status").exists() or not hasattr(__import__("resource"), "RLIMIT_DATA"),
    reason="needs Linux /proc and RLIMIT_DATA",
)
def test_a_simulator_fits_on_data_three_times_larger_than_its_memory_cap(tmp_path):
    # 732 MiB of features against 256 MiB of private memory allowed beyond the imports: the
    # fit on memory maps has to stream the data, and the same data loaded into memory fail.
    paths = _feature_files(tmp_path)
    script = tmp_path / "capped.py"
    script.write_text(_CAPPED_SCRIPT)

    def run(mode):
        return subprocess.run(
            [sys.executable, str(script), *map(str, paths), mode, "256"],
            capture_output=True,
            text=True,
            timeout=900,
        )

    streamed = run("mmap")
    assert streamed.returncode == 0, streamed.stderr[-2000:]
    assert streamed.stdout.split()[-2:] == ["fitted", "True"]
    loaded = run("memory")
    assert loaded.returncode == 3, (loaded.returncode, loaded.stderr[-2000:])


# --- 3. lagged pairs as indices -----------------------------------------------------------


def _labelled(lengths, width=1):
    """Trajectories whose features encode (trajectory index, frame): 1000 * i + t."""
    return [
        np.repeat(np.arange(n, dtype=np.float64)[:, None] + 1000.0 * i, width, axis=1)
        for i, n in enumerate(lengths)
    ]


@pytest.mark.parametrize(
    "lengths, fraction, lag",
    [([60, 45, 80, 52, 70], 0.2, 3), ([500], 0.1, 5), ([40, 3, 90], 0.3, 4), ([30, 30], 0, 2)],
)
def test_pair_indices_match_the_stacked_pairs_and_never_cross_a_boundary(lengths, fraction, lag):
    trajs = _labelled(lengths)
    train, valid = train_valid_pairs(trajs, fraction, lag)
    # The blocks the stacked pairs came from before the pairs were indices.
    train_parts, valid_parts = split_train_valid(trajs, fraction, lag)
    frames = Frames(trajs, lambda t: t)
    for starts, parts in ((train, train_parts), (valid, valid_parts)):
        if starts is None:
            assert not any(len(p) > lag for p in parts)
            continue
        expected = lagged_pairs([p for p in parts if len(p) > lag], lag, warn=False)
        for both in (False, True):
            pairs = LaggedPairs(starts, lag, both_directions=both)
            x0, xt = Rows(frames, pairs, 0), Rows(frames, pairs, 1)
            assert len(x0) == len(expected[0]) * (2 if both else 1)
            want = (np.concatenate(expected), np.concatenate(expected[::-1])) if both else expected
            np.testing.assert_array_equal(x0.materialise(), want[0])
            np.testing.assert_array_equal(xt.materialise(), want[1])
            # Gathered in any order, each pair is lag frames apart within one trajectory.
            order = np.random.default_rng(0).permutation(len(x0))
            a, b = x0[order], xt[order]
            np.testing.assert_array_equal(a, want[0][order])
            np.testing.assert_array_equal(a // 1000, b // 1000)
            np.testing.assert_array_equal(np.abs(b - a), lag)


def test_tiled_pairs_repeat_the_whole_set_in_order():
    trajs = _labelled([20, 15])
    pairs = LaggedPairs(train_valid_pairs(trajs, 0, 2)[0], 2, both_directions=True)
    frames = Frames(trajs, lambda t: t)
    once = Rows(frames, pairs, 0).materialise()
    np.testing.assert_array_equal(
        Rows(frames, pairs, 0).tiled(3).materialise(), np.tile(once, (3, 1))
    )
    np.testing.assert_array_equal(
        Rows(frames, pairs, 0).tiled(3)[[70, 5]], once[[70 % len(once), 5]]
    )


def test_lagged_chunks_cover_every_pair_once(monkeypatch):
    monkeypatch.setattr(_frames, "CHUNK_ROWS", 7)
    trajs = _labelled([20, 2, 13, 9])
    pieces = list(lagged_chunks(trajs, 3))
    assert all(len(x0) <= 7 for x0, _ in pieces)
    stacked = [np.concatenate(p) for p in zip(*pieces)]
    for got, want in zip(stacked, lagged_pairs(trajs, 3, warn=False)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shuffle", [True, False])
def test_the_loader_gives_the_same_batches_from_rows_as_from_arrays(shuffle):
    trajs = [t.astype(np.float32) for t in _labelled([300, 257, 410], width=3)]
    frames = Frames(trajs, lambda t: (t / 100).astype(np.float32))
    pairs = LaggedPairs(train_valid_pairs(trajs, 0, 2)[0], 2, both_directions=True)
    rows = {"x0": Rows(frames, pairs, 0), "xt": Rows(frames, pairs, 1)}
    arrays = {key: r.materialise() for key, r in rows.items()}
    batches = []
    for data in (arrays, rows):
        torch.manual_seed(3)
        loader = TensorBatchLoader(Dataset(data, None), batch_size=100, shuffle=shuffle)
        batches.append([b for b, _ in loader])
        assert len(batches[-1]) == len(loader) == (19 if shuffle else 20)
    for a, b in zip(*batches):
        assert a.keys() == b.keys()
        assert all(torch.equal(a[key], b[key]) for key in a)
    if shuffle:  # every batch has at least batch_size rows: the remainder is spread
        assert min(len(b["x0"]) for b in batches[1]) >= 100


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "cuda",
            marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
        ),
    ],
)
def test_the_loader_slices_batches_on_the_device_with_the_cpu_permutation(device):
    data = {"x": np.arange(600, dtype=np.float32).reshape(300, 2), "y": np.arange(300.0)}
    batches = []
    for where in (None, device):
        torch.manual_seed(5)
        loader = TensorBatchLoader(Dataset(data, None), batch_size=64, shuffle=True, device=where)
        batches.append([b for b, _ in loader])
    for cpu, dev in zip(*batches):
        assert dev["x"].device.type == device
        assert torch.equal(cpu["x"], dev["x"].cpu()) and torch.equal(cpu["y"], dev["y"].cpu())
    # Together the shuffled batches hold every row once.
    rows = torch.cat([b["y"].cpu() for b in batches[1]])
    assert sorted(rows.tolist()) == list(range(300))


def test_a_large_held_out_batch_is_gathered_in_pieces(monkeypatch):
    monkeypatch.setattr(_frames, "_CHUNK_ELEMENTS", 300)
    trajs = [t.astype(np.float32) for t in _labelled([400, 500], width=3)]
    frames = Frames(trajs, lambda t: t)
    pairs = LaggedPairs(train_valid_pairs(trajs, 0, 1)[0], 1)
    loader = TensorBatchLoader(Dataset({"x0": Rows(frames, pairs, 0)}, None), batch_size=len(pairs))
    [(batch, _)] = list(loader)
    assert isinstance(batch, ChunkedBatch) and len(batch) == len(pairs)
    pieces = list(batch)
    assert max(len(p["x0"]) for p in pieces) == 100
    np.testing.assert_array_equal(
        torch.cat([p["x0"] for p in pieces]), Rows(frames, pairs, 0).materialise()
    )


def test_chunked_statistics_match_the_whole_data(monkeypatch):
    rng = np.random.default_rng(0)
    trajs = [rng.normal(3.0, 2.0, size=(n, 4)).astype(np.float32) for n in (1000, 333)]
    trajs[0][:, 2] = 5.0  # a constant feature
    whole = np.concatenate(trajs).astype(np.float64)
    monkeypatch.setattr(_frames, "CHUNK_ROWS", 64)
    mean, scale, constant = feature_mean_and_scale(trajs)
    np.testing.assert_allclose(mean, whole.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(scale[[0, 1, 3]], whole.std(axis=0)[[0, 1, 3]], rtol=1e-10)
    assert constant.tolist() == [] and scale[2] > 0


# --- 4. bad data in a memory map is found chunk by chunk and named ---------------------------


def test_nan_deep_in_a_memory_map_names_the_trajectory_frame_and_feature(tmp_path):
    # Frames 70,123 and 80,000 lie beyond the first chunk of 65,536 rows.
    X = [np.zeros((1000, 4), np.float32), np.ones((90_000, 4), np.float32)]
    X[1][:, 0] = np.arange(90_000) * 1e-3
    X[1][70_123, 3] = np.nan
    with pytest.raises(ValueError, match=r"NaN .* trajectory 1, frame 70123, feature 3\."):
        SRVTransformer(max_epochs=1).fit(_memmaps(tmp_path, X, "x"))
    Y = [np.zeros((1000, 2), np.float32), np.zeros((90_000, 2), np.float32)]
    Y[1][80_000, 0] = np.inf
    psi = [y[:, :1] + 1.0 for y in X]
    with pytest.raises(ValueError, match=r"Y contains inf .* trajectory 1, frame 80000, feature 0"):
        CWGANDecoder(max_epochs=1).fit(_memmaps(tmp_path, psi, "p"), _memmaps(tmp_path, Y, "y"))
