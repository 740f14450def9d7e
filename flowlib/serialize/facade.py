"""Choose a serialization method, and frame the messages that carry app invocations.

Selection rule, tried in order, each attempt writing into the same buffer:

1. stdlib pickle, unless the object refers to a function or class defined in
   ``__main__``: pickle records those by name, and a worker's ``__main__`` is
   not the user's script or notebook. The pickler notices such a reference the
   moment it meets it and gives up at once, so no time is spent finishing a
   payload that would be thrown away;
2. cloudpickle, which ships ``__main__`` code, lambdas and closures by value;
3. dill;
4. otherwise :class:`SerializationError`, naming the object's type, with the
   last method's exception as ``__cause__``.

An apply message is::

    b"A1\\n" | u32 big-endian n | function: n bytes | (args, kwargs): the rest
    b"R1\\n" | u32 big-endian n | function: n bytes | (args, kwargs, resource_specification)

where each part is ``header + payload`` as :func:`serialize` makes it. The
function is a part of its own so that a failure can be blamed precisely.
"""

from __future__ import annotations

import io
import pickle
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any, BinaryIO

from flowlib.serialize.base import MAX_HEADER_LENGTH, Bytes, SerializerBase
from flowlib.serialize.concretes import (
    PROTOCOL,
    CloudpickleSerializer,
    DillCallableSerializer,
    DillSerializer,
    PickleSerializer,
    ReferencesMainModule,
)
from flowlib.serialize.errors import DeserializationError, SerializationError

_CHAIN: tuple[SerializerBase, ...] = (
    PickleSerializer(allow_main=False),
    CloudpickleSerializer(),
    DillSerializer(),
)
_READERS: dict[bytes, SerializerBase] = {
    s.identifier: s
    for s in (
        PickleSerializer(),
        CloudpickleSerializer(),
        DillSerializer(),
        DillCallableSerializer(),
    )
}

_PICKLE_ID = PickleSerializer.identifier
_ATOMS = frozenset((bytes, str, int, float, bool, type(None)))
_SMALL_ATOM = 4096
"""A bytes or str argument longer than this takes the general path, which never copies it."""

APPLY_HEADER = b"A1\n"
"""Header of a message made by :func:`pack_apply_message`."""
RES_SPEC_APPLY_HEADER = b"R1\n"
"""Header of a message made by :func:`pack_res_spec_apply_message`."""
_LENGTH = struct.Struct("!I")

