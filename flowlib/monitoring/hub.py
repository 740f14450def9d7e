"""``MonitoringHub``: the Parsl-compatible monitoring configuration, and its lifetime in a kernel.

::

    DataFlowKernel --events--> EventBus --batches--> Router thread --> Store (SQLAlchemy)
                                                        ^                   ^
    executors (blocks, worker pools) --polled every ----+                   |
                                       resource_monitoring_interval     dashboard (reads only)

The hub is a configuration object until the kernel calls :meth:`MonitoringHub.start`;
it then owns the router until :meth:`MonitoringHub.close` (called by ``cleanup()``).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from flowlib.errors import OptionalModuleMissing
from flowlib.utils import RepresentationMixin

if TYPE_CHECKING:
    from flowlib.monitoring.events import Callback, Subscription
    from flowlib.monitoring.router import Router

logger = logging.getLogger(__name__)

_EXTRA_MODULES = ("sqlalchemy", "alembic")

IGNORED_KEYWORDS = (
    "hub_address",
    "hub_port",
    "hub_port_range",
    "workflow_name_is_default",
    "monitoring_debug",
    "file_provider",
    "udp_port",
)
"""Accepted for Parsl compatibility; meaningless here (no hub process, no UDP/ZMQ ports)."""


def _check_extra() -> None:
    import importlib.util

    missing = [m for m in _EXTRA_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise OptionalModuleMissing(
            missing, "monitoring needs the 'monitoring' extra: pip install 'flowlib[monitoring]'"
        )


class MonitoringHub(RepresentationMixin):
    """Record every task's history in a database, for the dashboard, notebooks and metrics.

    Keywords that mean something here:

    - ``logging_endpoint``: a SQLAlchemy URL (``sqlite:///path.db``,
      ``postgresql+psycopg://user:pw@127.0.0.1/db``); default
      ``sqlite:///<run_dir's parent>/monitoring.db`` (``runinfo/monitoring.db``),
      shared by every run in that directory.
    - ``workflow_name`` / ``workflow_version``: stored in the ``workflow`` table;
      the name defaults to the script's file name.
    - ``resource_monitoring_enabled``: poll the executors' blocks and worker pools
      into the ``block`` and ``node`` tables (default True).
    - ``resource_monitoring_interval``: seconds between those polls (default 30).
    - ``logdir``: where the router's log goes (default: the run directory's
      ``flowlib.log``, like the rest of flowlib).
    - ``flush_period`` (flowlib): seconds between batched writes (default 0.25).
    - ``max_queued`` (flowlib): records held while the database is slow or down;
      past it records are dropped and counted (``MonitoringHub.dropped``), never hidden.
    - ``close_timeout`` (flowlib): at ``cleanup()`` the router writes everything still
      queued, for as long as its writes succeed; it gives up (and counts what is left as
      dropped) only after this many seconds pass without one batch written (default 10).

    Accepted and ignored (flowlib has no separate hub process and no UDP/ZMQ
    channel; records travel inside the kernel process): ``hub_address``,
    ``hub_port``, ``hub_port_range``, ``monitoring_debug``, ``workflow_name_is_default``,
    ``file_provider``, ``udp_port``.

    Every keyword is type-checked; a wrong type raises TypeError naming it.
    Constructing a hub without the ``monitoring`` extra installed raises
    :class:`~flowlib.errors.OptionalModuleMissing` naming it.
    """

    def __init__(
        self,
        hub_address: str | None = None,
        hub_port: int | None = None,
        hub_port_range: tuple[int, int] = (55050, 56000),
        workflow_name: str | None = None,
        workflow_version: str | None = None,
        logging_endpoint: str | None = None,
        monitoring_debug: bool = False,
        resource_monitoring_enabled: bool = True,
        resource_monitoring_interval: float | int = 30,
        logdir: str | os.PathLike[str] | None = None,
        workflow_name_is_default: bool | None = None,
        file_provider: Any = None,
        udp_port: int | None = None,
        *,
        flush_period: float | int = 0.25,
        max_queued: int = 1_000_000,
        close_timeout: float | int = 10,
    ) -> None:
        from flowlib.validation import validate_arguments

        validate_arguments(
            "MonitoringHub",
            {
                "hub_address": (hub_address, str | None),
                "hub_port": (hub_port, int | None),
                "hub_port_range": (hub_port_range, tuple[int, int]),
                "workflow_name": (workflow_name, str | None),
                "workflow_version": (workflow_version, str | None),
                "logging_endpoint": (logging_endpoint, str | None),
                "monitoring_debug": (monitoring_debug, bool),
                "resource_monitoring_enabled": (resource_monitoring_enabled, bool),
                "resource_monitoring_interval": (resource_monitoring_interval, float | int),
                "logdir": (logdir, str | os.PathLike[str] | None),
                "workflow_name_is_default": (workflow_name_is_default, bool | None),
                "udp_port": (udp_port, int | None),
                "flush_period": (flush_period, float | int),
                "max_queued": (max_queued, int),
                "close_timeout": (close_timeout, float | int),
            },
        )
        if resource_monitoring_interval <= 0:
            raise ValueError(
                f"MonitoringHub argument 'resource_monitoring_interval' must be > 0, got {resource_monitoring_interval}"
            )
        if flush_period <= 0:
            raise ValueError(f"MonitoringHub argument 'flush_period' must be > 0, got {flush_period}")
        if not close_timeout > 0:
            raise ValueError(f"MonitoringHub argument 'close_timeout' must be > 0, got {close_timeout}")
        if max_queued < 1:
            raise ValueError(f"MonitoringHub argument 'max_queued' must be >= 1, got {max_queued}")
        if logging_endpoint is not None and "://" not in logging_endpoint:
            raise ValueError(
                f"MonitoringHub argument 'logging_endpoint' must be a SQLAlchemy URL such as "
                f"'sqlite:///monitoring.db', got {logging_endpoint!r}"
            )
        _check_extra()
        self.hub_address = hub_address
        self.hub_port = hub_port
        self.hub_port_range = hub_port_range
        self.workflow_name = workflow_name
        self.workflow_version = workflow_version
        self.logging_endpoint = logging_endpoint
        self.monitoring_debug = monitoring_debug
        self.resource_monitoring_enabled = resource_monitoring_enabled
        self.resource_monitoring_interval = resource_monitoring_interval
        self.logdir = None if logdir is None else os.fspath(logdir)
        self.workflow_name_is_default = workflow_name_is_default
        self.file_provider = file_provider
        self.udp_port = udp_port
        self.flush_period = float(flush_period)
        self.max_queued = max_queued
        self.close_timeout = float(close_timeout)
        self._router: Router | None = None
        self._final_dropped = 0

    def endpoint_for(self, run_dir: str) -> str:
        """The database URL used for a run in ``run_dir``."""
        if self.logging_endpoint is not None:
            return self.logging_endpoint
        parent = os.path.dirname(os.path.abspath(run_dir))
        return "sqlite:///" + os.path.join(parent, "monitoring.db")

    @property
    def dropped(self) -> int:
        """Records dropped so far because the store fell more than ``max_queued`` behind."""
        return self._final_dropped if self._router is None else self._router.dropped

    @property
    def url(self) -> str | None:
        """The database URL in use once started."""
        return None if self._router is None else self._router.url

    def start(self, dfk: Any) -> None:
        """Open the store, record the workflow, and start routing ``dfk``'s events (called by the kernel)."""
        if self._router is not None:
            raise RuntimeError("this MonitoringHub is already in use by a running DataFlowKernel")
        from flowlib.monitoring.router import Router

        router = Router(self, dfk)
        router.start()
        self._router = router

    def attach_executor(self, executor: Any) -> None:
        """Monitor an executor added to a running kernel (``dfk.add_executors``), before it starts."""
        if self._router is not None:
            self._router.attach_executor(executor)

    def close(self) -> None:
        """Write what is queued (see ``close_timeout``), close the store; raise MonitoringError if writes failed."""
        router, self._router = self._router, None
        if router is not None:
            try:
                router.close(self.close_timeout)
            finally:
                self._final_dropped = router.dropped


def subscribe(callback: Callback, dfk: Any = None) -> Subscription:
    """Call ``callback(event)`` for every task state change of ``dfk`` (default: the loaded kernel).

    ``event`` is a :class:`~flowlib.monitoring.events.TaskEvent` (task id, app,
    old and new state, time, ...). Returns a subscription; ``cancel()`` it, or use
    it in ``with``. Callbacks run on the kernel's event thread, never on the
    submitting or completing thread.
    """
    if dfk is None:
        from flowlib.dataflow.loader import DataFlowKernelLoader

        dfk = DataFlowKernelLoader.dfk()
    return dfk.events.subscribe(callback)
