"""MPIExecutor: a HighThroughputExecutor whose tasks are MPI applications spread over a block's nodes.

::

    user process               interchange           block (a batch job of N nodes)
    ------------               -----------           ---------------------------------------------------------
    MPIExecutor.submit                               first node: one worker pool (mpi_resource.main)
      checks num_nodes,                                finds the block's nodes, starts max_workers_per_block
      ranks_per_node,                                  workers; in a worker an MPITask
      num_ranks; wraps   ==ZMQ==> forwards  ==ZMQ==>     takes whole nodes (flock per node, waits if busy)
      the app in an                                      sets $PARSL_MPI_PREFIX, $PARSL_MPI_NODELIST, ...
      MPITask                                            runs the app: bash "$PARSL_MPI_PREFIX ./app"
                                                             |  mpiexec / srun / aprun
                                                             v
                                                     ranks on the nodes given to the task (node 1 .. node N)

The executor is the high-throughput executor (same interchange, protocol,
encryption, fault handling) with three differences: the provider's launcher
must be a :class:`~flowlib.launchers.SimpleLauncher` (one worker pool per
block, on its first node); the pool is started through
:mod:`.mpi_resource`, which shares the block's nodes out among the tasks; and
each task's resource specification names nodes and ranks
(:func:`.mpi_prefix.parse_request`) instead of cores and memory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from flowlib.errors import UnsuitableLauncherError
from flowlib.executors.block_provider import BlockErrorHandler
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.executors.high_throughput.mpi_prefix import LAUNCHERS, parse_request
from flowlib.executors.high_throughput.options import HTEXOptions
from flowlib.providers.base import ExecutionProvider
from flowlib.validation import validate_arguments

__all__ = ["MPIExecutor"]

MPI_LAUNCH_CMD = "{python} -m flowlib.executors.high_throughput.mpi_resource --mpi-launcher {mpi_launcher} {options}"
"""The default ``launch_cmd``; ``{mpi_launcher}`` is filled at start, the rest per block."""

_LEAD_NODE_SHARE = 1e-6
# cores_per_worker of the pool: a worker mostly waits for mpiexec/srun, so the
# lead node's core count must not cap max_workers_per_block.


class MPIExecutor(HighThroughputExecutor):
    """Run MPI applications on the nodes of blocks; Parsl's ``MPIExecutor`` keywords.

    :param label: the executor's name in ``executors=[...]`` (default ``"MPIExecutor"``).
    :param max_workers_per_block: MPI tasks that may run at once in one block
        (they share its nodes; a task waits until enough are free). Default 1.
    :param mpi_launcher: ``"mpiexec"`` (default), ``"srun"`` or ``"aprun"``: the
        command ``$PARSL_MPI_PREFIX`` starts the ranks with.
    :param provider: default ``LocalProvider(launcher=SimpleLauncher())``; its
        launcher must be a ``SimpleLauncher``.

    The other keywords are the :class:`HighThroughputExecutor`'s, as in Parsl
    without those that size workers by cores, memory or accelerators (and
    ``manager_selector``); ``prefetch_capacity`` lets a block's pool hold that many
    tasks beyond those running. Tasks ask for
    ``parsl_resource_specification={"num_nodes": n, "ranks_per_node": r,
    "num_ranks": N}`` (also ``"launcher_options"`` and ``"priority"``); see the
    documentation page "MPI applications".
    """

    def __init__(
        self,
        label: str = "MPIExecutor",
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
        prefetch_capacity: int = 0,
        max_workers_per_block: int = 1,
        mpi_launcher: str = "mpiexec",
        block_error_handler: bool | BlockErrorHandler = True,
        encrypted: bool = True,
        heartbeat_threshold: int | float = 120,
        heartbeat_period: int | float = 30,
        drain_period: int | float | None = None,
        poll_period: int = 10,
        address_probe_timeout: int | float | None = None,
        worker_logdir_root: str | None = None,
        unix_sockets: bool = True,
        shared_memory: bool = True,
    ) -> None:
        if provider is None:
            from flowlib.launchers import SimpleLauncher
            from flowlib.providers.local import LocalProvider

            provider = LocalProvider(launcher=SimpleLauncher())
        # Set before the base constructor, which validates the options through _validated_options().
        self.max_workers_per_block = max_workers_per_block
        self.mpi_launcher = mpi_launcher
        super().__init__(
            label=label,
            provider=provider,
            launch_cmd=launch_cmd,
            interchange_launch_cmd=interchange_launch_cmd,
            address=address,
            loopback_address=loopback_address,
            worker_ports=worker_ports,
            worker_port_range=worker_port_range,
            interchange_port_range=interchange_port_range,
            storage_access=storage_access,
            working_dir=working_dir,
            worker_debug=worker_debug,
            cores_per_worker=_LEAD_NODE_SHARE,
            max_workers_per_node=max_workers_per_block,
            prefetch_capacity=prefetch_capacity,
            heartbeat_threshold=heartbeat_threshold,
            heartbeat_period=heartbeat_period,
            drain_period=drain_period,
            poll_period=poll_period,
            address_probe_timeout=address_probe_timeout,
            worker_logdir_root=worker_logdir_root,
            block_error_handler=block_error_handler,
            encrypted=encrypted,
            unix_sockets=unix_sockets,
            shared_memory=shared_memory,
        )

    def _validated_options(self) -> HTEXOptions:
        """The high-throughput options, with the MPI pool command and one pool per block."""
        validate_arguments(
            "MPIExecutor",
            {"max_workers_per_block": (self.max_workers_per_block, int), "mpi_launcher": (self.mpi_launcher, str)},
        )
        if isinstance(self.max_workers_per_block, bool) or self.max_workers_per_block < 1:
            raise ValueError(f"MPIExecutor: max_workers_per_block must be >= 1; got {self.max_workers_per_block!r}")
        if self.mpi_launcher not in LAUNCHERS:
            raise ValueError(f"MPIExecutor: mpi_launcher must be one of {list(LAUNCHERS)}; got {self.mpi_launcher!r}")
        self._check_launcher()
        self.max_workers_per_node = self.max_workers_per_block
        options = super()._validated_options()
        if self.launch_cmd is None:
            options = options.replace(launch_cmd=MPI_LAUNCH_CMD.replace("{mpi_launcher}", self.mpi_launcher))
        return options

    def _check_launcher(self) -> None:
        from flowlib.launchers import SimpleLauncher

        launcher = getattr(self.provider, "launcher", None)
        if not isinstance(launcher, SimpleLauncher):
            provider = type(self.provider).__name__
            raise UnsuitableLauncherError(
                f"MPIExecutor needs a provider whose launcher is a SimpleLauncher (one worker pool per block, which "
                f"places the MPI ranks on the block's nodes itself), but the {provider} has a "
                f"{type(launcher).__name__}; use {provider}(launcher=SimpleLauncher(), ...)"
            )

    def submit(
        self, func: Callable[..., Any], resource_specification: dict[str, Any], /, *args: Any, **kwargs: Any
    ) -> Future[Any]:
        """Check the task's nodes and ranks and send it, wrapped in an MPITask, to the interchange.

        InvalidResourceSpecification (naming the keys) for an unknown key, counts
        that do not fit together, or more nodes than the provider's ``nodes_per_block``.
        """
        from flowlib.executors.high_throughput.mpi_resource import MPITask

        request, passthrough = parse_request(
            resource_specification, max_nodes=getattr(self.provider, "nodes_per_block", None)
        )
        return super().submit(MPITask(func, request), passthrough, *args, **kwargs)

    def validate_resource_spec(self, resource_specification: dict[str, Any]) -> None:
        """Raise InvalidResourceSpecification as :meth:`submit` would for this specification; return None."""
        parse_request(resource_specification, max_nodes=getattr(self.provider, "nodes_per_block", None))

    def _function_bytes(self, func: Callable[..., Any]) -> bytes:
        # Every task has its own MPITask, so the base class's cache of function bytes would never hit.
        from flowlib.serialize import serialize_function

        return serialize_function(func)

    @property
    def workers_per_node(self) -> float:
        """Tasks a block runs at once, spread over its nodes (what the scaling strategy multiplies back)."""
        nodes = max(1, int(getattr(self.provider, "nodes_per_block", 1) or 1))
        return self.max_workers_per_block / nodes

    def __repr__(self) -> str:
        return f"MPIExecutor(label={self.label!r}, mpi_launcher={self.mpi_launcher!r}, provider={self.provider!r})"
