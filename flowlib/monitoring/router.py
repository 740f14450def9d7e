"""The router: turns a kernel's state events and its executors' state into batched database writes.

::

    EventBus dispatcher --batch callback--> Router._incoming (bounded deque; overflow counted)
                                                 |
                         Router thread, every flush_period s:
                           rows = plan(events)   (task/try/status inserts and updates, merged)
                           one transaction       (executemany per statement kind)
                         and every resource_monitoring_interval s:
                           executors' blocks and worker pools -> block / node rows

The kernel never waits for the router: the bus's batch callback only appends to a
deque. A write that fails is retried on the next flush with the same rows (they
stay queued, bounded by ``max_queued``); after three failures in a row the
router stops writing, logs the error and :meth:`Router.close` raises it as
:class:`~flowlib.monitoring.errors.MonitoringError` from ``cleanup()``.
"""

from __future__ import annotations

import collections
import functools
import getpass
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from flowlib.dataflow.states import FINAL_FAILURE_STATES, FINAL_STATES, States
from flowlib.monitoring import schema as t
from flowlib.monitoring.errors import MonitoringError
from flowlib.monitoring.failure import describe_failure
from flowlib.monitoring.resources import ResourceRows
from flowlib.monitoring.store import open_store, safe_url

if TYPE_CHECKING:
    from flowlib.monitoring.events import Subscription, TaskEvent
    from flowlib.monitoring.hub import MonitoringHub

logger = logging.getLogger(__name__)

_S = States
_TRY_STARTS = frozenset({_S.launched})
_TRY_ENDS = frozenset({_S.exec_done, _S.failed, _S.fail_retryable, _S.cancelled, _S.memo_done})
_MAX_FAILED_WRITES = 3
_TEXT_LIMIT = 2_000
_BATCH_EVENTS = 20_000
"""State changes per transaction, so that a long backlog commits (and shows progress) as it goes."""


def _text(value: Any) -> str | None:
    if value is None:
        return None
    try:
        text = str(value)
    except Exception as e:  # a user object whose __str__ raises
        text = f"<unprintable {type(value).__name__}: {type(e).__name__}>"
    return text if len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 3] + "..."


def _depends(futures: Sequence[Any]) -> str | None:
    ids = [str(f.tid) for f in futures if getattr(f, "tid", None) is not None]
    return ",".join(ids) if ids else None


