"""``python -m mlp`` is the ``mlp`` command."""

import sys

from .cli import main

sys.exit(main())
