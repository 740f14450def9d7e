"""Helpers to send the ``flowlib`` logger to a stream or a file (for interactive use).

Each returns a callable that removes the handler it added again (as Parsl's
do); the callable also carries the ``logger`` and the ``handler``.
"""

from __future__ import annotations

import logging
import sys
from typing import IO

DEFAULT_FORMAT = "%(asctime)s %(name)s:%(lineno)d [%(levelname)s] %(message)s"


class HandlerRemover:
    """Call to detach (and close) the handler that ``set_stream_logger``/``set_file_logger`` added."""

    def __init__(self, logger: logging.Logger, handler: logging.Handler) -> None:
        self.logger = logger
        self.handler = handler

    def __call__(self) -> None:
        """Remove the handler from the logger and close it; calling again does nothing."""
        self.logger.removeHandler(self.handler)
        self.handler.close()


def _attach(name: str, level: int, handler: logging.Handler, format_string: str | None) -> HandlerRemover:
    logger = logging.getLogger(name)
    logger.setLevel(level)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(format_string or DEFAULT_FORMAT))
    logger.addHandler(handler)
    return HandlerRemover(logger, handler)


def set_stream_logger(
    name: str = "flowlib", level: int = logging.DEBUG, format_string: str | None = None, stream: IO[str] | None = None
) -> HandlerRemover:
    """Add a stream handler (stderr by default) to logger ``name``; return a callable that removes it."""
    return _attach(name, level, logging.StreamHandler(stream or sys.stderr), format_string)


def set_file_logger(
    filename: str, name: str = "flowlib", level: int = logging.DEBUG, format_string: str | None = None
) -> HandlerRemover:
    """Add a file handler writing to ``filename`` to logger ``name``; return a callable that removes it."""
    return _attach(name, level, logging.FileHandler(filename), format_string)
