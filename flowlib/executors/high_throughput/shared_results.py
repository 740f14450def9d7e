"""Large results from workers on this machine, handed to the executor through shared memory.

::

    worker process (one per rank)                      executor process (its I/O thread)
    -----------------------------                      ---------------------------------
    result of >= 1 MiB, serialized in chunks,
    copied into a record of its own mapped file        RESULTS carry the reference
      <arena dir>/result-<pid>-<random>   --ref-->      open and map the file once (checked),
    b"S1\n" reference to the pool, the                deserialize from the record, then
    interchange, the executor                          zero its sequence (freed)

Through the sockets a 1 MiB result is copied on every hop (worker, pool,
interchange, executor), each time into freshly allocated memory. Instead, each
worker owns one file in the executor's owner-only arena directory under
``/dev/shm``, created 0600 with ``O_EXCL``, sized to its budget with
``ftruncate`` (sparse: only pages used hold memory) and kept mapped. It copies
each large result (the serializer's chunks, never joined) into a free record
and only a short reference travels. The executor maps the file once too and
unpickles straight from the record. Since a worker keeps reusing the same
records, their pages are faulted in once per run, not once per result.

A record::

    uint64 sequence | uint64 task id | the serialized result

A reference, in place of the result (no serializer's header starts with ``S``)::

    b"S1\n" | uint64 offset | uint64 length | uint64 sequence | uint64 task id | the file's name (UTF-8)

The worker is the only writer of records and the only allocator of its file;
the executor frees a record by zeroing its sequence once it has read it, and
the worker takes back every record whose sequence changed before it
allocates. When earlier results still hold the room a result needs, the
worker waits for the executor to read them (at most :data:`ROOM_WAIT`). A
result that does not fit (larger than the file, or no room after that wait)
or whose memory cannot be reserved
(``/dev/shm`` full: ``posix_fallocate`` fails) travels through the sockets
instead: a full ``/dev/shm`` never becomes a ``SIGBUS``.

The reference names a file, not a path: the executor opens only names of
this form inside its own arena directory, with ``O_NOFOLLOW``, and only
regular files owned by its user; the record (read with ``pread`` before it
is touched through the mapping) must lie inside the file and carry the
reference's sequence and task id, before and after it is read. Anything else
fails that task with :class:`SharedResultError`. The executor unlinks a file
when it first opens it and keeps it open, so its memory goes when both sides
have closed it: at shutdown, or once the worker is gone and sent nothing for
:data:`DEAD_FILE_GRACE` seconds (checked when a new worker's file appears). A file never opened (a worker killed
while it wrote its first large result) goes with the arena directory when the
executor shuts down, or when the next executor starts if this one was killed.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import re
import secrets
import stat
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from flowlib.executors.high_throughput.arena import FreeList, pid_alive
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
ROOM_WAIT = 1.0
"""Seconds a worker waits, at most, for the executor to read earlier results and free room for the next one."""
_ROOM_POLL = 0.0005
DEAD_FILE_GRACE = 60.0
"""Seconds after its last result before the executor closes the file of a worker that is gone.

