"""The interface of a logging configuration."""

from __future__ import annotations

import abc
from collections.abc import Callable


class LoggingConfig(metaclass=abc.ABCMeta):
    """Sets up logging for one kernel's run and undoes it at cleanup."""

    @abc.abstractmethod
    def initialize(self, run_dir: str) -> Callable[[], None]:
        """Install handlers for a run in ``run_dir``; return a function that removes them."""


LogConfig = LoggingConfig
"""Parsl's name for :class:`LoggingConfig` (``parsl.logconfigs.base.LogConfig``): the same class."""
