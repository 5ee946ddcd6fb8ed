"""The model folder that ``sklss fit`` writes and ``sklss sample`` reads.

The format is :mod:`sklss.io`'s (:func:`~sklss.io.save_model_folder` and
:func:`~sklss.io.load_model_folder`); here its errors become the command's one-line errors.
"""

from ._errors import CommandError


def _read_model_folder(path):
    """The model folder at ``path`` as :func:`sklss.io.load_model_folder` returns it."""
    from ..io import InvalidModelFileError, load_model_folder

    try:
        return load_model_folder(path)
    except (OSError, ValueError, InvalidModelFileError) as exc:
        raise CommandError(str(exc)) from None
