"""Large results from workers on this machine, handed to the executor through shared memory.

::

    worker process (one per rank)                      executor process (its I/O thread)
    -----------------------------                      ---------------------------------
    result of >= 1 MiB, serialized in chunks
    pwritev into a record of its own file              RESULTS carry the reference
      <arena dir>/result-<pid>-<random>   --ref-->      open the file once (checked), preadv
    b"S1\\n" reference to the pool, the                the record, zero its sequence (freed),
    interchange, the executor                          deserialize

Through the sockets a 1 MiB result is copied on every hop (worker, pool,
interchange, executor), each time into freshly allocated memory. Instead, each
worker owns one file in the executor's owner-only arena directory under
``/dev/shm``, created 0600 with ``O_EXCL`` and sized to its budget with
``ftruncate`` (sparse: only pages written hold memory). It writes each large
result into a free record of that file with ``pwritev`` (the serializer's
chunks, never joined), and only a short reference travels. Since a worker
keeps reusing the same records, their pages are allocated once per run.

A record::

    uint64 sequence | uint64 task id | the serialized result

A reference, in place of the result (no serializer's header starts with ``S``)::

    b"S1\\n" | uint64 offset | uint64 length | uint64 sequence | uint64 task id | the file's name (UTF-8)

The worker is the only writer of records and the only allocator of its file;
the executor frees a record by zeroing its sequence once it has copied the
bytes out, and the worker takes back every record whose sequence changed
before it allocates. A result that does not fit (larger than the file, or no
free record because earlier results are unread) or cannot be written
(``/dev/shm`` full: ``ENOSPC``) travels through the sockets instead. System
calls, not mappings, move the bytes on both sides: a full ``/dev/shm`` is an
error, never a ``SIGBUS``, and a truncated file is a short read.

The reference names a file, not a path: the executor opens only names of
this form inside its own arena directory, with ``O_NOFOLLOW``, and only
regular files owned by its user; the record must carry the reference's
sequence and task id. Anything else fails that task with
:class:`SharedResultError`. The executor unlinks a file when it first opens it
and keeps the descriptor until it shuts down, so the memory goes when both
sides have closed it. A file never opened (a worker killed while it wrote its
first large result) goes with the arena directory when the executor shuts down,
or when the next executor starts if this one was killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import stat
import struct
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from flowlib.executors.high_throughput.arena import FreeList
from flowlib.serialize.errors import DeserializationError

logger = logging.getLogger(__name__)

RESULT_HEADER = b"S1\n"
"""The first bytes of a result payload that is a reference into a worker's result file."""
SHARED_RESULT_BYTES = 1 << 20
"""Results from this size on go through shared memory when the worker has a result file."""
RESULT_BYTES_PER_POOL = 256 << 20
"""Shared memory for large results, per worker pool at most (divided among its workers)."""
RESULT_BYTES_PER_WORKER = 64 << 20
"""Shared memory for large results, per worker at most: a larger result takes the sockets."""
_REUSED_BUFFER = 8 << 20
"""The executor reads results up to this size into one buffer it keeps (its pages stay allocated)."""
_RECORD = struct.Struct("=QQ")
_SEQUENCE = struct.Struct("=Q")
_REFERENCE = struct.Struct("=QQQQ")
_ALIGN = 4096
_MAX_IOVEC = 512
_NAME = re.compile(rb"result-[0-9]+-[0-9a-f]{16}")
_FREED = _SEQUENCE.pack(0)

T = TypeVar("T")


class SharedResultError(DeserializationError):
    """A task's result could not be read from the shared memory its worker wrote it to.

    The file is missing or is not one of this executor's result files, the
    record is truncated, or it no longer holds the task's result. The kernel
    adds the task's id and function to the message.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason, header=RESULT_HEADER, what="the task's result")


def budget_per_worker(workers: int) -> int:
    """Bytes of shared memory for the results of each of ``workers`` workers of one pool."""
    return min(RESULT_BYTES_PER_WORKER, RESULT_BYTES_PER_POOL // max(1, workers))


def is_shared_result(payload: Any) -> bool:
    """Whether a result payload is a reference into a worker's result file."""
    return not isinstance(payload, tuple) and bytes(payload[:3]) == RESULT_HEADER  # Parts: a large one


