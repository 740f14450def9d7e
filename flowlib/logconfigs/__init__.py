"""Logging configurations for a kernel: ``Config(initialize_logging=...)``.

``True`` (the default) means :class:`~flowlib.logconfigs.file.FileLogging` at INFO:
one ``flowlib.log`` per run directory. ``False`` or
:class:`~flowlib.logconfigs.noop.NoopLogging` installs nothing.
"""

from flowlib.logconfigs.base import LogConfig, LoggingConfig

__all__ = ["LogConfig", "LoggingConfig"]
