"""Pure helpers for the benchmark: batch sizing, order statistics, parsing.

Nothing here touches a clock, a thread or a library under test, so every
function is unit-tested directly (``tests/test_benchmark.py``).

This module, like the whole ``flowlib.benchmark`` package, imports only the
standard library and uses relative imports, so ``benchmarks/side_by_side.py``
can load the package by file path without running ``flowlib/__init__.py``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = [
    "median",
    "next_batch_size",
    "parse_names",
    "parse_sizes",
    "percentile",
]


def next_batch_size(
    tasks: int,
    elapsed: float,
    target: float,
    *,
    max_growth: float = 100.0,
    minimum: int = 1,
) -> int:
    """Size the next throughput batch so that it should take about *target* seconds.

    The last batch ran *tasks* tasks in *elapsed* seconds; assuming the rate
    stays the same, ``tasks * target / elapsed`` tasks take *target* seconds.
    The step is bounded to a factor of *max_growth* either way, because the
    first, small batch measures start-up costs more than steady-state rate
    and one noisy measurement should not make the next batch absurdly large.

    >>> next_batch_size(100, 0.5, 10.0)
    2000
    >>> next_batch_size(100, 0.0, 10.0)
    10000
    """
    if tasks < 1:
        raise ValueError(f"tasks must be at least 1, got {tasks}")
    if target <= 0:
        raise ValueError(f"target must be positive, got {target}")
    if max_growth < 1:
        raise ValueError(f"max_growth must be at least 1, got {max_growth}")
    if elapsed <= 0:
        wanted = tasks * max_growth
    else:
        wanted = tasks * target / elapsed
    bounded = min(max(wanted, tasks / max_growth), tasks * max_growth)
    return max(minimum, int(round(bounded)))


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the *fraction* quantile of *values* by linear interpolation.

    ``fraction`` is in ``[0, 1]``: 0.5 is the median, 0.95 the 95th percentile.
    The interpolation is the usual "linear" method between closest ranks.
    """
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be within [0, 1], got {fraction}")
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return float(ordered[low])
    weight = position - low
    return float(ordered[low] * (1.0 - weight) + ordered[high] * weight)


def median(values: Sequence[float]) -> float:
    """Return the median of *values* (the mean of the middle two for even lengths)."""
    return percentile(values, 0.5)


def parse_sizes(text: str) -> tuple[int, ...]:
    """Parse a comma-separated list of positive task counts such as ``"10000,100000"``.

    Underscores and a ``k`` suffix are accepted (``"10_000"``, ``"100k"``).
    """
    sizes: list[int] = []
    for part in _split_list(text):
        digits = part.lower().replace("_", "")
        scale = 1
        if digits.endswith("k"):
            digits, scale = digits[:-1], 1000
        try:
            value = int(digits) * scale
        except ValueError:
            raise ValueError(f"not a task count: {part!r}") from None
        if value < 1:
            raise ValueError(f"task counts must be positive, got {part!r}")
        sizes.append(value)
    if not sizes:
        raise ValueError("expected at least one task count")
    return tuple(sizes)


def parse_names(text: str, allowed: Iterable[str]) -> tuple[str, ...]:
    """Parse a comma-separated list of names, each of which must be in *allowed*.

    Duplicates are dropped, first occurrence wins; ``"all"`` means every name
    in *allowed*, in its order.
    """
    known = list(allowed)
    names: list[str] = []
    for part in _split_list(text):
        if part == "all":
            chosen = known
        elif part in known:
            chosen = [part]
        else:
            raise ValueError(f"unknown name {part!r}; choose from {', '.join(known)} or all")
        names.extend(name for name in chosen if name not in names)
    if not names:
        raise ValueError("expected at least one name")
    return tuple(names)


def _split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]
