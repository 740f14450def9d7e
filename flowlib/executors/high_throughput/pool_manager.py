"""The main loop of a registered worker pool (see :mod:`.worker_pool` for the picture).

:class:`Manager` owns the pool's link to the interchange (a ZeroMQ socket, or a
Unix socket when the pool runs on the interchange's machine), the local task
queue and the worker slots. :meth:`Manager.run` is a list of named steps over
one ``zmq.Poller`` that watches the interchange link, every worker's Pipe
and every worker's sentinel; each step gets the poll result as an argument.

Prefetch to workers: every idle worker gets a task first; while tasks are still
queued, a worker whose last task took less than ``PREFETCH_SHORT_SECONDS`` also
gets a second one, written into its Pipe in the same system call, so that it
starts the next task without waiting for a round trip through the manager.
A prefetched task is never stuck behind a long one while another worker is
free: once the queue is empty, a worker sits idle and a worker's running task
has taken longer than ``REVOKE_AFTER_SECONDS``, that worker is sent SIGUSR1 and
gives back what it has not started (:mod:`.worker`), which then goes to the
idle worker. A worker that dies with a prefetched task fails only the task it
was running (WorkerLost, as without prefetch); the unstarted ones are queued
again.
"""

from __future__ import annotations

import logging
import os
import signal
import socket as _socket
import sys
import time
from array import array
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

import zmq

from flowlib.executors.high_throughput import protocol
from flowlib.executors.high_throughput.direct_results import ResultSender
from flowlib.executors.high_throughput.fd_poller import FdPoller
from flowlib.executors.high_throughput.links import UnixLink, ZmqLink
from flowlib.executors.high_throughput.parts import nbytes, split
from flowlib.executors.high_throughput.pool_options import (
    EXIT_INTERCHANGE_LOST,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_REJECTED,
    PoolOptions,
)
from flowlib.executors.high_throughput.pool_resources import ResourceSampler
from flowlib.executors.high_throughput.pool_workers import WorkerFactory, WorkerSlot, describe_exit
from flowlib.executors.high_throughput.protocol import Kind, ProtocolError, ResultBatch, TaskBatch, TaskStatus
from flowlib.executors.high_throughput.worker import (
    RESULT_HEAD,
    RETURNED,
    REVOKE_SIGNAL,
    TASK_ID,
    PartialWrite,
    write_message,
    write_messages,
)

logger = logging.getLogger("flowlib.executors.high_throughput.worker_pool")

MAX_IDLE_DEATHS = 5
"""A rank whose worker dies this many times in a row without finishing a task stops the pool."""
EOF_GRACE = 5.0
"""Seconds a worker may live on after closing its Pipe before it is killed."""
DRAIN_LINGER_MS = 5000
"""How long, at a clean exit, unsent results may hold the pool up."""
MAX_MESSAGES_PER_PASS = 1000
"""Interchange messages read in one pass at most, so that results keep flowing under a flood."""
PREFETCH_SHORT_SECONDS = 0.01
"""A worker gets a prefetched task only while its last task took less than this."""
PREFETCH_TINY_SECONDS = 0.001
"""A worker whose last task took less than this holds up to ``PREFETCH_DEPTH`` tasks, topped up in batches."""


def _prefetch_depth(text: str | None, default: int = 8) -> int:
    """``FLOWLIB_PREFETCH_DEPTH``: a whole number from 1 (no prefetch) to 64; anything else gives the default."""
    if text is None:
        return default
    try:
        depth = int(text)
    except ValueError:
        depth = 0
    if not 1 <= depth <= 64:
        logger.warning("FLOWLIB_PREFETCH_DEPTH=%r is not a whole number from 1 to 64; using %d", text, default)
        return default
    return depth


PREFETCH_DEPTH = _prefetch_depth(os.environ.get("FLOWLIB_PREFETCH_DEPTH"))
"""Tasks a worker of tiny tasks holds at most (the running one included); a quick one holds 2; 1 turns prefetch off."""
PREFETCH_BYTES = 1 << 20
"""Payloads of this size or more are never prefetched (they would sit in a Pipe)."""
REVOKE_AFTER_SECONDS = 0.02
"""A running task this old, with a worker idle and nothing queued, makes its worker give back its prefetched task."""
_CANCELLED = TaskStatus.CANCELLED.value
_NO_TIMES = (float("nan"), float("nan"))
# Plain ints: pyzmq's flag enums cost a Python-level operation each time they are combined.
_POLLIN, _POLLOUT = int(zmq.POLLIN), int(zmq.POLLOUT)


