"""``sklss fit``: train a simulator on ``.npy`` features or MD files and save a model folder."""

import json
import sys
import time
from pathlib import Path

from ._config import _FIT_DEFAULTS, _say, _set_table, _settings
from ._errors import CommandError
from ._files import _check_aligned, _existing, _load_npy_files

# What ``--features-dir`` records of the options its files were made with.
_FEATURES_STAMP = "sklss-features.json"


def _md_files(settings):
    """The topology file and the MD files; a --trajectories entry may be a folder or a glob."""
    from .._featurize_files import _GLOB_CHARACTERS, _trajectory_paths

    topology = _existing(settings["topology"], "topology file")
    for item in settings["trajectories"]:
        if not Path(item).exists() and not _GLOB_CHARACTERS & set(str(item)):
            _existing(item, "trajectory file")
    return topology, _trajectory_paths(settings["trajectories"], topology=topology)


def _featurizer(settings):
    from ..features import PairwiseDistances, Torsions, make_encoder_features

    name = settings["featurizer"]
    if name == "torsions":
        return Torsions(settings["angles"])
    if name == "distances":
        return PairwiseDistances(settings["selection"])
    if name == "torsions+distances":
        return make_encoder_features(settings["selection"], angles=settings["angles"])
    raise CommandError(
        f"featurizer must be 'torsions', 'distances' or 'torsions+distances'; got {name!r}"
    )


def _build_simulator(settings, tables, config):
    from .. import CWGANDecoder, LatentSpaceSimulator, MDNPropagator, SRVTransformer

    verbose = int(settings["verbose"])
    # The networks print from verbose 2 on: one line per epoch, then progress bars.
    common = dict(
        max_epochs=int(settings["max_epochs"]),
        device=settings["device"],
        verbose=max(verbose - 1, 0),
    )
    encoder = SRVTransformer(n_components=int(settings["n_components"]), **common)
    propagator = MDNPropagator(n_kernels=int(settings["n_kernels"]), **common)
    decoder = CWGANDecoder(**common)
    _set_table(encoder, tables["encoder"], "encoder", config)
    _set_table(propagator, tables["propagator"], "propagator", config)
    _set_table(decoder, tables["decoder"], "decoder", config)
    return LatentSpaceSimulator(
        encoder,
        propagator,
        decoder if settings["decode"] else "passthrough",
        lag_time=int(settings["lag_time"]),
        random_state=int(settings["seed"]),
        verbose=min(verbose, 1),
    )


def _fit(args):
    from ..io import save_model_folder

    settings, tables = _settings(args, _FIT_DEFAULTS)
    output = _check_fit_settings(settings)
    t0 = time.perf_counter()
    if settings["features"] is not None:
        X, Y, info, topology = _read_npy_inputs(settings)
    else:
        X, Y, info, topology = _read_md_inputs(settings)
    n_frames = sum(len(x) for x in X)
    _say(
        settings,
        f"read {len(X)} trajector{'y' if len(X) == 1 else 'ies'}: {n_frames:,} frames x "
        f"{X[0].shape[1]} features",
    )

    lss = _build_simulator(settings, tables, args.config)
    lss.fit(X, Y)
    seconds = time.perf_counter() - t0
    save_model_folder(lss, output, X, info=info, topology=topology)
    if lss.interrupted_ is not None:
        print(
            f"sklss fit: interrupted in the {lss.interrupted_}; what was trained is saved in "
            f"'{output}', but it cannot sample until fit runs to the end",
            file=sys.stderr,
        )
        return 130
    if settings["verbose"] and lss.encoder_ != "passthrough":
        ts = ", ".join(f"{t:.1f}" for t in lss.encoder_.timescales_)
        print(f"encoder implied timescales (frames): {ts}")
    print(f"fitted in {seconds:.0f} s; model saved to '{output}'")
    return 0


def _check_fit_settings(settings):
    """Refuse inconsistent options before reading anything; return the output folder."""
    has_npy = settings["features"] is not None
    has_md = settings["trajectories"] is not None
    if has_npy == has_md:
        raise CommandError(
            "give either --features (.npy files) or --trajectories with --topology (MD files)"
        )
    if has_md and settings["topology"] is None:
        raise CommandError("--trajectories needs --topology (a PDB file of the same atoms)")
    if settings["features_dir"] is not None and not has_md:
        raise CommandError("--features-dir goes with --trajectories (MD files)")
    if settings["n_jobs"] != 1 and settings["features_dir"] is None:
        raise CommandError("--n-jobs goes with --features-dir")
    if has_md and settings["configurations"] is not None:
        raise CommandError(
            "--configurations goes with --features; from MD files the decoder "
            "learns superposed coordinates of --decoder-selection"
        )
    if settings["lag_time"] is None:
        raise CommandError("--lag-time is required (a flag, or lag_time in the config file)")
    output = Path(settings["output"])
    if output.exists() and not output.is_dir():
        raise CommandError(f"output '{output}' exists and is not a folder")
    return output


