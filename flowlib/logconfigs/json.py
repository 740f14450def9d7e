"""JSON-lines logging to ``<run_dir>/flowlib.jsonl`` (``parsl.jsonlog`` linked to it), one object per record.

Each object has ``time``, ``level``, ``logger``, ``process``, ``thread``,
``message`` (formatted), ``msg`` (the unformatted message) and every attribute
the record was given with ``extra=``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flowlib.logconfigs.file import FileLogging

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class _JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": record.created,
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "thread": record.threadName,
            "message": record.getMessage(),
            "msg": str(record.msg),  # the message before its arguments were filled in (as Parsl's)
        }
        # attributes given with extra= (e.g. parsl.task / flowlib.task), so tools can select by them
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class JSONLogging(FileLogging):
    """Like :class:`~flowlib.logconfigs.file.FileLogging`, as JSON lines for log tools."""

    def __init__(self, level: int = logging.INFO, filename: str = "flowlib.jsonl") -> None:
        super().__init__(level=level, filename=filename)

    def make_formatter(self) -> logging.Formatter:
        """A formatter writing one JSON object per line."""
        return _JSONFormatter()
