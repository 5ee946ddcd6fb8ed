"""Command-line interface: ``sklss demo``, ``sklss fit`` and ``sklss sample``.

``sklss demo`` fits latent space simulators to toy systems with known answers and writes a
report folder (metrics, figures, the saved model). ``sklss fit`` trains a simulator on
features in ``.npy`` files or on MD trajectory files, and saves it as a model folder that
``sklss sample`` runs to write new trajectories (``.npy``, DCD or XTC).

Options come from flags and, optionally, a TOML file (``--config``): its top-level keys are
the long flag names with underscores, and its ``[encoder]``, ``[propagator]`` and
``[decoder]`` tables set any parameter of those estimators. Flags win over the file.

A user mistake (a missing file, a bad flag or value) is reported as one line on stderr with
a non-zero exit status: 2 for flags, 1 for everything else, 130 for Ctrl-C.
"""

import argparse
import functools
import json
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np

# The folder layout that ``sklss fit`` writes and ``sklss sample`` reads.
_MODEL_INFO = "sklss-model.json"
_MODEL_FILE = "simulator.sklss"
_START_FRAMES = "start_frames.npy"
_TOPOLOGY = "topology.pdb"
# Training frames kept in a model folder as default start frames for ``sample``.
_N_START_FRAMES = 100
_TRAJECTORY_SUFFIXES = (".dcd", ".xtc", ".trr", ".pdb", ".h5", ".gro")


class CommandError(Exception):
    """A mistake in how a command was called, reported as one line without a traceback."""


# --- parser ------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: they raise, and ``main`` prints one line."""

    def error(self, message):
        raise _UsageError(self.prog, f"{message} (see '{self.prog} --help')")


class _UsageError(Exception):
    def __init__(self, prog, message):
        super().__init__(message)
        self.prog = prog


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _help(text, default):
    return f"{text} (default: {default})" if default is not None else text


_FIT_DEFAULTS = {
    "features": None,
    "configurations": None,
    "topology": None,
    "trajectories": None,
    "featurizer": "torsions",
    "angles": "all",
    "selection": "ca",
    "decoder_selection": "heavy",
    "stride": 1,
    "frame_time": None,
    "lag_time": None,
    "n_components": 2,
    "n_kernels": 24,
    "max_epochs": 100,
    "decode": True,
    "device": "cpu",
    "seed": 0,
    "output": "sklss-model",
    "verbose": 1,
}
_SAMPLE_DEFAULTS = {
    "model": None,
    "n_trajectories": None,
    "n_steps": None,
    "output": None,
    "latent_output": None,
    "start": None,
    "topology": None,
    "seed": 0,
    "verbose": 1,
}
_SECTIONS = ("encoder", "propagator", "decoder")
_VERBOSE_HELP = (
    "0 prints only the result; 1 adds a line per stage and progress bars for MD and decoding; "
    "2 adds a line per training epoch; 3 adds progress bars within epochs"
)


def build_parser():
    """The argument parser of the ``sklss`` command."""
    from . import __version__

    parser = _Parser(
        prog="sklss",
        description="Molecular latent space simulators with a scikit-learn API: fit a "
        "simulator to MD data, then generate long trajectories from it.",
        epilog="Run 'sklss COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"sklss {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="fit simulators to toy systems with known answers and write a report",
        description="Fit latent space simulators to toy systems with known answers, sample "
        "from them, and write a report folder: metrics.md and metrics.json (free-energy "
        "RMSE, implied timescales of MD against the simulator with standard errors, "
        "VAMP-2), PNG figures and the saved model. The default takes about two minutes on "
        "two CPU cores: the four-well system of Sidky, Chen & Ferguson (2020) for the SRV "
        "encoder and the MDN propagator, and SRV + MDN + cWGAN on the hidden-coordinate toy "
        "(sklss.datasets.hidden_wells). With --system alanine-dipeptide it runs on molecular "
        "dynamics of alanine dipeptide instead (needs OpenMM).",
    )
    demo.add_argument(
        "--system",
        choices=("toy", "alanine-dipeptide"),
        default="toy",
        help="what to simulate (default: toy)",
    )
    demo.add_argument(
        "--out",
        metavar="DIR",
        default="sklss-demo-report",
        help="report folder, created if missing (default: sklss-demo-report)",
    )
    demo.add_argument(
        "--n-steps",
        metavar="N",
        type=_positive_int,
        default=10_000_000,
        help="four-well Brownian dynamics steps for the encoder; the simulator gets a fifth "
        "(default: 10000000)",
    )
    demo.add_argument(
        "--hidden-frames",
        metavar="N",
        type=_positive_int,
        default=100_000,
        help="training frames of the hidden-coordinate toy (default: 100000)",
    )
    demo.add_argument(
        "--md-ns",
        metavar="NS",
        type=float,
        default=1.0,
        help="ns of alanine dipeptide MD per trajectory, 4 trajectories (default: 1.0)",
    )
    demo.add_argument(
        "--epochs",
        metavar="N",
        type=_positive_int,
        default=30,
        help="maximum training epochs of each network (default: 30)",
    )
    demo.add_argument(
        "--check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="exit with status 1 when a fidelity target is missed (default: --check)",
    )
    demo.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default: 0)")
    demo.add_argument(
        "--verbose",
        type=int,
        default=1,
        choices=range(4),
        metavar="{0,1,2,3}",
        help=_VERBOSE_HELP + " (default: 1)",
    )
    demo.set_defaults(func=_demo)

    d = _FIT_DEFAULTS
    fit = sub.add_parser(
        "fit",
        help="fit a latent space simulator to features or MD trajectories",
        description="Fit a latent space simulator (SRV encoder, MDN propagator, cWGAN "
        "decoder) and save it as a model folder for 'sklss sample'. Input is either "
        "features in .npy files (--features) or MD files (--topology and --trajectories), "
        "which are featurised for the encoder and superposed for the decoder.",
        epilog="A TOML file (--config) may set any option (long name with underscores: "
        "lag_time = 10) and any estimator parameter in [encoder], [propagator] or [decoder] "
        "tables (hidden_layer_sizes = [100, 100]); flags win over the file, and relative "
        "paths in it are relative to its folder.",
    )
    inputs = fit.add_argument_group("input")
    inputs.add_argument(
        "--features",
        nargs="+",
        metavar="NPY",
        help="feature trajectories: .npy files of shape (n_frames, n_features), or "
        "(n_trajectories, n_frames, n_features)",
    )
    inputs.add_argument(
        "--configurations",
        nargs="+",
        metavar="NPY",
        help="decoder targets aligned frame by frame with --features (default: decode the "
        "features themselves)",
    )
    inputs.add_argument("--topology", metavar="FILE", help="topology (PDB) of --trajectories")
    inputs.add_argument(
        "--trajectories", nargs="+", metavar="FILE", help="MD trajectory files (DCD, XTC, ...)"
    )
    inputs.add_argument(
        "--featurizer",
        choices=("torsions", "distances", "torsions+distances"),
        help=_help("encoder features computed from MD files", d["featurizer"]),
    )
    inputs.add_argument(
        "--angles",
        choices=("all", "backbone", "sidechain"),
        help=_help("torsions for the torsion features", d["angles"]),
    )
    inputs.add_argument(
        "--selection",
        metavar="ATOMS",
        help=_help("atoms of the distance features ('ca', 'heavy', or mdtraj syntax)", "ca"),
    )
    inputs.add_argument(
        "--decoder-selection",
        metavar="ATOMS",
        help=_help("atoms whose superposed coordinates the decoder generates", "heavy"),
    )
    inputs.add_argument(
        "--stride",
        type=_positive_int,
        metavar="N",
        help=_help("read every n-th frame of MD files", 1),
    )
    inputs.add_argument(
        "--frame-time",
        type=float,
        metavar="PS",
        help="time between frames in ps, stored in written trajectories (default: read from "
        "the MD files, else 1)",
    )
    model = fit.add_argument_group("model")
    model.add_argument(
        "--lag-time",
        type=_positive_int,
        metavar="FRAMES",
        help="lag time in frames (after --stride); one simulator step advances one lag (required)",
    )
    model.add_argument(
        "--n-components",
        type=_positive_int,
        metavar="M",
        help=_help("latent dimensions m", d["n_components"]),
    )
    model.add_argument(
        "--n-kernels", type=_positive_int, metavar="C", help=_help("MDN kernels C", d["n_kernels"])
    )
    model.add_argument(
        "--max-epochs",
        type=_positive_int,
        metavar="N",
        help=_help("maximum training epochs of each network", d["max_epochs"]),
    )
    model.add_argument(
        "--decoder",
        dest="decode",
        action=argparse.BooleanOptionalAction,
        help="train the cWGAN decoder; --no-decoder gives a latent-only simulator "
        "(default: --decoder)",
    )
    model.add_argument(
        "--device", choices=("cpu", "cuda", "auto"), help=_help("torch device", d["device"])
    )
    _common_options(fit, d, output_help="model folder to write")
    fit.set_defaults(func=_fit)

    s = _SAMPLE_DEFAULTS
    sample = sub.add_parser(
        "sample",
        help="generate trajectories from a fitted model",
        description="Run N trajectories of n steps from a model folder written by 'sklss fit' "
        "(or the model/ folder of a demo report) and write them as .npy, DCD or XTC. One "
        "step advances one lag time.",
        epilog=".npy output holds an array (n_trajectories, n_steps, n_outputs) and is "
        "streamed to disk, so runs larger than memory work. DCD, XTC and other trajectory "
        "formats need a model fitted on MD files (or --topology) and write one file per "
        "trajectory (NAME_000.dcd, ...) when N > 1.",
    )
    sample.add_argument("model", nargs="?", metavar="MODEL", help="model folder")
    sample.add_argument(
        "-n",
        "--n-trajectories",
        type=_positive_int,
        metavar="N",
        help="number of trajectories (default: the rows of --start, else 1)",
    )
    sample.add_argument(
        "--n-steps",
        type=_positive_int,
        metavar="N",
        help="frames per trajectory, the start included (required)",
    )
    sample.add_argument(
        "--start",
        metavar="NPY",
        help="start frames in feature space, shape (n, n_features) (default: drawn from the "
        "training frames kept in the model folder)",
    )
    sample.add_argument(
        "--latent-output", metavar="NPY", help="also write the latent trajectories to this file"
    )
    sample.add_argument(
        "--topology",
        metavar="FILE",
        help="topology for DCD/XTC output (default: the model folder's topology.pdb)",
    )
    _common_options(sample, s, output_help="output file: .npy, .dcd, .xtc, ... (required)")
    sample.set_defaults(func=_sample)
    return parser


