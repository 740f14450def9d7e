"""The interface of a logging configuration.

A configuration implements either flowlib's ``initialize(run_dir)`` or Parsl's
``initialize_logging(*, log_dir, log_name)``; each returns a function that
undoes what it installed. For a configuration written for Parsl, the kernel
calls ``initialize_logging(log_dir=<run_dir>, log_name="parsl")``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

PARSL_LOG_NAME = "parsl"
"""The ``log_name`` a Parsl-style configuration is given for the kernel's own log."""


class LoggingConfig:
    """Sets up logging for one kernel's run and undoes it at cleanup."""

    def initialize(self, run_dir: str) -> Callable[[], None]:
        """Install handlers for a run in ``run_dir``; return a function that removes them.

        By default this calls Parsl's :meth:`initialize_logging` (for configurations
        written for Parsl); flowlib's own configurations override it.
        """
        if type(self).initialize_logging is LoggingConfig.initialize_logging:
            raise NotImplementedError(
                f"{type(self).__name__} must implement initialize(run_dir) (flowlib) or "
                "initialize_logging(*, log_dir, log_name) (Parsl)"
            )
        return self.initialize_logging(log_dir=run_dir, log_name=PARSL_LOG_NAME)

    def initialize_logging(self, *, log_dir: str, log_name: str, **kwargs: Any) -> Callable[[], None]:
        """Parsl's interface: install handlers writing ``log_name``'s log in ``log_dir``; return their remover."""
        raise NotImplementedError(f"{type(self).__name__} implements initialize(run_dir), not initialize_logging")


LogConfig = LoggingConfig
"""Parsl's name for :class:`LoggingConfig` (``parsl.logconfigs.base.LogConfig``): the same class."""
