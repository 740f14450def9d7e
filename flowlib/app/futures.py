"""``DataFuture``: a future for a file that a task (or a staging task) produces.

An app's ``outputs=[File(...)]`` come back as ``app_future.outputs``, one
``DataFuture`` each; a staging plugin that moves a file in a separate task returns
one too. A ``DataFuture`` follows its parent future: when the parent succeeds its
result is the :class:`~flowlib.data_provider.files.File`; when the parent fails it
fails with the same exception; when the parent is cancelled it is cancelled.
Passing a ``DataFuture`` to another app makes that app wait for the file.
"""

from __future__ import annotations

from concurrent.futures import Future, InvalidStateError
from typing import Any

from flowlib.data_provider.files import File
from flowlib.dataflow.futures import cancel_and_notify

__all__ = ["DataFuture"]


class DataFuture(Future[File]):
    """A future whose result is a :class:`File`, completed by a parent future.

    Args:
        fut: the parent future: the app (or staging task) that makes the file.
        file_obj: the file this future stands for; it is the result on success.
        tid: the task id of the parent, when it is a task.

    Raises:
        TypeError: ``fut`` is not a ``concurrent.futures.Future`` or ``file_obj``
            is not a ``File``.
    """

    def __init__(self, fut: Future[Any], file_obj: File, tid: int | None = None) -> None:
        super().__init__()
        if not isinstance(fut, Future):
            raise TypeError(f"DataFuture needs a concurrent.futures.Future as parent, not {type(fut).__name__}")
        if not isinstance(file_obj, File):
            raise TypeError(f"DataFuture needs a File, not {type(file_obj).__name__}")
        self._tid = tid
        self.file_obj = file_obj
        self.parent = fut
        # Runs at once if the parent is already done.
        fut.add_done_callback(self._parent_done)

    def _parent_done(self, fut: Future[Any]) -> None:
        try:
            if fut.cancelled():
                cancel_and_notify(self)
                return
            exc = fut.exception()
            if exc is not None:
                self.set_exception(exc)
            else:
                self.set_result(self.file_obj)
        except InvalidStateError:
            # Already completed (e.g. set directly by its owner): keep the first outcome.
            pass

    @property
    def tid(self) -> int | None:
        """The task id of the parent task, or ``None``."""
        return self._tid

    @property
    def app_fut(self) -> Future[Any]:
        """The parent future (same as :attr:`parent`)."""
        return self.parent

    @property
    def filepath(self) -> str:
        """The local path of the file (see :attr:`File.filepath`)."""
        return self.file_obj.filepath

    @property
    def filename(self) -> str:
        """The file's path, the same as :attr:`filepath` (as in Parsl).

        Unlike :attr:`File.filename <flowlib.data_provider.files.File.filename>`,
        which is the last path component, this is what to ``open()``:
        ``open(fut.outputs[0].filename)`` works from the directory the script runs in.
        """
        return self.filepath

    def cancel(self) -> bool:
        """Cancel the parent; this future is cancelled with it.

        Returns ``True`` when this future ends up cancelled, as
        ``concurrent.futures.Future.cancel`` does.
        """
        if self.done():
            return self.cancelled()
        return bool(self.parent.cancel()) and self.cancelled()

    def running(self) -> bool:
        """True while the parent is running."""
        return not self.done() and self.parent.running()

    def __repr__(self) -> str:
        if self.cancelled():
            state = "cancelled"
        elif self.done():
            state = "failed" if self.exception() is not None else "finished"
        elif self.running():
            state = "running"
        else:
            state = "pending"
        tid = "" if self._tid is None else f" tid={self._tid}"
        return f"<DataFuture at {id(self):#x}{tid} state={state} file={self.file_obj!r}>"