def _common_options(parser, defaults, *, output_help):
    parser.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help=_help(output_help, defaults["output"]),
    )
    parser.add_argument("--config", metavar="TOML", help="read options from a TOML file")
    parser.add_argument(
        "--seed", type=int, metavar="N", help=_help("random seed", defaults["seed"])
    )
    parser.add_argument(
        "--verbose",
        type=int,
        choices=range(4),
        metavar="{0,1,2,3}",
        help=_help(_VERBOSE_HELP, defaults["verbose"]),
    )


def main(argv=None):
    """Run the ``sklss`` command; return its exit status."""
    parser = build_parser()
    prog = "sklss"
    try:
        args, extra = parser.parse_known_args(argv)
        prog = f"sklss {args.command}"
        if extra:
            raise _UsageError(
                prog, f"unrecognized arguments: {' '.join(extra)} (see '{prog} --help')"
            )
        with warnings.catch_warnings():
            warnings.showwarning = functools.partial(_print_warning, prog)
            return int(args.func(args) or 0)
    except _UsageError as exc:
        _print_error(exc.prog, exc)
        return 2
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        _print_error(prog, "interrupted")
        return 130
    except (CommandError, ValueError, OSError, ImportError) as exc:
        _print_error(prog, exc)
        return 1


def _print_warning(prog, message, category, filename, lineno, file=None, line=None):
    text = " ".join(str(message).split())
    print(f"{prog}: warning: {text}", file=sys.stderr, flush=True)


def _print_error(prog, exc):
    message = " ".join(str(exc).split()) or type(exc).__name__
    print(f"{prog}: error: {message}", file=sys.stderr)


# --- options from flags and a TOML file ----------------------------------------------------


def _read_toml(path):
    path = Path(path)
    if not path.is_file():
        raise CommandError(f"config file '{path}' does not exist")
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise CommandError("--config needs Python 3.11+ (or 'pip install tomli')") from None
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CommandError(f"config file '{path}' is not valid TOML: {exc}") from None


_PATH_KEYS = {"features", "configurations", "topology", "trajectories", "output", "model"}
_PATH_KEYS |= {"start", "latent_output"}
_LIST_KEYS = {"features", "configurations", "trajectories"}
_POSITIVE_INT_KEYS = {"lag_time", "n_components", "n_kernels", "max_epochs", "stride"}
_POSITIVE_INT_KEYS |= {"n_trajectories", "n_steps"}
_CHOICES = {
    "featurizer": ("torsions", "distances", "torsions+distances"),
    "angles": ("all", "backbone", "sidechain"),
    "device": ("cpu", "cuda", "auto"),
    "verbose": (0, 1, 2, 3),
}


def _config_value(key, value, path):
    """A value from the TOML file, checked as its flag would be; paths relative to the file."""

    def wrong(expected):
        return CommandError(f"config file '{path}': {key} must be {expected}; got {value!r}")

    is_int = isinstance(value, int) and not isinstance(value, bool)
    if key in _POSITIVE_INT_KEYS and not (is_int and value >= 1):
        raise wrong("a positive integer")
    if key == "seed" and not is_int:
        raise wrong("an integer")
    if key == "frame_time" and not (isinstance(value, (int, float)) and value > 0):
        raise wrong("a positive number of ps")
    if key == "decode" and not isinstance(value, bool):
        raise wrong("true or false")
    if key in _CHOICES and value not in _CHOICES[key]:
        raise wrong(f"one of {list(_CHOICES[key])}")
    if key in _PATH_KEYS:
        items = value if key in _LIST_KEYS and isinstance(value, list) else [value]
        if not items or not all(isinstance(v, str) for v in items):
            raise wrong("a path" + (" or a list of paths" if key in _LIST_KEYS else ""))
        paths = [str(Path(path).parent / v) for v in items]
        return paths if key in _LIST_KEYS else paths[0]
    return value


