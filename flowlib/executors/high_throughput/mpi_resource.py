"""The nodes of a block, shared out among the MPI tasks that run in it.

An MPIExecutor block runs one worker pool, on its first node, through
:func:`main` (``python -m flowlib.executors.high_throughput.mpi_resource
--mpi-launcher L <worker pool options>``), which

1. finds the block's nodes (:func:`block_nodes`): ``$FLOWLIB_MPI_NODES``
   (comma-separated, an explicit override), else the unique lines of
   ``$PBS_NODEFILE``, else ``$SLURM_JOB_NODELIST``/``$SLURM_NODELIST`` expanded
   by ``scontrol show hostnames`` (or by :func:`expand_slurm_hostlist` where
   there is no ``scontrol``), else this host alone;
2. asks ``mpiexec --version`` once which flavor of options it takes (unless
   ``$FLOWLIB_MPI_FLAVOR`` says ``openmpi`` or ``mpich``);
3. makes a directory of lock files, one per node (:class:`NodeAllocator`),
   and passes all of that to the workers in ``FLOWLIB_MPI_POOL_*`` variables;
4. runs the ordinary worker pool (:func:`.worker_pool.main`) and removes the
   lock directory when it exits.

Every task of an MPIExecutor is an :class:`MPITask` wrapping the app's
function. In the worker it takes whole nodes (a ``flock`` on each node's lock
file), sets ``$PARSL_MPI_PREFIX`` and friends (:mod:`.mpi_prefix`), runs the
function and releases the nodes::

    worker 0: MPITask(num_nodes=2) --flock--> node-0.lock, node-1.lock   runs "$PARSL_MPI_PREFIX ./app"
    worker 1: MPITask(num_nodes=1) --flock--> waits in gate.lock, on node-0.lock, until worker 0 is done

Allocation is first come, first served: one task at a time holds
``gate.lock`` while it collects its nodes, waiting on a busy node if it must;
the others queue behind it. A lock belongs to an open file, so the kernel
releases the nodes of a worker that dies or is killed (a cancelled task).

Only the standard library is imported at module level: multiprocessing
imports this module (the pool's main module) in every worker it starts.
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import itertools
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flowlib.executors.high_throughput.mpi_prefix import (
    FLAVORS,
    LAUNCHERS,
    MPIRequest,
    compose_prefix,
    flavor_from_version,
    mpi_environment,
)

logger = logging.getLogger("flowlib.executors.high_throughput.mpi")

NODES_OVERRIDE = "FLOWLIB_MPI_NODES"
"""Set before the pool starts (e.g. in ``worker_init``): the block's nodes, comma-separated."""
FLAVOR_OVERRIDE = "FLOWLIB_MPI_FLAVOR"
"""Set before the pool starts: ``openmpi`` or ``mpich``, instead of asking ``mpiexec --version``."""
POOL_NODES = "FLOWLIB_MPI_POOL_NODES"
POOL_LOCKS = "FLOWLIB_MPI_POOL_LOCKS"
POOL_LAUNCHER = "FLOWLIB_MPI_POOL_LAUNCHER"
POOL_FLAVOR = "FLOWLIB_MPI_POOL_FLAVOR"
_EXIT_BAD_OPTIONS = 4  # as pool_options.EXIT_BAD_OPTIONS, which this module does not import (see above)
_BRACKETS = re.compile(r"(\[[^\[\]]*\])")


class NodeListError(Exception):
    """Raised by :func:`block_nodes` when the block's node list cannot be read."""


# --------------------------------------------------------------------------- the block's nodes


def _unique(names: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(name.strip() for name in names if name.strip()))


def _expand_brackets(body: str, text: str) -> list[str]:
    names: list[str] = []
    for piece in body.split(","):
        low, dash, high = piece.partition("-")
        if not dash:
            names.append(low)
        elif low.isdigit() and high.isdigit() and int(low) <= int(high):
            names += [str(i).zfill(len(low)) for i in range(int(low), int(high) + 1)]
        else:
            raise NodeListError(f"bad range {piece!r} in the Slurm node list {text!r}")
    return names


def expand_slurm_hostlist(text: str) -> list[str]:
    """Expand a Slurm node list such as ``"nid[001-003,007],login1"`` into host names."""
    items, depth, start = [], 0, 0
    for i, char in enumerate(text + ","):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if depth not in (0, 1):
            raise NodeListError(f"unbalanced brackets in the Slurm node list {text!r}")
        if char == "," and depth == 0:
            items.append(text[start:i].strip())
            start = i + 1
    if depth:
        raise NodeListError(f"unbalanced brackets in the Slurm node list {text!r}")
    hosts: list[str] = []
    for item in filter(None, items):
        parts = [p for p in _BRACKETS.split(item) if p]
        choices = [_expand_brackets(p[1:-1], text) if p.startswith("[") else [p] for p in parts]
        hosts += ["".join(combo) for combo in itertools.product(*choices)]
    return hosts


