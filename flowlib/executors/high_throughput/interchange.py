"""The interchange: one process between the executor client and the worker pools.

::

    executor client                 interchange                          worker pools
    DEALER ---SUBMIT/CANCEL/COMMAND---> ROUTER (client)                  (one per node)
           <--RESULTS/FAILURES/EVENT---        \\
                                                task queue --TASKS-->  ROUTER (workers) <--> DEALER
                                                manager table <--RESULTS/FAILURES/HEARTBEAT--

With a socket directory (the executor's default), the executor and this
machine's pools connect over owner-only Unix sockets instead
(:mod:`.local_links`); pools on other nodes always use the ROUTER above. Pools
on the Unix socket send their RESULTS to the executor directly and only
RELEASED (the task ids) here (:mod:`.direct_results`). A
large argument may arrive as a reference into the executor's shared-memory
arena (:mod:`.arena`): pools on the Unix socket get the reference, any other
pool gets the bytes, read from the arena here.

It never deserializes a task or a result: payload frames are forwarded as they
arrive. Each pass of the loop runs one named step per concern. A malformed or
unknown message is logged and dropped; only authenticated peers (CurveZMQ) get
through at all when encryption is on.

Started by the executor as ``python -m flowlib.executors.high_throughput.interchange``
with a JSON configuration on stdin; it answers with one JSON line on stdout
giving the ports it bound, then logs to ``<logdir>/interchange.log``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import struct
import sys
import time
from collections.abc import Sequence
from typing import Any

import zmq

from flowlib.addresses import tcp_url, zmq_ipv6
from flowlib.executors.high_throughput import protocol as p
from flowlib.executors.high_throughput.arena import ArenaError, ArenaReader, is_reference
from flowlib.executors.high_throughput.fd_poller import FdPoller
from flowlib.executors.high_throughput.interchange_options import InterchangeOptions
from flowlib.executors.high_throughput.local_links import LocalLinks
from flowlib.executors.high_throughput.managers import ManagerRecord, ManagerTable
from flowlib.executors.high_throughput.parts import nbytes
from flowlib.executors.high_throughput.task_queue import (
    QueuedTask,
    TaskQueue,
    describe_request,
    split_by_size,
    task_from_spec,
)
from flowlib.executors.high_throughput.zmq_frames import ZmqWatch, readable, recv_frames, send_frames

logger = logging.getLogger("flowlib.interchange")
_NAN_PAIR = struct.pack("dd", float("nan"), float("nan"))

ADAPTIVE_PREFETCH_PER_WORKER = 32
"""Extra tasks per worker a pool may hold while its tasks are short (see managers.py)."""

DISPATCH_CHUNK = 32
"""Plain tasks given to one pool before moving on to the next."""

DISPATCH_BYTES = 4 << 20
"""Payload bytes given to one pool before moving on (large tasks spread over pools at once)."""

HOUSEKEEPING_PERIOD = 0.05
"""Seconds between checks for lost pools, heartbeats due and a vanished executor."""


class Interchange:
    """The interchange's state and event loop."""

    def __init__(self, options: InterchangeOptions) -> None:
        self.options = options
        self.context = zmq.Context()
        self.queue = TaskQueue()
        self.managers = ManagerTable()
        self.client_identity: bytes | None = None
        self.running = True
        self.auth: Any = None
        self.key_checker: Any = None  # a security.KeyChecker when encryption is on
        self.reported_refusals = 0
        self.last_heartbeat_sent = time.monotonic()
        self.next_housekeeping = 0.0
        self.early_messages: list[list[Any]] = []
        self.stats = {"passes": 0, "from_client": 0, "from_pools": 0, "to_pools": 0, "to_client": 0, "tasks_out": 0}
        self.adaptive_prefetch = options.adaptive_prefetch
        self.result_ids: list[int] = []
        self.result_statuses = bytearray()
        self.result_payloads: list[Any] = []
        self.result_times = bytearray()
        self.result_pools: list[list[Any]] = []
        self.client = self.context.socket(zmq.ROUTER)
        self.workers = self.context.socket(zmq.ROUTER)
        self._setup_security()
        for sock, host in ((self.client, options.client_address), (self.workers, options.worker_address)):
            sock.setsockopt(zmq.IPV6, zmq_ipv6(host))  # IPv6 literals, names, '*'; off for IPv4 literals
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.MAXMSGSIZE, options.max_message_size)
            sock.setsockopt(zmq.ROUTER_MANDATORY, 0)
        self.client_port: int | None = None
        if not options.unix_dir:
            self.client_port = self.client.bind_to_random_port(tcp_url(options.client_address))
        if options.worker_port:
            self.workers.bind(tcp_url(options.worker_address, options.worker_port))
            self.worker_port = options.worker_port
        else:
            low, high = options.worker_port_range
            self.worker_port = self.workers.bind_to_random_port(
                tcp_url(options.worker_address), min_port=low, max_port=high, max_tries=200
            )
        # One poll() over plain descriptors: the Unix links, and the descriptor each ZeroMQ socket
        # signals on (see ZmqWatch); zmq_poll would cost four system calls and pyzmq's layer per wait.
        self.poller = FdPoller()
        self.zmq_watch = ZmqWatch(self.poller)
        if not options.unix_dir:  # else the client is on a Unix socket; an idle ZeroMQ socket costs every poll
            self.zmq_watch.add(self.client)
        self.zmq_watch.add(self.workers)
        self.now = time.monotonic()
        """When the current pass of the loop started."""
        self.local: LocalLinks | None = None
        """The executor's link and this machine's pools, over Unix sockets (None: all on ZeroMQ)."""
        if options.unix_dir:
            self.local = LocalLinks(
                options.unix_dir,
                options.max_message_size,
                self.poller,
                on_client=lambda message: self.from_client(b"unix", message),
                on_pool=lambda identity, message: self.from_pool(identity, message, self.now),
                on_client_gone=self.client_gone,
                on_pool_gone=self.pool_gone,
            )
        self.arena = ArenaReader() if options.arena_dir and self.local is not None else None
        """Reads arena references for pools that cannot (those not on this machine's Unix socket)."""

    def _setup_security(self) -> None:
        cert_dir = self.options.cert_dir
        if not cert_dir:
            return
        from zmq.auth.thread import ThreadAuthenticator

        from flowlib.executors.high_throughput.security import (
            KeyChecker,
            allowed_client_key,
            apply_server,
            server_keys,
        )

        self.key_checker = KeyChecker(allowed_client_key(cert_dir))
        self.auth = ThreadAuthenticator(self.context, log=logging.getLogger("flowlib.interchange.auth"))
        self.auth.start()
        self.auth.configure_curve_callback(domain="flowlib", credentials_provider=self.key_checker)
        keys = server_keys(cert_dir)
        for sock in (self.client, self.workers):
            apply_server(sock, keys)
            sock.zap_domain = b"flowlib"

    # ------------------------------------------------------------------ loop

    def run(self) -> None:
        """Serve until the client says SHUTDOWN or goes away."""
        poll_ms = self.options.poll_period_ms
        poll, watch = self.poller.poll, self.zmq_watch
        while self.running:
            events = dict(poll(watch.timeout(poll_ms)))
            self.stats["passes"] += 1
            now = time.monotonic()
            ready = watch.ready(events)
            if ready:
                if self.client in ready:
                    self.receive_from_client(now)
                if self.workers in ready:
                    self.receive_from_managers(now)
            self.now = now
            if self.local is not None:
                self.local.serve(events)
            self.forward_results()
            self.dispatch_tasks(now)
            if self.local is not None:
                self.local.flush(events)
            if now >= self.next_housekeeping:
                self.next_housekeeping = now + HOUSEKEEPING_PERIOD
                self.expire_managers(now)
                self.send_heartbeats(now)
                self.report_refused_peers()
                self.check_parent()
        self.stop()

    # ---------------------------------------------------------------- client

    def receive_from_client(self, now: float) -> None:
        sock = self.client
        while readable(sock):
            frames = recv_frames(sock)
            self.from_client(frames[0], frames[1:])

    def from_client(self, identity: bytes, body: Sequence[Any]) -> None:
        """Act on one message from the client (its identity is b"unix" on the Unix socket)."""
        self.stats["from_client"] += 1
        try:
            version, kind = p.parse_header(body[0])
            if version != p.PROTOCOL_VERSION:
                raise p.ProtocolError(f"client speaks protocol {version}, interchange {p.PROTOCOL_VERSION}")
            if self.client_identity is None:
                self.client_identity = identity
                early, self.early_messages = self.early_messages, []
                for frames_waiting in early:
                    self.send_to_client(frames_waiting)
            self.client_identity = identity
            self.handle_client_message(kind, body)
        except p.MalformedBatch as e:  # the tasks cannot run: fail them rather than let them hang
            logger.error("a malformed task batch from the client: %s", e)
            self.send_to_client(p.encode_json(p.Kind.FAILURES, p.malformed_failures(e.ids, e)))
        except (p.ProtocolError, IndexError) as e:
            logger.warning("dropped a malformed message from the client: %s", e)
        except Exception:  # a bug handling one message must not take the interchange down
            logger.exception("failed to handle a message from the client; continuing")

    def handle_client_message(self, kind: p.Kind, frames: Sequence[Any]) -> None:
        if kind is p.Kind.SUBMIT:
            self.queue_tasks(p.TaskBatch.decode(frames))
        elif kind is p.Kind.CANCEL:
            self.cancel_tasks(p.body_ids(frames))
        elif kind is p.Kind.DIRECT:
            self.direct_tasks(frames)
        elif kind is p.Kind.COMMAND:
            self.run_command(p.body_json(frames))
        elif kind is p.Kind.SHUTDOWN:
            logger.info("shutdown requested by the client")
            self.running = False
        else:
            raise p.ProtocolError(f"a client may not send {kind.name}")

    def queue_tasks(self, batch: p.TaskBatch) -> None:
        failures: dict[str, dict[str, str]] = {}
        specs = batch.specs
        if not specs:  # plain tasks: queued in one go
            self.queue.push_plain(
                [
                    QueuedTask(tid, payload, None, 0.0, 0.0, 0.0)
                    for tid, payload in zip(batch.ids, batch.payloads, strict=True)
                ]
            )
            return
        for index, (tid, payload) in enumerate(zip(batch.ids, batch.payloads, strict=True)):
            spec = specs.get(index) if specs else None
            if spec is None:
                self.queue.push(QueuedTask(tid, payload, None, 0.0, 0.0, 0.0))
                continue
            try:
                task, priority = task_from_spec(tid, payload, spec)
            except ValueError as e:
                failures[str(tid)] = {"error": "InvalidResourceSpecification", "message": str(e)}
                continue
            if len(self.managers) and not self.managers.largest_fit(task):
                failures[str(tid)] = {
                    "error": "InvalidResourceSpecification",
                    "message": f"task {tid} asks for {describe_request(task)}, more than any connected pool has",
                }
                continue
            self.queue.push(task, priority)
        if failures:
            self.send_to_client(p.encode_json(p.Kind.FAILURES, failures))

    def direct_tasks(self, frames: Sequence[Any]) -> None:
        """The executor sent these tasks to one of this machine's pools itself: account them as that pool's.

        The notice is sent before the tasks, so it is read here before their
        RELEASED can be; a pool that is gone already fails them as lost.
        """
        if len(frames) != 3:
            raise p.ProtocolError(f"DIRECT has {len(frames)} frames, expected 3")
        ids = p.unpack_ids(frames[1])
        pool_id = bytes(frames[2]).decode("utf-8", "replace")
        local = self.local.by_identity if self.local is not None else {}
        record = next(
            (r for r in self.managers.all.values() if r.registration.pool_id == pool_id and r.identity in local), None
        )
        if record is None:
            message = f"worker pool {pool_id} was lost before it could take the task"
            self.send_to_client(
                p.encode_json(p.Kind.FAILURES, {str(t): {"error": "ManagerLost", "message": message} for t in ids})
            )
            return
        for tid in ids:
            task = QueuedTask(tid, b"", None, 0.0, 0.0, 0.0, self.now)
            record.take(task)
        self.managers.refresh(record)

    def cancel_tasks(self, ids: list[int]) -> None:
        cancelled_here = [tid for tid in ids if self.queue.remove(tid) is not None]
        if cancelled_here:
            self.send_to_client(
                p.ResultBatch(
                    cancelled_here, bytes([p.TaskStatus.CANCELLED]) * len(cancelled_here), [b""] * len(cancelled_here)
                ).encode()
            )
        remaining = set(ids) - set(cancelled_here)
        if not remaining:
            return
        for record in self.managers.all.values():
            mine = [tid for tid in remaining if tid in record.tasks]
            if mine:
                self.send_to_pool(record.identity, p.encode_ids(p.Kind.CANCEL, mine))

    def run_command(self, request: dict[str, Any]) -> None:
        op = request.get("op")
        result: Any
        if op == "managers":
            result = [r.describe() for r in self.managers.all.values()]
        elif op == "outstanding":
            result = len(self.queue) + sum(len(r.tasks) for r in self.managers.all.values())
        elif op == "drain_blocks":
            blocks = {str(b) for b in request.get("block_ids", [])}
            drained = []
            for record in list(self.managers.all.values()):
                if record.registration.block_id in blocks and not record.draining:
                    self.drain(record)
                    drained.append(record.registration.pool_id)
            result = drained
        elif op == "sizes":
            result = self.sizes()
        elif op == "ping":
            result = "pong"
        else:
            result = {"error": f"unknown command {op!r}"}
        self.send_to_client(p.encode_json(p.Kind.COMMAND_REPLY, {"id": request.get("id"), "result": result}))

    def sizes(self) -> dict[str, int]:
        """Entries in the structures that hold tasks (all 0 once every task is done): for leak checks."""
        records = self.managers.all.values()
        return {
            **self.queue.sizes(),
            "held_by_pools": sum(len(r.tasks) for r in records),
            "pools": len(self.managers),
            "early_messages": len(self.early_messages),
            "results_pending": len(self.result_ids),
        }

    def send_to_client(self, frames: list[Any]) -> None:
        if self.client_identity is None:
            if len(self.early_messages) < 10000:
                self.early_messages.append(frames)  # kept until the client says hello
            else:
                logger.warning("no client connected; dropped a %d-frame message", len(frames))
            return
        if self.local is None or not self.local.send_to_client(frames):
            send_frames(self.client, [self.client_identity, *frames])
            self.zmq_watch.touched = True

    def send_to_pool(self, identity: bytes, frames: list[Any]) -> None:
        """Send a message to one worker pool, over whichever socket it is connected to."""
        if self.local is None or not self.local.send_to_pool(identity, frames):
            send_frames(self.workers, [identity, *frames])
            self.zmq_watch.touched = True

    def send_event(self, event: dict[str, Any]) -> None:
        self.send_to_client(p.encode_json(p.Kind.EVENT, event))

    # -------------------------------------------------------------- managers

    def receive_from_managers(self, now: float) -> None:
        sock = self.workers
        while readable(sock):
            frames = recv_frames(sock)
            self.from_pool(frames[0], frames[1:], now)

    def from_pool(self, identity: bytes, body: Sequence[Any], now: float) -> None:
        """Act on one message from a worker pool."""
        self.stats["from_pools"] += 1
        try:
            version, kind = p.parse_header(body[0])
            if kind is p.Kind.REGISTER:
                self.register(identity, version, body, now)
                return
            if version != p.PROTOCOL_VERSION:
                raise p.ProtocolError(f"protocol version {version}")
            record = self.managers.get(identity)
            if record is None:
                logger.warning("dropped %s from an unregistered peer %r", kind.name, identity[:32])
                return
            record.last_seen = now
            self.handle_manager_message(record, kind, body)
        except (p.ProtocolError, IndexError) as e:
            logger.warning("dropped a malformed message from %r: %s", identity[:32], e)
        except Exception:  # a bug handling one message must not take the interchange down
            logger.exception("failed to handle a message from pool %r; continuing", identity[:32])

    def client_gone(self, why: str) -> None:
        """The executor's Unix link closed: nobody is left to serve."""
        logger.warning("the client link closed (%s); shutting down", why)
        self.running = False

    def pool_gone(self, identity: bytes, why: str) -> None:
        """A local pool's Unix link closed: the pool is lost at once, not after a heartbeat timeout."""
        record = self.managers.get(identity)
        if record is not None:
            self.lose_manager(record, why)

    def refuse(self, identity: bytes, reason: str) -> None:
        """Refuse a pool's registration: log why, tell the pool (REJECT) and the executor."""
        logger.warning("refused a worker pool: %s", reason)
        self.send_to_pool(identity, p.encode_reject(reason))
        self.send_event({"event": "rejected", "reason": reason})

    def register(self, identity: bytes, version: int, frames: Sequence[Any], now: float) -> None:
        if version != p.PROTOCOL_VERSION:
            self.refuse(
                identity,
                f"VersionMismatch: worker pool speaks protocol version {version}, "
                f"the interchange speaks {p.PROTOCOL_VERSION}",
            )
            return
        try:
            reg = p.Registration.decode(frames)
        except p.BadRegistration as e:
            self.refuse(identity, f"BadRegistration: {e}")
            return
        if reg.protocol_version != p.PROTOCOL_VERSION:
            self.refuse(
                identity,
                f"VersionMismatch: worker pool protocol version {reg.protocol_version}, "
                f"interchange {p.PROTOCOL_VERSION}",
            )
            return
        if identity in self.managers.all:
            logger.warning("pool %s registered twice; keeping the first registration", reg.pool_id)
            return
        record = ManagerRecord(
            identity=identity,
            registration=reg,
            extra_slots=ADAPTIVE_PREFETCH_PER_WORKER * reg.worker_count
            if self.adaptive_prefetch and reg.prefetch_capacity == 0
            else 0,
            free_slots=reg.worker_count + reg.prefetch_capacity,
            free_cores=reg.cores,
            free_memory=reg.memory_mb,
            free_gpus=float(len(reg.accelerators)),
            last_seen=now,
        )
        self.managers.add(record)
        registered: dict[str, Any] = {"heartbeat_period": self.options.heartbeat_period}
        if self.options.resource_interval is not None:
            registered["resource_interval"] = self.options.resource_interval
        if self.options.result_socket and self.local is not None and identity in self.local.by_identity:
            registered["result_socket"] = self.options.result_socket  # a pool on this machine: see direct_results
            registered["release_slack"] = record.extra_slots // 2  # RELEASED may wait while it is within these
        self.send_to_pool(identity, p.encode_json(p.Kind.REGISTERED, registered))
        logger.info(
            "registered pool %s (block %s, %s, %d workers, flowlib %s, Python %s)",
            reg.pool_id, reg.block_id, reg.hostname, reg.worker_count, reg.flowlib_version, reg.python_version,
        )  # fmt: skip
        self.send_event({"event": "registered", **record.describe()})

    def handle_manager_message(self, record: ManagerRecord, kind: p.Kind, frames: Sequence[Any]) -> None:
        if kind is p.Kind.RESULTS:
            try:
                batch = p.ResultBatch.decode(frames)
            except p.MalformedBatch as e:
                self.fail_malformed_results(record, e)
                return
            record.release_many(batch.ids, record.last_seen)
            self.managers.refresh(record)
            if record.draining and not record.tasks:
                self.forget_drained(record)
            self.result_ids.extend(batch.ids)
            self.result_statuses += batch.statuses
            self.result_payloads.extend(batch.payloads)
            self.result_times += batch.times or _NAN_PAIR * len(batch.ids)
            self.result_pools.append([record.registration.pool_id, len(batch.ids)])
        elif kind is p.Kind.RELEASED:  # answered to the executor directly
            record.release_many(p.body_ids(frames), record.last_seen)
            self.managers.refresh(record)
            if record.draining and not record.tasks:
                self.forget_drained(record)
        elif kind is p.Kind.FAILURES:
            failures = p.body_json(frames)
            for tid in list(failures):
                try:
                    record.release(int(tid))
                except ValueError:
                    raise p.ProtocolError(f"bad task id {tid!r} in FAILURES") from None
            self.managers.refresh(record)
            self.send_to_client(p.encode_json(p.Kind.FAILURES, failures))
        elif kind is p.Kind.HEARTBEAT:
            pass
        elif kind is p.Kind.RESOURCES:
            reg = record.registration
            self.send_event(
                {
                    "event": "resources",
                    "pool_id": reg.pool_id,
                    "block_id": reg.block_id,
                    "hostname": reg.hostname,
                    "interval": self.options.resource_interval,
                    "samples": p.decode_resources(frames),
                }
            )
        elif kind is p.Kind.DRAIN:
            record.draining = True
            self.managers.refresh(record)
            self.send_event({"event": "draining", **record.describe()})
            if not record.tasks:
                self.forget_drained(record)
        else:
            raise p.ProtocolError(f"a worker pool may not send {kind.name}")

    def fail_malformed_results(self, record: ManagerRecord, error: p.MalformedBatch) -> None:
        """A pool's result batch whose payloads do not add up: fail those of its tasks with MalformedPayload."""
        mine = [tid for tid in error.ids if tid in record.tasks]
        logger.error("a malformed result batch from pool %s: %s", record.registration.pool_id, error)
        for tid in mine:
            record.release(tid)
        self.managers.refresh(record)
        if mine:
            self.send_to_client(p.encode_json(p.Kind.FAILURES, p.malformed_failures(mine, error)))

    def forward_results(self) -> None:
        """Send the results gathered in this pass to the client as one message."""
        if not self.result_ids:
            return
        statuses, times = bytes(self.result_statuses), bytes(self.result_times)
        batch = p.ResultBatch(self.result_ids, statuses, self.result_payloads, times, self.result_pools)
        self.stats["to_client"] += 1
        self.result_ids, self.result_statuses, self.result_payloads = [], bytearray(), []
        self.result_times, self.result_pools = bytearray(), []
        self.send_to_client(batch.encode())

    def drain(self, record: ManagerRecord) -> None:
        record.draining = True
        self.managers.refresh(record)
        self.send_to_pool(record.identity, p.encode_empty(p.Kind.DRAIN))
        if not record.tasks:
            self.forget_drained(record)

    def forget_drained(self, record: ManagerRecord) -> None:
        """A draining pool with no task left is gone: it exits once it has drained."""
        if self.managers.remove(record.identity) is not None:
            logger.info("pool %s (block %s) drained", record.registration.pool_id, record.registration.block_id)
            self.send_event({"event": "lost", "why": "drained", **record.describe()})

    def dispatch_tasks(self, now: float) -> None:
        queue, managers = self.queue, self.managers
        if not len(queue) or not (managers.available or managers.overflow):
            return
        # Pools that get arena references as they are (None: no arena, nothing to inline).
        reference_pools = None if self.arena is None else (self.local.by_identity if self.local is not None else {})
        batches: dict[bytes, list[QueuedTask]] = {}
        sizes: dict[bytes, int] = {}  # payload bytes per batch: most batches need no split
        unplaced: list[tuple[float, QueuedTask]] = []
        # Plain tasks go to one pool in chunks: fewer, larger messages. The pool's
        # place in the manager table is refreshed once per chunk, not per task.
        current: ManagerRecord | None = None
        batch: list[QueuedTask] = []
        chunk = chunk_bytes = 0
        inline = with_specs = False
        while len(queue):
            task = queue.pop()
            if task is None:
                break
            spec = task.spec
            if (
                spec is None
                and current is not None
                and chunk < DISPATCH_CHUNK
                and chunk_bytes < DISPATCH_BYTES
                and (current.free_slots > 0 or current.can_overflow())
            ):
                record = current
            else:
                if current is not None:
                    managers.refresh(current)
                    sizes[current.identity] = sizes.get(current.identity, 0) + chunk_bytes
                    current = None
                chunk = chunk_bytes = 0
                found = managers.choose(task) if managers.available else None
                if found is None and spec is None:
                    found = managers.choose_overflow()
                    if found is None:  # no pool can take even a plain task now
                        unplaced.append((0.0, task))
                        break
                if found is None:
                    unplaced.append((float(spec.get("priority", 0)) if spec else 0.0, task))
                    if len(unplaced) > 1000 or not managers.available:
                        break
                    continue
                record = found
                batch = batches.setdefault(record.identity, [])
                inline = reference_pools is not None and record.identity not in reference_pools
            task.dispatched = now
            if inline and is_reference(task.payload) and not self.inline_arena_payload(task):
                continue
            record.take(task)
            batch.append(task)
            if spec is None:
                current = record
                chunk += 1
                chunk_bytes += nbytes(task.payload)
            else:
                with_specs = True
                managers.refresh(record)
                sizes[record.identity] = sizes.get(record.identity, 0) + nbytes(task.payload)
        if current is not None:
            managers.refresh(current)
            sizes[current.identity] = sizes.get(current.identity, 0) + chunk_bytes
        if unplaced:
            queue.push_back(unplaced)
        else:
            queue.compact()
        stats = self.stats
        for identity, tasks in batches.items():
            parts = [tasks] if sizes.get(identity, 0) < DISPATCH_BYTES else split_by_size(tasks, DISPATCH_BYTES)
            for part in parts:
                if not part:
                    continue
                specs = {i: t.spec for i, t in enumerate(part) if t.spec} if with_specs else {}
                message = p.TaskBatch([t.tid for t in part], [t.payload for t in part], specs).encode(p.Kind.TASKS)
                stats["to_pools"] += 1
                stats["tasks_out"] += len(part)
                self.send_to_pool(identity, message)

    def inline_arena_payload(self, task: QueuedTask) -> bool:
        """Replace an arena reference by the bytes it names; on failure, fail the task and return False."""
        assert self.arena is not None
        try:
            task.payload = self.arena.load(task.payload, bytes)
        except ArenaError as e:
            failure = {str(task.tid): {"error": "ArenaError", "message": str(e)}}
            self.send_to_client(p.encode_json(p.Kind.FAILURES, failure))
            return False
        return True

    def expire_managers(self, now: float) -> None:
        threshold = self.options.heartbeat_threshold
        for record in list(self.managers.all.values()):
            if now - record.last_seen > threshold:
                self.lose_manager(record, f"no heartbeat for {now - record.last_seen:.1f} s (threshold {threshold} s)")

    def lose_manager(self, record: ManagerRecord, why: str) -> None:
        self.managers.remove(record.identity)
        if self.local is not None:
            self.local.close_pool(record.identity)  # one that stopped answering on its Unix link
        reg = record.registration
        logger.warning("lost pool %s (block %s on %s): %s", reg.pool_id, reg.block_id, reg.hostname, why)
        if record.tasks:
            message = f"worker pool {reg.pool_id} (block {reg.block_id} on {reg.hostname}) was lost: {why}"
            self.send_to_client(
                p.encode_json(
                    p.Kind.FAILURES, {str(t): {"error": "ManagerLost", "message": message} for t in record.tasks}
                )
            )
        self.send_event({"event": "lost", "why": why, **record.describe()})

    def send_heartbeats(self, now: float) -> None:
        if now - self.last_heartbeat_sent < self.options.heartbeat_period:
            return
        self.last_heartbeat_sent = now
        beat = p.encode_empty(p.Kind.HEARTBEAT)
        for identity in self.managers.all:
            self.send_to_pool(identity, beat)

    def report_refused_peers(self) -> None:
        checker = self.key_checker
        if checker is None or checker.refused == self.reported_refusals:
            return
        self.reported_refusals = checker.refused
        logger.warning("%d connection attempts were refused: unknown CurveZMQ key", checker.refused)
        self.send_event({"event": "auth_failures", "count": checker.refused})

    def check_parent(self) -> None:
        parent = self.options.parent_pid
        if parent is not None and os.getppid() != parent:
            logger.warning("the executor process %d is gone; shutting down", parent)
            self.running = False

    def stop(self) -> None:
        logger.info("loop statistics: %s", self.stats)
        shutdown = p.encode_empty(p.Kind.SHUTDOWN)
        for identity in list(self.managers.all):
            if self.local is not None and identity in self.local.by_identity:
                continue  # told by LocalLinks.close
            try:
                self.workers.send_multipart([identity, *shutdown], zmq.NOBLOCK)
            except zmq.ZMQError:
                pass
        if self.local is not None:
            self.local.close(shutdown)
        if self.auth is not None:
            self.auth.stop()
        self.client.close(linger=0)
        self.workers.close(linger=500)
        self.context.term()
        if self.arena is not None:
            self.arena.close()
        if self.options.arena_dir:  # the executor removes it too; this covers an executor killed outright
            shutil.rmtree(self.options.arena_dir, ignore_errors=True)