def _settings(args, defaults):
    """Options from flags, then the TOML file, then the defaults; plus estimator tables."""
    config = _read_toml(args.config) if args.config else {}
    unknown = sorted(set(config) - set(defaults) - set(_SECTIONS))
    if unknown:
        raise CommandError(
            f"config file '{args.config}': unknown option {unknown[0]!r}; options are "
            f"{sorted(defaults)} and the tables {list(_SECTIONS)}"
        )
    settings = {}
    for key, default in defaults.items():
        value = getattr(args, key, None)
        if value is None and key in config:
            value = _config_value(key, config[key], args.config)
        settings[key] = default if value is None else value
    tables = {}
    for section in _SECTIONS:
        table = config.get(section, {})
        if not isinstance(table, dict):
            raise CommandError(f"config file '{args.config}': [{section}] must be a table")
        tables[section] = table
    return settings, tables


def _set_table(estimator, table, section, config):
    """Set estimator parameters from a TOML table, naming the file and key of a mistake."""
    valid = estimator.get_params(deep=False)
    for key, value in table.items():
        if key not in valid:
            raise CommandError(
                f"config file '{config}': [{section}] has no parameter {key!r}; "
                f"{type(estimator).__name__} takes {sorted(valid)}"
            )
        if isinstance(value, list):
            value = tuple(value)
        estimator.set_params(**{key: value})
    return estimator


# --- reading input files -------------------------------------------------------------------


def _existing(path, what):
    path = Path(path)
    if not path.exists():
        raise CommandError(f"{what} '{path}' does not exist")
    if path.is_dir() and what != "model folder":
        raise CommandError(f"{what} '{path}' is a folder, not a file")
    return path


