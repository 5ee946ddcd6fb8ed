"""``python -m sklss``: the same as the ``sklss`` command."""

import sys

from .cli import main

sys.exit(main())
