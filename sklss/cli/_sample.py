"""``sklss sample``: run a saved simulator and write new trajectories."""

import os
import shutil
import time
from pathlib import Path

import numpy as np

from ._config import _SAMPLE_DEFAULTS, _settings
from ._errors import CommandError
from ._files import _TRAJECTORY_SUFFIXES, _existing, _load_npy
from ._model_folder import _read_model_folder


def _sample(args):
    settings, _ = _settings(args, _SAMPLE_DEFAULTS)
    output, latent_output = _check_sample_settings(settings)
    model = _read_model_folder(settings["model"])
    if model.info.get("interrupted"):
        raise CommandError(
            f"the model in '{model.folder}' was interrupted while fitting the "
            f"{model.info['interrupted']}; fit it again to the end"
        )
    topology = _output_topology(settings, model, output.suffix.lower())
    X0 = _start_frames(settings, model)

    lss = model.simulator
    lss.set_params(verbose=min(int(settings["verbose"]), 1))
    for path in (output, latent_output):
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    n_steps = int(settings["n_steps"])
    seed = int(settings["seed"])
    if topology is None:
        written = _sample_to_npy(lss, X0, n_steps, seed, output, latent_output)
    else:
        result = lss.sample(X0, n_steps, random_state=seed)
        frame_time = model.info.get("frame_time_ps") or 1.0
        written = _write_trajectories(result, topology, output, frame_time * lss.lag_time_)
        if latent_output is not None:
            np.save(latent_output, result.latent)
            written.append(Path(latent_output))
    seconds = time.perf_counter() - t0
    names = ", ".join(f"'{p}'" for p in written[:3]) + (", ..." if len(written) > 3 else "")
    print(
        f"sampled {len(X0)} trajectories x {n_steps:,} steps (one step = {lss.lag_time_} "
        f"frames) in {seconds:.1f} s; wrote {names}"
    )
    return 0


def _check_sample_settings(settings):
    """Refuse missing or bad options before reading anything; return the output paths."""
    if settings["model"] is None:
        raise CommandError("the model folder is required (sklss sample MODEL ...)")
    if settings["n_steps"] is None:
        raise CommandError("--n-steps is required")
    if settings["output"] is None:
        raise CommandError("--output is required (.npy, .dcd, .xtc, ...)")
    output = Path(settings["output"])
    suffix = output.suffix.lower()
    if suffix != ".npy" and suffix not in _TRAJECTORY_SUFFIXES:
        raise CommandError(
            f"cannot tell the format of output '{output}': use .npy or one of "
            f"{', '.join(_TRAJECTORY_SUFFIXES)}"
        )
    latent_output = settings["latent_output"]
    if latent_output is not None and Path(latent_output).suffix.lower() != ".npy":
        raise CommandError(f"--latent-output '{latent_output}' must be a .npy file")
    return output, latent_output


def _output_topology(settings, model, suffix):
    """The atoms of trajectory-file output (None for ``.npy``), from the flag or the folder."""
    if suffix == ".npy":
        return None
    topology = settings["topology"] or model.topology
    if topology is None:
        raise CommandError(
            f"writing {suffix} needs atoms: the model was fitted on {model.info.get('input')} "
            "without a topology; pass --topology, or write .npy"
        )
    if not model.info.get("decoded"):
        raise CommandError(f"the model has no decoder, so it cannot write {suffix}; use .npy")
    return _existing(topology, "topology file")


def _start_frames(settings, model):
    """The start frame of each trajectory: rows of --start, or drawn from the folder's."""
    if settings["start"] is not None:
        starts = _load_npy(settings["start"], "start file")
        if len(starts) != 1:
            raise CommandError(
                f"start file '{settings['start']}' must be 2-D, (n_starts, n_features)"
            )
        starts = starts[0]
    else:
        starts = model.start_frames
    n = settings["n_trajectories"]
    if n is None:
        n = len(starts) if settings["start"] is not None else 1
    rng = np.random.default_rng(int(settings["seed"]))
    if settings["start"] is not None and n == len(starts):
        picks = np.arange(n)
    else:
        picks = rng.choice(len(starts), size=n, replace=n > len(starts))
    X0 = starts[picks]
    if X0.shape[1] != model.info["n_features"]:
        raise CommandError(
            f"start frames have {X0.shape[1]} features, but the model expects "
            f"{model.info['n_features']}"
        )
    return X0


def _sample_to_npy(lss, X0, n_steps, seed, output, latent_output):
    """Stream the samples to disk, then move the files into place."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix=".sklss-sample-", dir=output.parent) as tmp:
        result = lss.sample(X0, n_steps, random_state=seed, out=tmp)
        decoded = result.configurations is not None
        del result
        os.replace(Path(tmp) / ("configurations.npy" if decoded else "latent.npy"), output)
        written = [output]
        if latent_output is not None:
            source = Path(tmp) / "latent.npy"
            if not decoded:
                np.save(latent_output, np.load(output, mmap_mode="r"))
            else:
                shutil.move(source, latent_output)
            written.append(Path(latent_output))
    return written


def _write_trajectories(result, topology, output, dt):
    from ..io import write_trajectory

    configurations = result.configurations
    n = len(configurations)
    paths = []
    for i in range(n):
        path = output if n == 1 else output.with_name(f"{output.stem}_{i:03d}{output.suffix}")
        paths.append(write_trajectory(configurations[i], topology, path, dt=dt))
    return paths
