"""What an MPI task asked for, and the launch prefix and environment it runs with.

Pure functions, no I/O: :func:`parse_request` checks a task's resource
specification and turns it into an :class:`MPIRequest`; :func:`compose_prefix`
builds the command prefix (``$PARSL_MPI_PREFIX``) that starts the task's ranks
on the nodes it was given; :func:`mpi_environment` adds the other variables a
task sees. The worker side (node allocation) is :mod:`.mpi_resource`.

The prefix per launcher, for 2 nodes ``n1,n2``, 2 ranks per node, 4 ranks::

    mpiexec, Open MPI        mpiexec -n 4 --host n1:2,n2:2
    mpiexec, MPICH & others  mpiexec -n 4 -ppn 2 -hosts n1,n2
    srun                     srun -N 2 --ntasks 4 --ntasks-per-node 2 --nodelist n1,n2
    aprun                    aprun -n 4 -N 2 -L n1,n2          (nidNNNNN names become NNNNN)

followed by the task's ``launcher_options``, if any.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flowlib.executors.errors import InvalidResourceSpecification

LAUNCHERS = ("mpiexec", "srun", "aprun")
"""The values of ``MPIExecutor(mpi_launcher=...)``."""

FLAVORS = ("openmpi", "mpich")
"""How ``mpiexec`` takes its placement options: Open MPI's, or MPICH/Hydra's (also Intel MPI, Cray PALS)."""

COUNT_KEYS = ("num_nodes", "ranks_per_node", "num_ranks")
"""The resource-specification keys that say how many nodes and ranks a task needs."""

ACCEPTED_KEYS = frozenset({*COUNT_KEYS, "launcher_options", "priority"})
"""Every key an MPIExecutor task may put in its resource specification."""

_NID = re.compile(r"nid0*(\d+)")


@dataclass(frozen=True)
class MPIRequest:
    """The nodes and ranks one MPI task runs on (consistent by construction through :func:`parse_request`)."""

    num_nodes: int = 1
    """Whole nodes of the block the task gets for itself."""
    ranks_per_node: int = 1
    """Most ranks on one node."""
    num_ranks: int = 1
    """Ranks in all; every node gets at least one."""
    launcher_options: str = ""
    """Shell text appended to the prefix as given (e.g. ``"--cpu-bind core"``)."""


def _positive_int(spec: Mapping[str, Any], key: str) -> int | None:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidResourceSpecification(
            {key}, f"MPIExecutor: resource specification {key!r} must be a positive integer, got {value!r}"
        )
    return value


def parse_request(spec: Mapping[str, Any] | None, max_nodes: int | None = None) -> tuple[MPIRequest, dict[str, Any]]:
    """Check an MPI task's resource specification; return the request and what the interchange should see.

    Missing counts are derived: ``num_nodes`` from ``ceil(num_ranks /
    ranks_per_node)`` when both are given, else 1; ``ranks_per_node`` from
    ``ceil(num_ranks / num_nodes)``, else 1; ``num_ranks`` from ``num_nodes *
    ranks_per_node``. An empty specification is one node, one rank.
    Raises :class:`InvalidResourceSpecification` naming the keys at fault for an
    unknown key, a count that is not a positive integer, counts that do not fit
    together (each node needs at least one rank and at most ``ranks_per_node``),
    or more nodes than ``max_nodes`` (a block's size).
    """
    spec = dict(spec or {})
    unknown = set(spec) - ACCEPTED_KEYS
    if unknown:
        raise InvalidResourceSpecification(
            unknown,
            f"MPIExecutor: unknown resource specification key(s) {sorted(unknown)}; accepted: {sorted(ACCEPTED_KEYS)}"
            " (an MPI task asks for nodes and ranks, not cores, memory or gpus)",
        )
    nodes, per_node, ranks = (_positive_int(spec, key) for key in COUNT_KEYS)
    options = spec.get("launcher_options", "")
    if not isinstance(options, str):
        raise InvalidResourceSpecification(
            {"launcher_options"},
            f"MPIExecutor: resource specification 'launcher_options' must be a string, got {options!r}",
        )
    if nodes is None:
        nodes = math.ceil(ranks / per_node) if ranks is not None and per_node is not None else 1
    if per_node is None:
        per_node = math.ceil(ranks / nodes) if ranks is not None else 1
    if ranks is None:
        ranks = nodes * per_node
    if not (nodes - 1) * per_node < ranks <= nodes * per_node:
        given = ", ".join(f"{k}={spec[k]}" for k in COUNT_KEYS if k in spec)
        derived = ", ".join(
            f"{k}={v}" for k, v in zip(COUNT_KEYS, (nodes, per_node, ranks), strict=True) if k not in spec
        )
        raise InvalidResourceSpecification(
            {k for k in COUNT_KEYS if k in spec},
            f"MPIExecutor: inconsistent resource specification ({given}{'; derived ' + derived if derived else ''}): "
            f"filling {nodes} node(s) with up to {per_node} rank(s) each takes {(nodes - 1) * per_node + 1} to "
            f"{nodes * per_node} ranks, and num_ranks is {ranks}",
        )
    if max_nodes is not None and nodes > max_nodes:
        raise InvalidResourceSpecification(
            {"num_nodes"}, f"MPIExecutor: num_nodes={nodes} is more than the {max_nodes} node(s) of a block"
        )
    passthrough: dict[str, Any] = {}
    if "priority" in spec:
        priority = spec["priority"]
        if isinstance(priority, bool) or not isinstance(priority, (int, float)):
            raise InvalidResourceSpecification(
                {"priority"}, f"MPIExecutor: resource specification 'priority' must be a number, got {priority!r}"
            )
        passthrough["priority"] = priority
    return MPIRequest(nodes, per_node, ranks, options), passthrough


def flavor_from_version(text: str) -> str:
    """The flavor of an ``mpiexec`` from what ``mpiexec --version`` printed: Open MPI's, or ``"mpich"``."""
    return "openmpi" if "Open MPI" in text or "OpenRTE" in text else "mpich"


def _aprun_node(host: str) -> str:
    match = _NID.fullmatch(host)
    return match.group(1) if match else host


def compose_prefix(launcher: str, flavor: str, request: MPIRequest, nodes: Sequence[str]) -> str:
    """The command prefix that starts ``request``'s ranks on ``nodes`` with ``launcher``.

    ``flavor`` matters only for ``mpiexec`` (see :data:`FLAVORS`).
    ValueError for an unknown launcher or flavor, or a node count that is not the request's.
    """
    if len(nodes) != request.num_nodes:
        raise ValueError(f"{request.num_nodes} node(s) requested but {len(nodes)} given: {list(nodes)}")
    n, r, total = request.num_nodes, request.ranks_per_node, request.num_ranks
    if launcher == "mpiexec":
        if flavor == "openmpi":
            words = ["mpiexec", "-n", str(total), "--host", ",".join(f"{host}:{r}" for host in nodes)]
        elif flavor == "mpich":
            words = ["mpiexec", "-n", str(total), "-ppn", str(r), "-hosts", ",".join(nodes)]
        else:
            raise ValueError(f"unknown mpiexec flavor {flavor!r}; expected one of {FLAVORS}")
    elif launcher == "srun":
        words = ["srun", "-N", str(n), "--ntasks", str(total), "--ntasks-per-node", str(r)]
        words += ["--nodelist", ",".join(nodes)]
    elif launcher == "aprun":
        words = ["aprun", "-n", str(total), "-N", str(r), "-L", ",".join(_aprun_node(h) for h in nodes)]
    else:
        raise ValueError(f"unknown MPI launcher {launcher!r}; expected one of {LAUNCHERS}")
    prefix = " ".join(shlex.quote(word) for word in words)
    options = request.launcher_options.strip()
    return f"{prefix} {options}" if options else prefix


def mpi_environment(prefix: str, request: MPIRequest, nodes: Sequence[str]) -> dict[str, str]:
    """The variables an MPI task sees, each as ``PARSL_...`` and ``FLOWLIB_...``.

    ``MPI_PREFIX`` (the launch prefix), ``NUM_NODES``, ``RANKS_PER_NODE``,
    ``NUM_RANKS`` and ``MPI_NODELIST`` (the nodes, comma-separated).
    """
    values = {
        "MPI_PREFIX": prefix,
        "NUM_NODES": str(request.num_nodes),
        "RANKS_PER_NODE": str(request.ranks_per_node),
        "NUM_RANKS": str(request.num_ranks),
        "MPI_NODELIST": ",".join(nodes),
    }
    return {f"{twin}_{name}": value for twin in ("PARSL", "FLOWLIB") for name, value in values.items()}