def _slurm_hostnames(nodelist: str) -> list[str]:
    try:
        done = subprocess.run(
            ["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, timeout=60, check=False
        )
    except FileNotFoundError:
        return expand_slurm_hostlist(nodelist)
    except subprocess.TimeoutExpired:
        raise NodeListError(f"'scontrol show hostnames {nodelist}' did not answer within 60 s") from None
    if done.returncode != 0:
        raise NodeListError(f"'scontrol show hostnames {nodelist}' failed: {done.stderr.strip()}")
    return done.stdout.split()


def block_nodes(environ: Mapping[str, str]) -> list[str]:
    """The nodes of the block this process runs in, in order, each once (see the module docstring)."""
    override = environ.get(NODES_OVERRIDE, "").strip()
    if override:
        return _unique(override.split(","))
    nodefile = environ.get("PBS_NODEFILE")
    if nodefile:
        try:
            with open(nodefile) as f:
                nodes = _unique(f.read().splitlines())
        except OSError as e:
            raise NodeListError(f"cannot read $PBS_NODEFILE {nodefile!r}: {e}") from None
        if not nodes:
            raise NodeListError(f"$PBS_NODEFILE {nodefile!r} lists no node")
        return nodes
    slurm = environ.get("SLURM_JOB_NODELIST") or environ.get("SLURM_NODELIST")
    if slurm:
        return _unique(_slurm_hostnames(slurm))
    return [socket.gethostname()]


def detect_flavor(environ: Mapping[str, str]) -> str:
    """``openmpi`` or ``mpich``: ``$FLOWLIB_MPI_FLAVOR``, else from ``mpiexec --version``.

    An ``mpiexec`` that is missing or does not answer counts as ``mpich``.
    """
    override = environ.get(FLAVOR_OVERRIDE, "").strip().lower()
    if override:
        if override not in FLAVORS:
            raise NodeListError(f"${FLAVOR_OVERRIDE} must be one of {FLAVORS}, got {override!r}")
        return override
    try:
        done = subprocess.run(["mpiexec", "--version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "mpich"
    return flavor_from_version(done.stdout + done.stderr)


# --------------------------------------------------------------------------- allocation


class Allocation:
    """Nodes held by one task; :meth:`release` (or leaving the ``with`` block) gives them back."""

    def __init__(self, nodes: list[str], fds: list[int]) -> None:
        self.nodes = nodes
        """The nodes, in the block's order."""
        self._fds = fds

    def release(self) -> None:
        """Give the nodes back (closing a lock file releases its lock)."""
        fds, self._fds = self._fds, []
        for fd in fds:
            os.close(fd)

    def __enter__(self) -> list[str]:
        return self.nodes

    def __exit__(self, *exc: object) -> None:
        self.release()


class NodeAllocator:
    """Hands whole nodes of a block to tasks, across the worker processes of a pool.

    State lives in ``lock_dir``: ``gate.lock`` and ``node-<i>.lock`` for the
    i-th node; a node is busy while some process holds the ``flock`` of its file.
    """

    def __init__(self, lock_dir: str, nodes: Sequence[str]) -> None:
        self.lock_dir = lock_dir
        self.nodes = list(nodes)

    @classmethod
    def create(cls, nodes: Sequence[str], parent: str | None = None) -> NodeAllocator:
        """Make a new lock directory (under ``parent``, default the temporary directory) for ``nodes``."""
        lock_dir = tempfile.mkdtemp(prefix="flowlib-mpi-", dir=parent)
        for path in [os.path.join(lock_dir, "gate.lock")] + [cls._node_path(lock_dir, i) for i in range(len(nodes))]:
            with open(path, "w"):
                pass
        return cls(lock_dir, nodes)

    @staticmethod
    def _node_path(lock_dir: str, index: int) -> str:
        return os.path.join(lock_dir, f"node-{index}.lock")

    def remove(self) -> None:
        """Delete the lock directory (when the pool exits)."""
        shutil.rmtree(self.lock_dir, ignore_errors=True)

    def allocate(self, count: int, on_wait: Callable[[int], None] | None = None) -> Allocation:
        """Wait until ``count`` nodes are free, take them and return them.

        ``on_wait(missing)`` is called once if the task has to wait, with the
        number of nodes it still lacks. ValueError if the block has fewer than
        ``count`` nodes.
        """
        if not 1 <= count <= len(self.nodes):
            raise ValueError(f"{count} node(s) asked of a block of {len(self.nodes)}")
        held: dict[int, int] = {}  # node index -> locked fd
        gate = os.open(os.path.join(self.lock_dir, "gate.lock"), os.O_RDWR)
        try:
            fcntl.flock(gate, fcntl.LOCK_EX)
            waited = False
            while len(held) < count:
                busy = []
                for index in range(len(self.nodes)):
                    if len(held) == count:
                        break
                    if index in held:
                        continue
                    fd = os.open(self._node_path(self.lock_dir, index), os.O_RDWR)
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        os.close(fd)
                        busy.append(index)
                    else:
                        held[index] = fd
                if len(held) < count:
                    if not waited and on_wait is not None:
                        on_wait(count - len(held))
                    waited = True
                    fd = os.open(self._node_path(self.lock_dir, busy[0]), os.O_RDWR)
                    held[busy[0]] = fd  # closed below if the wait fails
                    fcntl.flock(fd, fcntl.LOCK_EX)  # until that node's task is done
        except BaseException:
            for fd in held.values():
                os.close(fd)
            raise
        finally:
            os.close(gate)  # the next task may collect its nodes
        order = sorted(held)
        return Allocation([self.nodes[i] for i in order], [held[i] for i in order])


# --------------------------------------------------------------------------- in the worker


@dataclass(frozen=True)
class PoolContext:
    """What :func:`main` tells the workers of an MPI pool about their block."""

    nodes: tuple[str, ...]
    lock_dir: str
    launcher: str
    flavor: str

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> PoolContext:
        """Read the ``FLOWLIB_MPI_POOL_*`` variables; RuntimeError if this is not an MPI pool's worker."""
        try:
            return cls(
                tuple(environ[POOL_NODES].split(",")), environ[POOL_LOCKS], environ[POOL_LAUNCHER], environ[POOL_FLAVOR]
            )
        except KeyError as e:
            raise RuntimeError(
                f"an MPIExecutor task ran in a worker without ${e.args[0]}: its worker pool was not started by "
                "'python -m flowlib.executors.high_throughput.mpi_resource' (was launch_cmd changed?)"
            ) from None

    def environment(self) -> dict[str, str]:
        return {
            POOL_NODES: ",".join(self.nodes),
            POOL_LOCKS: self.lock_dir,
            POOL_LAUNCHER: self.launcher,
            POOL_FLAVOR: self.flavor,
        }


@dataclass(frozen=True)
class MPITask:
    """An app's function with the nodes and ranks it needs; the MPIExecutor sends this to the workers."""

    func: Callable[..., Any]
    request: MPIRequest

    @property
    def __name__(self) -> str:  # error messages and logs name the app
        func = self.func
        if isinstance(func, functools.partial):  # a runner around the app's function, as bash apps have
            func = next((a for a in func.args if callable(a)), func.func)
        return str(getattr(func, "__name__", type(func).__name__))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Take the nodes, set the MPI variables, run the function, restore, release the nodes."""
        from flowlib.executors.errors import InvalidResourceSpecification

        pool = PoolContext.from_environ(os.environ)
        request = self.request
        if request.num_nodes > len(pool.nodes):
            raise InvalidResourceSpecification(
                {"num_nodes"},
                f"MPIExecutor: num_nodes={request.num_nodes} is more than the {len(pool.nodes)} node(s) of this "
                f"block ({','.join(pool.nodes)})",
            )

        def waiting(missing: int) -> None:
            logger.info("%s is waiting for nodes: %d of %d busy", self.__name__, missing, request.num_nodes)

        allocator = NodeAllocator(pool.lock_dir, pool.nodes)
        with allocator.allocate(request.num_nodes, on_wait=waiting) as nodes:
            prefix = compose_prefix(pool.launcher, pool.flavor, request, nodes)
            logger.info("%s runs on %s: %s", self.__name__, ",".join(nodes), prefix)
            variables = mpi_environment(prefix, request, nodes)
            saved = {name: os.environ.get(name) for name in variables}
            os.environ.update(variables)
            try:
                return self.func(*args, **kwargs)
            finally:
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value


# --------------------------------------------------------------------------- the pool


def main(argv: Sequence[str] | None = None) -> int:
    """Run the worker pool of one MPIExecutor block; return its exit code."""
    parser = argparse.ArgumentParser(
        prog="flowlib-mpi-pool",
        description="Find the block's nodes, then run a flowlib worker pool (other options go to it).",
        add_help=False,
    )
    parser.add_argument("--mpi-launcher", choices=LAUNCHERS, default="mpiexec")
    ns, rest = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    try:
        nodes = block_nodes(os.environ)
        flavor = detect_flavor(os.environ) if ns.mpi_launcher == "mpiexec" else ""
    except NodeListError as e:
        sys.stderr.write(f"flowlib-mpi-pool on {socket.gethostname()}: {e}\n")
        return _EXIT_BAD_OPTIONS
    allocator = NodeAllocator.create(nodes)
    os.environ.update(PoolContext(tuple(nodes), allocator.lock_dir, ns.mpi_launcher, flavor).environment())
    try:
        from flowlib.executors.high_throughput.worker_pool import main as pool_main

        return pool_main(rest)
    finally:
        allocator.remove()


if __name__ == "__main__":
    sys.exit(main())
