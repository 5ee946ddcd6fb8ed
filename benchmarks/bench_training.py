"""Paper-scale training: a Trp-cage-sized simulator fitted on memory-mapped data.

The data stand in for the LSS paper's Trp-cage set (1.04 million frames; m = 3; 20 C-alpha
atoms decoded): :func:`sklss.datasets.hidden_switches`, three independent two-state switches
seen through 330 nonlinear features, with exact slow timescales of 395, 326 and 268 frames.

- training: 104 trajectories x 10,000 frames = 1,040,000 frames x 330 features (1.37 GB of
  float32) plus 60 decoded targets from a second nonlinear map (0.25 GB), one ``.npy`` file
  per trajectory, opened as read-only memory maps;
- held out: 20 trajectories x 10,000 frames from another seed, never seen in training.

Parts (``--parts``):

``data``
    Writes the data once to ``--data-dir`` (default ``~/.cache/sklss/bench_training``).
``fit``
    Fits the whole simulator (SRV 330-100-100-3, MDN with C = 24 and 2 x 100 units, cWGAN with
    3 x 200 units and d = 50: the paper's architectures) in a fresh process whose anonymous
    memory is capped by ``RLIMIT_DATA`` at ``--memory-limit`` GiB above what the imports
    take: the data cannot be loaded into memory, so the fit must stream them. It reports the
    time of each stage and per epoch, the peak resident memory (``ru_maxrss``; it includes
    the page cache of the memory maps that the process touched) and the peak anonymous
    memory, and saves the model for ``fidelity``. ``--settings before`` fits with the
    estimators' defaults instead (the paper's batch sizes, early stopping with patience 10)
    and trains the decoder for one of the paper's 52 epochs, whose time is multiplied by 52.
``fidelity``
    Held-out figures of the saved model: 100 synthetic trajectories of 2,000 steps from
    held-out start frames; free energy along each psi_i against the held-out MD (missing
    mass charged, 5 kT cap), and the same for 200,000 frames of training MD (the floor set
    by the held-out MD's own noise); implied timescales of the synthetic latent trajectories
    against the exact ones; the Jensen-Shannon divergence of each decoded target's marginal against
    the held-out targets, for the decoder alone (held-out latent points) and for the whole
    simulator.
``epochs``
    Time per epoch of each sklss stage against the baselines of
    ``_training_baselines.py`` (deeptime's VAMPNet, the reference MDN propagator and cWGAN
    loops) on the same data and batch sizes. Each method runs 3 epochs; the first is the
    warm-up and the median of the other two is reported.

Results go to ``results/bench_training.json`` under the ``--settings`` label (``after`` by
default), keeping what other runs wrote. Run ``before`` with ``PYTHONPATH`` pointing at an
older checkout of sklss to time it.

    python benchmarks/bench_training.py [--parts data fit fidelity epochs] [--settings after]
        [--quick]
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from _common import RESULTS, machine_info, start_run, write_result

N_TRAIN, N_HELD, N_FRAMES = 104, 20, 10_000
N_FEATURES, N_TARGETS, NOISE = 330, 60, 0.05
LAG = 20
PAPER_DECODER_EPOCHS = 52
EXACT_TIMESCALES = (395.2, 326.1, 268.3)  # frames; hidden_switches_reference().switch_timescales


def default_data_dir():
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sklss/bench_training"


# --- data -------------------------------------------------------------------------------------


def _manifest():
    return {
        "generator": "sklss.datasets.hidden_switches",
        "n_features": N_FEATURES,
        "n_targets": N_TARGETS,
        "noise": NOISE,
        "sets": {"train": [N_TRAIN, N_FRAMES, 0], "held_out": [N_HELD, N_FRAMES, 1]},
    }


def make_data(folder):
    """Write both sets, one trajectory per file, unless an identical set is already there."""
    folder = Path(folder)
    manifest = folder / "manifest.json"
    if manifest.exists() and json.loads(manifest.read_text()) == _manifest():
        return
    from sklss.datasets import hidden_switches_features, hidden_switches_latent

    for name, (n_traj, n_frames, seed) in _manifest()["sets"].items():
        out = folder / name
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        latent = hidden_switches_latent(n_frames, n_trajectories=n_traj, random_state=seed)
        rng = np.random.default_rng(seed + 1000)
        for i, z in enumerate(latent):
            x = hidden_switches_features(z, n_features=N_FEATURES, map_seed=0)
            x += NOISE * rng.standard_normal(x.shape)
            y = hidden_switches_features(z, n_features=N_TARGETS, map_seed=1)
            y += NOISE * rng.standard_normal(y.shape)
            np.save(out / f"x_{i:03d}.npy", x.astype(np.float32))
            np.save(out / f"y_{i:03d}.npy", y.astype(np.float32))
            np.save(out / f"z_{i:03d}.npy", z)
        print(f"{name}: {n_traj} x {n_frames} frames in {time.perf_counter() - t0:.0f} s")
    manifest.write_text(json.dumps(_manifest()))


def load(folder, name, kind):
    """The set's files of one kind (x, y or z), in order, as read-only memory maps."""
    paths = sorted((Path(folder) / name).glob(f"{kind}_*.npy"))
    return [np.load(p, mmap_mode="r") for p in paths]


