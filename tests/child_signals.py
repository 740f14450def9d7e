"""Signal dispositions for child processes that tests interrupt.

A non-interactive shell starts background jobs with SIGINT ignored, and children
inherit that: a test that sends SIGINT to a child must set the disposition it relies on.
"""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """``preexec_fn`` for a child that SIGINT must reach (Python then raises KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
