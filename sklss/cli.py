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


def _demo(args):
    from ._demo import run_demo

    return run_demo(args)


if __name__ == "__main__":
    sys.exit(main())