def _read_npy_inputs(settings):
    """Features, decoder targets (or None), the model folder's info, and no topology."""
    X, x_sources = _load_npy_files(settings["features"], "features file")
    Y = None
    if settings["configurations"] is not None:
        Y, y_sources = _load_npy_files(settings["configurations"], "configurations file")
        _check_aligned(X, Y, x_sources, y_sources)
    info = {
        "input": "features",
        "output": "configurations" if Y is not None else "features",
        "frame_time_ps": settings["frame_time"],
    }
    return X, Y, info, None


def _read_md_inputs(settings):
    """Encoder features and superposed coordinates from MD files, info and decoded atoms."""
    from ..features import SuperposedCoordinates
    from ..io import read_trajectory

    topology, files = _md_files(settings)
    featurizer = _featurizer(settings)
    coords = SuperposedCoordinates(settings["decoder_selection"]) if settings["decode"] else None
    if settings["features_dir"] is None:
        trajs = [read_trajectory(path, topology, stride=settings["stride"]) for path in files]
        first = trajs[0]
        X = featurizer.fit_transform(trajs)
        X = X if isinstance(X, list) else [X]
        Y = None if coords is None else coords.fit(trajs).transform(trajs)
    else:
        first = read_trajectory(files[0], topology, stride=settings["stride"])
        X, Y = _featurize_md_files(settings, topology, files, first, featurizer, coords)
    frame_time = settings["frame_time"]
    if frame_time is None and first.n_frames > 1:
        frame_time = float(first.timestep) or None
    decoded = None
    info = {
        "input": "md",
        "output": "features",
        "featurizer": settings["featurizer"],
        "featurizer_params": {
            k: v
            for k, v in featurizer.get_params(deep=False).items()
            if isinstance(v, (str, int, float, bool))
        },
        "feature_names": [str(n) for n in featurizer.get_feature_names_out()],
    }
    if coords is not None:
        decoded = coords.inverse_transform(coords.reference_xyz_[None].reshape(1, -1))
        info.update(output="coordinates", decoder_selection=settings["decoder_selection"])
    info["frame_time_ps"] = frame_time
    return X, Y, info, decoded


def _featurize_md_files(settings, topology, files, first, featurizer, coords):
    """Features (and decoder targets) of each MD file as memory-mapped .npy files.

    The featurisers are fitted on the first file; ``featurize_files`` writes one ``.npy``
    file per MD file into --features-dir (the decoder's into its ``coordinates`` folder),
    skipping those already there from an earlier run with the same options.
    """
    from .._featurize_files import featurize_files

    folder = Path(settings["features_dir"])
    _stamp_features_dir(folder, settings)
    options = dict(
        topology=topology,
        stride=settings["stride"],
        n_jobs=settings["n_jobs"],
        verbose=int(settings["verbose"]),
    )
    _say(settings, f"featurising {len(files)} MD files into '{folder}'")
    X = featurize_files(files, featurizer.fit(first), folder, **options)
    Y = None
    if coords is not None:
        Y = featurize_files(files, coords.fit(first), folder / "coordinates", **options)
    return X, Y


def _stamp_features_dir(folder, settings):
    """Record the featurisation options in ``folder``; refuse one made with other options.

    The files' shapes catch most changes, but not all (another atom selection of the same
    size), so a folder is only reused with the options it was made with.
    """
    name = settings["featurizer"]
    keys = ["featurizer", "stride"]
    keys += ["angles"] if "torsions" in name else []
    keys += ["selection"] if "distances" in name else []
    keys += ["decoder_selection"] if settings["decode"] else []
    stamp = folder / _FEATURES_STAMP
    if folder.exists() and not folder.is_dir():
        raise CommandError(f"--features-dir '{folder}' exists and is not a folder")
    made = {}
    if stamp.is_file():
        try:
            made = json.loads(stamp.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise CommandError(f"could not read '{stamp}': {exc}") from None
    for key in keys:
        if key in made and made[key] != settings[key]:
            raise CommandError(
                f"--features-dir '{folder}' holds features made with {key} = {made[key]!r}, "
                f"but this run asks for {settings[key]!r}; give another folder, or remove it"
            )
    made.update({key: settings[key] for key in keys})
    folder.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(made, indent=2, sort_keys=True) + "\n")
