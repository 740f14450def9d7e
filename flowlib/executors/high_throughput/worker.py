"""One worker process of a worker pool: runs the tasks its manager sends, one at a time.

::

    manager (pool_manager.py)                        this process (one per rank)
    -------------------------                        ---------------------------
    write_message(tid | payload)   ---- Pipe ---->   PipeReader.receive(), unpack, func(*args, **kwargs)
    PipeReader.read()              <--- Pipe -----   write_message(tid | status | result)

The manager may send a worker a second task while it runs one (prefetch, see
:mod:`.pool_manager`); the worker runs its tasks in the order they came. SIGUSR1
asks the worker to give back every task it holds and has not started: each is
answered with status :data:`RETURNED` (never sent on to the interchange), and
the manager queues it again. While a task runs, the signal handler does that at
once; between tasks, before the next one starts.

Both directions use ``Connection.send_bytes`` framing (a 4-byte length, then
the message), read and written here with fewer copies (:class:`PipeReader`).
``tid`` is the task id as a native unsigned 64-bit integer (8 bytes), ``status``
one byte (:class:`~flowlib.executors.high_throughput.protocol.TaskStatus`),
``payload`` the apply message made by
:func:`flowlib.serialize.pack_res_spec_apply_message` (or, for a large one,
a reference into the executor's shared-memory arena: :mod:`.arena`), and ``result`` the
serialized return value or a serialized
:class:`~flowlib.app.errors.RemoteExceptionWrapper` (or, for a large one when the
pool is on the executor's machine, a reference into this worker's result file:
:mod:`.shared_results`).

The process is forked by the multiprocessing forkserver, which has already
imported this module. It never outlives its pool: Linux's ``PR_SET_PDEATHSIG``
kills it when the forkserver (which exits with the manager) goes, and it exits
when its end of the Pipe reports EOF.
"""

from __future__ import annotations

import bisect
import ctypes
import logging
import os
import signal
import struct
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from flowlib.app.errors import RemoteExceptionWrapper
from flowlib.executors.high_throughput.arena import REFERENCE_HEADER, ArenaReader
from flowlib.executors.high_throughput.parts import nbytes
from flowlib.executors.high_throughput.protocol import TaskStatus
from flowlib.executors.high_throughput.shared_results import SHARED_RESULT_BYTES, ResultWriter
from flowlib.serialize import serialize, unpack_res_spec_apply_message
from flowlib.serialize.errors import SerializationError
from flowlib.serialize.facade import FunctionCache, serialize_chunks, type_name

TASK_ID = struct.Struct("=Q")
"""Manager to worker: the task id that precedes the payload."""
RESULT_HEAD = struct.Struct("=QB")
"""Worker to manager: task id and status that precede the result."""

_LENGTH = struct.Struct("!i")
_LONG_LENGTH = struct.Struct("!Q")
_READ_SIZE = 1 << 16
_MAX_IOVEC = 512  # buffers per writev, below IOV_MAX (1024 on Linux)
_OK = TaskStatus.OK.value
_EXCEPTION = TaskStatus.EXCEPTION.value
RETURNED = 255
"""Worker to manager only: the task was given back unstarted (after SIGUSR1); queue it again."""
REVOKE_SIGNAL = signal.SIGUSR1
"""The signal that makes a worker give back the tasks it has not started."""
_PR_SET_PDEATHSIG = 1

logger = logging.getLogger("flowlib.executors.high_throughput.worker")
_ARENA = ArenaReader()
_FUNCTIONS = FunctionCache()
"""This worker's recently used functions, deserialized once each."""
_RESULTS: ResultWriter | None = None
"""This worker's result file in the executor's arena directory (None: every result takes the Pipe)."""


def _unpack_task(payload: memoryview) -> tuple[Any, tuple[Any, ...], dict[str, Any], dict[str, Any]]:
    return unpack_res_spec_apply_message(payload, _FUNCTIONS)