@dataclass(frozen=True)
class PoolStatistics:
    """A snapshot of one pool's counters (logged at every heartbeat period)."""

    workers: int
    """Worker processes the pool keeps."""
    queued: int
    """Tasks received and not yet given to a worker."""
    running: int
    """Tasks on a worker right now."""
    received: int
    """Tasks received from the interchange since start."""
    completed: int
    """Results (values or exceptions) sent back since start."""
    cancelled: int
    """Tasks answered CANCELLED since start."""
    workers_lost: int
    """Workers that died while running a task (each such task failed with WorkerLost)."""
    replacements: int
    """Workers started to replace one that exited."""


class StopFlag:
    """Records SIGTERM/SIGINT; the main loop checks it on every pass."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def install(self) -> StopFlag:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum

    def is_set(self) -> bool:
        return self.signum is not None


class Manager:
    """The main loop of a registered pool: moves tasks in and results out until told to stop."""

    def __init__(
        self,
        options: PoolOptions,
        link: UnixLink | ZmqLink,
        url: str,
        factory: WorkerFactory,
        slots: list[WorkerSlot],
        stop: StopFlag,
        fatal: FatalReporter,
        direct: ResultSender | None = None,
    ) -> None:
        self.options = options
        self.link = link
        self.direct = direct
        """Sends results to the executor itself (a pool on the interchange's machine); None: through the link."""
        self.direct_writing = False
        self.writing = False
        """Whether the poller also watches the link for writability (it holds unsent bytes)."""
        self.url = url
        self.factory = factory
        self.slots = slots  # by rank; replaced in place, so the caller's list stays current
        self.stop = stop
        self.fatal = fatal
        self.hostname = _socket.gethostname()
        self.queue: deque[tuple[int, Any]] = deque()  # (task id, payload); cancelled ones are skipped
        self.queued: set[int] = set()
        self.running: dict[int, WorkerSlot] = {}  # every task handed to a worker, prefetched ones too
        self.discarded: set[int] = set()  # prefetched tasks cancelled: their answer from the worker is dropped
        self.payloads: dict[int, Any] = {}  # of the tasks in ``running``, to queue one again if given back
        self.result_ids: list[int] = []
        self.result_statuses = bytearray()
        self.result_payloads: list[Any] = []
        self.result_times = array("d")
        self.failures: dict[str, dict[str, str]] = {}
        self.draining = False
        self.drained = False
        """True once a drain has finished (the workers are idle and may leave on their own)."""
        self.exit_code: int | None = None
        now = time.monotonic()
        self.started = self.last_sent = self.last_received = self.last_stats = now
        self.received = self.completed = self.cancelled = self.workers_lost = self.replacements = 0
        self.idle_deaths = [0] * len(slots)
        self.closed_pipes: dict[WorkerSlot, float] = {}  # Pipe at EOF, process not yet reaped
        # only descriptors to watch over a Unix link: one poll() per wait instead of zmq_poll's two
        self.poller: Any = FdPoller() if isinstance(link, UnixLink) else zmq.Poller()
        self.poller.register(link.poll_target, _POLLIN)
        if direct is not None:
            self.poller.register(direct.fd, _POLLIN)  # the executor never writes: readable means it has gone
        self.by_pipe: dict[int, WorkerSlot] = {}
        self.by_sentinel: dict[int, WorkerSlot] = {}
        for slot in slots:
            self._watch(slot)
        self.sampler: ResourceSampler | None = None
        """Samples the busy workers for monitoring; None unless the interchange asked for it."""

    # ------------------------------------------------------------------ the loop

    def run(self, early: Sequence[list[Any]] = (), resource_interval: Any = None) -> int:
        """Run until drained, shut down, signalled or cut off; return the exit code.

        ``early`` holds messages that arrived with the registration answer;
        ``resource_interval`` (seconds, from that answer) starts resource sampling.
        """
        self.start_sampler(resource_interval)
        try:
            return self._loop(early)
        finally:
            if self.sampler is not None:
                self.sampler.stop()

    def _loop(self, early: Sequence[list[Any]]) -> int:
        for frames in early:
            try:
                self.handle_message(frames)
            except ProtocolError as e:
                logger.warning("malformed message from the interchange dropped: %s", e)
        poll, timeout = self.poller.poll, self.options.poll_period_ms
        while self.exit_code is None:
            wait = timeout
            if self.direct is not None:  # wake up in time for a RELEASED held back
                due = self.direct.due_in(time.monotonic())
                if due is not None:
                    wait = min(timeout, int(due * 1000) + 1)
            ready = dict(poll(wait))
            now = time.monotonic()
            self.check_signals()
            self.receive_interchange(ready, now)
            if self.direct is not None:
                self.watch_direct(ready, now)
            self.receive_results(ready, now)
            self.reap_workers(ready)
            self.dispatch()
            self.flush(now)
            if self.sampler is not None:
                self.send_resources(now)
            self.heartbeat(now)
            self.watch_interchange(now)
            self.watch_drain(now)
        return self.exit_code

    def statistics(self) -> PoolStatistics:
        """The pool's counters now."""
        return PoolStatistics(
            workers=len(self.slots),
            queued=len(self.queued),
            running=len(self.running),
            received=self.received,
            completed=self.completed,
            cancelled=self.cancelled,
            workers_lost=self.workers_lost,
            replacements=self.replacements,
        )

    # ------------------------------------------------------------------ steps

    def check_signals(self) -> None:
        """Stop on SIGTERM/SIGINT (the caller kills the workers).

        Before leaving, the pool hands back every task it holds as ManagerLost and
        says it is draining, so the interchange drops it and the tasks can be retried
        at once (a scancel, qdel or walltime) instead of after a heartbeat timeout.
        """
        if self.stop.signum is None:
            return
        name = signal.Signals(self.stop.signum).name
        logger.info("received %s; killing the workers and exiting", name)
        held = list(self.queued) + list(self.running)
        message = (
            f"worker pool {self.options.pool_id} (block {self.options.block_id} on {self.hostname}) was stopped by "
            f"{name} (cancelled by the scheduler, or its walltime ended?)"
        )
        try:
            released = self.direct.release(time.monotonic(), force=True) if self.direct is not None else None
            if released is not None:  # answered already: not to be failed as lost
                self.link.send(released)
            if held:
                failures = {str(tid): {"error": "ManagerLost", "message": message} for tid in held}
                self.link.send(protocol.encode_json(Kind.FAILURES, failures))
            self.link.send(protocol.encode_empty(Kind.DRAIN))
        except (zmq.ZMQError, EOFError):
            logger.warning("could not tell the interchange that this pool is stopping")
        self.exit_code = 128 + self.stop.signum

    def receive_interchange(self, ready: dict[Any, int], now: float) -> None:
        """Read every waiting message from the interchange and act on it."""
        link = self.link
        events = ready.get(link.poll_target, 0)
        if not events or self.exit_code is not None:
            return
        try:
            if events & _POLLOUT:
                link.flush()
                self._watch_writes()
            messages = link.receive() if events & _POLLIN else []
        except (EOFError, ProtocolError) as e:
            self.exit_code = self.fatal(
                f"lost the link to the interchange at {self.url} ({e}); killing the workers and exiting",
                EXIT_INTERCHANGE_LOST,
            )
            return
        if messages:
            self.last_received = now
        for frames in messages:
            try:
                self.handle_message(frames)
            except ProtocolError as e:
                logger.warning("malformed message from the interchange dropped: %s", e)
            if self.exit_code is not None:
                return

    def handle_message(self, frames: list[Any]) -> None:
        """Act on one message from the interchange; ProtocolError if it is malformed."""
        version, kind = protocol.parse_header(frames[0])
        if version != protocol.PROTOCOL_VERSION and kind != Kind.REJECT:
            raise ProtocolError(f"protocol version {version}, expected {protocol.PROTOCOL_VERSION}")
        if kind == Kind.TASKS:
            try:
                batch = TaskBatch.decode(frames)
            except protocol.MalformedBatch as e:  # the tasks cannot run: fail them rather than drop them
                logger.error("a malformed task batch from the interchange: %s", e)
                self.failures.update(protocol.malformed_failures(e.ids, e))
                return
            self.accept_tasks(batch)
        elif kind == Kind.CANCEL:
            self.cancel(protocol.body_ids(frames))
        elif kind == Kind.HEARTBEAT:
            pass
        elif kind == Kind.DRAIN:
            self.begin_drain("the interchange asked for it")
        elif kind == Kind.SHUTDOWN:
            logger.info("the interchange asked for shutdown; killing the workers and exiting")
            self.exit_code = EXIT_OK
        elif kind == Kind.REJECT:
            reason = bytes(frames[1]).decode("utf-8", "replace") if len(frames) > 1 else "no reason given"
            self.exit_code = self.fatal(f"the interchange at {self.url} refused this pool: {reason}", EXIT_REJECTED)
        elif kind == Kind.REGISTERED:
            logger.debug("a late REGISTERED answer ignored")
        else:
            raise ProtocolError(f"unexpected {kind.name} message")

    def accept_tasks(self, batch: TaskBatch) -> None:
        """Queue the tasks of a TASKS message (a duplicate id is dropped with a warning)."""
        queue, queued, running = self.queue, self.queued, self.running
        for tid, payload in zip(batch.ids, batch.payloads, strict=True):
            if tid in queued or tid in running:
                logger.warning("task %d received twice; the copy is dropped", tid)
                continue
            queued.add(tid)
            queue.append((tid, payload))
        self.received += len(batch.ids)
        if batch.specs and self.options.debug:
            logger.debug("resource specifications (not used by the pool): %s", batch.specs)

    def cancel(self, ids: Sequence[int]) -> None:
        """Drop queued tasks, kill the workers of running ones; answer CANCELLED for each."""
        for tid in ids:
            if tid in self.queued:
                self.queued.discard(tid)
                logger.info("task %d cancelled before it started", tid)
            elif tid in self.running:
                slot = self.running[tid]
                self._collect(slot)  # a result already written settles the task
                if tid not in self.running:
                    continue
                del self.running[tid]
                if slot.task == tid:
                    # The worker may finish this task and start a prefetched one before the signal lands:
                    # the tasks stay with it, and its death settles them once the Pipe is read to the end.
                    self.discarded.add(tid)
                    slot.killed_for = tid
                    slot.broken = True
                    slot.kill()
                    logger.info("task %d cancelled while running: killed worker %d (pid %d)", tid, slot.rank, slot.pid)
                else:
                    self.discarded.add(tid)
                    self._revoke(slot)
                    logger.info("task %d cancelled while prefetched by worker %d", tid, slot.rank)
            else:
                logger.debug("cancel for task %d, which this pool does not hold", tid)
                continue
            self._add_result(tid, _CANCELLED, b"")
            self.cancelled += 1

    def receive_results(self, ready: dict[Any, int], now: float) -> None:
        """Collect what each worker whose Pipe is readable has written."""
        by_pipe = self.by_pipe
        for key in ready:
            slot = by_pipe.get(key)
            if slot is None or slot.reader is None:
                continue
            try:
                messages = slot.reader.read()
            except (EOFError, OSError):
                self._forget_pipe(slot)
                self.closed_pipes[slot] = now
                continue
            for message in messages:
                self._take_result(slot, message)

    def _collect(self, slot: WorkerSlot) -> None:
        """Take every result the worker has written so far (never blocks)."""
        reader = slot.reader
        if slot.conn is None or reader is None:
            return
        os.set_blocking(reader.fd, False)
        try:
            while True:
                messages = reader.read()
                for message in messages:
                    self._take_result(slot, message)
        except (BlockingIOError, EOFError, OSError):
            pass
        finally:
            if slot.conn is not None:
                os.set_blocking(reader.fd, True)

    def reap_workers(self, ready: dict[Any, int]) -> None:
        """Handle exited workers: fail their task with WorkerLost and start a replacement."""
        dead = [self.by_sentinel[key] for key in ready if key in self.by_sentinel]
        if self.closed_pipes:
            now = time.monotonic()
            for slot, since in list(self.closed_pipes.items()):
                if now - since > EOF_GRACE:
                    logger.warning(
                        "worker %d (pid %d) closed its Pipe but did not exit; killing it", slot.rank, slot.pid
                    )
                    slot.kill()
                    del self.closed_pipes[slot]
        for slot in dead:
            self.worker_exited(slot)

    def dispatch(self) -> None:
        """Give queued tasks to workers: one to each idle worker, then one more to each quick one."""
        queue = self.queue
        if self.exit_code is not None:  # leaving: a task handed over now could run after being reported lost
            return
        live = [slot for slot in self.slots if slot.conn is not None and not slot.broken]
        if not queue:
            if live:
                self._balance(live)
            return
        queued, running = self.queued, self.running
        grants: dict[WorkerSlot, list[tuple[int, Any]]] = {}
        now = time.time()
        for first in (True, False):
            for slot in live:
                if not queue:
                    break
                held = len(slot.tasks) + len(grants.get(slot, ()))
                # how long this worker's tasks take: its last one, or the running one if that is longer already
                service = max(slot.service_time, now - slot.started) if slot.tasks else slot.service_time
                if first:
                    want = 1 - held
                elif slot.revoking or service >= PREFETCH_SHORT_SECONDS:
                    continue
                elif service >= PREFETCH_TINY_SECONDS or PREFETCH_DEPTH <= 2:
                    want = min(2, PREFETCH_DEPTH) - held
                else:  # top up only once half is used, so that several tasks go in one write
                    want = PREFETCH_DEPTH - held if held <= PREFETCH_DEPTH // 2 else 0
                for _ in range(want):
                    if not self._grant(slot, held, grants):
                        break
                    held += 1
        pack = TASK_ID.pack
        payloads = self.payloads
        for slot, given in grants.items():
            if len(given) == 1:
                tid, payload = given[0]
                delivered = self._write(slot, pack(tid), payload)
            else:
                delivered = self._write_many(slot, [(pack(tid), payload) for tid, payload in given])
            if delivered and not slot.tasks:
                slot.started = now
            # A task written whole may have been read and run (even to a result) before the Pipe broke:
            # it belongs to the worker now, and its death decides (WorkerLost, or queued again if unstarted).
            for tid, payload in given[:delivered]:
                queued.discard(tid)
                slot.tasks.append(tid)
                running[tid] = slot
                payloads[tid] = payload
            if delivered < len(given):
                self._broken_pipe(slot, delivered, len(given))
                queue.extendleft(reversed(given[delivered:]))  # never reached the worker

    def _grant(self, slot: WorkerSlot, held: int, grants: dict[WorkerSlot, list[tuple[int, Any]]]) -> bool:
        """Move the next queued task into ``slot``'s grant; False when there is none it may take."""
        queue, queued = self.queue, self.queued
        while queue:
            tid, payload = queue.popleft()
            if tid in queued:
                break
        else:
            return False  # only cancelled tasks were left
        if held and nbytes(payload) >= PREFETCH_BYTES:
            queue.appendleft((tid, payload))  # large: wait for an idle worker
            return False
        grants.setdefault(slot, []).append((tid, payload))
        return True

    @staticmethod
    def _write(slot: WorkerSlot, head: bytes, payload: Any) -> int:
        """Write one task; 1 if it went into the Pipe whole, 0 if the Pipe failed (the worker is dying)."""
        try:
            write_message(slot.fd, head, payload)  # type: ignore[arg-type]
        except (OSError, TypeError):
            return 0
        return 1

    @staticmethod
    def _write_many(slot: WorkerSlot, tasks: list[tuple[bytes, Any]]) -> int:
        """Write several tasks with as few system calls as possible; return how many went into the Pipe whole."""
        try:
            write_messages(slot.fd, tasks)  # type: ignore[arg-type]
        except PartialWrite as e:
            return e.delivered
        except TypeError:  # an unusable payload: refused before anything was written
            return 0
        return len(tasks)

    def _broken_pipe(self, slot: WorkerSlot, delivered: int, granted: int) -> None:
        """A write to the worker failed: send it nothing more, but keep reading what it wrote until EOF.

        Its results may still wait in the Pipe; its death (the sentinel) then settles
        the tasks it holds. Killed if it does not exit within ``EOF_GRACE``.
        """
        slot.broken = True
        self.closed_pipes.setdefault(slot, time.monotonic())
        logger.warning(
            "the Pipe of worker %d (pid %d) failed while tasks were written to it (%d of %d whole); "
            "the rest are queued again",
            slot.rank,
            slot.pid,
            delivered,
            granted,
        )

    def _balance(self, live: list[WorkerSlot]) -> None:
        """With nothing queued and a worker idle, make workers stuck on a long task give back their prefetch."""
        if not any(not slot.tasks for slot in live):
            return
        now = time.time()
        for slot in live:
            if len(slot.tasks) > 1 and not slot.revoking and now - slot.started > REVOKE_AFTER_SECONDS:
                self._revoke(slot)

    def _revoke(self, slot: WorkerSlot) -> None:
        """Ask the worker to give back the tasks it has not started (it answers RETURNED)."""
        if slot.revoking or slot.conn is None:
            return
        try:
            os.kill(slot.pid, REVOKE_SIGNAL)
        except OSError:  # gone; its sentinel will tell
            return
        slot.revoking = True
        logger.info("worker %d asked to give back %d prefetched task(s)", slot.rank, len(slot.tasks) - 1)

    def _requeue(self, slot: WorkerSlot) -> None:
        """Queue again, first in line, the tasks the slot held and had not started (its Pipe is gone)."""
        while slot.tasks:
            self._give_back(slot.tasks.pop())
        slot.revoking = False

    def _give_back(self, tid: int) -> None:
        """Put a task handed to a worker and not started back at the head of the queue (or drop it if cancelled)."""
        payload = self.payloads.pop(tid, None)
        if tid in self.discarded:
            self.discarded.discard(tid)
            return
        del self.running[tid]
        self.queued.add(tid)
        self.queue.appendleft((tid, payload))

    def flush(self, now: float) -> None:
        """Send the results and failures collected during this pass."""
        if self.result_ids:
            times = self.result_times.tobytes()
            batch = ResultBatch(self.result_ids, bytes(self.result_statuses), self.result_payloads, times)
            direct = self.direct
            if direct is None:
                self._send(batch.encode(), now)
            else:
                try:
                    direct.send(batch)
                except EOFError:
                    self.direct_broken("it closed", now)
            self.completed += len(self.result_ids)
            self.result_ids, self.result_statuses, self.result_payloads = [], bytearray(), []
            self.result_times = array("d")
        if self.direct is not None:
            self.release_direct(now, force=bool(self.failures) or self.draining)
        if self.failures:
            self._send(protocol.encode_json(Kind.FAILURES, self.failures), now)
            self.failures = {}

    def watch_direct(self, ready: dict[Any, int], now: float) -> None:
        """Write what the result link holds back; fall back to the interchange if the executor closed it."""
        direct = self.direct
        assert direct is not None
        events = ready.get(direct.fd, 0)
        if not events:
            return
        try:
            if events & _POLLOUT:
                direct.flush()
            messages = direct.receive() if events & ~_POLLOUT else []
        except (EOFError, ProtocolError) as e:
            self.direct_broken(str(e) or "it closed", now)
            return
        for frames in messages:  # tasks an idle executor sent here itself (the interchange was told)
            try:
                if protocol.parse_header(frames[0])[1] is not Kind.TASKS:
                    raise ProtocolError("only TASKS may come on the result link")
                self.handle_message(frames)
            except ProtocolError as e:
                logger.warning("malformed message from the executor dropped: %s", e)

    def release_direct(self, now: float, force: bool = False) -> None:
        """Tell the interchange which directly sent results have left (when due); watch the link for writability."""
        direct = self.direct
        assert direct is not None
        released = direct.release(time.monotonic(), force)
        if released is not None:
            self._send(released, now)
        if direct.wants_write != self.direct_writing:
            self.direct_writing = direct.wants_write
            self.poller.modify(direct.fd, _POLLIN | (_POLLOUT if self.direct_writing else 0))

    def direct_broken(self, why: str, now: float) -> None:
        """The result link is gone: what it may not have delivered, and all that follows, go through the interchange."""
        direct = self.direct
        assert direct is not None
        logger.warning("the result link to the executor broke (%s); results go through the interchange", why)
        self.poller.unregister(direct.fd)
        self.direct = None
        for batch in direct.broken():
            self._send(batch.encode(), now)

    def start_sampler(self, interval: Any) -> None:
        """Start resource sampling every ``interval`` s (a positive number; anything else: none)."""
        if interval is None:
            return
        if type(interval) not in (int, float) or not 0 < interval < 1e6:
            logger.warning("the interchange asked for resource samples every %r s; not a usable interval", interval)
            return
        slots = self.slots
        self.sampler = ResourceSampler(
            float(interval), lambda: {slot.tasks[0]: slot.pid for slot in list(slots) if slot.tasks}
        )
        self.sampler.start()

    def send_resources(self, now: float) -> None:
        """Send the sample batches the sampler has made since the last pass, as one message."""
        assert self.sampler is not None
        batches = self.sampler.batches
        if not batches:
            return
        samples = [s for _ in range(len(batches)) for s in batches.popleft()]
        for start in range(0, len(samples), protocol.MAX_SAMPLES):
            self._send(protocol.encode_resources(samples[start : start + protocol.MAX_SAMPLES]), now)

    def heartbeat(self, now: float) -> None:
        """Send a heartbeat after ``heartbeat_period`` of silence; log the counters as often."""
        period = self.options.heartbeat_period
        if now - self.last_sent >= period:
            self._send(protocol.encode_empty(Kind.HEARTBEAT), now)
        if now - self.last_stats >= period:
            self.last_stats = now
            logger.info("statistics: %s", self.statistics())

    def watch_interchange(self, now: float) -> None:
        """Give up when the interchange has been silent for ``heartbeat_threshold``."""
        silence = now - self.last_received
        if silence > self.options.heartbeat_threshold and self.exit_code is None:
            self.exit_code = self.fatal(
                f"no message from the interchange at {self.url} for {silence:.1f} s "
                f"(heartbeat threshold {self.options.heartbeat_threshold:g} s); killing the workers and exiting",
                EXIT_INTERCHANGE_LOST,
            )

    def watch_drain(self, now: float) -> None:
        """Start draining at ``drain_period``; exit once a draining pool holds no task."""
        period = self.options.drain_period
        if not self.draining and period is not None and now - self.started >= period:
            self.begin_drain(f"the drain period of {period:g} s has passed")
        held_back = self.direct is not None and self.direct.holding  # results not yet released at the interchange
        if self.draining and not self.queued and not self.running and not held_back and self.exit_code is None:
            logger.info("drained: every task finished and its result sent; exiting")
            self.drained = True
            self.exit_code = EXIT_OK

    # ------------------------------------------------------------------ helpers

    def begin_drain(self, reason: str) -> None:
        """Stop taking tasks: tell the interchange, finish what the pool holds, then exit."""
        if self.draining:
            return
        self.draining = True
        logger.info(
            "draining because %s: %d queued and %d running tasks will finish",
            reason,
            len(self.queued),
            len(self.running),
        )
        self._send(protocol.encode_empty(Kind.DRAIN), time.monotonic())

    def worker_exited(self, slot: WorkerSlot) -> None:
        """Account for a worker whose process has exited, and replace it."""
        for message in slot.drain():  # results written before it died still count
            self._take_result(slot, message)
        self._forget_pipe(slot)
        self.closed_pipes.pop(slot, None)
        self.poller.unregister(slot.sentinel)
        del self.by_sentinel[slot.sentinel]
        slot.process.join(0)
        how = describe_exit(slot.process.exitcode)
        tid = slot.tasks.popleft() if slot.tasks else None
        if slot.tasks:
            logger.info("worker %d held %d unstarted task(s); they are queued again", slot.rank, len(slot.tasks))
        self._requeue(slot)  # the prefetched tasks never started
        if tid is not None and tid in self.discarded:
            self.discarded.discard(tid)
            self.payloads.pop(tid, None)
            if slot.killed_for == tid:
                logger.info("worker %d (pid %d), killed to cancel task %d, exited", slot.rank, slot.pid, tid)
        elif tid is not None:
            del self.running[tid]
            self.payloads.pop(tid, None)
            message = f"worker {slot.rank} (pid {slot.pid}) on {self.hostname} died {how} while running task {tid}"
            logger.error("%s", message)
            self.failures[str(tid)] = {"error": "WorkerLost", "message": message}
            self.workers_lost += 1
            self.idle_deaths[slot.rank] = 0
        elif slot.killed_for is not None:
            logger.info("worker %d (pid %d), killed to cancel task %d, exited", slot.rank, slot.pid, slot.killed_for)
        else:
            logger.warning("worker %d (pid %d) died %s while idle", slot.rank, slot.pid, how)
            self.idle_deaths[slot.rank] = 0 if slot.tasks_done else self.idle_deaths[slot.rank] + 1
            if self.idle_deaths[slot.rank] >= MAX_IDLE_DEATHS and self.exit_code is None:
                log = os.path.join(self.options.logdir, f"worker_{slot.rank}.log")
                self.exit_code = self.fatal(
                    f"worker {slot.rank} died {MAX_IDLE_DEATHS} times in a row before finishing a task "
                    f"(last {how}); see {log}",
                    EXIT_INTERNAL,
                )
        if self.exit_code is None:
            replacement = self.factory.start(slot.rank)
            self.slots[slot.rank] = replacement
            self.replacements += 1
            self._watch(replacement)
            logger.info("worker %d replaced: new pid %d", slot.rank, replacement.pid)

    def _take_result(self, slot: WorkerSlot, message: Any) -> None:
        tid, status = RESULT_HEAD.unpack_from(message)
        tasks = slot.tasks
        if tasks and tasks[0] == tid:
            tasks.popleft()
        elif tid in tasks:
            tasks.remove(tid)  # given back (RETURNED) while an earlier task runs
        else:
            logger.warning("worker %d sent a result for task %d, which it does not hold; dropped", slot.rank, tid)
            return
        if status == RETURNED:
            slot.revoking = False
            self._give_back(tid)
            return
        now = time.time()
        started = slot.started
        slot.started = now  # the next task, if any, starts now
        slot.service_time = now - started
        slot.tasks_done += 1
        if not tasks:
            slot.revoking = False
        self.payloads.pop(tid, None)
        if tid in self.discarded:  # cancelled while prefetched, and it ran anyway: answered already
            self.discarded.discard(tid)
            return
        del self.running[tid]
        self.result_ids.append(tid)
        self.result_statuses.append(status)
        self.result_payloads.append(split(memoryview(message)[RESULT_HEAD.size :]))  # large: parts for CurveZMQ
        times = self.result_times
        times.append(started)
        times.append(now)

    def _add_result(self, tid: int, status: int, payload: Any) -> None:
        self.result_ids.append(tid)
        self.result_statuses.append(status)
        self.result_payloads.append(payload)
        self.result_times.extend(_NO_TIMES)

    def _send(self, frames: list[Any], now: float) -> None:
        link = self.link
        try:
            link.send(frames)
        except EOFError:
            return  # the next read of the link reports it
        self.last_sent = now
        self._watch_writes()

    def _watch_writes(self) -> None:
        """Poll the link for writability exactly while it holds unsent bytes."""
        link = self.link
        if link.wants_write != self.writing:
            self.writing = link.wants_write
            self.poller.modify(link.poll_target, _POLLIN | (_POLLOUT if self.writing else 0))

    def _watch(self, slot: WorkerSlot) -> None:
        fd = slot.fd
        if fd is not None:
            self.poller.register(fd, zmq.POLLIN)
            self.by_pipe[fd] = slot
        self.poller.register(slot.sentinel, zmq.POLLIN)
        self.by_sentinel[slot.sentinel] = slot

    def _forget_pipe(self, slot: WorkerSlot) -> None:
        fd = slot.fd
        if fd is not None:
            self.poller.unregister(fd)
            self.by_pipe.pop(fd, None)
        slot.close_conn()


class FatalReporter:
    """Writes a pool's fatal errors: to the log, and as one line on stderr for the executor to show."""

    def __init__(self, identity: str = "flowlib-worker-pool") -> None:
        self.identity = identity
        """How the stderr line names the pool: ``flowlib-worker-pool <id> (block <b>) on <host>``."""

    def __call__(self, message: str, code: int) -> int:
        """Report ``message`` and return ``code``."""
        logger.error("%s (exit code %d)", message, code)
        sys.stderr.write(f"{self.identity}: {message}\n")
        sys.stderr.flush()
        return code
