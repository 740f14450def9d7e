"""Apps: ``python_app``, ``bash_app``, ``join_app`` and their errors.

Submodules load on first attribute access, so ``flowlib.app.errors`` works after a
plain ``import flowlib`` without making ``import flowlib`` slower.
"""

from __future__ import annotations

import importlib
from typing import Any

_SUBMODULES = {"app", "bash", "errors", "futures", "python", "special", "walltime"}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"flowlib.app.{name}")
    raise AttributeError(f"module 'flowlib.app' has no attribute {name!r}")
