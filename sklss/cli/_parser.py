"""The argument parser of the ``sklss`` command, with one-line usage errors."""

import argparse

from ._config import _FIT_DEFAULTS, _SAMPLE_DEFAULTS
from ._fit import _fit
from ._sample import _sample
from .demo import run_demo


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


def _count(group, flag, metavar, help, short=None):
    """An option taking a positive integer."""
    flags = (short, flag) if short else (flag,)
    group.add_argument(*flags, type=_positive_int, metavar=metavar, help=help)


def _help(text, default):
    return f"{text} (default: {default})" if default is not None else text


_VERBOSE_HELP = (
    "0 prints only the result; 1 adds a line per stage and progress bars for MD and decoding; "
    "2 adds a line per training epoch; 3 adds progress bars within epochs"
)


def build_parser():
    """The argument parser of the ``sklss`` command."""
    from .. import __version__

    parser = _Parser(
        prog="sklss",
        description="Molecular latent space simulators with a scikit-learn API: fit a "
        "simulator to MD data, then generate long trajectories from it.",
        epilog="Run 'sklss COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"sklss {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo(sub)
    _add_fit(sub)
    _add_sample(sub)
    return parser


def _add_demo(sub):
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
    _demo_sizes(demo)
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
    demo.set_defaults(func=run_demo)


def _demo_sizes(demo):
    """How much data and training the demo uses."""
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


def _add_fit(sub):
    fit = sub.add_parser(
        "fit",
        help="fit a latent space simulator to features or MD trajectories",
        description="Fit a latent space simulator (SRV encoder, MDN propagator, cWGAN "
        "decoder) and save it as a model folder for 'sklss sample'. Input is either "
        "features in .npy files (--features) or MD files (--topology and --trajectories), "
        "which are featurised for the encoder and superposed for the decoder; with "
        "--features-dir, file by file into .npy files that a rerun reuses.",
        epilog="A TOML file (--config) may set any option (long name with underscores: "
        "lag_time = 10) and any estimator parameter in [encoder], [propagator] or [decoder] "
        "tables (hidden_layer_sizes = [100, 100]); flags win over the file, and relative "
        "paths in it are relative to its folder.",
    )
    inputs = fit.add_argument_group("input")
    _fit_inputs(inputs)
    _fit_md_options(inputs, _FIT_DEFAULTS)
    _fit_model_options(fit.add_argument_group("model"), _FIT_DEFAULTS)
    _common_options(fit, _FIT_DEFAULTS, output_help="model folder to write")
    fit.set_defaults(func=_fit)


def _fit_inputs(inputs):
    """The input files of ``fit``: ``.npy`` features, or MD files."""
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
        "--trajectories",
        nargs="+",
        metavar="FILE",
        help="MD trajectory files (DCD, XTC, ...), folders of them, or quoted glob patterns "
        "('md/*.xtc')",
    )


def _fit_md_options(inputs, d):
    """How ``fit`` reads and featurises MD files."""
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
    _count(inputs, "--stride", "N", _help("read every n-th frame of MD files", 1))
    inputs.add_argument(
        "--features-dir",
        metavar="DIR",
        help="featurise the MD files one by one into .npy files in DIR (decoder targets in "
        "DIR/coordinates) and train on them memory-mapped; a rerun reuses what is there",
    )
    _count(
        inputs,
        "--n-jobs",
        "N",
        _help("MD files featurised in parallel with --features-dir", d["n_jobs"]),
    )
    inputs.add_argument(
        "--frame-time",
        type=float,
        metavar="PS",
        help="time between frames in ps, stored in written trajectories (default: read from "
        "the MD files, else 1)",
    )


def _fit_model_options(model, d):
    """The simulator that ``fit`` trains."""
    _count(
        model,
        "--lag-time",
        "FRAMES",
        "lag time in frames (after --stride); one simulator step advances one lag (required)",
    )
    _count(model, "--n-components", "M", _help("latent dimensions m", d["n_components"]))
    _count(model, "--n-kernels", "C", _help("MDN kernels C", d["n_kernels"]))
    _count(
        model,
        "--max-epochs",
        "N",
        _help("maximum training epochs of each network", d["max_epochs"]),
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


def _add_sample(sub):
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
    _count(
        sample,
        "--n-trajectories",
        "N",
        "number of trajectories (default: the rows of --start, else 1)",
        short="-n",
    )
    _count(sample, "--n-steps", "N", "frames per trajectory, the start included (required)")
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
    _common_options(
        sample, _SAMPLE_DEFAULTS, output_help="output file: .npy, .dcd, .xtc, ... (required)"
    )
    sample.set_defaults(func=_sample)


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
