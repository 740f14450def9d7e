"""Run directories: each kernel gets the next numbered directory under ``run_dir``."""

from __future__ import annotations

import os


def run_number(name: str) -> int | None:
    """The run number of a directory name like ``"007"`` or ``"1000"``, else None."""
    return int(name) if name.isdigit() else None


def make_rundir(base: str | os.PathLike[str]) -> str:
    """Create and return ``base/NNN``, one past the highest number present (000, 001, ..., 999, 1000)."""
    base = os.fspath(base)
    os.makedirs(base, exist_ok=True)
    while True:
        numbers = [n for n in (run_number(d) for d in os.listdir(base)) if n is not None]
        path = os.path.join(base, f"{max(numbers) + 1 if numbers else 0:03d}")
        try:
            os.mkdir(path)
        except FileExistsError:  # another process took this number: try the next
            continue
        return os.path.abspath(path)