def _load_npy(path, what):
    """A ``.npy`` file as a list of 2-D float trajectories (3-D arrays are stacks of them)."""
    path = _existing(path, what)
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise CommandError(f"could not read {what} '{path}' as a .npy array: {exc}") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "iuf":
        raise CommandError(f"{what} '{path}' must hold a numeric array; got {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim == 2:
        return [arr]
    if arr.ndim == 3:
        return list(arr)
    raise CommandError(
        f"{what} '{path}' has shape {arr.shape}; expected (n_frames, n_features) or "
        "(n_trajectories, n_frames, n_features)"
    )


def _load_npy_files(paths, what):
    trajs, sources = [], []
    for path in paths:
        loaded = _load_npy(path, what)
        trajs += loaded
        sources += [f"{path}" if len(loaded) == 1 else f"{path}[{i}]" for i in range(len(loaded))]
    return trajs, sources


def _check_aligned(X, Y, x_sources, y_sources):
    if len(X) != len(Y):
        raise CommandError(
            f"--configurations hold {len(Y)} trajectories but --features hold {len(X)}; "
            "they must correspond one to one"
        )
    for x, y, xs, ys in zip(X, Y, x_sources, y_sources):
        if len(x) != len(y):
            raise CommandError(
                f"configurations '{ys}' have {len(y)} frames but features '{xs}' have "
                f"{len(x)}; they must be aligned frame by frame"
            )


def _read_md(settings):
    from ._trajectory_files import read_trajectory

    topology = _existing(settings["topology"], "topology file")
    trajs = []
    for path in settings["trajectories"]:
        _existing(path, "trajectory file")
        trajs.append(read_trajectory(path, topology, stride=settings["stride"]))
    return trajs


def _featurizer(settings):
    from .features import PairwiseDistances, Torsions, make_encoder_features

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


# --- model folders -------------------------------------------------------------------------


def _save_estimator(estimator, folder):
    """Write a fitted estimator into ``folder`` with :func:`sklss.io.save` (no pickle)."""
    from .io import save

    path = Path(folder) / _MODEL_FILE
    save(estimator, path)
    return path


def _load_estimator(folder, info):
    from .io import load

    return load(Path(folder) / info.get("model", _MODEL_FILE))


def _save_model_folder(lss, folder, X, *, info, topology=None):
    """Save a fitted simulator with what ``sklss sample`` needs to run it on its own.

    The folder holds the simulator, ``sklss-model.json`` (what the inputs and outputs are),
    ``start_frames.npy`` (up to 100 training frames, spread over the data, as default start
    frames) and, for coordinates decoded from MD, ``topology.pdb`` (the decoded atoms).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _save_estimator(lss, folder)
    frames = np.concatenate(X if isinstance(X, list) else [X])
    picks = np.unique(np.linspace(0, len(frames) - 1, _N_START_FRAMES).astype(int))
    np.save(folder / _START_FRAMES, frames[picks])
    if topology is not None:
        topology.save_pdb(str(folder / _TOPOLOGY))
    from . import __version__

    info = {
        "format": "sklss model folder",
        "format_version": 1,
        "sklss_version": __version__,
        "model": _MODEL_FILE,
        "start_frames": _START_FRAMES,
        "topology": _TOPOLOGY if topology is not None else None,
        "lag_time": int(getattr(lss, "lag_time_", lss.lag_time or 1)),
        "n_features": int(lss.n_features_in_),
        "decoded": lss.decoder_ != "passthrough",
        "interrupted": getattr(lss, "interrupted_", None),
        **info,
    }
    (folder / _MODEL_INFO).write_text(json.dumps(info, indent=2) + "\n")
    return folder


def _read_model_folder(path):
    folder = _existing(path, "model folder")
    info_path = folder / _MODEL_INFO
    if not folder.is_dir() or not info_path.is_file():
        raise CommandError(
            f"'{folder}' is not a model folder written by 'sklss fit' or 'sklss demo' "
            f"(no {_MODEL_INFO} in it)"
        )
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as exc:
        raise CommandError(f"'{info_path}' is not valid JSON: {exc}") from None
    if not (folder / info.get("model", _MODEL_FILE)).is_file():
        raise CommandError(f"model folder '{folder}' has no {info.get('model', _MODEL_FILE)}")
    return folder, info


# --- sklss fit -----------------------------------------------------------------------------


def _build_simulator(settings, tables, config):
    from . import CWGANDecoder, LatentSpaceSimulator, MDNPropagator, SRVTransformer

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
    settings, tables = _settings(args, _FIT_DEFAULTS)
    has_npy = settings["features"] is not None
    has_md = settings["trajectories"] is not None
    if has_npy == has_md:
        raise CommandError(
            "give either --features (.npy files) or --trajectories with --topology (MD files)"
        )
    if has_md and settings["topology"] is None:
        raise CommandError("--trajectories needs --topology (a PDB file of the same atoms)")
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

    t0 = time.perf_counter()
    topology = None
    frame_time = settings["frame_time"]
    if has_npy:
        X, x_sources = _load_npy_files(settings["features"], "features file")
        Y = None
        if settings["configurations"] is not None:
            Y, y_sources = _load_npy_files(settings["configurations"], "configurations file")
            _check_aligned(X, Y, x_sources, y_sources)
        info = {"input": "features", "output": "configurations" if Y is not None else "features"}
    else:
        trajs = _read_md(settings)
        if frame_time is None and trajs[0].n_frames > 1:
            frame_time = float(trajs[0].timestep) or None
        featurizer = _featurizer(settings)
        X = featurizer.fit_transform(trajs)
        X = X if isinstance(X, list) else [X]
        Y = None
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
        if settings["decode"]:
            from .features import SuperposedCoordinates

            coords = SuperposedCoordinates(settings["decoder_selection"]).fit(trajs)
            Y = coords.transform(trajs)
            topology = coords.inverse_transform(coords.reference_xyz_[None].reshape(1, -1))
            info.update(output="coordinates", decoder_selection=settings["decoder_selection"])
    info["frame_time_ps"] = frame_time
    n_frames = sum(len(x) for x in X)
    _say(
        settings,
        f"read {len(X)} trajector{'y' if len(X) == 1 else 'ies'}: {n_frames:,} frames x "
        f"{X[0].shape[1]} features",
    )

    lss = _build_simulator(settings, tables, args.config)
    lss.fit(X, Y)
    seconds = time.perf_counter() - t0
    _save_model_folder(lss, output, X, info=info, topology=topology)
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


def _say(settings, message):
    if settings["verbose"]:
        print(message, flush=True)


# --- sklss sample --------------------------------------------------------------------------


def _sample(args):
    settings, _ = _settings(args, _SAMPLE_DEFAULTS)
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
    folder, info = _read_model_folder(settings["model"])
    if info.get("interrupted"):
        raise CommandError(
            f"the model in '{folder}' was interrupted while fitting the {info['interrupted']}; "
            "fit it again to the end"
        )

    topology = None
    if suffix != ".npy":
        topology = settings["topology"] or (
            folder / info["topology"] if info.get("topology") else None
        )
        if topology is None:
            raise CommandError(
                f"writing {suffix} needs atoms: the model was fitted on {info.get('input')} "
                "without a topology; pass --topology, or write .npy"
            )
        if not info.get("decoded"):
            raise CommandError(f"the model has no decoder, so it cannot write {suffix}; use .npy")
        topology = _existing(topology, "topology file")

    if settings["start"] is not None:
        starts = _load_npy(settings["start"], "start file")
        if len(starts) != 1:
            raise CommandError(
                f"start file '{settings['start']}' must be 2-D, (n_starts, n_features)"
            )
        starts = starts[0]
    else:
        starts = np.load(folder / info.get("start_frames", _START_FRAMES), allow_pickle=False)
    n = settings["n_trajectories"]
    if n is None:
        n = len(starts) if settings["start"] is not None else 1
    rng = np.random.default_rng(int(settings["seed"]))
    if settings["start"] is not None and n == len(starts):
        picks = np.arange(n)
    else:
        picks = rng.choice(len(starts), size=n, replace=n > len(starts))
    X0 = starts[picks]
    if X0.shape[1] != info["n_features"]:
        raise CommandError(
            f"start frames have {X0.shape[1]} features, but the model expects {info['n_features']}"
        )

    lss = _load_estimator(folder, info)
    lss.set_params(verbose=min(int(settings["verbose"]), 1))
    for path in (output, latent_output):
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    n_steps = int(settings["n_steps"])
    seed = int(settings["seed"])
    if suffix == ".npy":
        written = _sample_to_npy(lss, X0, n_steps, seed, output, latent_output)
    else:
        result = lss.sample(X0, n_steps, random_state=seed)
        frame_time = info.get("frame_time_ps") or 1.0
        written = _write_trajectories(result, topology, output, frame_time * lss.lag_time_)
        if latent_output is not None:
            np.save(latent_output, result.latent)
            written.append(Path(latent_output))
    seconds = time.perf_counter() - t0
    names = ", ".join(f"'{p}'" for p in written[:3]) + (", ..." if len(written) > 3 else "")
    print(
        f"sampled {n} trajectories x {n_steps:,} steps (one step = {lss.lag_time_} frames) in "
        f"{seconds:.1f} s; wrote {names}"
    )
    return 0


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
    from ._trajectory_files import write_trajectory

    configurations = result.configurations
    n = len(configurations)
    paths = []
    for i in range(n):
        path = output if n == 1 else output.with_name(f"{output.stem}_{i:03d}{output.suffix}")
        paths.append(write_trajectory(configurations[i], topology, path, dt=dt))
    return paths


# --- sklss demo ----------------------------------------------------------------------------


def _demo(args):
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out '{out}' exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if args.system == "alanine-dipeptide":
        report = _demo_alanine(args, out)
    else:
        report = _demo_toy(args, out)
    report["seconds"] = time.perf_counter() - t0
    _write_report(out, report, args)
    failed = [c for c in report["checks"] if not c["passed"]]
    print(f"\nReport written to '{out}' in {report['seconds']:.0f} s:")
    for name in ["metrics.md", "metrics.json"] + report["files"]:
        print(f"   {out / name}")
    for check in report["checks"]:
        print(f"   [{'ok' if check['passed'] else 'MISSED'}] {check['name']}: {check['text']}")
    if failed and args.check:
        print(f"sklss demo: {len(failed)} fidelity target(s) missed", file=sys.stderr)
        return 1
    return 0


def _stage(args, message):
    if args.verbose:
        print(message, flush=True)


def _check(name, value, passed, text):
    return {"name": name, "value": float(value), "passed": bool(passed), "text": text}


def _blocks(trajs, n_blocks=5):
    """``n_blocks`` contiguous blocks of every trajectory: block ``k`` holds their k-th parts."""
    return [[np.array_split(t, n_blocks)[k] for t in trajs] for k in range(n_blocks)]


def _with_errors(trajs, estimate):
    """An estimate on all trajectories, and its standard error from 5 contiguous blocks."""
    from threadpoolctl import threadpool_limits

    from .metrics import block_average

    # Tall, thin covariance products: extra BLAS threads cost more than they give, and on a
    # busy machine far more.
    with threadpool_limits(limits=1, user_api="blas"):
        _, se = block_average([estimate(b) for b in _blocks(trajs)])
        return estimate(trajs), se


def _its_against_lag(trajs, lags, estimate, unit=1):
    """Lags (times ``unit``), timescales and standard errors; ``estimate(trajs, lag)``.

    Lags that do not fit into the shortest of 5 blocks are left out.
    """
    shortest = min(len(t) for t in trajs) // 5
    lags = np.array([k for k in lags if k < shortest], dtype=int)
    pairs = [_with_errors(trajs, lambda t, lag=lag: estimate(t, lag)) for lag in lags]
    ts = np.array([p[0] for p in pairs]).reshape(len(lags), -1) * unit
    se = np.array([p[1] for p in pairs]).reshape(len(lags), -1) * unit
    return lags * unit, ts, se


def _its_json(its):
    return {
        key: dict(zip(("lag_times", "timescales", "std_errors"), its[key])) for key in ("md", "lss")
    }


def _fmt(value, se=None, digits=0):
    text = f"{value:,.{digits}f}"
    return text if se is None else f"{text} ± {se:,.{digits}f}"


def _figure(n_cols, n_rows=1, width=5.2, height=3.9):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * n_cols, height * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    return fig, list(axes.ravel())


def _save(fig, out, name, files):
    fig.savefig(out / name, dpi=110)
    files.append(name)


def _demo_toy(args, out):
    _require_matplotlib()
    print("sklss demo: latent space simulators on two toy systems with known answers")
    four = _demo_four_well(args)
    hidden = _demo_hidden_wells(args)
    files = _demo_toy_figures(four["plot"], hidden["plot"], out)
    _stage(args, "saving the hidden-coordinate simulator")
    _save_model_folder(
        hidden["lss"],
        out / "model",
        hidden["X"],
        info={"input": "features", "output": "features", "system": "hidden_wells"},
    )
    files.append("model/")
    return {
        "title": "Latent space simulators on toy systems with known answers",
        "system": "toy",
        "metrics": {"four_well": four["metrics"], "hidden_wells": hidden["metrics"]},
        "sections": four["sections"] + hidden["sections"],
        "checks": four["checks"] + hidden["checks"],
        "files": files,
    }


def _require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CommandError(
            "the demo draws its figures with matplotlib; install it with 'pip install matplotlib'"
        ) from None


def _demo_four_well(args):
    from . import LatentSpaceSimulator, MDNPropagator, SRVTransformer
    from .datasets import four_well, four_well_reference
    from .metrics import free_energy_profile, free_energy_rmse, markov_timescales

    fit_verbose = max(args.verbose - 1, 0)
    # 1. The encoder: 20 trajectories, every 100th step saved, lag 3 frames (300 steps).
    t0 = time.perf_counter()
    stride, lag = 100, 3
    X = four_well(args.n_steps // 20, n_trajectories=20, stride=stride, random_state=args.seed)
    X_test = four_well(
        max(args.n_steps // 50, 10 * stride),
        n_trajectories=4,
        stride=stride,
        random_state=args.seed + 1,
    )
    srv = SRVTransformer(
        lag_time=lag,
        n_components=3,
        batch_size=1024,
        max_epochs=args.epochs,
        random_state=args.seed,
        verbose=fit_verbose,
    ).fit(X)
    exact = four_well_reference(stride=stride).timescales[:3] * stride
    srv_steps = srv.timescales_ * stride
    vamp2 = srv.score(X_test)
    n_frames = sum(len(x) for x in X)
    print(
        f"1. four-well SRV encoder on {n_frames:,} frames ({time.perf_counter() - t0:.0f} s): "
        f"t1 {srv_steps[0]:.0f} steps (exact {exact[0]:.0f}), held-out VAMP-2 {vamp2:.3f}"
    )

    # 2. The paper's section 3.1: an MDN on x itself (encoder and decoder passthrough).
    t0 = time.perf_counter()
    stride, lag = 10, 10
    x = four_well(args.n_steps // 5, stride=stride, random_state=args.seed)
    lss = LatentSpaceSimulator(
        "passthrough",
        MDNPropagator(
            n_kernels=8,
            hidden_layer_sizes=(100, 100),
            max_epochs=args.epochs,
            patience=6,
            verbose=fit_verbose,
        ),
        "passthrough",
        lag_time=lag,
        random_state=args.seed,
    ).fit(x)
    syn = lss.sample(x[:1], len(x), random_state=args.seed).latent[0]
    ref = four_well_reference(stride=stride)
    edges = np.linspace(-1.1, 1.1, 51)
    weights = np.histogram(ref.grid, edges, weights=ref.stationary_density)[0]
    with np.errstate(divide="ignore"):
        F_exact = -np.log(weights / weights.max())
    F_md, _ = free_energy_profile(x, bins=edges)
    F_lss, _ = free_energy_profile(syn, bins=edges)
    rmse_lss = free_energy_rmse(F_exact, F_lss, max_free_energy=4.0)
    rmse_md = free_energy_rmse(F_exact, F_md, max_free_energy=4.0)

    def markov(trajs, lag_frames):
        return markov_timescales(trajs, edges, lag_frames, n_components=2)

    t_md, se_md = _with_errors([x], lambda t: markov(t, lag))
    # One simulator step is one lag: its lag-1 Markov model is at tau, in steps.
    t_lss, se_lss = _with_errors([syn], lambda t: markov(t, 1) * lag)
    t_exact = ref.timescales[:2]
    md_lags = np.array([1, 2, 5, 10, 20, 50])
    lss_steps = np.array([1, 2, 5])
    its = {
        "md": _its_against_lag([x], md_lags, markov),
        "lss": _its_against_lag([syn], lss_steps, markov, unit=lag),
        "exact": t_exact,
    }
    print(
        f"2. four-well LSS (MDN, C = 8, tau = 100 steps) on {len(x):,} frames, run for as many "
        f"({time.perf_counter() - t0:.0f} s): free-energy RMSE {rmse_lss:.3f} kT, "
        f"t1 {t_lss[0]:.0f} frames (exact {t_exact[0]:.0f})"
    )
    sections = [
        {
            "title": "Four-well system (Sidky, Chen & Ferguson 2020, section 3.1)",
            "text": (
                f"SRV encoder: {n_frames:,} frames of 100 integration steps, lag 3 frames, "
                f"m = 3. Simulator: an MDN (C = 8, 2 x 100 ReLU) on x itself (encoder and "
                f"decoder passthrough), {len(x):,} frames of 10 steps, tau = 10 frames "
                f"(100 steps), run for {len(syn):,} steps. Free energies on 50 bins over "
                f"[-1.1, 1.1], counting bins with F <= 4 kT. Timescales from a Markov model "
                f"on the same bins, at tau; standard errors from 5 contiguous blocks."
            ),
            "columns": ("quantity", "MD", "LSS", "exact"),
            "rows": [
                (
                    "free-energy RMSE against exact (kT)",
                    _fmt(rmse_md, digits=3),
                    _fmt(rmse_lss, digits=3),
                    "0",
                ),
                (
                    "slowest timescale t1 (frames of 10 steps)",
                    _fmt(t_md[0], se_md[0]),
                    _fmt(t_lss[0], se_lss[0]),
                    _fmt(t_exact[0]),
                ),
                (
                    "second timescale t2 (frames of 10 steps)",
                    _fmt(t_md[1], se_md[1], 1),
                    _fmt(t_lss[1], se_lss[1], 1),
                    _fmt(t_exact[1], digits=1),
                ),
                (
                    "SRV implied timescales t1, t2, t3 (steps)",
                    ", ".join(_fmt(t) for t in srv_steps),
                    "",
                    ", ".join(_fmt(t) for t in exact),
                ),
                ("SRV VAMP-2 on held-out MD (lag 300 steps)", _fmt(vamp2, digits=3), "", ""),
            ],
        }
    ]
    checks = [
        _check(
            "four-well SRV t1",
            srv_steps[0] / exact[0] - 1,
            abs(srv_steps[0] / exact[0] - 1) <= 0.1,
            f"{srv_steps[0] / exact[0] - 1:+.1%} against exact (target within 10 %)",
        ),
        _check(
            "four-well LSS free energy",
            rmse_lss,
            rmse_lss <= 0.2,
            f"RMSE {rmse_lss:.3f} kT against exact (target at most 0.2 kT)",
        ),
        _check(
            "four-well LSS t1",
            t_lss[0] / t_exact[0] - 1,
            abs(t_lss[0] / t_exact[0] - 1) <= 0.15,
            f"{t_lss[0] / t_exact[0] - 1:+.1%} against exact (target within 15 %)",
        ),
    ]
    metrics = {
        "srv_timescales_steps": srv_steps.tolist(),
        "exact_timescales_steps": exact.tolist(),
        "srv_vamp2_held_out": float(vamp2),
        "free_energy_rmse_kT": {"md": rmse_md, "lss": rmse_lss},
        "timescales_frames": {
            "md": t_md.tolist(),
            "md_std_error": se_md.tolist(),
            "lss": t_lss.tolist(),
            "lss_std_error": se_lss.tolist(),
            "exact": t_exact.tolist(),
        },
    }
    metrics["timescales_against_lag_frames"] = _its_json(its)
    plot = {"F_exact": F_exact, "edges": edges, "x": x, "syn": syn, "its": its}
    return {"metrics": metrics, "sections": sections, "checks": checks, "plot": plot}


def _demo_hidden_wells(args):
    from . import CWGANDecoder, LatentSpaceSimulator, MDNPropagator, SRVTransformer
    from .datasets import hidden_wells, hidden_wells_reference
    from .metrics import (
        autocorrelation_timescales,
        free_energy_profile,
        free_energy_rmse,
        implied_timescales,
        js_divergence,
    )

    fit_verbose = max(args.verbose - 1, 0)
    t0 = time.perf_counter()
    lag, n_traj = 5, 4
    X = hidden_wells(
        max(args.hidden_frames // n_traj, 50), n_trajectories=n_traj, random_state=args.seed + 2
    )
    # Held-out MD twice as long as the training data: timescale estimates need the length.
    X_test = hidden_wells(
        max(args.hidden_frames // 2, 50), n_trajectories=n_traj, random_state=args.seed + 3
    )
    lss = LatentSpaceSimulator(
        SRVTransformer(
            n_components=2,
            hidden_layer_sizes=(64, 64),
            batch_size=2048,
            max_epochs=args.epochs,
            verbose=fit_verbose,
        ),
        MDNPropagator(
            n_kernels=12, hidden_layer_sizes=(64, 64), max_epochs=args.epochs, verbose=fit_verbose
        ),
        CWGANDecoder(
            noise_dim=8,
            hidden_layer_sizes=(64, 64),
            batch_size=256,
            max_epochs=args.epochs,
            verbose=fit_verbose,
        ),
        lag_time=lag,
        random_state=args.seed,
        verbose=min(args.verbose, 1),
    ).fit(X)
    fit_seconds = time.perf_counter() - t0

    psi = lss.transform(X_test)
    starts = np.stack([x[0] for x in X_test])
    n_steps = max(len(X_test[0]) // lag, 2)
    result = lss.sample(starts, n_steps, random_state=args.seed)
    latent = list(result.latent)
    md1 = np.concatenate([p[:, 0] for p in psi])
    edges = np.linspace(md1.min(), md1.max(), 51)
    F_md, _ = free_energy_profile(md1, bins=edges)
    F_lss, _ = free_energy_profile(result.latent[..., 0].ravel(), bins=edges)
    rmse = free_energy_rmse(F_md, F_lss)
    t_md, se_md = autocorrelation_timescales(psi)
    t_lss, se_lss = autocorrelation_timescales(latent, dt=lag)
    exact = hidden_wells_reference().timescales[:2]
    vamp2 = lss.vamp2_score(X_test)
    md_features = np.concatenate(X_test)
    decoded = result.configurations.reshape(-1, md_features.shape[1])
    js = []
    for j in range(md_features.shape[1]):
        bins = np.linspace(md_features[:, j].min(), md_features[:, j].max(), 41)
        js.append(
            js_divergence(
                np.histogram(md_features[:, j], bins)[0] + 1e-12,
                np.histogram(decoded[:, j], bins)[0] + 1e-12,
            )
        )
    mean_js = float(np.mean(js))

    def vac(trajs, lag_frames):
        return implied_timescales(trajs, lag_frames, n_components=2)

    md_lags = np.array([1, 2, 5, 10, 20])
    lss_steps = np.array([1, 2, 4])
    its = {
        "md": _its_against_lag(psi, md_lags, vac),
        "lss": _its_against_lag(latent, lss_steps, vac, unit=lag),
        "exact": exact,
    }
    n_frames = sum(len(x) for x in X)
    print(
        f"3. hidden-coordinate toy, SRV + MDN + cWGAN on {n_frames:,} frames x "
        f"{X[0].shape[1]} features ({fit_seconds:.0f} s): free-energy RMSE along psi_1 "
        f"{rmse:.3f} kT, t1 MD {t_md[0]:.0f} ± {se_md[0]:.0f}, LSS {t_lss[0]:.0f} ± "
        f"{se_lss[0]:.0f} frames (exact {exact[0]:.0f})"
    )
    n_test = sum(len(x) for x in X_test)
    sections = [
        {
            "title": "Hidden-coordinate toy (sklss.datasets.hidden_wells), SRV + MDN + cWGAN",
            "text": (
                f"A 2-D three-well system seen only through {X[0].shape[1]} noisy nonlinear "
                f"features. Training: {n_frames:,} frames; held-out MD: {n_test:,} frames in "
                f"{len(X_test)} trajectories. SRV (m = 2), MDN (C = 12) and cWGAN decoder, "
                f"2 x 64 units each, lag 5 frames, at most {args.epochs} epochs each. The "
                f"simulator runs {len(latent)} trajectories from the held-out trajectories' "
                f"first frames, each as long. Timescales from exponential fits to the "
                f"autocorrelation of each latent coordinate (the paper's section 3.2), "
                f"standard errors from 5 contiguous blocks; exact values from the reference "
                f"generator of the latent dynamics."
            ),
            "columns": ("quantity", "MD", "LSS", "exact"),
            "rows": [
                ("free-energy RMSE along psi_1, LSS against MD (kT)", "", _fmt(rmse, digits=3), ""),
                (
                    "slowest timescale t1 (frames)",
                    _fmt(t_md[0], se_md[0]),
                    _fmt(t_lss[0], se_lss[0]),
                    _fmt(exact[0]),
                ),
                (
                    "second timescale t2 (frames)",
                    _fmt(t_md[1], se_md[1]),
                    _fmt(t_lss[1], se_lss[1]),
                    _fmt(exact[1]),
                ),
                (
                    "SRV implied timescales t1, t2 at lag 5 (frames)",
                    ", ".join(_fmt(t) for t in lss.encoder_.timescales_),
                    "",
                    ", ".join(_fmt(t) for t in exact),
                ),
                ("VAMP-2 on held-out MD (lag 5)", _fmt(vamp2, digits=3), "", "3 at most"),
                (
                    "mean JS divergence of decoded feature marginals (bits)",
                    "",
                    _fmt(mean_js, digits=4),
                    "0",
                ),
            ],
        }
    ]
    checks = [
        _check(
            "hidden-coordinate LSS t1",
            t_lss[0] / exact[0] - 1,
            abs(t_lss[0] / exact[0] - 1) <= 0.25,
            f"{t_lss[0] / exact[0] - 1:+.1%} against exact (target within 25 %)",
        ),
        _check(
            "hidden-coordinate decoded features",
            mean_js,
            mean_js <= 0.05,
            f"mean JS divergence {mean_js:.4f} bits against MD (target at most 0.05)",
        ),
    ]
    metrics = {
        "fit_seconds": fit_seconds,
        "free_energy_rmse_psi1_kT": rmse,
        "timescales_frames": {
            "md": t_md.tolist(),
            "md_std_error": se_md.tolist(),
            "lss": t_lss.tolist(),
            "lss_std_error": se_lss.tolist(),
            "exact": exact.tolist(),
            "srv": lss.encoder_.timescales_.tolist(),
        },
        "vamp2_held_out": float(vamp2),
        "decoded_features_mean_js_bits": mean_js,
    }
    metrics["timescales_against_lag_frames"] = _its_json(its)
    plot = {"psi": psi, "latent": latent, "edges": edges, "its": its}
    return {
        "metrics": metrics,
        "sections": sections,
        "checks": checks,
        "plot": plot,
        "lss": lss,
        "X": X,
    }


def _demo_alanine(args, out):
    from . import CWGANDecoder, LatentSpaceSimulator, MDNPropagator, SRVTransformer, plotting
    from ._trajectory_files import import_md, write_trajectory
    from .datasets import alanine_dipeptide
    from .features import SuperposedCoordinates, Torsions
    from .metrics import (
        autocorrelation_timescales,
        free_energy_profile,
        free_energy_rmse,
        implied_timescales,
    )

    _require_matplotlib()
    md = import_md("mdtraj", feature="sklss demo --system alanine-dipeptide")
    import_md("openmm", feature="sklss demo --system alanine-dipeptide")
    if not args.md_ns > 0:
        raise CommandError(f"--md-ns must be positive; got {args.md_ns}")
    n_traj, lag = 4, 10
    print(
        f"sklss demo: alanine dipeptide, {n_traj} x {args.md_ns:g} ns of implicit-solvent MD "
        "(OpenMM, cached for the next run)"
    )
    t0 = time.perf_counter()
    trajs = alanine_dipeptide(
        args.md_ns, n_trajectories=n_traj, random_state=args.seed, verbose=min(args.verbose, 1)
    )
    trajs = trajs if isinstance(trajs, list) else [trajs]
    frame_ps = float(trajs[0].timestep) if trajs[0].n_frames > 1 else 1.0
    _stage(args, f"   MD ready ({time.perf_counter() - t0:.0f} s); fitting the simulator")
    torsions = Torsions("backbone").fit(trajs)
    coords = SuperposedCoordinates("heavy").fit(trajs)
    X, Y = torsions.transform(trajs), coords.transform(trajs)
    fit_verbose = max(args.verbose - 1, 0)
    t0 = time.perf_counter()
    lss = LatentSpaceSimulator(
        SRVTransformer(
            n_components=2,
            hidden_layer_sizes=(64, 64),
            batch_size=1024,
            max_epochs=args.epochs,
            verbose=fit_verbose,
        ),
        MDNPropagator(
            n_kernels=12, hidden_layer_sizes=(64, 64), max_epochs=args.epochs, verbose=fit_verbose
        ),
        # A few MD frames give few generator updates per epoch: ten times the epochs.
        CWGANDecoder(
            noise_dim=16,
            hidden_layer_sizes=(128, 128),
            max_epochs=10 * args.epochs,
            verbose=fit_verbose,
        ),
        lag_time=lag,
        random_state=args.seed,
        verbose=min(args.verbose, 1),
    ).fit(X, Y)
    fit_seconds = time.perf_counter() - t0

    psi = lss.transform(X)
    # As many steps as the MD has frames: ten times its duration, for tighter statistics.
    n_steps = len(X[0])
    result = lss.sample(np.stack([x[0] for x in X]), n_steps, random_state=args.seed)
    latent = list(result.latent)
    generated = coords.inverse_transform(result.configurations, dt=frame_ps * lag)

    def ramachandran(traj_list):
        angles = [
            np.column_stack([md.compute_phi(t)[1][:, 0], md.compute_psi(t)[1][:, 0]])
            for t in traj_list
        ]
        return angles

    rama_md, rama_lss = ramachandran(trajs), ramachandran(generated)
    grid = np.linspace(-np.pi, np.pi, 31)

    def rama_free_energy(angles):
        a = np.concatenate(angles)
        q, _, _ = np.histogram2d(a[:, 0], a[:, 1], bins=[grid, grid], density=True)
        with np.errstate(divide="ignore"):
            F = -np.log(q)
        return F - F[np.isfinite(F)].min()

    rmse_rama = free_energy_rmse(
        rama_free_energy(rama_md), rama_free_energy(rama_lss), max_free_energy=4.0
    )
    md1 = np.concatenate([p[:, 0] for p in psi])
    edges = np.linspace(md1.min(), md1.max(), 51)
    F_md, _ = free_energy_profile(md1, bins=edges)
    F_lss, _ = free_energy_profile(result.latent[..., 0].ravel(), bins=edges)
    rmse_psi = free_energy_rmse(F_md, F_lss)
    t_md, se_md = autocorrelation_timescales(psi, dt=frame_ps)
    t_lss, se_lss = autocorrelation_timescales(latent, dt=frame_ps * lag)
    vamp2 = lss.vamp2_score(X)

    def vac(data, lag_frames):
        return implied_timescales(data, lag_frames, n_components=2)

    md_lags = np.array([1, 2, 5, 10, 20, 50])
    lss_steps = np.array([1, 2, 5])
    its = {
        "md": _its_against_lag(psi, md_lags, vac),
        "lss": _its_against_lag(latent, lss_steps, vac, unit=lag),
        "exact": [],
    }
    print(
        f"alanine dipeptide LSS on {sum(len(x) for x in X):,} frames ({fit_seconds:.0f} s): "
        f"Ramachandran free-energy RMSE {rmse_rama:.2f} kT, t1 MD {t_md[0]:.0f} ± "
        f"{se_md[0]:.0f} ps, LSS {t_lss[0]:.0f} ± {se_lss[0]:.0f} ps"
    )

    files = []
    fig, axes = _figure(2)
    for ax, angles, name in zip(axes, (rama_md, rama_lss), ("MD", "LSS, decoded")):
        plotting.free_energy_2d(
            angles,
            bins=[grid, grid],
            max_free_energy=8,
            labels=("phi (rad)", "psi (rad)"),
            ax=ax,
        )
        ax.set_title(f"alanine dipeptide, {name}")
    _save(fig, out, "free_energy_2d.png", files)
    fig, (a,) = _figure(1)
    plotting.free_energy_1d(psi, bins=edges, label="MD", xlabel=r"$\psi_1$", ax=a)
    plotting.free_energy_1d(
        latent, bins=edges, label="LSS", xlabel=r"$\psi_1$", ax=a, linestyle="--"
    )
    a.set_title(r"free energy along $\psi_1$")
    _save(fig, out, "free_energy.png", files)
    fig, (a,) = _figure(1)
    _draw_its(a, its, f"VAC of the latent coordinates (frames of {frame_ps:g} ps)")
    _save(fig, out, "implied_timescales.png", files)
    fig, (a, b) = _figure(2)
    plotting.transition_density(psi, lag, bins=edges, label=r"$\psi_1$", ax=a)
    a.set_title(f"MD, tau = {lag} frames")
    plotting.transition_density(latent, 1, bins=edges, label=r"$\psi_1$", ax=b)
    b.set_title("LSS, one step (tau)")
    _save(fig, out, "transition_density.png", files)
    fig, (a, b) = _figure(1, 2, width=10, height=3.2)
    plotting.latent_trajectory(psi[0], dt=frame_ps, time_unit="ps", ax=a)
    a.set_title("MD, encoded")
    plotting.latent_trajectory(latent[0], dt=frame_ps * lag, time_unit="ps", ax=b)
    b.set_title(f"latent space simulator (one step = {lag} frames)")
    _save(fig, out, "latent_trajectory.png", files)
    write_trajectory(
        result.configurations[0],
        generated[0].topology,
        out / "lss_trajectory.dcd",
        dt=frame_ps * lag,
    )
    files.append("lss_trajectory.dcd")
    structure = coords.inverse_transform(coords.reference_xyz_.reshape(1, -1))
    _save_model_folder(
        lss,
        out / "model",
        X,
        info={
            "input": "md",
            "output": "coordinates",
            "system": "alanine_dipeptide",
            "featurizer": "torsions",
            "featurizer_params": {"angles": "backbone"},
            "decoder_selection": "heavy",
            "frame_time_ps": frame_ps,
        },
        topology=structure,
    )
    files.append("model/")
    n_frames = sum(len(x) for x in X)
    section = {
        "title": "Alanine dipeptide in implicit solvent (OpenMM, AMBER ff96 + OBC2)",
        "text": (
            f"{n_traj} trajectories of {args.md_ns:g} ns, frames every {frame_ps:g} ps "
            f"({n_frames:,} frames). Encoder input: sin/cos of phi and psi; decoder output: "
            f"superposed coordinates of the 10 heavy atoms. SRV (m = 2), MDN (C = 12), cWGAN; "
            f"lag {lag} frames. The simulator runs {len(latent)} trajectories from the MD's first "
            f"frames, each with as many steps as the MD has frames (so {lag} times as long); "
            f"its decoded structures give the Ramachandran plot. "
            f"Timescales from autocorrelation fits of the latent coordinates, standard errors "
            f"from 5 contiguous blocks. The MD is short, so its own timescales are uncertain."
        ),
        "columns": ("quantity", "MD", "LSS", ""),
        "rows": [
            (
                "Ramachandran free-energy RMSE, decoded LSS against MD (kT, F <= 4 kT)",
                "",
                _fmt(rmse_rama, digits=2),
                "",
            ),
            ("free-energy RMSE along psi_1, LSS against MD (kT)", "", _fmt(rmse_psi, digits=3), ""),
            ("slowest timescale t1 (ps)", _fmt(t_md[0], se_md[0]), _fmt(t_lss[0], se_lss[0]), ""),
            ("second timescale t2 (ps)", _fmt(t_md[1], se_md[1]), _fmt(t_lss[1], se_lss[1]), ""),
            (f"VAMP-2 of the training MD (lag {lag})", _fmt(vamp2, digits=3), "", ""),
        ],
    }
    checks = [
        _check(
            "alanine dipeptide Ramachandran free energy",
            rmse_rama,
            rmse_rama <= 1.0,
            f"RMSE {rmse_rama:.2f} kT, decoded LSS against MD (target at most 1 kT)",
        )
    ]
    return {
        "title": "A latent space simulator of alanine dipeptide",
        "system": "alanine-dipeptide",
        "metrics": {
            "alanine_dipeptide": {
                "n_frames": n_frames,
                "frame_time_ps": frame_ps,
                "lag_time_frames": lag,
                "fit_seconds": fit_seconds,
                "ramachandran_free_energy_rmse_kT": rmse_rama,
                "free_energy_rmse_psi1_kT": rmse_psi,
                "timescales_ps": {
                    "md": t_md.tolist(),
                    "md_std_error": se_md.tolist(),
                    "lss": t_lss.tolist(),
                    "lss_std_error": se_lss.tolist(),
                },
                "vamp2_training": float(vamp2),
                "timescales_against_lag_frames": _its_json(its),
            }
        },
        "sections": [section],
        "checks": checks,
        "files": files,
    }


def _draw_its(ax, its, title):
    from . import plotting

    for key, color, name in (("md", "C0", "MD"), ("lss", "C1", "LSS")):
        lags, ts, se = its[key]
        if len(lags):
            plotting.implied_timescales(
                lags, ts, se, labels=[name], color=color, show_lag=key == "md", ax=ax
            )
    for k, t in enumerate(its["exact"]):
        ax.axhline(t, color="k", linestyle=":", linewidth=1, label="exact" if k == 0 else None)
    ax.legend(fontsize="small")
    ax.set_title(title)


def _demo_toy_figures(four, hidden, out):
    from . import plotting

    files = []
    fig, (a, b) = _figure(2)
    centres = 0.5 * (four["edges"][1:] + four["edges"][:-1])
    a.plot(centres, four["F_exact"], color="k", linewidth=2, label="exact")
    plotting.free_energy_1d(four["x"], bins=four["edges"], label="MD", ax=a)
    plotting.free_energy_1d(four["syn"], bins=four["edges"], label="LSS", ax=a, linestyle="--")
    a.set_ylim(0, 6)
    a.set_title("four-well: free energy along x")
    plotting.free_energy_1d(
        hidden["psi"], bins=hidden["edges"], label="MD", xlabel=r"$\psi_1$", ax=b
    )
    plotting.free_energy_1d(
        hidden["latent"],
        bins=hidden["edges"],
        label="LSS",
        xlabel=r"$\psi_1$",
        ax=b,
        linestyle="--",
    )
    b.set_title("hidden-coordinate toy: free energy along psi_1")
    _save(fig, out, "free_energy.png", files)

    fig, axes = _figure(2)
    both = np.concatenate(hidden["psi"])
    span = [[both[:, 0].min(), both[:, 0].max()], [both[:, 1].min(), both[:, 1].max()]]
    for ax, data, name in zip(axes, (hidden["psi"], hidden["latent"]), ("MD", "LSS")):
        plotting.free_energy_2d(
            data, bins=40, range=span, max_free_energy=8, labels=(r"$\psi_1$", r"$\psi_2$"), ax=ax
        )
        ax.set_title(f"hidden-coordinate toy, {name}")
    _save(fig, out, "free_energy_2d.png", files)

    fig, (a, b) = _figure(2)
    _draw_its(a, four["its"], "four-well: Markov model timescales")
    _draw_its(b, hidden["its"], "hidden-coordinate toy: VAC of the latent coordinates")
    _save(fig, out, "implied_timescales.png", files)

    fig, (a, b) = _figure(2)
    edges = four["edges"]
    plotting.transition_density(four["x"], 10, bins=edges, ax=a)
    a.set_title("four-well MD, tau = 10 frames")
    plotting.transition_density(four["syn"], 1, bins=edges, ax=b)
    b.set_title("four-well LSS, one step (tau)")
    _save(fig, out, "transition_density.png", files)

    fig, (a, b) = _figure(1, 2, width=10, height=3.2)
    md = hidden["psi"][0][:5000]
    plotting.latent_trajectory(md, ax=a)
    a.set_title("hidden-coordinate toy: held-out MD, encoded")
    plotting.latent_trajectory(hidden["latent"][0][: max(len(md) // 5, 2)], dt=5, ax=b)
    b.set_title("latent space simulator (one step = 5 frames)")
    _save(fig, out, "latent_trajectory.png", files)
    return files


def _write_report(out, report, args):
    from . import __version__

    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, np.generic):
            return value.item()
        return value

    data = {
        "sklss_version": __version__,
        "system": report["system"],
        "seed": args.seed,
        "seconds": report["seconds"],
        **plain(report["metrics"]),
        "checks": plain(report["checks"]),
        "files": report["files"],
    }
    (out / "metrics.json").write_text(json.dumps(data, indent=2) + "\n")
    lines = [f"# {report['title']}", ""]
    lines.append(
        f"Written by `sklss demo` (sklss {__version__}, seed {args.seed}) in "
        f"{report['seconds']:.0f} s."
    )
    for section in report["sections"]:
        lines += ["", f"## {section['title']}", "", section["text"], ""]
        lines.append("| " + " | ".join(section["columns"]) + " |")
        lines.append("|" + "---|" * len(section["columns"]))
        for row in section["rows"]:
            lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Targets", ""]
    for check in report["checks"]:
        lines.append(
            f"- {'met' if check['passed'] else 'MISSED'}: {check['name']}, {check['text']}"
        )
    lines += ["", "## Files", ""]
    for name in report["files"]:
        lines.append(f"- `{name}`" + (f"\n\n  ![{name}]({name})" if name.endswith(".png") else ""))
    lines += [
        "",
        "The simulator in `model/` runs on its own:",
        "",
        "```bash",
        f"sklss sample {out / 'model'} -n 4 --n-steps 10000 -o samples.npy",
        "```",
        "",
    ]
    (out / "metrics.md").write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