def _align(size: int) -> int:
    return (size + _ALIGN - 1) // _ALIGN * _ALIGN


def _pwrite_all(fd: int, buffers: Sequence[Any], offset: int) -> None:
    """Write ``buffers`` one after the other at ``offset``, however many and however short the writes."""
    queue = deque(memoryview(buffer).cast("B") for buffer in buffers)
    while queue:
        written = os.pwritev(fd, [queue[i] for i in range(min(len(queue), _MAX_IOVEC))], offset)
        if written == 0:
            raise OSError("pwritev wrote nothing")
        offset += written
        while queue and written >= len(queue[0]):
            written -= len(queue.popleft())
        if written:
            queue[0] = queue[0][written:]


class ResultWriter:
    """A worker's side: writes large results into records of its own file in the arena directory.

    The file is created on first use; if that fails, :attr:`failed` says why
    and :meth:`put` always returns None.
    """

    def __init__(self, directory: str, size: int) -> None:
        self.directory = directory
        self.size = size
        self.failed: str | None = None
        self.name = f"result-{os.getpid()}-{secrets.token_hex(8)}"
        self.path = os.path.join(directory, self.name)
        self.written = 0
        """Results written to the file so far."""
        self._fd: int | None = None
        self._free = FreeList(size)
        self._outstanding: dict[int, tuple[int, int]] = {}  # record start -> (its length, its sequence)
        self._sequence = 0

    def _file(self) -> int | None:
        if self._fd is None and self.failed is None:
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
            try:
                fd = os.open(self.path, flags, 0o600)
            except OSError as e:
                self._give_up(f"cannot create the result file {self.path}: {e}")
                return None
            try:
                os.ftruncate(fd, self.size)  # sparse: pages are taken as records are written
            except OSError as e:
                os.close(fd)
                self._give_up(f"cannot size the result file {self.path}: {e}")
                return None
            self._fd = fd
        return self._fd

    def _give_up(self, reason: str) -> None:
        self.failed = reason
        logger.warning("%s; large results go through the sockets instead", reason)
        self.close()
        with contextlib.suppress(OSError):  # no reference to it was sent
            os.unlink(self.path)

    def _reclaim(self, fd: int) -> None:
        """Take back the records the executor has read (it zeroed their sequence)."""
        for start, (length, sequence) in list(self._outstanding.items()):
            if _SEQUENCE.unpack(os.pread(fd, _SEQUENCE.size, start))[0] != sequence:
                del self._outstanding[start]
                self._free.release(start, length)

    def put(self, task_id: int, chunks: Sequence[Any], length: int) -> bytes | None:
        """Write a serialized result (``chunks``, ``length`` bytes in all); return its reference.

        None when it does not fit now or cannot be written (the caller sends the bytes instead).
        """
        need = _align(_RECORD.size + length)
        if self.failed is not None or need > self.size:
            return None
        fd = self._file()
        if fd is None:
            return None
        try:
            if self._outstanding:
                self._reclaim(fd)
            start = self._free.allocate(need)
            if start is None:
                return None
            self._sequence += 1
            sequence = self._sequence
            try:  # the record's sequence is 0 (freed) until the bytes are all there
                _pwrite_all(fd, chunks, start + _RECORD.size)
                os.pwrite(fd, _RECORD.pack(sequence, task_id), start)
            except BaseException:
                self._free.release(start, need)
                raise
        except OSError as e:  # ENOSPC: /dev/shm is full; this result takes the sockets, later ones try again
            logger.warning("cannot write a result of %d bytes to %s: %s; sent through the sockets", length, self.path, e)
            return None
        self._outstanding[start] = (need, sequence)
        self.written += 1
        body = _REFERENCE.pack(start, length, sequence, task_id)
        return RESULT_HEADER + body + self.name.encode()

    def close(self) -> None:
        """Close the file (at exit). It stays: references to it may still be on their way to the executor."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class ResultReader:
    """The executor's side: reads references to workers' result files and frees their records."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.received = 0
        """Results read from shared memory so far."""
        self.bytes_received = 0
        """Their bytes."""
        self._files: dict[bytes, int] = {}
        self._buffer = bytearray()

    def _open(self, name: bytes) -> int:
        fd = self._files.get(name)
        if fd is not None:
            return fd
        shown = name.decode(errors="replace")
        if _NAME.fullmatch(name) is None:
            raise SharedResultError(f"the worker named {shown!r} as its result file, which is not a result file's name")
        path = os.path.join(self.directory, shown)
        try:  # O_NONBLOCK: a FIFO put there must not block the executor
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as e:
            raise SharedResultError(f"cannot open the result file {path}: {e}") from e
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            os.close(fd)
            raise SharedResultError(f"the result file {path} is not a regular file of this user")
        # Its name goes now: the file lives while the worker or this reader holds it, and nothing is left behind
        # when either dies. Later references to it use the descriptor kept here.
        with contextlib.suppress(OSError):
            os.unlink(path)
        self._files[name] = fd
        return fd

    def _parse(self, reference: Any) -> tuple[int, int, int, int, bytes]:
        raw = bytes(reference)
        head = len(RESULT_HEADER)
        if len(raw) <= head + _REFERENCE.size or raw[:head] != RESULT_HEADER:
            raise SharedResultError(f"malformed shared-memory result reference ({len(raw)} bytes)")
        start, length, sequence, task_id = _REFERENCE.unpack_from(raw, head)
        return start, length, sequence, task_id, raw[head + _REFERENCE.size :]

    def _record(self, fd: int, start: int, sequence: int, task_id: int, path: str, when: str) -> None:
        found = os.pread(fd, _RECORD.size, start)
        if len(found) < _RECORD.size:
            raise SharedResultError(f"the result file {path} ends before the record at {start}")
        found_sequence, found_task = _RECORD.unpack(found)
        if (found_sequence, found_task) != (sequence, task_id):
            raise SharedResultError(
                f"the record at {start} of {path} {when} holds sequence {found_sequence} of executor task "
                f"{found_task}, not sequence {sequence} of task {task_id}"
            )

    def load(self, reference: Any, task_id: int, use: Callable[[memoryview], T]) -> T:
        """Read the result ``reference`` names for executor task ``task_id``, free its record, return ``use(bytes)``.

        Raises :class:`SharedResultError` when the reference is malformed or
        names another task, or the record cannot be read whole.
        """
        start, length, sequence, ref_task, name = self._parse(reference)
        if ref_task != task_id:
            raise SharedResultError(f"the worker's reference names executor task {ref_task}, not {task_id}")
        fd = self._open(name)
        path = os.path.join(self.directory, name.decode(errors="replace"))
        self._record(fd, start, sequence, task_id, path, "")
        if length <= _REUSED_BUFFER:
            if len(self._buffer) < length:
                self._buffer = bytearray(_REUSED_BUFFER)
            buffer = self._buffer
        else:
            buffer = bytearray(length)
        view = memoryview(buffer)[:length]
        try:
            got, position = 0, start + _RECORD.size
            while got < length:
                n = os.preadv(fd, [view[got:]], position + got)
                if n == 0:
                    raise SharedResultError(
                        f"the result file {path} is truncated: {got} of the {length} bytes of the record at {start}"
                    )
                got += n
            self._record(fd, start, sequence, task_id, path, "changed while it was read: it")
            os.pwrite(fd, _FREED, start)  # the worker may reuse the record now
            self.received += 1
            self.bytes_received += length
            return use(view)
        except OSError as e:
            raise SharedResultError(f"cannot read the result file {path}: {e}") from e
        finally:
            with contextlib.suppress(BufferError):  # something kept a slice; it goes with the garbage
                view.release()

    def discard(self, reference: Any) -> None:
        """Free the record of a result nobody waits for (its future was cancelled); errors are ignored."""
        try:
            start, _, sequence, task_id, name = self._parse(reference)
            fd = self._open(name)
            path = os.path.join(self.directory, name.decode(errors="replace"))
            self._record(fd, start, sequence, task_id, path, "")
            os.pwrite(fd, _FREED, start)
        except (SharedResultError, OSError) as e:
            logger.debug("a shared-memory result nobody waited for could not be freed: %s", e)

    def close(self) -> None:
        """Close every result file (their memory goes once the workers close them too)."""
        for fd in self._files.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._files.clear()
        self._buffer = bytearray()
