"""Large payloads as several frames: never joined by the sender, never one huge CurveZMQ frame.

A serialized task is a list of chunks (what the pickler wrote: its small
frames, and each large ``bytes`` argument as the object itself). Joining them
costs a copy of the whole payload, and CurveZMQ encrypts each ZeroMQ frame
into a fresh buffer of its size, plus a plaintext copy of it. So a payload of
``N`` bytes sent as one frame over encrypted TCP costs the sender about ``3N``
besides the argument itself.

Instead a large payload travels as :class:`Parts`: frames of at most
:data:`PART_BYTES`, each a view of a chunk (no copy) or, for runs of small
chunks, their join. CurveZMQ then encrypts one part at a time, in its I/O
thread, while the parts before it are on the wire. Every hop forwards the
parts as they came; the one reader that needs contiguous bytes (the worker,
through its Pipe, and the executor, unpickling a result) reassembles them.

The wire format (which payload spans how many frames) is in :mod:`.protocol`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

PART_BYTES = 4 << 20
"""Bytes per frame at most, for payloads sent in parts."""
_DIRECT = 256 << 10
"""Chunks from this size on become frames of their own (views); smaller ones are joined with their neighbours."""


class Parts(tuple[Any, ...]):
    """The frames of one payload that travels as several, in order (at least two)."""

    __slots__ = ()

    @property
    def nbytes(self) -> int:
        """The payload's size: the parts' sizes added up."""
        return sum(_size(part) for part in self)

    def __repr__(self) -> str:
        return f"Parts({len(self)} frames, {self.nbytes} bytes)"


def _size(frame: Any) -> int:
    if isinstance(frame, bytes):
        return len(frame)
    return frame.nbytes if isinstance(frame, memoryview) else memoryview(frame).nbytes


def nbytes(payload: Any) -> int:
    """The size of a payload, one frame or :class:`Parts`."""
    kind = type(payload)
    if kind is bytes:
        return len(payload)
    if kind is Parts:
        return payload.nbytes
    return payload.nbytes if kind is memoryview else memoryview(payload).nbytes


def _slices(buffer: Any, limit: int) -> list[Any]:
    view = memoryview(buffer).cast("B")
    return [view[start : start + limit] for start in range(0, len(view), limit)]


def from_chunks(chunks: list[Any], limit: int = PART_BYTES) -> Any:
    """The frames for a payload made of ``chunks``: one frame when it is small, else :class:`Parts`.

    Consumes ``chunks`` (the list is emptied): each small chunk is let go once
    it has been copied into its run, so a payload of many small pickle frames
    is not held twice.
    """
    frames: list[Any] = []
    run: list[Any] = []
    run_size = 0

    def end_run() -> None:
        nonlocal run, run_size
        if run:
            frames.append(run[0] if len(run) == 1 else b"".join(run))
            run, run_size = [], 0

    chunks.reverse()  # pop from the end: each chunk leaves the list as it is used
    while chunks:
        chunk = chunks.pop()
        size = _size(chunk)
        if size >= _DIRECT:
            end_run()
            frames.extend(_slices(chunk, limit) if size > limit else [chunk])
            continue
        if run_size + size > limit:
            end_run()
        run.append(chunk)
        run_size += size
    end_run()
    if not frames:
        return b""
    return frames[0] if len(frames) == 1 else Parts(frames)


def split(buffer: Any, limit: int = PART_BYTES) -> Any:
    """``buffer`` itself when it has at most ``limit`` bytes, else :class:`Parts` of views of it (no copy)."""
    if _size(buffer) <= limit:
        return buffer
    return Parts(_slices(buffer, limit))


def joined(payload: Any) -> Any:
    """A payload as one contiguous buffer (a copy only when it is :class:`Parts`)."""
    return b"".join(payload) if isinstance(payload, Parts) else payload


def flatten(payloads: Iterable[Any]) -> tuple[list[Any], list[int] | None]:
    """Frames for a message carrying ``payloads``, and the frame count of each (None when all are 1)."""
    if not isinstance(payloads, list):
        payloads = list(payloads)
    if Parts not in map(type, payloads):  # the common case, checked at C speed
        return payloads, None
    frames: list[Any] = []
    counts: list[int] | None = None
    for index, payload in enumerate(payloads):
        if isinstance(payload, Parts):
            if counts is None:
                counts = [1] * index
            counts.append(len(payload))
            frames.extend(payload)
        else:
            if counts is not None:
                counts.append(1)
            frames.append(payload)
    return frames, counts


def group(frames: Sequence[Any], counts: Sequence[int]) -> list[Any]:
    """The payloads of frames sent by :func:`flatten` with ``counts``; ValueError naming a mismatch."""
    if sum(counts) != len(frames):
        raise ValueError(f"the parts counts add up to {sum(counts)} frames, but {len(frames)} payload frames arrived")
    payloads: list[Any] = []
    position = 0
    for index, count in enumerate(counts):
        if count == 1:
            payloads.append(frames[position])
        elif count > 1:
            payloads.append(Parts(frames[position : position + count]))
        else:
            raise ValueError(f"payload {index} is said to have {count} parts")
        position += count
    return payloads
