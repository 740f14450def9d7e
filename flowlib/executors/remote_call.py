"""One task as bytes, for engines that run it in another process (Globus Compute, RADICAL-Pilot).

::

    submitting process                      engine's worker process
    pack_call(func, args, kwargs) --bytes--> run_packed_call(payload) --bytes--> unpack_outcome(...)
                                             (value, or a RemoteExceptionWrapper)

The engine moves opaque ``bytes`` both ways, so the engine's own serializer never
has to handle the user's function, and flowlib's serializer (pickle, then
cloudpickle for ``__main__`` code, then dill) decides alone, as it does for the
high-throughput executor. The worker side needs only flowlib installed (no
engine package): this module imports nothing outside flowlib and the standard
library, so an engine can import :func:`run_packed_call` by reference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowlib.app.errors import RemoteExceptionWrapper
from flowlib.serialize import SerializationError, deserialize, pack_apply_message, serialize, unpack_apply_message
from flowlib.serialize.facade import type_name

__all__ = ["pack_call", "run_packed_call", "unpack_outcome"]


def pack_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], task_id: int | str | None = None
) -> bytes:
    """Serialize ``func(*args, **kwargs)``; SerializationError names the part that failed."""
    return pack_apply_message(func, args, kwargs, task_id=task_id)


def run_packed_call(payload: bytes) -> bytes:
    """Run a call made by :func:`pack_call`; return its serialized result or exception wrapper.

    Never raises for a failure of the task itself: the exception travels back,
    with its type and remote traceback, as a serialized RemoteExceptionWrapper.
    """
    try:
        func, args, kwargs = unpack_apply_message(payload)
        result = func(*args, **kwargs)
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # user code may raise anything, SystemExit included
        tb = e.__traceback__
        return _wrap(type(e), e, tb.tb_next if tb is not None else None)
    try:
        return serialize(result)
    except SerializationError as e:
        return _wrap(
            SerializationError,
            SerializationError(
                "the task's result",
                type_name=type_name(result),
                reason=e.reason,
                function_name=getattr(func, "__name__", None),
            ),
            None,
        )


def _wrap(kind: type[BaseException], error: BaseException, tb: Any) -> bytes:
    try:
        return serialize(RemoteExceptionWrapper(kind, error, tb))
    except SerializationError as e:
        replacement = SerializationError(
            f"the exception raised by the task ({type_name(error)}: {error})",
            type_name=type_name(error),
            reason=e.reason,
        )
        return serialize(RemoteExceptionWrapper(SerializationError, replacement, tb))


def unpack_outcome(data: bytes) -> Any:
    """The task's result, or the RemoteExceptionWrapper the kernel turns into its exception."""
    return deserialize(data)
