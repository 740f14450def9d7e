"""JSON-lines logging to ``<run_dir>/flowlib.jsonl``, one object per record."""

from __future__ import annotations

import json
import logging

from flowlib.logconfigs.file import FileLogging


class _JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": record.created,
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "thread": record.threadName,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class JSONLogging(FileLogging):
    """Like :class:`~flowlib.logconfigs.file.FileLogging`, as JSON lines for log tools."""

    def __init__(self, level: int = logging.INFO, filename: str = "flowlib.jsonl") -> None:
        super().__init__(level=level, filename=filename)

    def make_formatter(self) -> logging.Formatter:
        """A formatter writing one JSON object per line."""
        return _JSONFormatter()