A reference the worker sent just before it died may still be on its way; none takes a minute.
"""
_RECORD = struct.Struct("=QQ")
_SEQUENCE = struct.Struct("=Q")
_REFERENCE = struct.Struct("=QQQQ")
_ALIGN = 4096
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


class ResultWriter:
    """A worker's side: writes large results into records of its own file in the arena directory.

    The file is created and mapped on first use; if that fails, :attr:`failed`
    says why and :meth:`put` always returns None. Pages are reserved
    (``posix_fallocate``) the first time a record reaches them, so a full
    ``/dev/shm`` is an error there (that result takes the sockets), never a
    ``SIGBUS`` on the mapping.
    """

    def __init__(self, directory: str, size: int, wait: float = ROOM_WAIT) -> None:
        self.directory = directory
        self.size = size
        self.wait = wait
        """Seconds :meth:`put` waits for room at most (the executor reading earlier results), then gives up."""
        self.failed: str | None = None
        self.name = f"result-{os.getpid()}-{secrets.token_hex(8)}"
        self.path = os.path.join(directory, self.name)
        self.written = 0
        """Results written to the file so far."""
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
        self._reserved = 0  # bytes from the start of the file whose pages are reserved
        self._free = FreeList(size)
        self._outstanding: dict[int, tuple[int, int]] = {}  # record start -> (its length, its sequence)
        self._sequence = 0

    def _mapping(self) -> mmap.mmap | None:
        if self._map is None and self.failed is None:
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
            try:
                fd = os.open(self.path, flags, 0o600)
            except OSError as e:
                self._give_up(f"cannot create the result file {self.path}: {e}")
                return None
            self._fd = fd
            try:
                os.ftruncate(fd, self.size)  # sparse: pages are taken as records reach them
                self._map = mmap.mmap(fd, self.size)
            except OSError as e:
                self._give_up(f"cannot size or map the result file {self.path}: {e}")
                return None
        return self._map

    def _give_up(self, reason: str) -> None:
        self.failed = reason
        logger.warning("%s; large results go through the sockets instead", reason)
        self.close()
        with contextlib.suppress(OSError):  # no reference to it was sent
            os.unlink(self.path)

    def _reclaim(self, mapping: mmap.mmap) -> None:
        """Take back the records the executor has read (it zeroed their sequence)."""
        for start, (length, sequence) in list(self._outstanding.items()):
            if _SEQUENCE.unpack_from(mapping, start)[0] != sequence:
                del self._outstanding[start]
                self._free.release(start, length)

    def _wait_for_room(self, mapping: mmap.mmap, need: int) -> int | None:
        """Room for ``need`` bytes once the executor has read enough earlier results; None after :attr:`wait` s.

        The executor reads results more slowly than the workers make them
        (a burst of large results): waiting here passes that pace back to
        the workers, where sending through the sockets would cost more.
        """
        deadline = time.monotonic() + self.wait
        while self._outstanding and time.monotonic() < deadline:
            time.sleep(_ROOM_POLL)
            self._reclaim(mapping)
            start = self._free.allocate(need)
            if start is not None:
                return start
        return None

    def _reserve(self, end: int) -> bool:
        if end <= self._reserved:
            return True
        assert self._fd is not None
        try:
            os.posix_fallocate(self._fd, self._reserved, end - self._reserved)
        except OSError as e:  # ENOSPC: /dev/shm is full; this result takes the sockets, later ones try again
            logger.warning("cannot reserve %d bytes of shared memory in %s for a result: %s", end, self.path, e)
            return False
        self._reserved = end
        return True

    def put(self, task_id: int, chunks: Sequence[Any], length: int) -> bytes | None:
        """Write a serialized result (``chunks``, ``length`` bytes in all); return its reference.

        None when it does not fit now or its memory cannot be reserved (the caller sends the bytes instead).
        """
        need = _align(_RECORD.size + length)
        if self.failed is not None or need > self.size:
            return None
        mapping = self._mapping()
        if mapping is None:
            return None
        if self._outstanding:
            self._reclaim(mapping)
        start = self._free.allocate(need)
        if start is None:
            start = self._wait_for_room(mapping, need)
            if start is None:
                return None
        if not self._reserve(start + need):
            self._free.release(start, need)
            return None
        self._sequence += 1
        sequence = self._sequence
        position = start + _RECORD.size  # the record's sequence is 0 (freed) until the bytes are all there
        for chunk in chunks:
            size = len(chunk) if type(chunk) is bytes else memoryview(chunk).nbytes
            mapping[position : position + size] = chunk
            position += size
        _RECORD.pack_into(mapping, start, sequence, task_id)
        self._outstanding[start] = (need, sequence)
        self.written += 1
        return RESULT_HEADER + _REFERENCE.pack(start, length, sequence, task_id) + self.name.encode()

    def close(self) -> None:
        """Unmap and close the file (at exit). It stays: references to it may still be on their way."""
        if self._map is not None:
            with contextlib.suppress(BufferError):
                self._map.close()
            self._map = None
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


class ResultReader:
    """The executor's side: reads references to workers' result files and frees their records.

    Each file is opened and mapped (read-only) once; its record headers are
    read with ``pread`` and freed with ``pwrite``, and only checked records
    are read through the mapping.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.received = 0
        """Results read from shared memory so far."""
        self.bytes_received = 0
        """Their bytes."""
        self._files: dict[bytes, tuple[int, mmap.mmap]] = {}
        self._last_used: dict[bytes, float] = {}

    def _open(self, name: bytes) -> tuple[int, mmap.mmap]:
        opened = self._files.get(name)
        if opened is not None:
            self._last_used[name] = time.monotonic()
            return opened
        self._close_dead()  # a new worker: perhaps the replacement of one that died
        shown = name.decode(errors="replace")
        if _NAME.fullmatch(name) is None:
            raise SharedResultError(f"the worker named {shown!r} as its result file, which is not a result file's name")
        path = os.path.join(self.directory, shown)
        try:  # O_NONBLOCK: a FIFO put there must not block the executor
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as e:
            raise SharedResultError(f"cannot open the result file {path}: {e}") from e
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_size == 0:
                raise SharedResultError(f"the result file {path} is not a non-empty regular file of this user")
            mapping = mmap.mmap(fd, info.st_size, prot=mmap.PROT_READ)
        except (OSError, ValueError) as e:
            os.close(fd)
            raise SharedResultError(f"cannot map the result file {path}: {e}") from e
        except SharedResultError:
            os.close(fd)
            raise
        # Its name goes now: the file lives while the worker or this reader holds it, and nothing is left behind
        # when either dies. Later references to it use the descriptor kept here.
        with contextlib.suppress(OSError):
            os.unlink(path)
        self._files[name] = (fd, mapping)
        self._last_used[name] = time.monotonic()
        return fd, mapping

    def _close_dead(self) -> None:
        """Close the files of workers that are gone and silent for :data:`DEAD_FILE_GRACE` s: their memory goes."""
        now = time.monotonic()
        for name, used in list(self._last_used.items()):
            if now - used < DEAD_FILE_GRACE or pid_alive(int(name.split(b"-")[1])):
                continue
            fd, mapping = self._files.pop(name)
            del self._last_used[name]
            with contextlib.suppress(BufferError):
                mapping.close()
            with contextlib.suppress(OSError):
                os.close(fd)
            logger.debug("closed the result file %s of a worker that is gone", name.decode(errors="replace"))

    def _parse(self, reference: Any) -> tuple[int, int, int, int, bytes]:
        raw = bytes(reference)
        head = len(RESULT_HEADER)
        if len(raw) <= head + _REFERENCE.size or raw[:head] != RESULT_HEADER:
            raise SharedResultError(f"malformed shared-memory result reference ({len(raw)} bytes)")
        start, length, sequence, task_id = _REFERENCE.unpack_from(raw, head)
        return start, length, sequence, task_id, raw[head + _REFERENCE.size :]

    def _check(self, fd: int, size: int, start: int, length: int, sequence: int, task_id: int, path: str) -> None:
        if start % _ALIGN or start + _RECORD.size + length > min(size, os.fstat(fd).st_size):
            raise SharedResultError(
                f"the record at {start} of {length} bytes is outside the result file {path} ({size} bytes)"
            )
        found = os.pread(fd, _RECORD.size, start)
        found_sequence, found_task = _RECORD.unpack(found) if len(found) == _RECORD.size else (0, 0)
        if (found_sequence, found_task) != (sequence, task_id):
            raise SharedResultError(
                f"the record at {start} of the result file {path} holds sequence {found_sequence} of executor task "
                f"{found_task}, not sequence {sequence} of task {task_id} (freed, overwritten or never written)"
            )

    def load(self, reference: Any, task_id: int, use: Callable[[memoryview], T]) -> T:
        """Call ``use`` with a view of the result ``reference`` names for executor task ``task_id``; free it.

        The view is valid only during the call. Raises :class:`SharedResultError`
        when the reference is malformed or names another task, or the record
        cannot be read whole.
        """
        start, length, sequence, ref_task, name = self._parse(reference)
        if ref_task != task_id:
            raise SharedResultError(f"the worker's reference names executor task {ref_task}, not {task_id}")
        fd, mapping = self._open(name)
        path = os.path.join(self.directory, name.decode(errors="replace"))
        self._check(fd, len(mapping), start, length, sequence, task_id, path)
        body = start + _RECORD.size
        view = memoryview(mapping)[body : body + length]
        try:
            result = use(view)
        finally:  # whether or not it could be deserialized, the record is done with
            with contextlib.suppress(BufferError):  # something kept a slice; it goes with the garbage
                view.release()
            intact = os.pread(fd, _RECORD.size, start) == _RECORD.pack(sequence, task_id)
            if intact:
                os.pwrite(fd, _FREED, start)  # the worker may reuse the record now
        if not intact:
            raise SharedResultError(f"the record at {start} of the result file {path} was rewritten while it was read")
        self.received += 1
        self.bytes_received += length
        return result

    def discard(self, reference: Any) -> None:
        """Free the record of a result nobody waits for (its future was cancelled); errors are only logged."""
        try:
            start, length, sequence, task_id, name = self._parse(reference)
            fd, mapping = self._open(name)
            path = os.path.join(self.directory, name.decode(errors="replace"))
            self._check(fd, len(mapping), start, length, sequence, task_id, path)
            os.pwrite(fd, _FREED, start)
        except (SharedResultError, OSError) as e:
            logger.debug("a shared-memory result nobody waited for could not be freed: %s", e)

    def close(self) -> None:
        """Unmap and close every result file (their memory goes once the workers close them too)."""
        for fd, mapping in self._files.values():
            with contextlib.suppress(BufferError):
                mapping.close()
            with contextlib.suppress(OSError):
                os.close(fd)
        self._files.clear()
        self._last_used.clear()
