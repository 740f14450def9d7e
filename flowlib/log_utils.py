"""Helpers to send the ``flowlib`` logger to a stream or a file (for interactive use)."""

from __future__ import annotations

import logging
import sys
from typing import IO

DEFAULT_FORMAT = "%(asctime)s %(name)s:%(lineno)d [%(levelname)s] %(message)s"


def set_stream_logger(
    name: str = "flowlib", level: int = logging.DEBUG, format_string: str | None = None, stream: IO[str] | None = None
) -> logging.Logger:
    """Add a stream handler (stderr by default) to logger ``name``; return the logger."""
    logger = logging.getLogger(name)
    logger.setLevel(level)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(format_string or DEFAULT_FORMAT))
    logger.addHandler(handler)
    return logger


def set_file_logger(
    filename: str, name: str = "flowlib", level: int = logging.DEBUG, format_string: str | None = None
) -> logging.Logger:
    """Add a file handler writing to ``filename`` to logger ``name``; return the logger."""
    logger = logging.getLogger(name)
    logger.setLevel(level)
    handler = logging.FileHandler(filename)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(format_string or DEFAULT_FORMAT))
    logger.addHandler(handler)
    return logger
