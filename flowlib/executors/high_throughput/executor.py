"""HighThroughputExecutor: tasks run in worker processes fed by an interchange.

::

    user process                      interchange process           each node (a block)
    DataFlowKernel -> executor ==ZMQ==> interchange ==ZMQ==> worker pool -> worker processes
                      (client.py)       (interchange.py)     (worker_pool.py)  (worker.py)

Tasks and results are serialized once in the user process and once on the
worker; the interchange forwards them untouched. Traffic is encrypted and
authenticated with CurveZMQ unless ``encrypted=False``; keys are made per run in
the run directory with owner-only permissions. Workers come from the provider in
blocks; the first ``init_blocks`` blocks are requested in ``start()``.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import shlex
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass
from typing import Any

from flowlib.dataflow.futures import LightFuture
from flowlib.executors.block_provider import BlockErrorHandler, BlockProviderExecutor
from flowlib.executors.block_watch import LostBlockWatch
from flowlib.executors.errors import BadStateException, InvalidResourceSpecification
from flowlib.executors.high_throughput.errors import MalformedPayload, ManagerLost, WorkerLost
from flowlib.executors.high_throughput.manager_selector import ManagerSelector
from flowlib.executors.high_throughput.options import HTEXOptions
from flowlib.executors.high_throughput.parts import Parts, from_chunks
from flowlib.executors.high_throughput.shared_results import RESULT_HEADER as _SHARED_RESULT
from flowlib.executors.high_throughput.shared_results import ResultReader
from flowlib.providers.base import ExecutionProvider
from flowlib.serialize import DeserializationError, deserialize, serialize_function
from flowlib.serialize.facade import pack_res_spec_apply_chunks

logger = logging.getLogger(__name__)

_ACCEPTED_KEYS = frozenset({"priority", "cores", "memory", "gpus", "running_time"})


_FUNCTION_CACHE_SIZE = 256
_JOIN_BELOW = 1 << 20
"""Serialized tasks smaller than this are joined into one frame; larger ones travel as their chunks (parts.py)."""


def _globals_fingerprint(func: Any) -> tuple[int, ...]:
    # A function from __main__ travels by value with the globals it names; if one of
    # them is rebound (a notebook cell ran again), the cached bytes are stale.
    code = getattr(func, "__code__", None)
    module_globals = getattr(func, "__globals__", None)
    if code is None or module_globals is None or getattr(func, "__module__", None) != "__main__":
        return ()
    return tuple(id(module_globals.get(name)) for name in code.co_names)


@dataclass(frozen=True)
class RemoteSide:
    """How worker pools behind an SSH channel reach the interchange."""

    tunnel: Any
    port: int
    cert_dir: str | None
    logdir: str


class HTEXFuture(LightFuture[Any]):
    """The executor's future for one task; ``cancel()`` reaches the running worker."""

    def __init__(self, executor: HighThroughputExecutor, tid: int) -> None:
        super().__init__()
        self._executor = executor
        self._tid = tid
        self.worker_times: tuple[float, float, str | None] | None = None
        """Set before completion when the executor records worker times (monitoring on)."""

    @property
    def executor_task_id(self) -> int:
        """The executor's own id of this task (what its worker pools report, e.g. in resource samples)."""
        return self._tid

    def cancel(self) -> bool:
        """Cancel the task: dropped if queued, its worker killed and replaced if running."""
        if self.done():
            return self.cancelled()
        self._executor._cancel([self._tid])
        return super().cancel()


class ManagerList(list[dict[str, Any]]):
    """A list of worker-pool records that can also be called, returning itself.

    :attr:`HighThroughputExecutor.connected_managers` is a property in flowlib
    and a method in Parsl; this type lets ``htex.connected_managers`` and
    ``htex.connected_managers()`` both work.
    """

    def __call__(self) -> ManagerList:
        """The list itself (for code written for Parsl's ``connected_managers()`` method)."""
        return self


