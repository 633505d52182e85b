"""``python -m geotasks.cli``: the ``geotasks`` command."""

import sys

from .main import main

sys.exit(main())