# --- the simulators -----------------------------------------------------------------------------


def simulator(settings, seed=0):
    from sklss import CWGANDecoder, LatentSpaceSimulator, MDNPropagator, SRVTransformer

    if settings == "before":
        # The estimators' defaults: the paper's architectures and batch sizes, early stopping
        # with patience 10; the decoder for one of the paper's 52 epochs (timed, then scaled).
        encoder = SRVTransformer(n_components=3, hidden_layer_sizes=(100, 100))
        propagator = MDNPropagator(n_kernels=24, hidden_layer_sizes=(100, 100))
        decoder = CWGANDecoder(noise_dim=50, hidden_layer_sizes=(200, 200, 200), max_epochs=1)
    else:
        # One pass over a million frames already gives the SRV its slow subspace: stop as
        # soon as the held-out VAMP-2 score stops rising. The MDN at its defaults, with the
        # float32 likelihood, stopped after at most 30 epochs (20 left the free energy along
        # psi_2 at 0.31 kT, 30 at 0.26 kT). The decoder: batches of 256 frames per critic
        # update at a learning rate of 1e-3, for a single pass over the frames (about 730
        # generator updates instead of the paper's 52 epochs of batch 64).
        encoder = SRVTransformer(
            n_components=3, hidden_layer_sizes=(100, 100), max_epochs=4, patience=1
        )
        propagator = MDNPropagator(
            n_kernels=24, hidden_layer_sizes=(100, 100), max_epochs=30, patience=5
        )
        decoder = CWGANDecoder(
            noise_dim=50,
            hidden_layer_sizes=(200, 200, 200),
            batch_size=256,
            generator_learning_rate=1e-3,
            critic_learning_rate=1e-3,
            max_epochs=1,
        )
    return LatentSpaceSimulator(encoder, propagator, decoder, lag_time=LAG, random_state=seed)


# --- fit in a process with capped memory ---------------------------------------------------------