class Router:
    """Writes one kernel's monitoring records; see the module docstring."""

    def __init__(self, hub: MonitoringHub, dfk: Any) -> None:
        self.hub = hub
        self.dfk = dfk
        self.run_id: str = dfk.run_id
        self.url = hub.endpoint_for(dfk.run_dir)
        self.dropped = 0
        """Events dropped because the store fell more than ``max_queued`` behind."""
        self.written = 0
        """Status records written so far."""
        self._progress = 0
        self._in_flight = 0
        """Status records in the batch being written (or retried)."""
        """Batches written so far: how close() tells a busy writer from a stuck one."""
        self._incoming: collections.deque[TaskEvent] = collections.deque()
        self._retry_rows: list[tuple[Any, list[dict[str, Any]]]] = []
        self._open_tries: set[tuple[int, int]] = set()
        self._completed = 0
        self._failed = 0
        self._error: BaseException | None = None
        self._failed_writes = 0
        self._last_write_error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._subscription: Subscription | None = None
        self._engine: sa.Engine | None = None
        self._blocks_seen: dict[tuple[str, str], str] = {}
        self._nodes_seen: dict[str, tuple[Any, ...]] = {}
        self._next_poll = 0.0
        self._pool_events: collections.deque[tuple[dict[str, Any], float]] = collections.deque()
        self._pool_listening: list[list[Any]] = []
        self._block_events: collections.deque[dict[str, Any]] = collections.deque()
        self._block_listening: list[tuple[list[Any], Any]] = []
        self._pools: dict[str, tuple[str | None, str | None]] = {}
        """pool_id -> (hostname, block_id), from the executors' pool events."""
        self._node_figures: dict[str, tuple[int | None, int | None]] = {}
        """pool_id -> (cpu_count, total_memory) as the pool registered them."""
        self._resources: ResourceRows | None = None
        """Worker pools' resource samples (None unless resource monitoring is on)."""
        if hub.resource_monitoring_enabled:
            self._resources = ResourceRows(self.run_id, hub.max_queued, hub.resource_monitoring_interval)

    # ------------------------------------------------------------------ lifetime

    def start(self) -> None:
        """Open the store (errors raise MonitoringError here), record the workflow, start the thread."""
        self._engine = open_store(self.url)
        hub = self.hub
        name = hub.workflow_name or os.path.basename(sys.argv[0] or "") or "workflow"
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    t.workflow.insert(),
                    {
                        "run_id": self.run_id,
                        "workflow_name": name,
                        "workflow_version": hub.workflow_version,
                        "time_began": time.time(),
                        "host": socket.gethostname(),
                        "user": getpass.getuser(),
                        "rundir": os.path.abspath(self.dfk.run_dir),
                        "tasks_failed_count": 0,
                        "tasks_completed_count": 0,
                    },
                )
        except sa.exc.SQLAlchemyError as e:
            self._engine.dispose()
            raise MonitoringError(f"cannot write to the monitoring database {safe_url(self.url)}: {e}") from e
        self._subscription = self.dfk.events.subscribe_batches(self._accept)
        # The kernel starts monitoring before its executors, so attach to the configured ones.
        config = getattr(self.dfk, "config", None)
        for executor in list(getattr(config, "executors", None) or []):
            self.attach_executor(executor)
        self._thread = threading.Thread(target=self._run, name="flowlib-monitoring-router", daemon=True)
        self._thread.start()
        logger.info("monitoring run %s into %s", self.run_id, safe_url(self.url))

    def attach_executor(self, executor: Any) -> None:
        """Record ``executor``'s worker pools and task times; call before the executor starts."""
        listeners = getattr(executor, "pool_listeners", None)
        if isinstance(listeners, list):
            listeners.append(self._pool_event)
            self._pool_listening.append(listeners)
        block_listeners = getattr(executor, "block_listeners", None)
        if isinstance(block_listeners, list):
            callback = functools.partial(self._block_event, executor)
            block_listeners.append(callback)
            self._block_listening.append((block_listeners, callback))
        if hasattr(executor, "record_worker_times"):
            executor.record_worker_times = True
        if self._resources is not None and hasattr(executor, "resource_monitoring_interval"):
            executor.resource_monitoring_interval = float(self.hub.resource_monitoring_interval)

    def close(self, stall_timeout: float = 10.0) -> None:
        """Write everything queued, record the end of the run, close the store.

        Waits as long as the writer keeps making progress; gives up (counting what is left
        as dropped) once ``stall_timeout`` s pass with no batch written.
        """
        self.dfk.events.flush()
        if self._subscription is not None:
            self._subscription.cancel()
        for listeners in self._pool_listening:
            if self._pool_event in listeners:
                listeners.remove(self._pool_event)
        for block_listeners, callback in self._block_listening:
            if callback in block_listeners:
                block_listeners.remove(callback)
        self._stop.set()
        thread = self._thread
        if thread is not None:
            seen, last_progress = self._progress, time.monotonic()
            while thread.is_alive():
                thread.join(0.05)
                if self._progress != seen:
                    seen, last_progress = self._progress, time.monotonic()
                elif time.monotonic() - last_progress > stall_timeout:
                    break
            if thread.is_alive():
                left = len(self._incoming) + self._in_flight
                self.dropped += left
                raise MonitoringError(
                    f"the monitoring database {safe_url(self.url)} accepted no write for {stall_timeout} s"
                    f" at cleanup; {left} records of run {self.run_id} left unwritten"
                )
        if self._retry_rows and self._error is None:
            self._error = self._last_write_error
        engine = self._engine
        if engine is not None and self._error is None:
            try:
                with engine.begin() as conn:
                    conn.execute(
                        t.workflow.update().where(t.workflow.c.run_id == self.run_id),
                        {
                            "time_completed": time.time(),
                            "tasks_completed_count": self._completed,
                            "tasks_failed_count": self._failed,
                        },
                    )
            except sa.exc.SQLAlchemyError as e:
                self._error = e
        if engine is not None:
            engine.dispose()
        if self._resources is not None and self._resources.dropped:
            self.dropped += self._resources.dropped
            self._resources.dropped = 0
        if self.dropped:
            logger.warning(
                "monitoring dropped %d records of run %s (store too slow or down)", self.dropped, self.run_id
            )
        if self._error is not None:
            raise MonitoringError(
                f"writing to the monitoring database {safe_url(self.url)} failed: {self._error}"
            ) from self._error

    # ------------------------------------------------------------------ intake (dispatcher thread)

    def _accept(self, events: Sequence[TaskEvent]) -> None:
        room = self.hub.max_queued - len(self._incoming)
        if room >= len(events):
            self._incoming.extend(events)
        else:
            if room > 0:
                self._incoming.extend(events[:room])
            self.dropped += len(events) - max(room, 0)

    def _pool_event(self, event: dict[str, Any]) -> None:
        """A worker pool registered, started draining or was lost, or sent samples (executor's receiving thread)."""
        if event.get("event") == "resources":
            if self._resources is not None:
                self._resources.accept(event)
            return
        self._pools[str(event.get("pool_id"))] = (_text(event.get("hostname")), _text(event.get("block_id")))
        if len(self._pool_events) < self.hub.max_queued:
            self._pool_events.append((event, time.time()))
        else:
            self.dropped += 1

    def _block_event(self, executor: Any, block_id: str, status: Any) -> None:
        """A block changed state, first PENDING when submitted (called under the executor's block lock)."""
        if len(self._block_events) >= self.hub.max_queued:
            self.dropped += 1
            return
        self._block_events.append(
            {
                "run_id": self.run_id,
                "executor_label": executor.label,
                "block_id": str(block_id),
                "job_id": _text(executor.blocks_to_job_id.get(block_id)),
                "timestamp": time.time(),
                "status": status.state.name,
            }
        )

    def _block_event_rows(self) -> list[dict[str, Any]]:
        """Block rows for the state changes since the last flush (what a later poll then need not repeat)."""
        queue = self._block_events
        rows = [queue.popleft() for _ in range(len(queue))]
        for row in rows:
            self._blocks_seen[(row["executor_label"], row["block_id"])] = row["status"]
        return rows

    # ------------------------------------------------------------------ writer thread

    def _run(self) -> None:
        period = self.hub.flush_period
        while True:
            backlog = self._error is None and not self._retry_rows and len(self._incoming) >= _BATCH_EVENTS
            stopping = self._stop.wait(0 if backlog else period)
            if self._error is None:
                self._flush()
                if self.hub.resource_monitoring_enabled and time.monotonic() >= self._next_poll:
                    self._next_poll = time.monotonic() + self.hub.resource_monitoring_interval
                    self._poll_executors()
            else:
                self.dropped += len(self._incoming)
                self._incoming.clear()
            if stopping:
                if self._error is None and (
                    self._incoming
                    or self._retry_rows
                    or self._pool_events
                    or self._block_events
                    or (self._resources is not None and self._resources.pending())
                ):
                    continue  # a last pass for what arrived (or failed) during this one
                return

    def _flush(self) -> None:
        queue = self._incoming
        events = [queue.popleft() for _ in range(min(len(queue), _BATCH_EVENTS))]
        plan = [*self._retry_rows, *self._plan(events)] if events else self._retry_rows
        if self._pool_events:
            plan = [*plan, (t.node.insert(), self._pool_event_rows())]
        if self._block_events:
            plan = [*plan, (t.block.insert(), self._block_event_rows())]
        if self._resources is not None and self._resources.pending():
            plan = [*plan, (t.resource.insert(), self._resources.rows())]
        if not plan:
            return
        if sum(len(rows) for _, rows in plan) > self.hub.max_queued:  # the store has been down for long
            self.dropped += sum(len(rows) for statement, rows in plan if statement is _STATUS_INSERT)
            self._retry_rows = []
            return
        self._write(plan)

    def _write(self, plan: list[tuple[Any, list[dict[str, Any]]]]) -> None:
        assert self._engine is not None
        self._in_flight = sum(len(rows) for statement, rows in plan if statement is _STATUS_INSERT)
        try:
            with self._engine.begin() as conn:
                for statement, rows in plan:
                    if rows:
                        conn.execute(statement, rows)
        except sa.exc.SQLAlchemyError as e:
            self._failed_writes += 1
            self._last_write_error = e
            self._retry_rows = plan
            logger.warning("monitoring write failed (%d/%d): %s", self._failed_writes, _MAX_FAILED_WRITES, e)
            if self._failed_writes >= _MAX_FAILED_WRITES:
                self._error = e
                logger.error("monitoring stops writing to %s: %s", safe_url(self.url), e)
            return
        self._failed_writes = 0
        self._retry_rows = []
        self._progress += 1
        self.written += self._in_flight
        self._in_flight = 0

    def _plan(self, events: Sequence[TaskEvent]) -> list[tuple[Any, list[dict[str, Any]]]]:
        """The inserts and updates for ``events``, merged so that each row is written once per batch."""
        run_id = self.run_id
        status_rows: list[dict[str, Any]] = []
        new_tasks: dict[int, dict[str, Any]] = {}
        task_updates: dict[int, dict[str, Any]] = {}
        new_tries: dict[tuple[int, int], dict[str, Any]] = {}
        try_updates: dict[tuple[int, int], dict[str, Any]] = {}
        open_tries = self._open_tries
        for ev in events:
            tid, new, when = ev.task_id, ev.new, ev.time
            status_rows.append(
                {
                    "task_id": tid,
                    "task_status_name": new.name,
                    "timestamp": when,
                    "run_id": run_id,
                    "try_id": ev.try_id,
                    "task_status_prev": ev.old.name,
                }
            )
            if ev.old is _S.unsched:
                new_tasks[tid] = self._task_row(ev)
                continue
            row = new_tasks.get(tid)
            if row is None:
                row = task_updates.setdefault(tid, {"b_task_id": tid, "b_run_id": run_id})
            row["task_status_name"] = new.name
            row["task_time_updated"] = when
            if new in FINAL_STATES:
                rec = ev.record
                row["task_time_returned"] = when
                row["task_fail_count"] = rec.fail_count if rec is not None else 0
                row["task_fail_cost"] = float(rec.fail_cost) if rec is not None else 0.0
                if new in FINAL_FAILURE_STATES:
                    self._failed += 1
                else:
                    self._completed += 1
            key = (tid, ev.try_id)
            resources = self._resources
            if resources is not None:
                if new in _TRY_STARTS:
                    resources.launched(key, ev.executor, ev.record)
                elif new in _TRY_ENDS:
                    resources.ended(key, ev.executor, ev.exec_future)
            if new in _TRY_STARTS:
                open_tries.add(key)
                new_tries[key] = {
                    "try_id": ev.try_id,
                    "task_id": tid,
                    "run_id": run_id,
                    "task_executor": ev.executor,
                    "task_try_time_launched": when,
                    "task_try_time_running": None,
                    "task_try_time_returned": None,
                    "task_fail_history": None,
                    "block_id": None,
                    "hostname": None,
                    **_NO_FAILURE,
                }
                continue
            fields: dict[str, Any] = {}
            if new is _S.running:
                fields["task_try_time_running"] = when
            if new in _TRY_ENDS or new is _S.dep_fail:
                fields["task_try_time_returned"] = when
                if ev.exec_future is not None:
                    self._worker_fields(ev.exec_future, fields)
            if ev.exception is not None:
                fields.update(describe_failure(ev.exception))
                rec = ev.record
                if rec is not None and rec.fail_history:
                    fields["task_fail_history"] = _text(",".join(rec.fail_history))
            if not fields:
                continue
            if key in new_tries:
                new_tries[key].update(fields)
            elif key in open_tries:
                try_updates.setdefault(key, {"b_try_id": ev.try_id, "b_task_id": tid, "b_run_id": run_id}).update(
                    fields
                )
            elif ev.exception is not None:  # failed before any launch (dependency, memo key): a try row holds why
                open_tries.add(key)
                new_tries[key] = {
                    "try_id": ev.try_id,
                    "task_id": tid,
                    "run_id": run_id,
                    "task_executor": ev.executor,
                    "task_try_time_launched": None,
                    "task_try_time_running": None,
                    "task_try_time_returned": when,
                    "task_fail_history": None,
                    "block_id": None,
                    "hostname": None,
                    **_NO_FAILURE,
                    **fields,
                }
            if new in FINAL_STATES or new is _S.fail_retryable:
                open_tries.discard(key)
        plan: list[tuple[Any, list[dict[str, Any]]]] = [
            (t.task.insert(), list(new_tasks.values())),
            (t.try_.insert(), list(new_tries.values())),
            (_STATUS_INSERT, status_rows),
        ]
        for statement, rows in _grouped_updates(_task_update, task_updates.values()):
            plan.append((statement, rows))
        for statement, rows in _grouped_updates(_try_update, try_updates.values()):
            plan.append((statement, rows))
        return plan

    def _worker_fields(self, fut: Any, fields: dict[str, Any]) -> None:
        """Where and when the try ran, as its worker pool reported on the result stream (htex)."""
        worker_times = getattr(fut, "worker_times", None)
        if type(worker_times) is not tuple or len(worker_times) != 3:  # not from a worker pool that reports them
            return
        started, _, pool_id = worker_times
        if started == started:  # not NaN
            fields["task_try_time_running"] = started
        if pool_id is not None:
            hostname, block_id = self._pools.get(pool_id, (None, None))
            fields["hostname"] = hostname
            fields["block_id"] = block_id

    def _task_row(self, ev: TaskEvent) -> dict[str, Any]:
        rec = ev.record
        kwargs = rec.kwargs if rec is not None else {}
        return {
            "task_id": ev.task_id,
            "run_id": self.run_id,
            "task_depends": _depends(ev.depends),
            "task_func_name": ev.app,
            "task_memoize": bool(rec.memoize) if rec is not None else False,
            "task_hashsum": rec.hashsum if rec is not None else None,
            "task_inputs": _text(kwargs.get("inputs")),
            "task_outputs": _text(kwargs.get("outputs")),
            "task_stdin": _text(kwargs.get("stdin")),
            "task_stdout": _std_path(_stream_spec(rec, kwargs, "stdout")),
            "task_stderr": _std_path(_stream_spec(rec, kwargs, "stderr")),
            "task_time_invoked": rec.time_invoked if rec is not None else ev.time,
            "task_time_returned": None,
            "task_fail_count": 0,
            "task_fail_cost": 0.0,
            "task_status_name": ev.new.name,
            "task_executor": ev.executor,
            "task_time_updated": ev.time,
        }

    # ------------------------------------------------------------------ executors: blocks and pools

    def _poll_executors(self) -> None:
        now = time.time()
        block_rows: list[dict[str, Any]] = []
        node_rows: list[dict[str, Any]] = []
        for label, executor in list(getattr(self.dfk, "executors", {}).items()):
            block_status = getattr(executor, "block_status", None)
            if callable(block_status):
                try:
                    statuses = block_status()
                    jobs = dict(getattr(executor, "blocks_to_job_id", {}))
                except Exception:
                    logger.debug("block status of %s unavailable", label, exc_info=True)
                    statuses = {}
                for block_id, status in statuses.items():
                    state = getattr(getattr(status, "state", None), "name", str(status))
                    if self._blocks_seen.get((label, str(block_id))) != state:
                        self._blocks_seen[(label, str(block_id))] = state
                        block_rows.append(
                            {
                                "run_id": self.run_id,
                                "executor_label": label,
                                "block_id": str(block_id),
                                "job_id": _text(jobs.get(block_id)),
                                "timestamp": now,
                                "status": state,
                            }
                        )
            managers = getattr(executor, "connected_managers", None)
            if callable(managers):
                try:
                    pools = managers()
                except Exception:
                    logger.debug("worker pools of %s unavailable", label, exc_info=True)
                    pools = []
                node_rows.extend(self._node_rows(pools, now))
        if block_rows or node_rows:
            self._write([(t.block.insert(), block_rows), (t.node.insert(), node_rows)])

    def _pool_event_rows(self) -> list[dict[str, Any]]:
        """Node rows for the worker pools that joined or left since the last flush."""
        rows = []
        queue = self._pool_events
        for _ in range(len(queue)):
            event, when = queue.popleft()
            uid = str(event.get("pool_id"))
            active = event.get("event") == "registered"
            key = (active, event.get("worker_count"))
            if self._nodes_seen.get(uid) == key:
                continue
            self._nodes_seen[uid] = key
            rows.append(self._node_row(event, uid, active, when))
        return rows

    def _node_rows(self, pools: Sequence[dict[str, Any]], now: float) -> list[dict[str, Any]]:
        rows = []
        present = set()
        for pool in pools:
            uid = str(pool.get("pool_id"))
            present.add(uid)
            active = not pool.get("draining", False)
            key = (active, pool.get("worker_count"))
            if self._nodes_seen.get(uid) == key:
                continue
            self._nodes_seen[uid] = key
            rows.append(self._node_row(pool, uid, active, now))
        for uid in [u for u in self._nodes_seen if u not in present]:
            was_active = self._nodes_seen.pop(uid)[0]
            if was_active:  # gone without a 'lost' event reaching us
                rows.append(self._node_row({"pool_id": uid}, uid, False, now))
        return rows

    def _node_row(self, pool: dict[str, Any], uid: str, active: bool, now: float) -> dict[str, Any]:
        figures = (_int_or_none(pool.get("cpu_count")), _int_or_none(pool.get("total_memory")))
        if figures == (None, None):  # a 'lost' or 'gone' row: the node is the one that registered
            figures = self._node_figures.get(uid, figures)
        else:
            self._node_figures[uid] = figures
        return {
            "run_id": self.run_id,
            "hostname": str(pool.get("hostname") or ""),
            "uid": uid,
            "block_id": _text(pool.get("block_id")),
            "cpu_count": figures[0],
            "total_memory": figures[1],
            "active": active,
            "worker_count": pool.get("worker_count"),
            "python_version": _text(pool.get("python_version")),
            "timestamp": now,
            "last_heartbeat": now,
        }


