"""``python -m flowlib.benchmark``: the same as the ``flowlib-perf`` command."""

import sys

from .perf import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m flowlib.benchmark"))