def _configure_logging(options: InterchangeOptions) -> None:
    os.makedirs(options.logdir, exist_ok=True)
    handler = logging.FileHandler(os.path.join(options.logdir, "interchange.log"))
    handler.setFormatter(logging.Formatter(options.log_format or "%(asctime)s %(name)s %(levelname)s: %(message)s"))
    root = logging.getLogger("flowlib")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if options.debug else logging.INFO)


def main() -> None:
    """Entry point: read options (JSON) from stdin, print the bound ports, serve."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the executor decides when we stop
    raw = json.loads(sys.stdin.readline())
    if "worker_port_range" in raw:
        raw["worker_port_range"] = tuple(raw["worker_port_range"])
    options = InterchangeOptions(**raw)
    _configure_logging(options)
    interchange = Interchange(options)
    signal.signal(signal.SIGTERM, lambda *_: setattr(interchange, "running", False))
    where: dict[str, Any] = {"client_port": interchange.client_port, "worker_port": interchange.worker_port}
    if interchange.local is not None:
        where.update(interchange.local.paths)
    sys.stdout.write(json.dumps(where) + "\n")
    sys.stdout.flush()
    logger.info("interchange serving: %s", where)
    try:
        interchange.run()
    except Exception:
        logger.exception("the interchange failed")
        raise
    logger.info("interchange stopped")


if __name__ == "__main__":
    main()