class PipeReader:
    """Reads ``Connection.send_bytes`` messages from one end of a Pipe, with few copies and syscalls.

    The framing is multiprocessing's: a big-endian signed 32-bit length (or -1
    and then an unsigned 64-bit length, for messages over 2 GiB), then the
    bytes. One ``read()`` may bring several small messages (the manager's side
    reads them all at once); a message larger than one read goes straight into
    a buffer of its own size instead of being concatenated piece by piece.
    On a blocking descriptor :meth:`read` blocks until something arrives.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pending = b""
        """Bytes received that do not yet make a whole message."""
        self.body: bytearray | None = None
        """A large message being read in place."""
        self.filled = 0
        """How much of ``body`` has arrived."""

    def read(self) -> list[Any]:
        """Read once; return the messages completed (possibly none). EOFError when the writer has gone."""
        if self.body is not None:
            got = os.readv(self.fd, [memoryview(self.body)[self.filled :]])
            if got == 0:
                raise EOFError
            self.filled += got
            if self.filled < len(self.body):
                return []
            body, self.body = self.body, None
            return [body]
        chunk = os.read(self.fd, _READ_SIZE)
        if not chunk:
            raise EOFError
        data = self.pending + chunk if self.pending else chunk
        view = memoryview(data)
        size = len(data)
        messages: list[Any] = []
        pos = 0
        while size - pos >= 4:
            (n,) = _LENGTH.unpack_from(data, pos)
            head = 4
            if n < 0:
                if size - pos < 12:
                    break
                (n,) = _LONG_LENGTH.unpack_from(data, pos + 4)
                head = 12
            end = pos + head + n
            if end <= size:
                messages.append(view[pos + head : end])
                pos = end
                continue
            if n > _READ_SIZE:  # read the rest straight into the message's own buffer
                body = bytearray(n)
                have = size - pos - head
                body[:have] = view[pos + head :]
                self.body, self.filled = body, have
                pos = size
            break
        self.pending = bytes(view[pos:]) if pos < size else b""
        return messages

    def receive(self) -> Any:
        """Block until one whole message has arrived and return it (for a peer that sends one at a time)."""
        while True:
            messages = self.read()
            if messages:
                if len(messages) > 1:
                    raise RuntimeError(f"{len(messages)} messages arrived at once; expected one")
                return messages[0]


def _frame(head: bytes, body: Any) -> tuple[list[Any], int]:
    """The buffers of one message (length prefix with ``head``, then ``body``'s pieces) and their size in bytes."""
    if isinstance(body, (list, tuple)):
        pieces = list(body)
        n = len(head) + sum(nbytes(piece) for piece in pieces)
    else:
        pieces = [body]
        n = len(head) + len(body)
    length = _LENGTH.pack(n) if n <= 0x7FFFFFFF else _LENGTH.pack(-1) + _LONG_LENGTH.pack(n)
    return [length + head, *pieces], len(length) + n


def write_message(fd: int, head: bytes, body: Any) -> None:
    """Write ``head + body`` as one ``Connection.send_bytes`` message, without copying ``body``.

    ``body`` is a buffer, or a list or :class:`~.parts.Parts` of buffers written one after the other.
    """
    buffers, total = _frame(head, body)
    written = os.writev(fd, buffers[:_MAX_IOVEC])
    if written < total:  # a signal cut a large write short, or many pieces
        _write_rest(fd, buffers, written)


class PartialWrite(OSError):
    """:func:`write_messages` failed after the first ``delivered`` messages had gone into the Pipe whole.

    Raised by the manager's side when a worker's Pipe breaks (the worker died)
    in the middle of a batch: the messages delivered whole may have been read
    and run; the others certainly were not.
    """

    def __init__(self, delivered: int, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror)
        self.delivered = delivered


def write_messages(fd: int, messages: Sequence[tuple[bytes, Any]]) -> None:
    """Write several ``head + body`` messages with as few system calls as possible.

    ``body`` is a buffer, or a list or :class:`~.parts.Parts` of buffers. On
    failure :class:`PartialWrite` says how many messages went out whole.
    """
    buffers: list[Any] = []
    ends: list[int] = []  # where each message ends in the byte stream
    total = 0
    for head, body in messages:
        framed, size = _frame(head, body)
        buffers.extend(framed)
        total += size
        ends.append(total)
    progress = [0]  # bytes out so far
    try:
        progress[0] = os.writev(fd, buffers[:_MAX_IOVEC])
        if progress[0] < total:
            _write_rest(fd, buffers, progress[0], progress)
    except OSError as e:
        raise PartialWrite(bisect.bisect_right(ends, progress[0]), e) from e


def _write_rest(fd: int, buffers: list[Any], written: int, progress: list[int] | None = None) -> None:
    """Write what is left of ``buffers`` once ``written`` bytes of them are out (``progress[0]``: bytes out so far)."""
    queue = deque(memoryview(buffer).cast("B") for buffer in buffers)
    while queue:
        while queue and written >= len(queue[0]):
            written -= len(queue.popleft())
        if not queue:
            return
        if written:
            queue[0] = queue[0][written:]
        written = os.writev(fd, [queue[i] for i in range(min(len(queue), _MAX_IOVEC))])
        if progress is not None:
            progress[0] += written


@dataclass(frozen=True)
class WorkerSetup:
    """Everything a worker needs to set itself up; sent from the manager when it starts."""

    rank: int
    """This worker's rank in the pool, 0 to count - 1; a replacement keeps the rank."""
    environment: dict[str, str] = field(default_factory=dict)
    """Variables added to the environment (PARSL_WORKER_RANK, CUDA_VISIBLE_DEVICES, ...)."""
    cpus: tuple[int, ...] | None = None
    """CPUs to pin this process to, or None to keep the inherited affinity."""
    log_path: str | None = None
    """The worker's log file (appended to), or None for no log."""
    working_dir: str | None = None
    """Directory to change into, or None."""
    debug: bool = False
    """Log every task at DEBUG level."""
    result_dir: str | None = None
    """The executor's arena directory, for large results (None: the pool is not on the executor's machine)."""
    result_bytes: int = 0
    """Bytes of shared memory for this worker's large results."""
    log_format: str | None = None
    """A ``logging.Formatter`` format for the worker's log, or None for the worker's own."""


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent exits (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            logger.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))
    except (OSError, AttributeError) as e:
        logger.warning("cannot set PR_SET_PDEATHSIG: %s", e)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def release_forkserver() -> None:
    """Close this process's copy of the forkserver's "alive" pipe.

    multiprocessing hands every forkserver child the write end of the pipe
    whose EOF tells the forkserver that its clients are gone. A worker holding
    it would keep the forkserver alive after the manager dies, and the
    forkserver's exit is what triggers the workers' PR_SET_PDEATHSIG. A task
    that uses the forkserver context itself gets a forkserver of its own.
    """
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass
        server._forkserver_alive_fd = None  # type: ignore[union-attr]