_NO_FAILURE: dict[str, Any] = {
    "task_exception_type": None,
    "task_exception_message": None,
    "task_traceback": None,
    "task_exit_code": None,
    "task_failure_reason": None,
    "task_joins": None,
}

_STATUS_INSERT = t.status.insert()


def _int_or_none(value: Any) -> int | None:
    return value if type(value) is int and 0 <= value < 1 << 62 else None


def _stream_spec(rec: Any, kwargs: dict[str, Any], stream: str) -> Any:
    """What the app call gave as ``stream``: a ``File`` given is kept as the File, whose URL is recorded.

    (The task's own keyword then holds the local path the app writes to.)
    """
    files = getattr(rec, "stream_files", None)  # set only for streams given as a File
    if files and stream in files:
        return files[stream]
    return kwargs.get(stream)


def _std_path(spec: Any) -> str:
    """The ``task_stdout``/``task_stderr`` column: '' for none, a File's URL, a path as text."""
    if isinstance(spec, tuple) and spec:
        spec = spec[0]
    if spec is None:
        return ""
    url = getattr(spec, "url", None)
    if isinstance(url, str) and hasattr(spec, "scheme"):  # a File: its URL as given
        return _text(url) or ""
    if isinstance(spec, (str, bytes, os.PathLike)):
        return _text(os.fsdecode(spec)) or ""
    return _text(spec) or ""


def _task_update(columns: tuple[str, ...]) -> Any:
    c = t.task.c
    return (
        t.task.update()
        .where(c.task_id == sa.bindparam("b_task_id"), c.run_id == sa.bindparam("b_run_id"))
        .values({name: sa.bindparam(name) for name in columns})
    )


def _try_update(columns: tuple[str, ...]) -> Any:
    c = t.try_.c
    return (
        t.try_.update()
        .where(
            c.try_id == sa.bindparam("b_try_id"),
            c.task_id == sa.bindparam("b_task_id"),
            c.run_id == sa.bindparam("b_run_id"),
        )
        .values({name: sa.bindparam(name) for name in columns})
    )


def _grouped_updates(make: Any, rows: Any) -> list[tuple[Any, list[dict[str, Any]]]]:
    """executemany needs the same columns in every row: one statement per column set."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        columns = tuple(sorted(k for k in row if not k.startswith("b_")))
        groups.setdefault(columns, []).append(row)
    return [(make(columns), group) for columns, group in groups.items()]
