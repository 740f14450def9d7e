"""The interface every serialization method implements.

A serializer produces ``identifier + payload``: a short header that ends in
``b"\\n"`` and names the method, followed by whatever the method writes. The
facade reads the header to pick the serializer that can read the payload.
"""

from __future__ import annotations

import abc
from typing import Any, BinaryIO, ClassVar

from flowlib.serialize.errors import DeserializationError

Bytes = bytes | bytearray | memoryview
"""Anything :meth:`SerializerBase.deserialize` accepts."""

MAX_HEADER_LENGTH = 8
"""Longest identifier allowed, newline included."""


class SerializerBase(abc.ABC):
    """One way of turning objects into bytes and back.

    Subclasses set ``identifier`` and implement :meth:`serialize` and
    :meth:`deserialize`; they may override :meth:`write` to stream into a buffer
    without building an intermediate ``bytes``.
    """

    identifier: ClassVar[bytes]
    """Header that starts every output, e.g. ``b"01\\n"``; unique per method."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        ident = cls.__dict__.get("identifier")
        if ident is None:
            return
        if (
            not isinstance(ident, bytes)
            or not 2 <= len(ident) <= MAX_HEADER_LENGTH
            or ident.find(b"\n") != len(ident) - 1
        ):
            raise TypeError(
                f"{cls.__qualname__}.identifier must be 2 to {MAX_HEADER_LENGTH} bytes"
                f" ending in the only b'\\n', not {ident!r}"
            )

    @abc.abstractmethod
    def serialize(self, obj: Any) -> bytes:
        """Return ``identifier + payload`` for ``obj``; raise whatever the method raises."""

    @abc.abstractmethod
    def deserialize(self, data: Bytes) -> Any:
        """Rebuild the object from ``identifier + payload`` made by :meth:`serialize`."""

    def write(self, obj: Any, stream: BinaryIO) -> None:
        """Write ``identifier + payload`` for ``obj`` to ``stream``.

        On error, part of the output may already be in ``stream``; the caller
        rewinds it.
        """
        stream.write(self.serialize(obj))

    def payload(self, data: Bytes) -> memoryview:
        """Check that ``data`` starts with this identifier; return the rest without copying."""
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        if view[: len(self.identifier)] != self.identifier:
            seen = bytes(view[: len(self.identifier)])
            raise DeserializationError(f"{type(self).__name__} expects header {self.identifier!r}", header=seen)
        return view[len(self.identifier) :]
