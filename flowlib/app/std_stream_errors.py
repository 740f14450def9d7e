"""The error for a ``stdout``/``stderr`` specification of the wrong shape or type.

Kept out of ``flowlib.app.errors`` because it needs typeguard, which only this
error path (on the worker) imports.
"""

from __future__ import annotations

from flowlib.app.errors import BadStdStreamFile
from flowlib.validation import ArgumentTypeError


class BadStdStreamType(BadStdStreamFile, ArgumentTypeError):
    """``stdout``/``stderr`` given as something other than a path, a File or a (path, mode) tuple of strings.

    It is a :class:`BadStdStreamFile`, and also ``typeguard.TypeCheckError`` and
    ``TypeError``, which Parsl raises for these cases.
    """