class TaskCount(int):
    """A count of tasks that can also be called, returning itself as a plain int.

    :attr:`HighThroughputExecutor.outstanding` is a property in flowlib (and in
    Parsl's base class) and a method on Parsl's htex; this lets both
    ``htex.outstanding`` and ``htex.outstanding()`` work.
    """

    def __call__(self) -> int:
        """The count (for code written for Parsl's ``htex.outstanding()``)."""
        return int(self)


class HighThroughputExecutor(BlockProviderExecutor):
    """flowlib's own distributed executor for one facility.

    Accepts Parsl's keywords; the most used are ``label``, ``provider`` (default a
    ``LocalProvider``), ``max_workers_per_node``, ``cores_per_worker``,
    ``mem_per_worker``, ``address`` and ``encrypted`` (default True). flowlib's
    own ``unix_sockets`` (default True) carries the links that stay on this
    machine (executor to interchange, interchange to a LocalProvider's pools)
    over owner-only Unix sockets instead of encrypted loopback TCP, and its
    ``shared_memory`` (default True) hands large arguments to those pools
    through an owner-only shared-memory arena, and takes their large results
    back through files in the same directory. ``address``,
    ``loopback_address`` (default ``"127.0.0.1"``; ``"::1"`` works too) and the
    bound worker ports take IPv4 or IPv6 literals or host names. See the
    documentation page "High-throughput executor" for every option.
    """

    restartable = False  # start() after shutdown() does not bring it back: load a new Config

    def __init__(
        self,
        label: str = "HighThroughputExecutor",
        provider: ExecutionProvider | None = None,
        launch_cmd: str | None = None,
        interchange_launch_cmd: Sequence[str] | None = None,
        address: str | None = None,
        loopback_address: str = "127.0.0.1",
        worker_ports: tuple[int, int] | None = None,
        worker_port_range: tuple[int, int] = (54000, 55000),
        interchange_port_range: tuple[int, int] = (55000, 56000),
        storage_access: list[Any] | None = None,
        working_dir: str | None = None,
        worker_debug: bool = False,
        cores_per_worker: float = 1.0,
        mem_per_worker: float | None = None,
        max_workers_per_node: int | float | None = None,
        cpu_affinity: str = "none",
        available_accelerators: int | Sequence[str] = (),
        prefetch_capacity: int = 0,
        heartbeat_threshold: int | float = 120,
        heartbeat_period: int | float = 30,
        drain_period: int | float | None = None,
        poll_period: int = 10,
        address_probe_timeout: int | float | None = None,
        worker_logdir_root: str | None = None,
        manager_selector: ManagerSelector | None = None,
        block_error_handler: bool | BlockErrorHandler = True,
        encrypted: bool = True,
        unix_sockets: bool = True,
        shared_memory: bool = True,
    ) -> None:
        if provider is None:
            from flowlib.providers.local import LocalProvider

            provider = LocalProvider()
        super().__init__(provider=provider, block_error_handler=block_error_handler)
        self.label = label
        self.launch_cmd = launch_cmd
        self.address = address
        self.loopback_address = loopback_address
        self.worker_ports = worker_ports
        self.worker_port_range = worker_port_range
        self.interchange_port_range = interchange_port_range
        self.worker_debug = worker_debug
        self.cores_per_worker = cores_per_worker
        self.mem_per_worker = mem_per_worker
        self.max_workers_per_node = max_workers_per_node
        self.cpu_affinity = cpu_affinity
        self.available_accelerators = available_accelerators
        self.prefetch_capacity = prefetch_capacity
        self.heartbeat_threshold = heartbeat_threshold
        self.heartbeat_period = heartbeat_period
        self.drain_period = drain_period
        self.poll_period = poll_period
        self.address_probe_timeout = address_probe_timeout
        self.worker_logdir_root = worker_logdir_root
        self.encrypted = encrypted
        self.unix_sockets = unix_sockets
        self.shared_memory = shared_memory
        self.options = self._validated_options()
        self.storage_access = storage_access
        self.working_dir = working_dir
        self.interchange_launch_cmd = interchange_launch_cmd
        if manager_selector is not None and not isinstance(manager_selector, ManagerSelector):
            raise TypeError(
                "HighThroughputExecutor argument 'manager_selector' must be None or a ManagerSelector "
                "(flowlib.executors.high_throughput.manager_selector), got "
                f"{type(manager_selector).__name__}"
            )
        # Accepted for Parsl configurations; the interchange places tasks itself (see manager_selector.py).
        self.manager_selector = manager_selector
        self._futures: dict[int, HTEXFuture] = {}
        self._function_cache: dict[int, tuple[Callable[..., Any], tuple[int, ...], bytes]] = {}
        self._tids = itertools.count()
        self._client: Any = None
        self._connected: dict[str, dict[str, Any]] = {}
        self._blocks_connected: list[str] = []
        self._rejections: list[str] = []
        self.pool_listeners: list[Callable[[dict[str, Any]], None]] = []
        """Called with every worker-pool event ('registered', 'draining', 'lost': pool_id, block_id,
        hostname, worker_count, ...; 'resources': the samples of one pool, with ``label``) on the
        executor's receiving thread; they must not block."""
        self.log_format: str | None = None
        """A ``logging.Formatter`` format for interchange.log, manager.log and worker_<rank>.log; set before
        ``start()``. The kernel sets it to its ``FileLogging(format_string=...)`` when one was given."""
        self._record_worker_times = False
        self.resource_monitoring_interval: float | None = None
        """When set before ``start()`` (by monitoring), every worker pool samples its busy workers
        this often (seconds) and the samples reach ``pool_listeners`` as 'resources' events."""
        self._lock = threading.Lock()
        self._started = False
        self._shutdown = False
        self.cert_dir: str | None = None
        self.unix_dir: str | None = None
        self.arena_dir: str | None = None
        self.shared_results: ResultReader | None = None
        """Reads large results that local workers left in shared memory (None: all results take the sockets)."""
        self.logdir: str | None = None
        self._remote: RemoteSide | None = None
        self._block_watch: LostBlockWatch | None = None

    @property
    def record_worker_times(self) -> bool:
        """When true (set by monitoring), each finished future gets ``worker_times``:
        ``(started, ended, pool_id)`` as the worker pool saw them (NaN/None when unknown)."""
        return self._record_worker_times

    @record_worker_times.setter
    def record_worker_times(self, value: bool) -> None:
        self._record_worker_times = bool(value)
        if self._client is not None:
            self._client.want_pools = self._record_worker_times  # otherwise batches' pools are not even decoded

    def _validated_options(self) -> HTEXOptions:
        # Parsl lets attributes such as poll_period be changed after construction
        # and before start(), so they are validated here and again at start().
        return HTEXOptions.build(**{name: getattr(self, name) for name in HTEXOptions.FIELDS})

    # ----------------------------------------------------------------- start

    def start(self) -> None:
        """Generate keys, start the interchange, and request the first blocks."""
        from flowlib.executors.high_throughput.client import InterchangeClient

        self.options = self._validated_options()
        self._started = True
        base = os.path.join(self.run_dir, self.label)  # Parsl's place: <run_dir>/<label>/interchange.log
        self.logdir = base
        os.makedirs(base, exist_ok=True)
        if self.options.encrypted:
            from flowlib.executors.high_throughput.security import create_keys

            self.cert_dir = create_keys(os.path.join(base, "keys"))
        opts = self.options
        if opts.unix_sockets:
            from flowlib.executors.high_throughput.links import make_socket_dir

            self.unix_dir = make_socket_dir()
            from flowlib.executors.high_throughput.options import provider_is_local

            if opts.shared_memory and provider_is_local(self.provider):
                from flowlib.executors.high_throughput.arena import make_arena_dir

                self.arena_dir = make_arena_dir()
                if self.arena_dir is not None:
                    self.shared_results = ResultReader(self.arena_dir)
        self._client = InterchangeClient(
            self.label,
            {
                "client_address": opts.loopback_address,
                "worker_address": opts.bind_address(self.provider),
                "worker_port": opts.worker_ports[0] if opts.worker_ports else None,
                "worker_port_range": list(opts.worker_port_range),
                "heartbeat_period": opts.heartbeat_period,
                "heartbeat_threshold": opts.heartbeat_threshold,
                "poll_period_ms": opts.poll_period,
                "debug": opts.worker_debug,
                "unix_dir": self.unix_dir,
                "arena_dir": self.arena_dir,
                "resource_interval": self.resource_monitoring_interval,
                "log_format": self.log_format,
            },
            logdir=base,
            cert_dir=self.cert_dir,
            on_results=self._on_results,
            on_failures=self._on_failures,
            on_event=self._on_event,
            on_lost=self._on_interchange_lost,
        )
        self._client.want_pools = self._record_worker_times
        self._block_watch = LostBlockWatch(
            self, period=opts.heartbeat_period, grace=opts.heartbeat_threshold, stopped=lambda: self._shutdown
        )
        try:
            self._client.start()
        except BaseException:
            self._remove_local_dirs()
            raise
        self._block_watch.start()
        self._remote = self._connect_remote_side()
        if self.provider is not None:
            self.provider.script_dir = os.path.join(base, "submit_scripts")
            os.makedirs(self.provider.script_dir, exist_ok=True)
            if self.provider.init_blocks:
                self.scale_out(self.provider.init_blocks)

    def _connect_remote_side(self) -> RemoteSide | None:
        """For a provider behind an SSH channel: copy the keys over and tunnel the worker port.

        Worker pools on the far side then connect to 127.0.0.1 there, through the
        same SSH connection, so no inbound port is opened on this machine.
        """
        from flowlib.executors.high_throughput.options import provider_uses_ssh

        if not provider_uses_ssh(self.provider):
            return None
        channel = self.provider.channel  # type: ignore[union-attr]
        from flowlib.channels.tunnel import SSHTunnel

        assert self._client is not None and self._client.worker_port is not None
        base = channel.script_dir or channel.abspath(".flowlib")
        remote_base = f"{base.rstrip('/')}/htex/{self.run_id or 'run'}/{self.label}"
        if not channel.script_dir:  # submit scripts must be copied to the far side too
            channel.script_dir = f"{remote_base}/submit_scripts"
            channel.makedirs(channel.script_dir, mode=0o700, exist_ok=True)
        remote_keys = None
        if self.cert_dir:
            remote_keys = f"{remote_base}/keys"
            channel.makedirs(remote_keys, mode=0o700, exist_ok=True)
            for name in sorted(os.listdir(self.cert_dir)):
                channel.push_file(os.path.join(self.cert_dir, name), remote_keys)
            channel.execute_wait(f"chmod 600 {shlex.quote(remote_keys)}/*", walltime=30)
        # Pools on the login node itself reach the tunnel on its loopback. Pools on compute
        # nodes need it on an address they can reach: give that address as ``address=``
        # (the login node's sshd needs ``GatewayPorts clientspecified``).
        from flowlib.addresses import is_ipv6

        loopback = self.options.loopback_address
        if self.options.address:
            bind = "::" if is_ipv6(self.options.address) else "0.0.0.0"
        else:
            bind = loopback
        tunnel = SSHTunnel(
            channel, local_ports=[self._client.worker_port], local_host=loopback, remote_bind_address=bind
        )
        (remote_port,) = tunnel.start()
        logger.info(
            "executor %s: workers reach the interchange through an SSH tunnel (remote port %d)", self.label, remote_port
        )
        return RemoteSide(tunnel=tunnel, port=remote_port, cert_dir=remote_keys, logdir=f"{remote_base}/workers")

    def launch_command(self, block_id: str) -> str:
        """The worker-pool command for one block."""
        assert self._client is not None and self._client.worker_port is not None
        remote = self._remote
        if remote is not None:
            return self.options.pool_command(
                block_id=block_id,
                worker_port=remote.port,
                addresses=self.options.address or self.options.loopback_address,
                cert_dir=remote.cert_dir,
                logdir=self.options.worker_logdir_root or remote.logdir,
                python="python3",
                log_format=self.log_format,
            )
        from flowlib.executors.high_throughput.options import provider_is_local

        return self.options.pool_command(
            block_id=block_id,
            worker_port=self._client.worker_port,
            addresses=self.options.worker_addresses(self.provider),
            cert_dir=self.cert_dir,
            logdir=self.options.worker_logdir_root or self.logdir or ".",
            python=shlex.quote(sys.executable),
            log_format=self.log_format,
            unix_socket=self._client.pool_socket if provider_is_local(self.provider) else None,
            result_dir=self.arena_dir if provider_is_local(self.provider) else None,
        )

    # ---------------------------------------------------------------- submit

    def submit(
        self, func: Callable[..., Any], resource_specification: dict[str, Any], /, *args: Any, **kwargs: Any
    ) -> Future[Any]:
        """Serialize the task and hand it to the interchange; return its future."""
        spec = resource_specification or None
        if spec:
            self.validate_resource_spec(spec)
        if self.bad_state_is_set:
            if isinstance(self.executor_exception, Exception):
                raise self.executor_exception
            raise BadStateException(self, "the executor is in a bad state")
        if self._shutdown or self._client is None:
            raise BadStateException(self, "the executor is not running")
        function_bytes = self._function_bytes(func)
        chunks, size = pack_res_spec_apply_chunks(func, args, kwargs, spec or {}, function_bytes=function_bytes)
        # small: one joined frame; large: parts that are views of the pickler's chunks (never joined here)
        payload: Any = b"".join(chunks) if size < _JOIN_BELOW else from_chunks(chunks)
        tid = next(self._tids)
        fut = HTEXFuture(self, tid)
        self._futures[tid] = fut
        self._client.submit(tid, spec, payload)
        return fut

    def validate_resource_spec(self, resource_specification: dict[str, Any]) -> None:
        """Raise InvalidResourceSpecification for keys this executor does not know; return None.

        Called by :meth:`submit` for every non-empty specification, as in Parsl.
        """
        unknown = set(resource_specification) - _ACCEPTED_KEYS
        if unknown:
            raise InvalidResourceSpecification(
                unknown,
                f"unknown resource specification key(s) {sorted(unknown)}; accepted: {sorted(_ACCEPTED_KEYS)}",
            )

    def _function_bytes(self, func: Callable[..., Any]) -> bytes:
        """The serialized function, reused while the function and the globals it names are unchanged."""
        cache = self._function_cache
        key = id(func)
        fingerprint = _globals_fingerprint(func)
        entry = cache.get(key)
        if entry is not None and entry[0] is func and entry[1] == fingerprint:
            return entry[2]
        data = serialize_function(func)
        cache[key] = (func, fingerprint, data)
        if len(cache) > _FUNCTION_CACHE_SIZE:
            cache.pop(next(iter(cache)))
        return data

    def _cancel(self, ids: list[int]) -> None:
        for tid in ids:
            self._futures.pop(tid, None)
        if self._client is not None and self._client.lost_reason is None:
            self._client.cancel(ids)

    # ------------------------------------------------------ results (I/O thread)

    def _on_results(self, ids: list[int], statuses: bytes, payloads: list[Any], batch: Any = None) -> None:
        futures = self._futures
        shared = self.shared_results
        if self.record_worker_times and batch is not None and batch.times:
            self._attach_worker_times(ids, batch)
        for tid, status, payload in zip(ids, statuses, payloads, strict=True):
            fut = futures.pop(tid, None)
            # a reference into a local worker's result file (shared_results.py) instead of the result itself
            reader = (
                shared if shared is not None and type(payload) is not Parts and payload[:3] == _SHARED_RESULT else None
            )
            if fut is None or fut.done():
                if reader is not None:
                    reader.discard(payload)
                continue
            if status == 2:  # cancelled
                Future.cancel(fut)
                continue
            try:
                if reader is not None:
                    value = reader.load(payload, tid, deserialize)
                else:
                    value = deserialize(b"".join(payload) if type(payload) is Parts else payload)
            except Exception as e:
                if isinstance(e, DeserializationError) and e.what is None:
                    e.what = "the task's result" if status == 0 else "the exception raised by the task"
                fut.set_exception(e)
                continue
            if status == 0:
                fut.set_result(value)
            else:
                fut.set_exception(value.get_exception() if hasattr(value, "get_exception") else value)

    def _attach_worker_times(self, ids: list[int], batch: Any) -> None:
        times = batch.task_times()
        pools: list[str | None] = []
        for pool_id, count in batch.pools:
            pools.extend([str(pool_id)] * int(count))
        if len(pools) != len(ids):
            pools = [None] * len(ids)
        futures = self._futures
        for index, tid in enumerate(ids):
            fut = futures.get(tid)
            if fut is not None:
                fut.worker_times = (times[2 * index], times[2 * index + 1], pools[index])

    def _on_failures(self, failures: dict[str, dict[str, str]]) -> None:
        for tid_text, info in failures.items():
            fut = self._futures.pop(int(tid_text), None)
            if fut is None or fut.done():
                continue
            kind, message = info.get("error"), info.get("message", "")
            exc: BaseException
            if kind == "WorkerLost":
                exc = WorkerLost(message)
            elif kind == "ManagerLost":
                exc = ManagerLost(message)
            elif kind == "InvalidResourceSpecification":
                exc = InvalidResourceSpecification(set(), message)
            elif kind == "MalformedPayload":
                exc = MalformedPayload(message)
            elif kind == "ArenaError":
                from flowlib.executors.high_throughput.arena import ArenaError

                exc = ArenaError(message)
            else:
                exc = BadStateException(self, f"{kind}: {message}")
            fut.set_exception(exc)

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "resources":  # frequent: neither logged nor kept
            event["label"] = self.label
            self._tell_listeners(event)
            return
        pool = str(event.get("pool_id"))
        watch = self._block_watch
        if kind == "registered":
            self.ever_connected = True
            with self._lock:
                self._connected[pool] = event
                block = str(event.get("block_id"))
                if block not in self._blocks_connected:
                    self._blocks_connected.append(block)
            if watch is not None:
                watch.pool_registered(str(event.get("block_id")), pool)
        elif kind == "lost":
            with self._lock:
                self._connected.pop(pool, None)
            if watch is not None:
                watch.pool_lost(str(event.get("block_id")), pool, str(event.get("why")))
        elif kind == "rejected":
            logger.error("executor %s refused a worker pool: %s", self.label, event.get("reason"))
            self._rejections.append(str(event.get("reason")))
            del self._rejections[:-100]  # the latest few are enough to explain a failure
        elif kind == "auth_failures":
            logger.error(
                "executor %s: %s connection attempts failed authentication (workers with the wrong keys?)",
                self.label,
                event.get("count"),
            )
        logger.info("executor %s: %s", self.label, event)
        if kind in ("registered", "draining", "lost"):
            self._tell_listeners(event)

    def _tell_listeners(self, event: dict[str, Any]) -> None:
        for listener in list(self.pool_listeners):
            try:
                listener(event)
            except Exception:
                logger.exception("executor %s: a worker-pool listener failed", self.label)

    def _on_interchange_lost(self, reason: str) -> None:
        if self._shutdown:
            return
        self.set_bad_state_and_fail_all(BadStateException(self, reason))

    def set_bad_state_and_fail_all(self, exc: BaseException) -> None:
        """As the base class; when pools were refused for their protocol version, say so as VersionMismatch."""
        if self._rejections and not self.ever_connected:
            last = self._rejections[-1]
            if last.startswith("VersionMismatch"):
                from flowlib.executors.high_throughput.errors import VersionMismatch

                exc = VersionMismatch(f"{last}; {exc}")
            elif isinstance(exc, BadStateException):
                exc = BadStateException(self, f"{exc.reason}; the interchange refused the worker pool: {last}")
        super().set_bad_state_and_fail_all(exc)

    def fail_all_outstanding(self, exc: BaseException) -> None:
        """Fail every task still waiting for a result."""
        futures, self._futures = self._futures, {}
        for fut in futures.values():
            if not fut.done():
                try:
                    fut.set_exception(exc)
                except Exception:  # raced with a result  # noqa: S110
                    pass

    # ------------------------------------------------------------ scaling API

    @property
    def outstanding(self) -> TaskCount:
        """Tasks submitted and not yet finished (also callable, as Parsl's ``outstanding()``)."""
        return TaskCount(len(self._futures))

    def block_ever_connected(self, block_id: str) -> bool | None:
        """Whether a worker pool of this block has registered (see :meth:`connected_blocks`)."""
        with self._lock:
            return block_id in self._blocks_connected

    def connected_blocks(self) -> list[str]:
        """Ids of every block that has had a worker pool registered, in order, also those since released."""
        with self._lock:
            return list(self._blocks_connected)

    def task_slots(self) -> int:
        """Workers in registered worker pools (0 before the first pool registers)."""
        return self.connected_workers

    @property
    def connected_workers(self) -> int:
        """Workers in registered worker pools."""
        with self._lock:
            return sum(int(e.get("worker_count", 0)) for e in self._connected.values())

    @property
    def connected_managers(self) -> ManagerList:
        """What the interchange reports about each registered worker pool (one dict per pool).

        Read as an attribute (flowlib) or called (Parsl: ``htex.connected_managers()``):
        the value is a list that returns itself when called, so both spellings give
        the same list, fetched from the interchange when the attribute is read.
        """
        if self._client is None or self._client.lost_reason is not None or self._shutdown:
            return ManagerList()
        try:
            return ManagerList(self._client.command("managers"))
        except RuntimeError:
            if self._shutdown:  # shut down while asking: no pools any more
                return ManagerList()
            raise

    @property
    def workers_per_node(self) -> float:
        """Workers per node, from connected pools, else estimated from the options."""
        with self._lock:
            counts = [int(e.get("worker_count", 0)) for e in self._connected.values()]
        if counts:
            return max(1.0, sum(counts) / len(counts))
        return self.options.expected_workers_per_node(self.provider)

    def idle_blocks(self) -> dict[str, float]:
        """Blocks whose pools are all idle, with the shortest idle time among their pools."""
        idle: dict[str, float] = {}
        busy: set[str] = set()
        for manager in self.connected_managers:
            block = str(manager["block_id"])
            if manager["outstanding"] or manager["idle_seconds"] is None:
                busy.add(block)
            else:
                idle[block] = min(idle.get(block, math.inf), float(manager["idle_seconds"]))
        return {b: t for b, t in idle.items() if b not in busy}

    def drain_blocks(self, block_ids: list[str]) -> None:
        """Ask the pools of these blocks to finish and exit."""
        if self._client is not None and self._client.lost_reason is None:
            try:
                self._client.command("drain_blocks", block_ids=list(block_ids))
            except Exception:
                logger.exception("executor %s could not drain blocks %s", self.label, block_ids)

    # --------------------------------------------------------------- shutdown

    def shutdown(self) -> None:
        """Stop the interchange (which stops the pools) and release every block."""
        if self._shutdown:
            return
        self._shutdown = True
        if self._block_watch is not None:
            self._block_watch.close()
        if self._client is not None:
            self._client.stop()  # the interchange tells every pool to stop
        if self.shared_results is not None:
            self.shared_results.close()
        self.release_all_blocks(drain=False)
        if self._remote is not None:
            self._remote.tunnel.close()
        self._remove_local_dirs()
        self.fail_all_outstanding(CancelledError(f"executor {self.label} shut down before the task finished"))

    def _remove_local_dirs(self) -> None:
        """Remove the socket and arena directories (the interchange removes them too when it stops)."""
        import shutil

        for path in (self.unix_dir, self.arena_dir):
            if path is not None:
                shutil.rmtree(path, ignore_errors=True)

    def __repr__(self) -> str:
        return f"HighThroughputExecutor(label={self.label!r}, provider={self.provider!r})"