Invocation = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class _ChunkStream:
    """A write-only stream that keeps what it is given as a list of chunks, joined once at the end.

    pickle hands a large ``bytes`` payload to ``write`` as the object itself;
    keeping the reference instead of growing one buffer (as ``io.BytesIO``
    does, by repeated reallocation) makes a 1 MiB argument cost one copy.
    Only what the serializers use is here: ``write``, ``tell`` and rewinding
    to an earlier position with ``seek`` + ``truncate``.
    """

    __slots__ = ("chunks", "size")

    def __init__(self) -> None:
        self.chunks: list[Any] = []
        self.size = 0

    def write(self, data: Any) -> int:
        if type(data) is not bytes:
            data = bytes(data)  # a view into a buffer the writer may reuse or change
        self.chunks.append(data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def seek(self, position: int) -> int:
        if not 0 <= position <= self.size:
            raise ValueError(f"_ChunkStream only rewinds (to 0..{self.size}), not to {position}")
        while self.size > position:
            last = self.chunks.pop()
            self.size -= len(last)
            if self.size < position:  # keep the head of a chunk that straddles the position
                self.chunks.append(last[: position - self.size])
                self.size = position
        return position

    def truncate(self) -> int:
        return self.size  # seek() already dropped everything after the position

    def getvalue(self) -> bytes:
        chunks = self.chunks
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def type_name(obj: Any) -> str:
    """``module.QualName`` of ``obj``'s type, without ``builtins.``: ``"_thread.lock"``."""
    kind = type(obj)
    module = getattr(kind, "__module__", None)
    if module in (None, "builtins"):
        return kind.__qualname__
    return f"{module}.{kind.__qualname__}"


def _write(obj: Any, stream: BinaryIO) -> Exception | None:
    """Append ``obj`` to ``stream`` with the first method that works; else return the last error."""
    start = stream.tell()
    error: Exception | None = None
    for method in _CHAIN:
        try:
            method.write(obj, stream)
        except ReferencesMainModule:
            pass
        except Exception as exc:  # each method fails in its own way; try the next one
            error = exc
        else:
            return None
        stream.seek(start)
        stream.truncate()
    return error


def serialize(obj: Any) -> bytes:
    """Return ``header + payload`` for ``obj``, using the first method that works.

    Raises :class:`SerializationError` when none does.
    """
    stream = _ChunkStream()
    error = _write(obj, stream)  # type: ignore[arg-type]
    if error is not None:
        raise SerializationError("object", type_name=type_name(obj), reason=str(error)) from error
    return stream.getvalue()


def _split_header(view: memoryview) -> tuple[bytes, memoryview]:
    head = bytes(view[:MAX_HEADER_LENGTH])
    end = head.find(b"\n")
    if end < 0:
        reason = f"no header: no newline in the first bytes {head!r}" if head else "empty data"
        raise DeserializationError(reason)
    return head[: end + 1], view[end + 1 :]


def _as_view(data: Bytes) -> memoryview:
    view = memoryview(data)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def deserialize(data: Bytes) -> Any:
    """Rebuild an object from the output of :func:`serialize` (or of any serializer here).

    Raises :class:`DeserializationError` for empty, truncated or corrupt data,
    an unknown header, or a payload that cannot be rebuilt here.
    """
    view = _as_view(data)
    if view[:3] == _PICKLE_ID:  # the common case, read without looking the method up
        try:
            return pickle.loads(view[3:])
        except Exception as exc:
            raise DeserializationError(f"{type(exc).__name__}: {exc}", header=_PICKLE_ID) from exc
    header, _ = _split_header(view)
    reader = _READERS.get(header)
    if reader is None:
        hint = ""
        if header in (APPLY_HEADER, RES_SPEC_APPLY_HEADER):
            hint = "; this is an apply message, read it with unpack_apply_message"
        raise DeserializationError(f"unknown serialization method{hint}", header=header)
    try:
        return reader.deserialize(view)
    except Exception as exc:
        raise DeserializationError(f"{type(exc).__name__}: {exc}", header=header) from exc


def _blame(what: str, obj: Any, error: Exception, task_id: int | str | None, func: Any) -> SerializationError:
    exc = SerializationError(
        what,
        type_name=type_name(obj),
        reason=str(error),
        task_id=task_id,
        function_name=getattr(func, "__name__", None),
    )
    exc.__cause__ = error
    return exc


def _find_culprit(
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    extra: tuple[Any, ...],
    error: Exception,
    task_id: int | str | None,
    func: Any,
) -> SerializationError:
    """Serialize the parts one at a time (failure path only) to name the one that fails."""
    parts: list[tuple[str, Any]] = [(f"positional argument {i}", a) for i, a in enumerate(args)]
    parts += [(f"keyword argument {k!r}", v) for k, v in kwargs.items()]
    parts += [("resource specification", x) for x in extra]
    for what, obj in parts:
        part_error = _write(obj, io.BytesIO())
        if part_error is not None:
            return _blame(what, obj, part_error, task_id, func)
    return _blame("arguments", (args, kwargs, *extra), error, task_id, func)


def serialize_function(func: Callable[..., Any], *, task_id: int | str | None = None) -> bytes:
    """Serialize a task's function alone, to reuse with ``function_bytes=`` for many tasks."""
    stream = io.BytesIO()
    error = _write(func, stream)
    if error is not None:
        raise _blame("the function", func, error, task_id, func)
    return stream.getvalue()


def _pack(
    header: bytes,
    func: Callable[..., Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    extra: tuple[Any, ...],
    task_id: int | str | None,
    function_bytes: bytes | None = None,
) -> _ChunkStream:
    args = tuple(args)
    kwargs = dict(kwargs)
    stream = _ChunkStream()
    stream.write(header)
    stream.write(_LENGTH.pack(0))  # the function's length, filled in below
    start = stream.tell()
    if function_bytes is not None:
        stream.write(function_bytes)
    else:
        error = _write(func, stream)  # type: ignore[arg-type]
        if error is not None:
            raise _blame("the function", func, error, task_id, func)
    func_length = stream.tell() - start
    error = _write((args, kwargs, *extra), stream)  # type: ignore[arg-type]
    if error is not None:
        raise _find_culprit(args, kwargs, extra, error, task_id, func)
    stream.chunks[1] = _LENGTH.pack(func_length)
    return stream


def pack_apply_message(
    func: Callable[..., Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    *,
    task_id: int | str | None = None,
) -> bytes:
    """Serialize an invocation ``func(*args, **kwargs)`` into one message.

    Raises :class:`SerializationError` naming the part that failed (the
    function, a positional argument by index counted from 0, or a keyword
    argument by name), its type, and ``task_id`` when given.
    """
    return _pack(APPLY_HEADER, func, args, kwargs, (), task_id).getvalue()


def pack_res_spec_apply_message(
    func: Callable[..., Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    resource_specification: Mapping[str, Any],
    *,
    task_id: int | str | None = None,
    function_bytes: bytes | None = None,
) -> bytes:
    """Like :func:`pack_apply_message`, also carrying the task's resource specification.

    ``function_bytes`` (from :func:`serialize_function`) skips serializing ``func`` again.
    """
    return _pack(
        RES_SPEC_APPLY_HEADER,
        func,
        args,
        kwargs,
        (dict(resource_specification),),
        task_id,
        function_bytes,
    ).getvalue()


def pack_res_spec_apply_chunks(
    func: Callable[..., Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    resource_specification: Mapping[str, Any],
    *,
    task_id: int | str | None = None,
    function_bytes: bytes | None = None,
) -> tuple[list[bytes], int]:
    """:func:`pack_res_spec_apply_message` as the chunks the picklers wrote, not joined, and their total size.

    Joined, the chunks are exactly that function's message. A large ``bytes``
    argument is one of the chunks itself (no copy), so a sender that writes
    the chunks one by one (several frames, or ``writev``) never holds the
    payload twice.
    """
    if function_bytes is not None and _small_atoms(args) and _small_atoms(kwargs.values()):
        spec = dict(resource_specification)
        if _small_atoms(spec.values()):
            # Plain pickle writes exactly what the general path's first method would, without the
            # method chain, the __main__ check (atoms cannot refer to __main__) and the chunk stream.
            data = pickle.dumps((tuple(args), dict(kwargs), spec), PROTOCOL)
            chunks = [RES_SPEC_APPLY_HEADER, _LENGTH.pack(len(function_bytes)), function_bytes, _PICKLE_ID, data]
            return chunks, len(RES_SPEC_APPLY_HEADER) + _LENGTH.size + len(function_bytes) + len(_PICKLE_ID) + len(data)
    stream = _pack(
        RES_SPEC_APPLY_HEADER,
        func,
        args,
        kwargs,
        (dict(resource_specification),),
        task_id,
        function_bytes,
    )
    return stream.chunks, stream.size


def _small_atoms(values: Any) -> bool:
    """Whether every value is None, a bool, an exact int or float, or a short exact bytes or str."""
    atoms = _ATOMS
    for value in values:
        kind = type(value)
        if kind not in atoms or (kind is bytes or kind is str) and len(value) > _SMALL_ATOM:
            return False
    return True


def serialize_chunks(obj: Any) -> tuple[list[bytes], int]:
    """:func:`serialize` as the chunks the picklers wrote, not joined, and their total size."""
    stream = _ChunkStream()
    error = _write(obj, stream)  # type: ignore[arg-type]
    if error is not None:
        raise SerializationError("object", type_name=type_name(obj), reason=str(error)) from error
    return stream.chunks, stream.size


class FunctionCache:
    """The functions of recent apply messages, deserialized once each and kept by their serialized bytes.

    A worker runs the same few functions again and again; a function sent by
    value (defined in ``__main__`` or a notebook) costs about 10 µs to
    deserialize, a good part of a short task. With the cache, such a function
    keeps its module-level state between the tasks one worker runs, as an
    imported function does. At most ``size`` functions are kept; the oldest
    goes first.
    """

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._functions: dict[bytes, Callable[..., Any]] = {}

    def load(self, data: Bytes) -> Callable[..., Any]:
        """The function serialized as ``data`` (deserialized on first sight)."""
        key = bytes(data)
        func = self._functions.get(key)
        if func is None:
            func = deserialize(key)
            if not callable(func):
                raise DeserializationError("malformed apply message: the function is not callable")
            if len(self._functions) >= self.size:
                del self._functions[next(iter(self._functions))]
            self._functions[key] = func
        return func


def _unpack(data: Bytes, functions: FunctionCache | None = None) -> tuple[bytes, Callable[..., Any], tuple[Any, ...]]:
    view = _as_view(data)
    header, rest = _split_header(view)
    if header not in (APPLY_HEADER, RES_SPEC_APPLY_HEADER):
        raise DeserializationError("not an apply message", header=header)
    if len(rest) < _LENGTH.size:
        raise DeserializationError("truncated apply message", header=header)
    (func_length,) = _LENGTH.unpack(rest[: _LENGTH.size])
    body = rest[_LENGTH.size :]
    if len(body) <= func_length:
        raise DeserializationError("truncated apply message", header=header)
    try:
        func = deserialize(body[:func_length]) if functions is None else functions.load(body[:func_length])
    except DeserializationError as e:
        e.what = "the task's function"
        raise
    try:
        payload = deserialize(body[func_length:])
    except DeserializationError as e:
        e.what, e.function_name = "the task's arguments", getattr(func, "__name__", None)
        raise
    expected = 2 if header == APPLY_HEADER else 3
    if not (
        isinstance(payload, tuple) and len(payload) == expected and isinstance(payload[1], dict) and callable(func)
    ):
        raise DeserializationError("malformed apply message", header=header)
    return header, func, payload


def unpack_apply_message(data: Bytes) -> Invocation:
    """Return ``(func, args, kwargs)`` from a message made by :func:`pack_apply_message`.

    A message that also carries a resource specification is refused; read it
    with :func:`unpack_res_spec_apply_message`.
    """
    header, func, payload = _unpack(data)
    if header != APPLY_HEADER:
        raise DeserializationError(
            "message carries a resource specification; read it with unpack_res_spec_apply_message",
            header=header,
        )
    return func, payload[0], payload[1]


def unpack_res_spec_apply_message(
    data: Bytes,
    functions: FunctionCache | None = None,
) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], dict[str, Any]]:
    """Return ``(func, args, kwargs, resource_specification)``.

    Reads messages from :func:`pack_res_spec_apply_message`, and also those from
    :func:`pack_apply_message`, whose resource specification is then ``{}``.
    With ``functions``, the function comes from that cache when it was seen before.
    """
    header, func, payload = _unpack(data, functions)
    resource_specification = payload[2] if header == RES_SPEC_APPLY_HEADER else {}
    return func, payload[0], payload[1], resource_specification
