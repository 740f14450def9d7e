"""How the kernel finds futures inside a task's arguments, and replaces them by results.

A :class:`DependencyResolver` is a pair of functions applied to each positional
argument, each keyword value and each element of ``inputs=``:

- ``traverse_to_gather(obj)`` returns the futures found in ``obj``;
- ``traverse_to_unwrap(obj)`` returns ``obj`` with each future replaced by its result.

:data:`SHALLOW_DEPENDENCY_RESOLVER` (the default) looks only at the object itself;
:data:`DEEP_DEPENDENCY_RESOLVER` also looks inside lists, tuples, sets and dict
values (and keys), however deeply nested. Register more container types on the
deep resolver's singledispatch functions ``deep_traverse_to_gather`` and
``deep_traverse_to_unwrap``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from functools import singledispatch
from typing import Any


@dataclass(frozen=True)
class DependencyResolver:
    """A pair of functions that find futures in an argument and substitute their results."""

    traverse_to_gather: Callable[[Any], Sequence[Future[Any]]]
    traverse_to_unwrap: Callable[[Any], Any]


def shallow_traverse_to_gather(obj: Any) -> list[Future[Any]]:
    """``[obj]`` if obj is a future, else ``[]``."""
    return [obj] if isinstance(obj, Future) else []


def shallow_traverse_to_unwrap(obj: Any) -> Any:
    """obj's result if obj is a future, else obj."""
    return obj.result() if isinstance(obj, Future) else obj


@singledispatch
def deep_traverse_to_gather(obj: Any) -> list[Future[Any]]:
    """Futures in obj, looking inside containers."""
    return [obj] if isinstance(obj, Future) else []


@deep_traverse_to_gather.register(list)
@deep_traverse_to_gather.register(tuple)
@deep_traverse_to_gather.register(set)
@deep_traverse_to_gather.register(frozenset)
def _gather_sequence(obj: Any) -> list[Future[Any]]:
    found: list[Future[Any]] = []
    for item in obj:
        found.extend(deep_traverse_to_gather(item))
    return found


@deep_traverse_to_gather.register(dict)
def _gather_dict(obj: dict[Any, Any]) -> list[Future[Any]]:
    found: list[Future[Any]] = []
    for key, value in obj.items():
        found.extend(deep_traverse_to_gather(key))
        found.extend(deep_traverse_to_gather(value))
    return found


@singledispatch
def deep_traverse_to_unwrap(obj: Any) -> Any:
    """obj with every future inside it (at any depth) replaced by its result."""
    return obj.result() if isinstance(obj, Future) else obj


@deep_traverse_to_unwrap.register(list)
@deep_traverse_to_unwrap.register(set)
@deep_traverse_to_unwrap.register(frozenset)
def _unwrap_collection(obj: Any) -> Any:
    return type(obj)(deep_traverse_to_unwrap(item) for item in obj)


@deep_traverse_to_unwrap.register(tuple)
def _unwrap_tuple(obj: tuple[Any, ...]) -> Any:
    items = [deep_traverse_to_unwrap(item) for item in obj]
    if hasattr(obj, "_fields"):  # a namedtuple keeps its type
        return type(obj)(*items)
    return type(obj)(items)


@deep_traverse_to_unwrap.register(dict)
def _unwrap_dict(obj: dict[Any, Any]) -> Any:
    return {deep_traverse_to_unwrap(k): deep_traverse_to_unwrap(v) for k, v in obj.items()}


SHALLOW_DEPENDENCY_RESOLVER = DependencyResolver(shallow_traverse_to_gather, shallow_traverse_to_unwrap)
"""Futures are found only as direct arguments, keyword values and ``inputs`` elements."""

DEEP_DEPENDENCY_RESOLVER = DependencyResolver(deep_traverse_to_gather, deep_traverse_to_unwrap)
"""Futures are also found inside (nested) lists, tuples, sets and dicts."""
