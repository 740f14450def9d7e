"""Finding a task's dependencies, substituting their results, and naming failures.

Pure functions over a task's arguments: no threads, no I/O. The default (shallow)
resolver has an inlined fast path because it runs once per task.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from flowlib.dataflow.dependency_resolvers import SHALLOW_DEPENDENCY_RESOLVER, DependencyResolver
from flowlib.dataflow.futures import AppFuture


def gather_dependencies(
    args: tuple[Any, ...], kwargs: dict[str, Any], resolver: DependencyResolver | None
) -> list[Future[Any]]:
    """The futures in args, keyword values and the ``inputs`` list, in argument order."""
    if resolver is None or resolver is SHALLOW_DEPENDENCY_RESOLVER:
        deps = [a for a in args if isinstance(a, Future)]
        if kwargs:
            for key, value in kwargs.items():
                if isinstance(value, Future):
                    deps.append(value)
                elif key == "inputs" and isinstance(value, (list, tuple)):
                    deps.extend(v for v in value if isinstance(v, Future))
        return deps
    gather = resolver.traverse_to_gather
    found: list[Future[Any]] = []
    for a in args:
        found.extend(gather(a))
    for key, value in kwargs.items():
        if key == "inputs" and isinstance(value, (list, tuple)):
            for item in value:
                found.extend(gather(item))
        else:
            found.extend(gather(value))
    return found


def unwrap_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any], resolver: DependencyResolver | None
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Copies of args and kwargs with every gathered future replaced by its result."""
    unwrap = (resolver or SHALLOW_DEPENDENCY_RESOLVER).traverse_to_unwrap
    new_args = tuple(unwrap(a) for a in args)
    new_kwargs = {}
    for key, value in kwargs.items():
        if key == "inputs" and isinstance(value, (list, tuple)):
            new_kwargs[key] = [unwrap(v) for v in value]
        else:
            new_kwargs[key] = unwrap(value)
    return new_args, new_kwargs


def dependency_name(fut: Future[Any]) -> str:
    """How a failed dependency is named in DependencyError: ``"task N"`` or the future's repr."""
    if isinstance(fut, AppFuture):
        return f"task {fut.tid}"
    from flowlib.app.futures import DataFuture

    if isinstance(fut, DataFuture) and fut.tid is not None:
        return f"task {fut.tid}"
    return repr(fut)


def failed_dependencies(deps: Sequence[Future[Any]]) -> list[tuple[BaseException, str]]:
    """``(exception, name)`` for each done dependency that failed or was cancelled."""
    from concurrent.futures import CancelledError

    failures: list[tuple[BaseException, str]] = []
    for dep in deps:
        if dep.cancelled():
            failures.append((CancelledError(f"{dependency_name(dep)} was cancelled"), dependency_name(dep)))
            continue
        exc = dep.exception()
        if exc is not None:
            failures.append((exc, dependency_name(dep)))
    return failures
