"""The worker pool's command line, the node's resources, and how many workers fit.

Everything here is checked once, at start-up, before any process or socket
exists: :func:`parse_args` turns ``argv`` into a frozen :class:`PoolOptions`,
:func:`detect_node` measures the node (honouring CPU affinity and cgroup
limits), and :func:`size_pool` decides the worker count or raises
:class:`PoolSizeError` saying which limit left no room.
"""

from __future__ import annotations

import argparse
import math
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from flowlib.executors.high_throughput.affinity import AffinityPolicy, parse_cpu_affinity

EXIT_OK = 0
"""Drained, or told to shut down by the interchange. (SIGTERM/SIGINT: 128 + the signal number.)"""
EXIT_INTERNAL = 1
"""An unexpected error in the pool itself (the traceback is in manager.log), or workers that keep dying at start."""
EXIT_REJECTED = 2
"""The interchange refused the registration (REJECT); the reason is on stderr."""
EXIT_UNREACHABLE = 3
"""No interchange answered the registration within ``--address-probe-timeout``."""
EXIT_BAD_OPTIONS = 4
"""Invalid options, or no worker fits on this node; the reason is on stderr."""
EXIT_INTERCHANGE_LOST = 5
"""Nothing heard from the interchange for ``--heartbeat-threshold`` seconds."""

GB = 1024**3


class PoolSizeError(Exception):
    """Raised by :func:`size_pool` when the options leave room for no worker on this node."""


class _Parser(argparse.ArgumentParser):
    """argparse, exiting with :data:`EXIT_BAD_OPTIONS` (not 2, which means REJECT here)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage()
        self.exit(EXIT_BAD_OPTIONS, f"{self.prog}: error: {message}\n")


@dataclass(frozen=True)
class PoolOptions:
    """The validated command line of one worker pool."""

    addresses: tuple[str, ...]
    """Candidate addresses of the interchange, tried concurrently."""
    port: int
    """The interchange's port for worker pools."""
    address_probe_timeout: float
    """Seconds to wait for a registration answer before giving up (exit 3)."""
    cert_dir: str | None
    """Directory with the CurveZMQ keys; None means no encryption."""
    block_id: str
    """The block (batch job) this pool belongs to."""
    pool_id: str
    """This pool's identity towards the interchange."""
    max_workers_per_node: float
    """Upper bound on the worker count (``inf`` for none)."""
    cores_per_worker: float
    """CPUs each worker is entitled to; below 1 oversubscribes."""
    mem_per_worker: float | None
    """GB of memory each worker needs, or None."""
    cpu_affinity: AffinityPolicy
    """How workers are pinned to CPUs."""
    accelerators: tuple[str, ...]
    """Accelerator identifiers, one per worker."""
    prefetch_capacity: int
    """Tasks the pool accepts beyond one per worker."""
    heartbeat_period: float
    """Seconds of silence towards the interchange before the pool sends a heartbeat."""
    heartbeat_threshold: float
    """Seconds without any message from the interchange before the pool gives up (exit 5)."""
    drain_period: float | None
    """Seconds after start at which the pool drains itself, or None."""
    poll_period_ms: int
    """Longest wait of one pass of the main loop, in milliseconds."""
    logdir: str
    """Directory of manager.log and worker_<rank>.log: ``<--logdir>/block-<block id>/<pool id>``, absolute."""
    working_dir: str | None
    """Directory the workers change into, or None to stay in the pool's."""
    debug: bool
    """Log at DEBUG level (one line per task)."""
    unix_socket: str | None = None
    """The interchange's Unix socket for pools on its own machine, tried before the addresses."""
    result_dir: str | None = None
    """The executor's arena directory: used for large results once the pool registered over ``unix_socket``."""
    log_format: str | None = None
    """A ``logging.Formatter`` format for manager.log and worker_<rank>.log, or None for the pool's own."""


