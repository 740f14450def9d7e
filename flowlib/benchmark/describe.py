"""Describing a benchmark run: library versions and executors, for the report."""

from __future__ import annotations

import importlib.metadata
from typing import Any


def library_version(lib_name: str, lib: Any) -> str:
    """The library's version: its ``__version__``, else its installed distribution's."""
    version = getattr(lib, "__version__", None)
    if isinstance(version, str):
        return version
    try:
        return importlib.metadata.version(lib_name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def describe_executors(config: Any) -> list[str]:
    """``Class(label)`` for each executor of a config, for the report."""
    described = []
    for executor in getattr(config, "executors", []):
        label = getattr(executor, "label", "?")
        described.append(f"{type(executor).__name__}({label})")
    return described