def _status_kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class _PeakSampler(threading.Thread):
    """Samples the process's anonymous resident memory (RssAnon) every 20 ms."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.done = 0, False

    def run(self):
        while not self.done:
            self.peak = max(self.peak, _status_kib("RssAnon"))
            time.sleep(0.02)


def fit_worker(folder, settings, limit_gib, model_path, out_path):
    """Runs in its own process: fits under RLIMIT_DATA and writes timings and memory."""
    import joblib

    import sklss  # noqa: F401  (imports counted before the cap)

    base = _status_kib("VmData") * 1024
    cap = base + int(limit_gib * 2**30)
    resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
    X, Y = load(folder, "train", "x"), load(folder, "train", "y")
    data_bytes = sum(a.nbytes for a in X) + sum(a.nbytes for a in Y)
    sampler = _PeakSampler()
    sampler.start()
    lss = simulator(settings)
    t0 = time.perf_counter()
    lss.fit(X, Y)
    wall = time.perf_counter() - t0
    sampler.done = True
    sampler.join()
    histories = {}
    for stage in ("encoder", "propagator", "decoder"):
        h = getattr(lss, stage + "_").net_.history
        histories[stage] = {
            "epochs": len(h),
            "seconds_per_epoch": [float(d) for d in h[:, "dur"]],
            "valid_loss": [float(v) if v is not None else None for v in h[:, "valid_loss"]],
        }
    joblib.dump(lss, model_path)
    # An sklss without fit_seconds_ (before it existed): each stage's epochs, summed.
    stages = getattr(lss, "fit_seconds_", None) or {
        k: sum(h["seconds_per_epoch"]) for k, h in histories.items()
    }
    result = {
        "settings": settings,
        "fit_seconds": wall,
        "stage_seconds": dict(stages),
        "stage_seconds_from": "fit_seconds_" if hasattr(lss, "fit_seconds_") else "epoch sums",
        "histories": histories,
        "srv_timescales_training": [float(t) for t in lss.encoder_.timescales_[:3]],
        "data_bytes": data_bytes,
        "anonymous_memory_cap_bytes": cap,
        "imports_vmdata_bytes": base,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "peak_anonymous_rss_bytes": sampler.peak * 1024,
    }
    Path(out_path).write_text(json.dumps(result))


def part_fit(args):
    model = Path(args.data_dir) / f"lss_{args.settings}.joblib"
    out = Path(args.data_dir) / f"fit_{args.settings}.json"
    worker = (str(args.data_dir), args.settings, args.memory_limit, str(model), str(out))
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); "
        f"import bench_training as b; b.fit_worker(*{worker!r})"
    )
    # From the benchmarks folder: with "-c" the working directory comes first on sys.path,
    # and the repository root would shadow an sklss given by PYTHONPATH.
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent)
    res = json.loads(out.read_text())
    if args.settings == "before":
        one = res["histories"]["decoder"]["seconds_per_epoch"][0]
        res["decoder_paper_epochs_seconds"] = one * PAPER_DECODER_EPOCHS
        decoder = res["stage_seconds"]["decoder"]
        res["projected_fit_seconds"] = (
            res["fit_seconds"] - decoder + res["decoder_paper_epochs_seconds"]
        )
    gib = 2**30
    print(
        f"\n### Whole fit ({args.settings}), {N_TRAIN * N_FRAMES:,} frames x "
        f"{N_FEATURES} features\n"
    )
    print("| stage | seconds | epochs | seconds per epoch (median) |")
    print("|---|---|---|---|")
    for stage in ("encoder", "propagator", "observable", "decoder"):
        secs = res["stage_seconds"].get(stage, float("nan"))
        h = res["histories"].get(stage)
        per = statistics.median(h["seconds_per_epoch"]) if h else None
        print(
            f"| {stage} | {secs:.0f} | {h['epochs'] if h else '-'} | "
            + (f"{per:.1f}" if per else "-")
            + " |"
        )
    print(f"| **total** | **{res['fit_seconds']:.0f}** | | |")
    print(
        f"\ndata {res['data_bytes'] / gib:.2f} GiB; anonymous memory capped at "
        f"{(res['anonymous_memory_cap_bytes'] - res['imports_vmdata_bytes']) / gib:.1f} GiB "
        f"above the imports; peak RSS {res['peak_rss_bytes'] / gib:.2f} GiB (with the page "
        f"cache of the memory maps), peak anonymous RSS "
        f"{res['peak_anonymous_rss_bytes'] / gib:.2f} GiB"
    )
    if args.settings == "before":
        print(
            f"decoder: {PAPER_DECODER_EPOCHS} epochs projected "
            f"{res['decoder_paper_epochs_seconds']:.0f} s; whole fit projected "
            f"{res['projected_fit_seconds']:.0f} s"
        )
    return res


# --- fidelity on held-out data ------------------------------------------------------------------


def _feature_js(reference, generated, bins=40):
    from sklss.metrics import js_divergence

    out = []
    for j in range(reference.shape[1]):
        edges = np.linspace(reference[:, j].min(), reference[:, j].max(), bins + 1)
        out.append(
            js_divergence(
                np.histogram(reference[:, j], edges)[0], np.histogram(generated[:, j], edges)[0]
            )
        )
    return np.array(out)


def part_fidelity(args):
    import joblib

    from sklss.datasets import hidden_switches_reference
    from sklss.metrics import compare_distributions, implied_timescales

    lss = joblib.load(Path(args.data_dir) / f"lss_{args.settings}.joblib")
    Xh, Yh = load(args.data_dir, "held_out", "x"), load(args.data_dir, "held_out", "y")
    exact = hidden_switches_reference().switch_timescales
    psi_md = lss.transform(Xh)
    # 100 start frames: every 2,000th frame of each held-out trajectory.
    starts = np.stack([x[i] for x in Xh for i in range(0, N_FRAMES, 2000)])
    n_steps = 4 * N_FRAMES // lss.lag_time_
    t0 = time.perf_counter()
    sim = lss.sample(starts, n_steps, random_state=1)
    sample_s = time.perf_counter() - t0
    latent = list(sim.latent)

    def fe_rmse(other, i):
        return compare_distributions(
            np.concatenate([p[:, i] for p in psi_md]),
            np.concatenate([s[:, i] for s in other]),
            bins=50,
            max_free_energy=5.0,
        )["free_energy_rmse"]

    fe = [fe_rmse(latent, i) for i in range(3)]
    # The floor of this measure: as much training MD as there is held-out MD, same measure.
    psi_train = lss.transform(load(args.data_dir, "train", "x")[:N_HELD])
    fe_floor = [fe_rmse(psi_train, i) for i in range(3)]
    # Timescales in frames: VAC of the synthetic latent trajectories at 5 steps (100 frames),
    # and of the held-out MD's latent trajectories at the same 100 frames.
    steps = 5
    t_lss = implied_timescales(latent, steps, n_components=3) * lss.lag_time_
    t_md = implied_timescales(psi_md, steps * lss.lag_time_, n_components=3)
    order = lambda t: np.sort(t)[::-1]  # noqa: E731  (the exact ones are sorted too)
    t_lss, t_md = order(t_lss), order(t_md)
    err = t_lss / exact - 1

    Y_ref = np.concatenate(Yh)[::5]
    decoded = lss.decoder_.sample(np.concatenate(psi_md)[::5], random_state=2)
    js_decoder = _feature_js(Y_ref, decoded)
    js_lss = _feature_js(Y_ref, sim.configurations.reshape(-1, N_TARGETS))
    res = {
        "held_out_frames": N_HELD * N_FRAMES,
        "synthetic": {
            "starts": len(starts),
            "steps": n_steps,
            "sample_seconds": sample_s,
            "wall_hit_rate": sim.wall_hit_rate,
        },
        "free_energy_rmse_kT": fe,
        "free_energy_rmse_training_md_kT": fe_floor,
        "exact_timescales": exact.tolist(),
        "lss_timescales": t_lss.tolist(),
        "lss_timescale_errors": err.tolist(),
        "held_out_md_timescales": t_md.tolist(),
        "srv_timescales_training": [float(t) for t in lss.encoder_.timescales_[:3]],
        "decoder_alone_js": {"mean": float(js_decoder.mean()), "max": float(js_decoder.max())},
        "lss_js": {"mean": float(js_lss.mean()), "max": float(js_lss.max())},
    }
    print(
        f"\n### Fidelity on held-out data ({N_HELD * N_FRAMES:,} frames; "
        f"{len(starts)} synthetic trajectories of {n_steps} steps)\n"
    )
    print(
        "| coordinate | FE RMSE (kT) | same for training MD | exact t_i | LSS t_i | error "
        "| held-out MD t_i |"
    )
    print("|---|---|---|---|---|---|---|")
    for i in range(3):
        print(
            f"| psi_{i + 1} | {fe[i]:.3f} | {fe_floor[i]:.3f} | {exact[i]:.0f} | {t_lss[i]:.0f} "
            f"| {err[i]:+.1%} | {t_md[i]:.0f} |"
        )
    print(
        f"\ndecoded targets, mean (max) JS over {N_TARGETS}: decoder alone "
        f"{js_decoder.mean():.4f} ({js_decoder.max():.4f}), whole simulator "
        f"{js_lss.mean():.4f} ({js_lss.max():.4f})"
    )
    return res


# --- time per epoch against the baselines --------------------------------------------------------


def _median_after_warmup(times):
    return {"all": [float(t) for t in times], "median": float(statistics.median(times[1:]))}


def part_epochs(args):
    import joblib
    from _training_baselines import (
        deeptime_vampnet_epochs,
        reference_cwgan_epochs,
        reference_mdn_epochs,
    )

    from sklss import CWGANDecoder, MDNPropagator, SRVTransformer

    X, Y = load(args.data_dir, "train", "x"), load(args.data_dir, "train", "y")
    lss = joblib.load(Path(args.data_dir) / "lss_after.joblib")
    psi = [p.astype(np.float32) for p in lss.transform(X)]
    n_sub = N_TRAIN // 10  # the decoders: 104,000 frames, so that every one runs 3 epochs
    res = {}

    def sklss_epochs(est, *data):
        est.set_params(max_epochs=3, random_state=0)
        if hasattr(est, "patience"):
            est.set_params(patience=10)
        est.fit(*data)
        return [float(d) for d in est.net_.history[:, "dur"]]

    # Pairs as the sklss fit builds them (validation_fraction 0.1 of the trajectories held
    # out), as row indices into the stacked frames for deeptime.
    n_fit = N_TRAIN - max(1, round(0.1 * N_TRAIN))
    offsets = np.arange(n_fit) * N_FRAMES
    x0_rows = (offsets[:, None] + np.arange(N_FRAMES - LAG)[None, :]).ravel()
    stacked = Path(args.data_dir) / "stacked_x.npy"
    shape = (n_fit * N_FRAMES, N_FEATURES)
    if not stacked.exists() or np.load(stacked, mmap_mode="r").shape != shape:
        out = np.lib.format.open_memmap(stacked, mode="w+", dtype=np.float32, shape=shape)
        for i in range(n_fit):
            out[i * N_FRAMES : (i + 1) * N_FRAMES] = X[i]
        out.flush()
        del out
    frames = np.load(stacked, mmap_mode="r")
    rows = {
        "SRV (sklss, batch 2048)": lambda: sklss_epochs(SRVTransformer(LAG, n_components=3), X),
        "VAMPNet (deeptime, batch 2048)": lambda: deeptime_vampnet_epochs(
            x0_rows, x0_rows + LAG, frames, n_epochs=3
        ),
        "MDN (sklss, batch 1024)": lambda: sklss_epochs(MDNPropagator(LAG), psi),
        "MDN (reference, batch 1024)": lambda: reference_mdn_epochs(
            np.concatenate([p[:-LAG] for p in psi[:n_fit]]),
            np.concatenate([p[LAG:] for p in psi[:n_fit]]),
            n_epochs=3,
        ),
        "cWGAN (sklss, batch 64)": lambda: sklss_epochs(CWGANDecoder(), psi[:n_sub], Y[:n_sub]),
        "cWGAN (sklss, batch 256)": lambda: sklss_epochs(
            CWGANDecoder(batch_size=256, generator_learning_rate=1e-3, critic_learning_rate=1e-3),
            psi[:n_sub],
            Y[:n_sub],
        ),
        "cWGAN (reference, batch 64)": lambda: reference_cwgan_epochs(
            np.concatenate(psi[: n_sub - 1 or 1]), np.concatenate(Y[: n_sub - 1 or 1]), n_epochs=3
        ),
    }
    for name, fn in rows.items():
        if args.only and not any(k in name for k in args.only):
            continue
        res[name] = _median_after_warmup(fn())
        print(f"{name}: {res[name]['median']:.1f} s per epoch ({res[name]['all']})", flush=True)
    return res


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", nargs="+", default=["data", "fit", "fidelity", "epochs"])
    parser.add_argument("--settings", choices=["before", "after"], default="after")
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--memory-limit", type=float, default=1.0, help="GiB above the imports")
    parser.add_argument("--only", nargs="*", help="epochs: only rows whose name contains these")
    parser.add_argument("--output", type=Path, default=RESULTS / "bench_training.json")
    parser.add_argument(
        "--quick", action="store_true", help="12 + 3 trajectories of 2,000 frames (a smoke run)"
    )
    args = parser.parse_args()
    if args.quick:
        global N_TRAIN, N_HELD, N_FRAMES
        N_TRAIN, N_HELD, N_FRAMES = 12, 3, 2000
        args.data_dir = args.data_dir.with_name(args.data_dir.name + "_quick")
    import torch

    torch.set_num_threads(1)
    run = start_run()
    previous = json.loads(args.output.read_text()) if args.output.exists() else {}
    result = {k: v for k, v in previous.items() if k != "machine"}
    label = result.setdefault(args.settings + ("_quick" if args.quick else ""), {})
    if "data" in args.parts:
        make_data(args.data_dir)
    if "fit" in args.parts:
        label["fit"] = part_fit(args)
    if "fidelity" in args.parts:
        label["fidelity"] = part_fidelity(args)
    if "epochs" in args.parts:
        label.setdefault("epochs", {}).update(part_epochs(args))
    # Parts may come from different runs: each keeps the machine and commit it ran on.
    runs = label.setdefault("machine_of_part", {})
    for part in args.parts:
        runs[part] = machine_info()
    write_result(args.output, result, run)


if __name__ == "__main__":
    main()