def _setup_logging(setup: WorkerSetup) -> None:
    root = logging.getLogger("flowlib")
    for handler in list(root.handlers):
        root.removeHandler(handler)
    if setup.log_path is None:
        root.addHandler(logging.NullHandler())
        return
    handler = logging.FileHandler(setup.log_path)
    handler.setFormatter(
        logging.Formatter(
            setup.log_format
            or f"%(asctime)s.%(msecs)03d %(levelname)s worker {setup.rank} pid %(process)d: %(message)s",
            datefmt="%Y-%m-%d %H:%M:%S",
        )
    )
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if setup.debug else logging.INFO)
    root.propagate = False


def execute(task_id: int, payload: memoryview) -> tuple[int, Any]:
    """Run one task; return its status byte and the serialized result or exception wrapper.

    A large result is a list of chunks, or a reference into this worker's result file when it has one.
    """
    try:
        if payload[:3] == REFERENCE_HEADER:
            func, args, kwargs, _spec = _ARENA.load(payload, _unpack_task)
        else:
            func, args, kwargs, _spec = _unpack_task(payload)
        result = func(*args, **kwargs)
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # user code may raise anything, SystemExit included
        tb = e.__traceback__
        return _EXCEPTION, _wrap(type(e), e, tb.tb_next if tb is not None else None, task_id)
    try:
        chunks, size = serialize_chunks(result)
    except SerializationError as e:
        error = SerializationError(
            "the task's result",
            type_name=type_name(result),
            reason=e.reason,
            function_name=getattr(func, "__name__", None),
        )  # no task id here: ours is the executor's number; the kernel adds the task's own id
        return _EXCEPTION, _wrap(SerializationError, error, None, task_id)
    if size < SHARED_RESULT_BYTES:
        return _OK, chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if _RESULTS is not None:
        reference = _RESULTS.put(task_id, chunks, size)
        if reference is not None:
            return _OK, reference
    return _OK, chunks  # written to the Pipe one chunk after the other


def _wrap(kind: type[BaseException], error: BaseException, tb: object, task_id: int) -> bytes:
    """Serialize a RemoteExceptionWrapper; if the exception itself cannot be, say so instead."""
    try:
        return serialize(RemoteExceptionWrapper(kind, error, tb))  # type: ignore[arg-type]
    except SerializationError as e:
        replacement = SerializationError(
            f"the exception raised by the task ({type_name(error)}: {error})",
            type_name=type_name(error),
            reason=e.reason,
        )
        return serialize(RemoteExceptionWrapper(SerializationError, replacement, tb))  # type: ignore[arg-type]


