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

The package holds one module per concern: ``_parser`` (flags), ``_config`` (defaults and the
TOML file), ``_files`` (input files), ``_model_folder`` (the command's errors for the model
folders of :func:`sklss.io.save_model_folder`, which ``fit`` writes and ``sample`` reads),
``_fit`` and ``_sample`` (the commands), ``_main`` (the entry point) and ``demo`` (one module
per demo system, the pieces they share, and the report writer).
"""

from ._errors import CommandError
from ._main import main

__all__ = ["CommandError", "main"]
