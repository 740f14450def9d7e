"""No logging set-up at all: the application configures ``logging`` itself."""

from __future__ import annotations

from collections.abc import Callable

from flowlib.logconfigs.base import LoggingConfig


def _nothing() -> None:
    return None


class NoopLogging(LoggingConfig):
    """Install no handlers; flowlib's records go wherever the application sends them."""

    def initialize(self, run_dir: str) -> Callable[[], None]:
        """Do nothing."""
        return _nothing
