"""The executor's side of the interchange: start it, feed it tasks, collect results.

::

    submit() threads --deque + wake pipe--> I/O thread --DEALER or Unix socket--> interchange process
          +--(idle executor, Unix socket)-- SUBMIT of one task ---------^
    futures <-- on_results / on_failures <--/
          ^-- RESULTS straight from this machine's pools (results.sock, see direct_results.py)

One I/O thread owns the ZeroMQ socket (sockets are not thread-safe). Submitting
threads append to a deque and poke a pipe only when the I/O thread is not already
awake, so a burst of submissions becomes a few large SUBMIT messages.

Over a Unix socket, a small task submitted while every earlier task has been
answered is sent by the submitting thread itself, under :attr:`_send_lock`:
waking the I/O thread would add a thread hand-off to the round trip of exactly
the tasks that wait alone (a latency probe, the next link of a chain). Tasks
submitted while others are in flight still queue up and travel in batches.
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

import zmq

from flowlib.addresses import tcp_url, zmq_ipv6
from flowlib.executors.high_throughput import links
from flowlib.executors.high_throughput import protocol as p
from flowlib.executors.high_throughput.arena import ArenaWriter
from flowlib.executors.high_throughput.direct_results import ResultListener
from flowlib.executors.high_throughput.fd_poller import POLLERR, POLLIN, POLLOUT, FdPoller
from flowlib.executors.high_throughput.parts import Parts, nbytes

logger = logging.getLogger(__name__)

MAX_BATCH_TASKS = 2048
MAX_BATCH_BYTES = 4 << 20
"""Payload bytes per SUBMIT message at most: larger buffers would be fresh memory (page faults) every time."""
MAX_INFLIGHT_BYTES = 32 << 20
"""Bytes of large payloads sent to the interchange and not yet answered, at most; the rest waits here.

