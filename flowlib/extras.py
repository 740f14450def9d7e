"""Checking at construction that an optional part's packages are installed.

Providers and channels that need a package from an extra (``pip install 'flowlib[ssh]'``)
call :func:`require` in their constructor, so that a missing package fails where the
configuration is written, with a message naming the extra, and never later inside the
kernel's scaling thread. The check finds the modules without importing them (the
import itself stays lazy, at first use), so it costs microseconds.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

from flowlib.errors import OptionalModuleMissing

__all__ = ["missing_modules", "require"]


def _present(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing, or set to None in sys.modules
        return False


def missing_modules(modules: Sequence[str]) -> list[str]:
    """The modules of ``modules`` that cannot be imported here (found without importing them)."""
    return [m for m in modules if not _present(m)]


def require(owner: str, extra: str, modules: Sequence[str], distributions: Sequence[str]) -> None:
    """Raise :class:`~flowlib.errors.OptionalModuleMissing` unless every module in ``modules`` is installed.

    :param owner: what needs them, for the message (``"SSHChannel"``).
    :param extra: the flowlib extra that installs them (``"ssh"``).
    :param modules: importable module names (``["paramiko"]``).
    :param distributions: the package names pip knows them by, for the message.
    """
    missing = missing_modules(modules)
    if missing:
        raise OptionalModuleMissing(
            list(distributions),
            f"{owner} needs {', '.join(missing)} (not installed): pip install 'flowlib[{extra}]'",
        )
