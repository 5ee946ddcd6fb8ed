"""The ``sklss`` entry point: parse, run the command, report mistakes in one line."""

import functools
import sys
import warnings

from ._errors import CommandError
from ._parser import _UsageError, build_parser


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