Without a bound, a burst of large tasks is copied into the interchange's queue at
once and every byte lands in fresh memory; with it, buffers are reused.
"""
EXIT_CHECK_PERIOD = 0.05
"""Seconds between checks that the interchange process still runs (its exit normally shows as EOF first)."""
LARGE_PAYLOAD = 64 << 10
"""Payloads from this size on go through the shared-memory arena when there is one, else count towards
:data:`MAX_INFLIGHT_BYTES`."""


class InterchangeClient:
    """Owns the interchange process and the connection to it.

    The callbacks run on the I/O thread: ``on_results(ids, statuses, payloads, batch)``
    (``batch``: the whole :class:`~.protocol.ResultBatch`, with worker times and pools),
    ``on_failures({tid: {"error", "message"}})``, ``on_event(dict)`` and
    ``on_lost(reason)`` (the interchange died; called once).
    """

    def __init__(
        self,
        label: str,
        options: dict[str, Any],
        logdir: str,
        cert_dir: str | None,
        on_results: Callable[[list[int], bytes, list[Any], p.ResultBatch], None],
        on_failures: Callable[[dict[str, dict[str, str]]], None],
        on_event: Callable[[dict[str, Any]], None],
        on_lost: Callable[[str], None],
    ) -> None:
        self.label = label
        self.options = options
        self.logdir = logdir
        self.cert_dir = cert_dir
        self.on_results = on_results
        self.on_failures = on_failures
        self.on_event = on_event
        self.on_lost = on_lost
        self.process: subprocess.Popen[bytes] | None = None
        self.client_port: int | None = None
        self.worker_port: int | None = None
        self.pool_socket: str | None = None
        """The interchange's Unix socket for pools on this machine (when it has one)."""
        self._outbox: collections.deque[tuple[int, dict[str, Any] | None, Any]] = collections.deque()
        self._outbox_large: collections.deque[tuple[int, dict[str, Any] | None, Any]] = collections.deque()
        """Tasks with large payloads: sent while the in-flight window has room (small ones never wait)."""
        self._control: collections.deque[list[Any]] = collections.deque()
        self._replies: dict[int, Future[Any]] = {}
        self._command_ids = itertools.count(1)
        self._large: dict[int, int] = {}  # task id -> payload size, for large payloads in flight
        self._slots: dict[int, tuple[int, int]] = {}  # task id -> its slot in the arena
        self.arena: ArenaWriter | None = None
        """Large payloads go to local pools through this shared memory (None: through the sockets)."""
        if options.get("arena_dir"):
            self.arena = ArenaWriter(options["arena_dir"])
        self._inflight_bytes = 0
        self._cancelled_unsent: set[int] = set()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._awake = False
        self._unix_link: links.UnixLink | None = None
        """The link when it is a Unix socket: submitting threads may then send on it directly."""
        self._send_lock = threading.Lock()
        """Held while anything is written to the link (the I/O thread and direct senders share it)."""
        self._sent_tasks = 0
        """Tasks sent in SUBMIT messages (changed under :attr:`_send_lock`)."""
        self._answered_tasks = 0
        """Tasks answered by RESULTS or FAILURES (changed by the I/O thread only)."""
        self._io_ident: int | None = None
        self.direct_sends = 0
        """Tasks the submitting thread sent itself (see the module docstring)."""
        self.pool_sends = 0
        """Of those, tasks sent straight to a pool on this machine (:mod:`.direct_results`)."""
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._context: zmq.Context[Any] | None = None
        self.lost_reason: str | None = None
        self._last_heard = 0.0
        """When anything last arrived from the interchange (monotonic seconds)."""
        self._ping_sent: float | None = None
        """When the last liveness ping went out (None: none yet)."""
        self.want_pools = True
        """Whether result batches' pools are decoded (the executor needs them only to record worker times)."""
        self._results: ResultListener | None = None
        """Where this machine's pools send their results directly (:mod:`.direct_results`); None: no such path."""

    # ---------------------------------------------------------------- start

    def start(self, timeout: float = 30.0) -> None:
        """Start the interchange, learn its ports, connect, start the I/O thread."""
        os.makedirs(self.logdir, exist_ok=True)
        options = {**self.options, "logdir": self.logdir, "cert_dir": self.cert_dir, "parent_pid": os.getpid()}
        if self.options.get("unix_dir"):
            self._results = ResultListener(self.options["unix_dir"])
            options["result_socket"] = self._results.path
        try:
            self._start_interchange(options, timeout)
        except BaseException:
            if self._results is not None:
                self._results.close()
                self._results = None
            raise

    def _start_interchange(self, options: dict[str, Any], timeout: float) -> None:
        stderr = open(os.path.join(self.logdir, "interchange.stderr"), "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flowlib.executors.high_throughput.interchange"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
            close_fds=True,
        )
        stderr.close()
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(options).encode() + b"\n")
        self.process.stdin.close()
        line = self._read_ports_line(timeout)
        where = json.loads(line)
        self.worker_port = int(where["worker_port"])
        link: links.UnixLink | links.ZmqLink
        if where.get("client_socket"):
            link = links.connect(where["client_socket"], name="link to the interchange")
            self._unix_link = link
            self.pool_socket = where.get("pool_socket")
        else:
            self.client_port = int(where["client_port"])
            self._context = zmq.Context()
            sock = self._context.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            if self.cert_dir:
                from flowlib.executors.high_throughput.security import apply_client, client_keys

                apply_client(sock, client_keys(self.cert_dir))
            address = self.options.get("client_address", "127.0.0.1")
            sock.setsockopt(zmq.IPV6, zmq_ipv6(address))
            sock.connect(tcp_url(address, self.client_port))
            link = links.ZmqLink(sock, copy=True)
        # introduce ourselves at once, so events (pools registering) reach us before any task
        self._control.append(p.encode_json(p.Kind.COMMAND, {"id": 0, "op": "ping"}))
        self._thread = threading.Thread(
            target=self._io_loop, args=(link,), name=f"flowlib-htex-io-{self.label}", daemon=True
        )
        self._thread.start()

    def _read_ports_line(self, timeout: float) -> bytes:
        assert self.process is not None and self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        buffer = b""
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.process.poll() is not None:
                self.process.kill()
                self.process.wait()
                raise RuntimeError(
                    f"the interchange for executor {self.label!r} did not start "
                    f"(exit code {self.process.returncode}); see {self.logdir}/interchange.stderr and interchange.log"
                )
            ready, _, _ = select.select([fd], [], [], min(remaining, 0.5))
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    continue
                buffer += chunk
        return buffer.split(b"\n", 1)[0]

    # ------------------------------------------------------------ interface

    def submit(self, tid: int, spec: dict[str, Any] | None, payload: Any) -> None:
        """Queue one task for the interchange (thread-safe, non-blocking).

        ``payload`` is the serialized task: one buffer, or :class:`~.parts.Parts` for a large one.
        """
        if type(payload) is not Parts and len(payload) < LARGE_PAYLOAD:
            if self._answered_tasks >= self._sent_tasks and not self._outbox and self._send_now(tid, spec, payload):
                return
            self._outbox.append((tid, spec, payload))
        else:
            self._outbox_large.append((tid, spec, payload))
        # The I/O thread itself (a completion callback submitting the next task) sends after its callbacks.
        if not self._awake and threading.get_ident() != self._io_ident:
            self._wake()

    def _send_now(self, tid: int, spec: dict[str, Any] | None, payload: bytes) -> bool:
        """Send one task on the Unix link from the calling thread; False (queue it instead) if it cannot be now."""
        link = self._unix_link
        if link is None or self._stopping or self.lost_reason is not None:
            return False
        if not self._send_lock.acquire(blocking=False):
            return False  # the I/O thread is sending: the task joins its batch
        try:
            if link.closed or link.wants_write or self._outbox or self._control:
                return False
            pool = self._results.pick() if self._results is not None and not spec else None
            if pool is not None:  # straight to a pool on this machine; the interchange is told first
                pool_link, pool_id = pool
                link.send(p.encode_direct([tid], pool_id))
                self._sent_tasks += 1
                self.direct_sends += 1
                try:
                    pool_link.send(p.TaskBatch([tid], [payload], {}).encode(p.Kind.TASKS))
                except EOFError:
                    pass  # the pool is gone: the interchange, told first, fails the task as lost
                unfinished = link.wants_write or pool_link.wants_write
                self.pool_sends += 1
            else:
                link.send(p.TaskBatch([tid], [payload], {0: spec} if spec else {}).encode(p.Kind.SUBMIT))
                self._sent_tasks += 1
                self.direct_sends += 1
                unfinished = link.wants_write
        except (EOFError, OSError):
            return False  # the I/O thread meets the same error and reports the interchange lost
        finally:
            self._send_lock.release()
        if unfinished:
            self._wake()  # the I/O thread writes the rest when the socket is writable
        return True

    def cancel(self, ids: list[int]) -> None:
        """Ask the interchange to cancel tasks (those not sent yet are dropped here)."""
        self._cancelled_unsent.update(ids)
        self._control.append(p.encode_ids(p.Kind.CANCEL, ids))
        self._wake()

    def command(self, op: str, timeout: float = 10.0, **args: Any) -> Any:
        """Send a COMMAND and wait for its reply; TimeoutError if none comes."""
        if self.lost_reason is not None:
            raise RuntimeError(self.lost_reason)
        if self._stopping:
            raise RuntimeError(f"the interchange of executor {self.label!r} is being stopped")
        cid = next(self._command_ids)
        fut: Future[Any] = Future()
        self._replies[cid] = fut
        self._control.append(p.encode_json(p.Kind.COMMAND, {"id": cid, "op": op, **args}))
        self._wake()
        try:
            return fut.result(timeout)
        finally:
            self._replies.pop(cid, None)

    def _wake(self) -> None:
        self._awake = True
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:  # the pipe is full: the I/O thread is awake anyway
            pass

    # --------------------------------------------------------------- I/O loop

    def _io_loop(self, link: links.UnixLink | links.ZmqLink) -> None:
        self._io_ident = threading.get_ident()
        # a Unix link leaves only descriptors to watch: one poll() per wait instead of zmq_poll's two
        poller: Any = FdPoller() if isinstance(link, links.UnixLink) else zmq.Poller()
        target = link.poll_target
        poller.register(target, POLLIN)
        poller.register(self._wake_r, POLLIN)
        results = self._results if isinstance(link, links.UnixLink) else None
        if results is not None:
            results.register(poller)
        writing = False
        self._last_heard = time.monotonic()
        next_exit_check = 0.0
        lock = self._send_lock
        try:
            while True:
                events = dict(poller.poll(100))
                if results is not None and events:  # first: a waiting thread or a chain's next link needs them
                    direct = results.serve(events, poller)
                    if direct:
                        self._handle(direct, from_pool=True)
                if self._wake_r in events:
                    self._drain_wake_pipe()
                ready = events.get(target, 0)
                with lock:  # also sends what the callbacks of those results submitted
                    if results is not None:
                        results.watch_writes(poller)
                    if ready & POLLOUT:
                        link.flush()
                    self._send_tasks(link)  # before control: a CANCEL must not overtake its task's SUBMIT
                    self._send_control(link)
                received = False
                if ready & (POLLIN | POLLERR):
                    self._receive(link)
                    now = self._last_heard = time.monotonic()
                    received = True
                else:
                    now = time.monotonic()
                if received and (self._outbox or self._outbox_large or self._control):  # submitted by callbacks
                    with lock:
                        self._send_tasks(link)
                        self._send_control(link)
                if not self._stopping and self._interchange_silent(now):
                    return
                if link.wants_write != writing:
                    writing = link.wants_write
                    poller.modify(target, POLLIN | (POLLOUT if writing else 0))
                idle = not self._outbox and not self._outbox_large and not self._control and not link.wants_write
                if self._stopping and idle:
                    return
                if now >= next_exit_check:  # a dead interchange also closes the link; this catches the rest
                    next_exit_check = now + EXIT_CHECK_PERIOD
                    if self.process is not None and self.process.poll() is not None:
                        self._interchange_died()
                        return
        except EOFError:
            self._wait_for_exit(1.0)
            self._interchange_died()
        except Exception:
            logger.exception("the I/O thread of executor %s failed", self.label)
            self._interchange_died("the executor's I/O thread failed; see the log")
        finally:
            with lock:
                link.close()

    def _interchange_silent(self, now: float) -> bool:
        """Ping an interchange quiet for a heartbeat period; True (it is declared lost) if a ping goes unanswered.

        Silence is counted from the ping, not from the last message: a pass of
        this loop held up by slow callbacks reads the answer that arrived
        meanwhile before judging, so only an interchange that is frozen
        (stopped, hung) or hopelessly overloaded is declared lost.
        """
        period = float(self.options.get("heartbeat_period") or 30)
        threshold = float(self.options.get("heartbeat_threshold") or 120)
        heard, sent = self._last_heard, self._ping_sent
        if sent is None or sent < heard:  # no ping waiting for its answer
            if now - heard >= period:
                self._control.append(p.encode_json(p.Kind.COMMAND, {"id": 0, "op": "ping"}))
                self._ping_sent = now
            return False
        if now - sent <= threshold:
            return False
        proc = self.process
        self._interchange_died(
            f"the interchange of executor {self.label!r} (pid {proc.pid if proc else '?'}) sent nothing for "
            f"{now - heard:.1f} s and did not answer a ping within heartbeat_threshold={threshold:g} s "
            f"(frozen, e.g. stopped by a signal, or hung); it was killed. See {self.logdir}/interchange.log"
        )
        if proc is not None and proc.poll() is None:
            proc.kill()
        return True

    def _wait_for_exit(self, timeout: float) -> None:
        """Give an interchange that closed its end a moment to exit, so its exit code can be reported."""
        if self.process is not None:
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass

    def _drain_wake_pipe(self) -> None:
        self._awake = False  # cleared before the outbox is drained: a later submit wakes us again
        try:
            while os.read(self._wake_r, 65536):
                pass
        except BlockingIOError:
            pass

    def _send_control(self, link: links.UnixLink | links.ZmqLink) -> None:
        control = self._control
        while control:
            link.send(control.popleft())

    def _send_tasks(self, link: links.UnixLink | links.ZmqLink) -> None:
        cancelled = self._cancelled_unsent
        seen = set(cancelled) if cancelled else None  # ids cancelled before the outboxes were checked
        self._send_from(link, self._outbox, windowed=False)
        self._send_from(link, self._outbox_large, windowed=True)
        if seen and not self._outbox and not self._outbox_large:
            cancelled.difference_update(seen)  # their tasks were sent already (the interchange cancels them)

    def _send_from(
        self, link: links.UnixLink | links.ZmqLink, outbox: collections.deque[Any], *, windowed: bool
    ) -> None:
        """Send an outbox in SUBMIT batches; a ``windowed`` one (large payloads) only while the window has room.

        A large payload goes into a slot of the arena when it fits there (the
        task carries a reference), else through the socket, counted against
        :data:`MAX_INFLIGHT_BYTES`. Either way the window is full when the next
        payload has no room: it waits, in order, for answers to free some.
        """
        cancelled = self._cancelled_unsent
        full = False
        while outbox and not full:
            ids: list[int] = []
            payloads: list[p.Frame] = []
            specs: dict[int, dict[str, Any]] = {}
            size = 0
            while outbox and len(ids) < MAX_BATCH_TASKS and size < MAX_BATCH_BYTES:
                tid, spec, payload = outbox[0]
                if cancelled and tid in cancelled:
                    outbox.popleft()
                    cancelled.discard(tid)
                    continue
                if windowed:
                    payload = self._claim_window(tid, payload)
                    if payload is None:
                        full = True
                        break
                outbox.popleft()
                if spec:
                    specs[len(ids)] = spec
                ids.append(tid)
                payloads.append(payload)
                size += nbytes(payload)
            if ids:
                link.send(p.TaskBatch(ids, payloads, specs).encode(p.Kind.SUBMIT))
                self._sent_tasks += len(ids)

    def _claim_window(self, tid: int, payload: Any) -> Any:
        """Room for a large payload: what to send in its place (an arena reference, or itself), or None if full."""
        arena = self.arena
        size = nbytes(payload)
        if arena is not None and arena.fits(size):
            placed = arena.put(payload)
            if placed is not None:
                self._slots[tid] = placed[1]
                return placed[0]
            if arena.failed is None:
                return None  # no free slot now; answers will free some
        if self._inflight_bytes >= MAX_INFLIGHT_BYTES:
            return None
        self._large[tid] = size
        self._inflight_bytes += size
        return payload

    def _answered(self, ids: Iterable[int]) -> None:
        """Large payloads whose tasks were answered leave the in-flight count or free their arena slots."""
        large, slots = self._large, self._slots
        if not large and not slots:
            return
        for tid in ids:
            length = large.pop(tid, None)
            if length is not None:
                self._inflight_bytes -= length
            slot = slots.pop(tid, None)
            if slot is not None:
                assert self.arena is not None
                self.arena.free(slot)

    def _count_answers(self, count: int) -> None:
        # A task may be answered twice (its pool died after sending the result directly, and the
        # interchange failed it): never count more answers than tasks sent, or idle would be wrong.
        self._answered_tasks = min(self._answered_tasks + count, self._sent_tasks)

    def _receive(self, link: links.UnixLink | links.ZmqLink) -> None:
        self._handle(link.receive(), from_pool=False)

    def _handle(self, messages: list[list[Any]], from_pool: bool) -> None:
        """Act on messages from the interchange, or (``from_pool``) RESULTS sent by a pool directly."""
        for frames in messages:
            try:
                _, kind = p.parse_header(frames[0])
                if kind is p.Kind.RESULTS:
                    batch = p.ResultBatch.decode(frames, pools=self.want_pools)
                    self._count_answers(len(batch.ids))
                    self._answered(batch.ids)
                    self.on_results(batch.ids, batch.statuses, batch.payloads, batch)
                elif from_pool:
                    raise p.ProtocolError(f"unexpected {kind.name} on a pool's result link")
                elif kind is p.Kind.FAILURES:
                    failures = p.body_json(frames)
                    answered = [int(tid) for tid in failures if str(tid).isdigit()]
                    self._count_answers(len(answered))
                    self._answered(answered)
                    self.on_failures(failures)
                elif kind is p.Kind.EVENT:
                    self.on_event(p.body_json(frames))
                elif kind is p.Kind.COMMAND_REPLY:
                    reply = p.body_json(frames)
                    fut = self._replies.get(reply.get("id"))
                    if fut is not None and not fut.done():
                        fut.set_result(reply.get("result"))
                else:
                    raise p.ProtocolError(f"unexpected {kind.name} from the interchange")
            except p.MalformedBatch as e:  # its tasks cannot be answered: fail them rather than let them hang
                logger.error("a malformed result batch from the interchange: %s", e)
                self._answered(e.ids)
                self.on_failures(p.malformed_failures(e.ids, e))
            except p.ProtocolError as e:
                sender = "a pool" if from_pool else "the interchange"
                logger.warning("dropped a malformed message from %s: %s", sender, e)

    def _interchange_died(self, reason: str | None = None) -> None:
        if self.lost_reason is not None:
            return
        proc = self.process
        if reason is None:
            code = proc.returncode if proc is not None else None
            reason = (
                f"the interchange of executor {self.label!r} (pid {proc.pid if proc else '?'}) exited unexpectedly "
                f"with code {code}; see {self.logdir}/interchange.log"
            )
        self.lost_reason = reason
        for fut in list(self._replies.values()):
            if not fut.done():
                fut.set_exception(RuntimeError(reason))
        self.on_lost(reason)

    # ------------------------------------------------------------------ stop

    def stop(self, timeout: float = 10.0) -> None:
        """Tell the interchange to shut down, wait for it, and stop the I/O thread."""
        if self.process is None:
            return
        if self.lost_reason is None and self.process.poll() is None:
            self._control.append(p.encode_empty(p.Kind.SHUTDOWN))
        self._stopping = True
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        # A command still waiting for its reply (another thread asking for the pools, say) gets an
        # error now instead of waiting out its own timeout: no reply can come any more.
        for fut in list(self._replies.values()):
            if not fut.done():
                fut.set_exception(RuntimeError(f"the interchange of executor {self.label!r} was stopped"))
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("the interchange did not stop within %s s; killing it", timeout)
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        if self._context is not None:
            self._context.term()
            self._context = None
        if self.arena is not None:
            self.arena.close()
        if self._results is not None:
            self._results.close()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