def _positive(kind: type[float] | type[int] = float, allow_zero: bool = False) -> Callable[[str], float]:
    """An argparse type: a number of ``kind``, above zero (or at least zero)."""

    def convert(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if value < 0 or (value == 0 and not allow_zero) or (kind is float and math.isnan(value)):
            raise argparse.ArgumentTypeError(f"{text!r} must be {'>= 0' if allow_zero else '> 0'}")
        return value

    return convert


def _max_workers(text: str) -> float:
    if text.strip().lower() in ("inf", "infinity", "none"):
        return math.inf
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither an integer nor 'inf'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return float(value)


def _affinity(text: str) -> AffinityPolicy:
    try:
        return parse_cpu_affinity(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _names(text: str) -> tuple[str, ...]:
    if text.strip().lower() in ("", "none"):
        return ()
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _default_block_id() -> str:
    return os.environ.get("FLOWLIB_WORKER_BLOCK_ID") or os.environ.get("PARSL_WORKER_BLOCK_ID") or "0"


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``flowlib-worker-pool``."""
    p = _Parser(
        prog="flowlib-worker-pool",
        description="Run one worker pool (a manager and its worker processes) for a flowlib interchange.",
    )
    p.add_argument("--addresses", required=True, type=_names, help="candidate interchange addresses, comma separated")
    p.add_argument("--port", required=True, type=_positive(int), help="the interchange's port for worker pools")
    p.add_argument("--address-probe-timeout", type=_positive(), default=30.0, metavar="S")
    p.add_argument("--cert-dir", default=None, help="CurveZMQ key directory; omit for no encryption")
    p.add_argument(
        "--unix-socket",
        default=None,
        help="the interchange's Unix socket, tried first when the pool runs on the interchange's machine",
    )
    p.add_argument(
        "--result-dir",
        default=None,
        help="the executor's shared-memory directory: with --unix-socket, workers hand large results over through it",
    )
    p.add_argument("--block-id", default=None, help="default: $PARSL_WORKER_BLOCK_ID or 0")
    p.add_argument("--pool-id", default=None, help="default: 12 random hex digits")
    p.add_argument("--max-workers-per-node", type=_max_workers, default=math.inf, metavar="N|inf")
    p.add_argument("--cores-per-worker", type=_positive(), default=1.0, metavar="F")
    p.add_argument("--mem-per-worker", type=_positive(), default=None, metavar="GB")
    p.add_argument("--cpu-affinity", type=_affinity, default=AffinityPolicy("none"))
    p.add_argument("--available-accelerators", type=_names, default=(), metavar="A,B,...")
    p.add_argument("--prefetch-capacity", type=_positive(int, allow_zero=True), default=0, metavar="N")
    p.add_argument("--heartbeat-period", type=_positive(), default=30.0, metavar="S")
    p.add_argument("--heartbeat-threshold", type=_positive(), default=120.0, metavar="S")
    p.add_argument("--drain-period", type=_positive(), default=None, metavar="S")
    p.add_argument("--poll-period", type=_positive(int), default=10, metavar="MS")
    p.add_argument(
        "--logdir",
        default=None,
        help="root of the logs; the pool writes in LOGDIR/block-<block>/<pool> (default ./flowlib_worker_logs)",
    )
    p.add_argument("--working-dir", default=None, help="directory the workers run in (made if missing)")
    p.add_argument("--debug", action="store_true", help="log every task at DEBUG level")
    p.add_argument("--log-format", default=None, help="a logging.Formatter format for the pool's and workers' logs")
    return p


def parse_args(argv: Sequence[str] | None = None) -> PoolOptions:
    """Parse and validate the command line; exits with :data:`EXIT_BAD_OPTIONS` on errors."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    if not ns.addresses:
        parser.error("--addresses names no address")
    if ns.working_dir is not None and not os.path.isdir(ns.working_dir):
        # Parsl never fails on a missing working_dir; make it, as a batch job's first step would.
        try:
            os.makedirs(ns.working_dir, exist_ok=True)
        except OSError as e:
            parser.error(f"--working-dir {ns.working_dir!r} is not a directory and cannot be made one: {e}")
    if ns.cert_dir is not None and not os.path.isdir(ns.cert_dir):
        parser.error(f"--cert-dir {ns.cert_dir!r} is not a directory")
    block_id = ns.block_id if ns.block_id is not None else _default_block_id()
    pool_id = ns.pool_id or uuid.uuid4().hex[:12]
    if not pool_id.isascii():
        parser.error("--pool-id must be ASCII")
    logdir = os.path.join(ns.logdir or "flowlib_worker_logs", f"block-{block_id}", pool_id)
    return PoolOptions(
        addresses=ns.addresses,
        port=ns.port,
        address_probe_timeout=ns.address_probe_timeout,
        cert_dir=ns.cert_dir,
        block_id=block_id,
        pool_id=pool_id,
        max_workers_per_node=ns.max_workers_per_node,
        cores_per_worker=ns.cores_per_worker,
        mem_per_worker=ns.mem_per_worker,
        cpu_affinity=ns.cpu_affinity,
        accelerators=ns.available_accelerators,
        prefetch_capacity=ns.prefetch_capacity,
        heartbeat_period=ns.heartbeat_period,
        heartbeat_threshold=ns.heartbeat_threshold,
        drain_period=ns.drain_period,
        poll_period_ms=ns.poll_period,
        logdir=os.path.abspath(logdir),
        working_dir=os.path.abspath(ns.working_dir) if ns.working_dir else None,
        debug=ns.debug,
        unix_socket=ns.unix_socket,
        result_dir=ns.result_dir,
        log_format=ns.log_format,
    )


# --------------------------------------------------------------------------- the node


@dataclass(frozen=True)
class NodeResources:
    """What this node offers the pool, as measured at start-up."""

    cpus: tuple[int, ...]
    """CPU numbers the pool may run on (its affinity mask)."""
    cores: float
    """Usable cores: the affinity mask, lowered by a cgroup CPU quota if there is one."""
    memory_bytes: int
    """Available memory: psutil's estimate, lowered by a cgroup memory limit if there is one."""


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().split()
    except OSError:
        return None
    if not text or text[0] == "max":
        return None
    try:
        return int(text[0])
    except ValueError:
        return None


def _cgroup_dirs(controller: str) -> list[str]:
    """Directories that may hold this process's cgroup files for ``controller`` (v2 first)."""
    dirs = []
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            dirs += [os.path.join("/sys/fs/cgroup", path.lstrip("/")), "/sys/fs/cgroup"]
        elif controller in controllers.split(","):
            root = os.path.join("/sys/fs/cgroup", controllers)
            dirs += [os.path.join(root, path.lstrip("/")), root]
    return dirs


def _stat_value(path: str, key: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0


def cgroup_memory_available() -> int | None:
    """Bytes left under this process's cgroup memory limit (page cache excluded), or None."""
    for d in _cgroup_dirs("memory"):
        limit = _read_int(os.path.join(d, "memory.max"))
        if limit is not None:
            used = _read_int(os.path.join(d, "memory.current")) or 0
            return max(0, limit - used + _stat_value(os.path.join(d, "memory.stat"), "inactive_file"))
        limit = _read_int(os.path.join(d, "memory.limit_in_bytes"))
        if limit is not None and limit < 2**62:
            used = _read_int(os.path.join(d, "memory.usage_in_bytes")) or 0
            return max(0, limit - used + _stat_value(os.path.join(d, "memory.stat"), "total_inactive_file"))
    return None


def cgroup_cpu_quota() -> float | None:
    """CPUs allowed by this process's cgroup CPU quota, or None when there is none."""
    for d in _cgroup_dirs("cpu"):
        try:
            with open(os.path.join(d, "cpu.max")) as f:
                quota, period = (f.read().split() + ["100000"])[:2]
            if quota != "max":
                return int(quota) / int(period)
            return None
        except (OSError, ValueError):
            pass
        quota_us = _read_int(os.path.join(d, "cpu.cfs_quota_us"))
        period_us = _read_int(os.path.join(d, "cpu.cfs_period_us"))
        if quota_us is not None and period_us:
            return quota_us / period_us if quota_us > 0 else None
    return None


def detect_node() -> NodeResources:
    """Measure the CPUs and memory this pool may use."""
    import psutil

    try:
        cpus = tuple(sorted(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        cpus = tuple(range(os.cpu_count() or 1))
    cores = float(len(cpus))
    quota = cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, quota)
    memory = int(psutil.virtual_memory().available)
    limited = cgroup_memory_available()
    if limited is not None:
        memory = min(memory, limited)
    return NodeResources(cpus=cpus, cores=cores, memory_bytes=memory)


def size_pool(options: PoolOptions, node: NodeResources) -> int:
    """How many workers to start: the smallest of every limit; PoolSizeError if that is 0."""
    limits: dict[str, float] = {
        f"--max-workers-per-node {options.max_workers_per_node:g}": options.max_workers_per_node,
        f"{node.cores:g} usable cores / --cores-per-worker {options.cores_per_worker:g}": math.floor(
            node.cores / options.cores_per_worker + 1e-9
        ),
    }
    if options.mem_per_worker is not None:
        limits[f"{node.memory_bytes / GB:.2f} GB available memory / --mem-per-worker {options.mem_per_worker:g}"] = (
            math.floor(node.memory_bytes / GB / options.mem_per_worker)
        )
    if options.accelerators:
        limits[f"{len(options.accelerators)} --available-accelerators"] = len(options.accelerators)
    if options.cpu_affinity.name == "list":
        limits[f"{len(options.cpu_affinity.lists)} --cpu-affinity lists"] = options.cpu_affinity.max_workers
    reason, count = min(limits.items(), key=lambda item: item[1])
    if count < 1:
        raise PoolSizeError(f"no worker fits on this node: {reason} gives 0 workers")
    if options.cpu_affinity.name == "list":
        bad = sorted({c for cpus in options.cpu_affinity.lists[: int(count)] for c in cpus} - set(node.cpus))
        if bad:
            raise PoolSizeError(f"--cpu-affinity names CPUs {bad} outside this pool's CPUs {list(node.cpus)}")
    return int(count)