class _Inbox:
    """The tasks a worker has read and not started, and the SIGUSR1 handler that gives them back."""

    def __init__(self, fd: int, reader: PipeReader) -> None:
        self.fd = fd
        self.reader = reader
        self.tasks: deque[Any] = deque()
        self.in_task = False
        """True while user code runs: the handler may then use the Pipe itself."""
        self.revoke = False
        """A SIGUSR1 came between tasks; give back before starting the next."""

    def on_signal(self, signum: int, frame: Any) -> None:
        if self.in_task:
            self.in_task = False  # a second signal during this one only sets the flag
            try:
                self.give_back()
            finally:
                self.in_task = True
        else:
            self.revoke = True

    def give_back(self) -> None:
        """Read what waits in the Pipe (never blocks), then answer RETURNED for every unstarted task."""
        self.revoke = False
        fd, tasks = self.fd, self.tasks
        try:
            os.set_blocking(fd, False)
            try:
                while True:
                    tasks.extend(self.reader.read())
            finally:
                os.set_blocking(fd, True)
        except (BlockingIOError, EOFError, OSError):  # nothing more now, or the manager has gone
            pass
        unpack_tid, pack_head = TASK_ID.unpack_from, RESULT_HEAD.pack
        try:
            while tasks:
                (tid,) = unpack_tid(tasks[0])
                write_message(fd, pack_head(tid, RETURNED), b"")
                tasks.popleft()
        except OSError:
            tasks.clear()  # the manager has gone; the next read ends the worker


def serve(conn: Connection, debug: bool) -> None:
    """Run tasks from ``conn`` until the manager closes it."""
    fd = conn.fileno()
    reader = PipeReader(fd)
    inbox = _Inbox(fd, reader)
    tasks = inbox.tasks
    previous = signal.signal(REVOKE_SIGNAL, inbox.on_signal)
    unpack_tid, pack_head = TASK_ID.unpack_from, RESULT_HEAD.pack
    done = 0
    try:
        while True:
            if inbox.revoke:
                inbox.give_back()
            try:
                while not tasks:
                    tasks.extend(reader.read())
            except (EOFError, OSError):
                logger.info("the manager closed the connection after %d tasks; exiting", done)
                return
            message = tasks.popleft()
            (tid,) = unpack_tid(message)
            if debug:
                logger.debug("task %d started", tid)
                started = time.perf_counter()
            inbox.in_task = True
            try:
                status, result = execute(tid, memoryview(message)[TASK_ID.size :])
            finally:
                inbox.in_task = False
            del message
            if debug:
                logger.debug(
                    "task %d finished in %.3f ms: %s",
                    tid,
                    (time.perf_counter() - started) * 1e3,
                    TaskStatus(status).name,
                )
            try:
                write_message(fd, pack_head(tid, status), result)
            except OSError:
                logger.info("the manager closed the connection while task %d finished; exiting", tid)
                return
            done += 1
    finally:
        signal.signal(REVOKE_SIGNAL, previous)


def run(conn: Connection, setup: WorkerSetup) -> None:
    """The worker process's entry point (a multiprocessing Process target)."""
    die_with_parent()
    release_forkserver()
    os.environ.update(setup.environment)
    _setup_logging(setup)
    try:
        if setup.cpus is not None:
            os.sched_setaffinity(0, setup.cpus)
        if setup.working_dir is not None:
            os.chdir(setup.working_dir)
    except OSError as e:
        logger.error("cannot set up the worker: %s", e)
        raise SystemExit(1) from None
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "unknown"
    accelerator = setup.environment.get("CUDA_VISIBLE_DEVICES")
    logger.info(
        "started: cpus %s, accelerator %s, working directory %s",
        affinity,
        accelerator if accelerator is not None else "none",
        os.getcwd(),
    )
    global _RESULTS
    if setup.result_dir is not None and setup.result_bytes > 0:
        _RESULTS = ResultWriter(setup.result_dir, setup.result_bytes)
    try:
        serve(conn, setup.debug)
    except KeyboardInterrupt:
        logger.info("interrupted (SIGINT); exiting")
    finally:
        if _RESULTS is not None:
            _RESULTS.close()
        conn.close()
        logging.shutdown()
