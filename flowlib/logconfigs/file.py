"""Plain-text logging to ``<run_dir>/flowlib.log`` (with ``parsl.log`` linked to it)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from flowlib.logconfigs.base import LoggingConfig

DEFAULT_FORMAT = (
    "%(asctime)s.%(msecs)03d %(name)s:%(lineno)d %(processName)s(%(process)d) %(threadName)s %(levelname)s: %(message)s"
)


class FileLogging(LoggingConfig):
    """Log the ``flowlib`` logger to a file in the run directory.

    Parameters:
        level: the logging level; INFO by default. DEBUG adds a line per task
            state change, which costs throughput on large runs.
        filename: the file name inside the run directory. With the default name,
            ``<run_dir>/parsl.log`` is made a symbolic link to it, because Parsl
            programs and tools look for the log under that name (for
            :class:`~flowlib.logconfigs.json.JSONLogging`: ``parsl.jsonlog``).
        format_string: a ``logging.Formatter`` format.
    """

    def __init__(
        self, level: int = logging.INFO, filename: str = "flowlib.log", format_string: str | None = None
    ) -> None:
        self.level = level
        self.filename = filename
        self.format_string = format_string or DEFAULT_FORMAT

    def make_formatter(self) -> logging.Formatter:
        """The formatter of the file handler."""
        return logging.Formatter(self.format_string, datefmt="%Y-%m-%d %H:%M:%S")

    def initialize(self, run_dir: str) -> Callable[[], None]:
        """Attach a file handler to the ``flowlib`` logger; return its remover."""
        handler = logging.FileHandler(os.path.join(run_dir, self.filename))
        parsl_name = PARSL_NAMES.get(self.filename)
        if parsl_name is not None:
            _link_parsl_name(run_dir, self.filename, parsl_name)
        handler.setLevel(self.level)
        handler.setFormatter(self.make_formatter())
        logger = logging.getLogger("flowlib")
        previous_level = logger.level
        if logger.level == logging.NOTSET or logger.level > self.level:
            logger.setLevel(self.level)
        logger.addHandler(handler)

        def remove() -> None:
            logger.removeHandler(handler)
            logger.setLevel(previous_level)
            handler.close()

        return remove


PARSL_NAMES = {"flowlib.log": "parsl.log", "flowlib.jsonl": "parsl.jsonlog"}
"""Default log file names -> the name Parsl gives the same log, linked to ours in the run directory."""


def _link_parsl_name(run_dir: str, ours: str, parsl_name: str) -> None:
    """Make ``<run_dir>/<parsl_name>`` point at ``ours``, unless that name is taken."""
    link = os.path.join(run_dir, parsl_name)
    if os.path.lexists(link):
        return
    try:
        os.symlink(ours, link)
    except OSError:  # a file system without symbolic links: our name alone
        logging.getLogger(__name__).debug("could not link %s to %s", link, ours, exc_info=True)
