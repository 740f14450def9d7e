"""The root of flowlib's exception tree.

Every exception that flowlib raises on purpose derives from :class:`FlowlibError`
(also reachable as ``ParslError`` for scripts moved from Parsl), except where a
built-in type says it better (``TypeError`` for a wrong argument type,
``ValueError`` for a bad value, ``concurrent.futures.CancelledError``).
"""

from __future__ import annotations


class FlowlibError(Exception):
    """Base class of flowlib's own exceptions."""


ParslError = FlowlibError


class ConfigurationError(FlowlibError):
    """Raised while loading a configuration that cannot work as given.

    Your fault, not an outside cause: duplicate executor labels, an option that
    contradicts another, an executor that cannot be used with a provider.
    """


class UnsuitableLauncherError(ConfigurationError, TypeError):
    """A provider or executor was given a launcher it cannot use.

    Also a ``TypeError``, the class Parsl raises for an MPI executor whose
    provider's launcher is not a ``SimpleLauncher``.
    """


class NoDataFlowKernelError(FlowlibError):
    """Raised when an app is called, or ``flowlib.dfk()`` asked, before ``flowlib.load()``."""


class OptionalModuleMissing(FlowlibError):
    """Raised when a feature needs a package from an extra that is not installed.

    The message names the missing modules and the extra that provides them.
    """

    def __init__(self, module_names: list[str], reason: str) -> None:
        self.module_names = list(module_names)
        self.reason = reason
        super().__init__(module_names, reason)

    def __str__(self) -> str:
        return f"The functionality requested requires missing optional modules {self.module_names}: {self.reason}"


class InternalConsistencyError(FlowlibError):
    """Raised when flowlib finds its own state impossible (a bug in flowlib, please report it).

    For example an illegal task-state transition; the message carries the task's history.
    """
