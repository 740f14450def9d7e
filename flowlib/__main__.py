"""``python -m flowlib``: the ``flowlib`` command (see :mod:`flowlib.cli.main`)."""

import sys

from flowlib.cli.main import main

sys.exit(main())
