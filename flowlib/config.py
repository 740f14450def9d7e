"""The configuration of a workflow run: which executors, retries, caching, logging."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from flowlib.utils import RepresentationMixin
from flowlib.validation import validate_arguments

if TYPE_CHECKING:
    from flowlib.dataflow.dependency_resolvers import DependencyResolver
    from flowlib.dataflow.memoization import Memoizer
    from flowlib.dataflow.taskrecord import TaskRecord
    from flowlib.executors.base import FlowlibExecutor
    from flowlib.logconfigs.base import LoggingConfig
    from flowlib.monitoring.hub import MonitoringHub

_STRATEGIES = (None, "none", "simple", "htex_auto_scale")


class Config(RepresentationMixin):
    """Everything a :class:`~flowlib.dataflow.dflow.DataFlowKernel` needs to run a workflow.

    Keywords (all optional; each is type-checked and a wrong type raises TypeError
    naming the keyword):

    - ``executors``: executors to run tasks on; default one ThreadPoolExecutor.
    - ``memoizer``: a :class:`~flowlib.dataflow.memoization.Memoizer`; default
      ``BasicMemoizer()`` (caching for apps with ``cache=True``, no checkpoints).
    - ``app_cache``, ``checkpoint_files``, ``checkpoint_mode``, ``checkpoint_period``:
      Parsl's checkpoint keywords (also settable as attributes before ``load()``); with
      no ``memoizer`` the kernel builds ``BasicMemoizer(memoize=app_cache, ...)`` from
      them. Setting them together with ``memoizer`` is an error at ``load()``.
    - ``dependency_resolver``: how futures are found in arguments; default shallow.
    - ``exit_mode``: what leaving ``with flowlib.load(config):`` does:
      ``"cleanup"`` (the default), ``"wait"`` (wait for tasks, then clean up) or ``"skip"``.
    - ``garbage_collect``: forget completed tasks (True; keeps memory bounded).
    - ``internal_tasks_max_threads``: threads for join apps and internal tasks.
    - ``retries``: how many times a failed task is retried (its cost budget).
    - ``retry_handler``: ``f(exception, task_record) -> cost`` of this failure.
    - ``run_dir``: where numbered run directories are made; default ``"runinfo"``.
    - ``std_autopath``: ``f(task_record, "stdout"|"stderr") -> path`` for ``AUTO_LOGNAME``.
    - ``strategy``, ``strategy_period``, ``max_idletime``: block scaling (used by
      executors with providers).
    - ``monitoring``: a :class:`~flowlib.monitoring.MonitoringHub` to record every
      task's history (None: no monitoring).
    - ``usage_tracking``: a level 0 to 3 or a bool, as in Parsl (others are a ConfigurationError);
      flowlib never sends usage data.
    - ``project_name``: a free-form label for the run.
    - ``initialize_logging``: True (``<run_dir>/flowlib.log`` at INFO), False, or a
      :class:`~flowlib.logconfigs.base.LoggingConfig`.
    - ``max_tasks_in_flight`` (flowlib only): backpressure. When this many tasks
      are submitted and not finished, a submission from the main thread waits
      until a tenth of them have finished, so a loop submitting millions of tasks
      keeps the submitter's memory bounded (about 2 KB per task in flight, plus
      its arguments). Submissions from other threads (join apps, callbacks,
      steering threads) never wait. Default 1,000,000; None: no bound.
    - ``pace_submissions`` (flowlib only, default True): a main-thread
      submission that finds more than 16 tasks in flight per task slot of the
      executors (at least 2,000) waits up to 0.1 s for a tenth of them to
      finish, so a loop of short tasks does not outrun the executors (which
      costs throughput). A wait that times out turns pacing off for 10 s, so
      nothing waits for a task that cannot finish. Executors that cannot say
      how many tasks they run at once turn it off.
    - ``gc_threshold`` (flowlib only): while the kernel runs, CPython's
      young-generation garbage-collection threshold is raised to at least this
      (default 50,000; restored at cleanup). With hundreds of thousands of tasks in
      flight, the default (700) makes the collector walk every live task again and
      again; flowlib's finished tasks leave no cycles to collect. None leaves the
      interpreter's setting alone.
    """

    def __init__(
        self,
        executors: Iterable[FlowlibExecutor] | None = None,
        memoizer: Memoizer | None = None,
        dependency_resolver: DependencyResolver | None = None,
        exit_mode: Literal["cleanup", "skip", "wait"] = "cleanup",
        garbage_collect: bool = True,
        internal_tasks_max_threads: int = 10,
        retries: int = 0,
        retry_handler: Callable[[Exception, TaskRecord], float] | None = None,
        run_dir: str | os.PathLike[str] = "runinfo",
        std_autopath: Callable[..., str] | None = None,
        strategy: str | None = "simple",
        strategy_period: float | int = 5,
        max_idletime: float = 120.0,
        monitoring: MonitoringHub | None = None,
        usage_tracking: int | bool = 0,
        project_name: str | None = None,
        initialize_logging: bool | LoggingConfig = True,
        gc_threshold: int | None = 50_000,
        max_tasks_in_flight: int | None = 1_000_000,
        pace_submissions: bool = True,
        app_cache: bool = True,
        checkpoint_files: Sequence[Any] | None = None,
        checkpoint_mode: Literal["task_exit", "periodic", "dfk_exit", "manual"] | None = None,
        checkpoint_period: str | None = None,
    ) -> None:
        from flowlib.dataflow.dependency_resolvers import DependencyResolver
        from flowlib.dataflow.memoization import Memoizer
        from flowlib.executors.base import FlowlibExecutor
        from flowlib.logconfigs.base import LoggingConfig
        from flowlib.monitoring.hub import MonitoringHub

        if isinstance(executors, Iterable) and not isinstance(executors, (str, bytes, dict)):
            executors = list(executors)
        validate_arguments(
            "Config",
            {
                "executors": (executors, list[FlowlibExecutor] | None),
                "memoizer": (memoizer, Memoizer | None),
                "dependency_resolver": (dependency_resolver, DependencyResolver | None),
                "exit_mode": (exit_mode, Literal["cleanup", "skip", "wait"]),
                "garbage_collect": (garbage_collect, bool),
                "internal_tasks_max_threads": (internal_tasks_max_threads, int),
                "retries": (retries, int),
                "retry_handler": (retry_handler, Callable[..., Any] | None),
                "run_dir": (run_dir, str | os.PathLike[str]),
                "std_autopath": (std_autopath, Callable[..., Any] | None),
                "strategy": (strategy, str | None),
                "strategy_period": (strategy_period, float | int),
                "max_idletime": (max_idletime, float | int),
                "monitoring": (monitoring, MonitoringHub | None),
                "usage_tracking": (usage_tracking, int | bool),
                "project_name": (project_name, str | None),
                "initialize_logging": (initialize_logging, bool | LoggingConfig),
                "gc_threshold": (gc_threshold, int | None),
                "max_tasks_in_flight": (max_tasks_in_flight, int | None),
                "pace_submissions": (pace_submissions, bool),
                "app_cache": (app_cache, bool),
                "checkpoint_files": (checkpoint_files, list[Any] | tuple[Any, ...] | None),
                "checkpoint_mode": (checkpoint_mode, Literal["task_exit", "periodic", "dfk_exit", "manual"] | None),
                "checkpoint_period": (checkpoint_period, str | None),
            },
        )
        if retries < 0:
            raise ValueError(f"Config argument 'retries' must be >= 0, got {retries}")
        if not 0 <= usage_tracking <= 3:
            from flowlib.errors import ConfigurationError

            # Parsl's levels: 0 (off) to 3; a bool counts as 0 or 1. flowlib never sends anything.
            raise ConfigurationError(f"Config argument 'usage_tracking' must be 0, 1, 2 or 3, got {usage_tracking!r}")
        if internal_tasks_max_threads < 1:
            raise ValueError(
                f"Config argument 'internal_tasks_max_threads' must be >= 1, got {internal_tasks_max_threads}"
            )
        if strategy not in _STRATEGIES:
            raise ValueError(f"Config argument 'strategy' must be one of {_STRATEGIES}, got {strategy!r}")
        if strategy_period <= 0:
            raise ValueError(f"Config argument 'strategy_period' must be > 0, got {strategy_period}")
        if gc_threshold is not None and gc_threshold < 1:
            raise ValueError(f"Config argument 'gc_threshold' must be >= 1 or None, got {gc_threshold}")
        if max_tasks_in_flight is not None and max_tasks_in_flight < 1:
            raise ValueError(f"Config argument 'max_tasks_in_flight' must be >= 1 or None, got {max_tasks_in_flight}")
        if executors is None:
            from flowlib.executors.threads import ThreadPoolExecutor

            executors = [ThreadPoolExecutor()]
        self._executors: list[FlowlibExecutor] = list(executors)
        self.memoizer = memoizer
        self.dependency_resolver = dependency_resolver
        self.exit_mode = exit_mode
        self.garbage_collect = garbage_collect
        self.internal_tasks_max_threads = internal_tasks_max_threads
        self.retries = retries
        self.retry_handler = retry_handler
        self.run_dir = os.fspath(run_dir)
        self.std_autopath = std_autopath
        self.strategy = strategy
        self.strategy_period = strategy_period
        self.max_idletime = max_idletime
        self.monitoring = monitoring
        self.usage_tracking = usage_tracking
        self.project_name = project_name
        self.initialize_logging = initialize_logging
        self.gc_threshold = gc_threshold
        self.max_tasks_in_flight = max_tasks_in_flight
        self.pace_submissions = pace_submissions
        # Parsl's checkpoint keywords; the kernel builds a BasicMemoizer from them at load()
        # (they may also be set as attributes after construction, as Parsl allows).
        self.app_cache = app_cache
        self.checkpoint_files = checkpoint_files
        self.checkpoint_mode = checkpoint_mode
        self.checkpoint_period = checkpoint_period

    @property
    def executors(self) -> list[FlowlibExecutor]:
        """The configured executors."""
        return self._executors
