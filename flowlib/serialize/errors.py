"""Errors raised while turning objects into bytes and back.

Two families, one per direction. Both keep the exception of the underlying
method (pickle, cloudpickle, dill) as ``__cause__``, and both survive a round
trip through pickle, so a worker can report them to the submitting side.
"""

from __future__ import annotations

from flowlib.errors import FlowlibError


class SerializationError(FlowlibError):
    """Raised when no serialization method can turn an object into bytes.

    Raised by :func:`flowlib.serialize.serialize` and, when an app is invoked, by
    :func:`flowlib.serialize.pack_apply_message`; the kernel then fails the task
    with it. Usually the object holds state that only makes sense inside one
    process (a lock, an open generator, a socket). The message names what could
    not be serialized ("keyword argument 'lock'", "positional argument 1", "the
    function") and its type; ``reason`` is the last method's complaint, whose
    exception is kept as ``__cause__``.
    """

    def __init__(
        self,
        what: str,
        *,
        type_name: str | None = None,
        reason: str = "",
        task_id: int | str | None = None,
        function_name: str | None = None,
    ) -> None:
        super().__init__(what)
        self.what = what
        """What could not be serialized, e.g. ``"keyword argument 'lock'"``."""
        self.type_name = type_name
        """Qualified type name of the offending object, e.g. ``"_thread.lock"``."""
        self.reason = reason
        """Why the last method refused it."""
        self.task_id = task_id
        """The task being submitted, when known."""
        self.function_name = function_name
        """The name of the app's function, when known."""

    @property
    def fname(self) -> str:
        """The function whose invocation failed (Parsl's attribute name)."""
        return self.function_name if self.function_name is not None else self.what

    def __str__(self) -> str:
        text = f"cannot serialize {self.what}"
        if self.type_name is not None:
            text += f" of type {self.type_name}"
        if self.task_id is not None:
            text += f" for task {self.task_id}"
        if self.function_name is not None:
            text += f" (function {self.function_name!r})"
        if self.reason:
            text += f": {self.reason}"
        return text


class DeserializationError(FlowlibError):
    """Raised when bytes cannot be turned back into an object.

    Raised by :func:`flowlib.serialize.deserialize` and the ``unpack_*``
    functions, on a worker (a task's function or arguments) or in the
    submitting process (a task's result): the data is empty, truncated or
    corrupt, its header names no known method, or the payload refers to
    something missing here (a module that is not installed). When a task was
    being read, the message names what (``what``), the task and its function;
    otherwise it names the header seen. The underlying exception, if any, is
    ``__cause__``.
    """

    def __init__(
        self,
        reason: str,
        *,
        header: bytes | None = None,
        what: str | None = None,
        task_id: int | str | None = None,
        function_name: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        """Why the data could not be read."""
        self.header = header
        """The header found at the start of the data, if any."""
        self.what = what
        """What was being read, e.g. ``"the task's arguments"``, when known."""
        self.task_id = task_id
        """The task whose data it was, when known (set by the kernel)."""
        self.function_name = function_name
        """The name of the task's function, when known."""

    def __str__(self) -> str:
        if self.what is None and self.task_id is None and self.function_name is None:
            if self.header is None:
                return f"cannot deserialize data: {self.reason}"
            return f"cannot deserialize data with header {self.header!r}: {self.reason}"
        text = f"cannot deserialize {self.what or 'data'}"
        if self.task_id is not None:
            text += f" of task {self.task_id}"
        if self.function_name is not None:
            text += f" (function {self.function_name!r})"
        return f"{text}: {self.reason}"
