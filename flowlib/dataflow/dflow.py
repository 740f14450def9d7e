"""The DataFlowKernel: turns app calls into tasks and runs each when its inputs are ready.

::

    app call --> submit_app --> TaskRecord + AppFuture (pending)
                                   | dependencies done (callbacks)
                                   v
                 launch_if_ready: dependency failed? -> dep_fail
                                  cache hit?         -> memo_done
                                  else executor.submit -> launched
                                   | executor future done (callback)
                                   v
                 handle_result:   failure -> retry (launched again) | failed
                                  join app -> joining -> exec_done | failed
                                  success  -> exec_done -> AppFuture.set_result

Every state change goes through one locked transition; every step that can
complete other tasks runs through a per-thread trampoline, so long chains of
completions never deepen the stack. Completed tasks are forgotten at once: memory
is bounded by what is in flight plus what the caller still holds.
"""

from __future__ import annotations

import atexit
import gc
import itertools
import logging
import random
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from functools import partial
from typing import TYPE_CHECKING, Any

from flowlib.app.errors import RemoteExceptionWrapper
from flowlib.config import Config
from flowlib.dataflow.dependencies import failed_dependencies, gather_dependencies, unwrap_arguments
from flowlib.dataflow.errors import DependencyError, JoinError
from flowlib.dataflow.futures import AppFuture
from flowlib.dataflow.launch import build_call
from flowlib.dataflow.loader import DataFlowKernelLoader
from flowlib.dataflow.pacing import MIN_LIMIT, WAIT_SECONDS, SubmissionPacer, executor_slots, resume_level
from flowlib.dataflow.retries import should_retry
from flowlib.dataflow.rundir import make_rundir
from flowlib.dataflow.states import FINAL_STATES, States
from flowlib.dataflow.task_files import needs_file_handling, prepare_files
from flowlib.dataflow.task_log import log_binding, log_executor_started, log_submission, log_summary, log_transition
from flowlib.dataflow.taskrecord import TaskRecord, check_transition
from flowlib.dataflow.trampoline import Trampoline
from flowlib.errors import ConfigurationError, FlowlibError, NoDataFlowKernelError
from flowlib.monitoring.events import EventBus

__all__ = ["DataFlowKernel", "DataFlowKernelLoader"]

if TYPE_CHECKING:
    from flowlib.app.app import AppBase
    from flowlib.executors.base import FlowlibExecutor

logger = logging.getLogger(__name__)

_S = States
_NOT_RETRIED = (DependencyError, JoinError)


class DataFlowKernel:
    """Runs the tasks of a workflow on the executors of a :class:`~flowlib.config.Config`.

    Usually made by ``flowlib.load(config)``; may be built directly with
    ``DataFlowKernel(config)``, which starts it. Works as a context manager whose
    exit follows ``config.exit_mode``.
    """

    def __init__(self, config: Config | None = None) -> None:
        if config is None:
            config = Config()
        if not isinstance(config, Config):
            raise TypeError(f"DataFlowKernel expects a flowlib.config.Config, got {type(config).__name__}")
        self.config = config
        self._check_labels(config.executors)
        _refuse_shut_down_executors(config.executors)
        from flowlib.dataflow.memoization import memoizer_for, start_memoizer

        memoizer = memoizer_for(config)  # before anything starts: a bad combination fails cleanly
        self.cleanup_called = False
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # backpressure: see _wait_for_room
        self._max_in_flight = config.max_tasks_in_flight
        self._resume_at = 0  # the in-flight count a waiting main-thread submission waits for
        self._waiting_submitters = 0
        self._pacer = SubmissionPacer(self._task_slots) if config.pace_submissions else None
        self._tid = itertools.count()
        self._trampoline = Trampoline()
        # bound once: a fresh bound method per task would be one more object for the GC to track
        self._dependency_done_cb = self._dependency_done
        self._exec_done_cb = self._exec_done
        self.tasks: dict[int, TaskRecord] = {}
        self.task_state_counts: dict[States, int] = dict.fromkeys(States, 0)
        self._resolver = config.dependency_resolver
        self._executor_choices: dict[Any, list[str]] = {}
        self._stop_logging: Callable[[], None] | None = None
        self.run_dir = make_rundir(config.run_dir)
        self.run_id = f"{int(time.time())}-{random.getrandbits(32):08x}"
        self._start_logging()
        self._debug = logger.isEnabledFor(logging.DEBUG)
        self.events = EventBus()  # task state changes for subscribers (flowlib.monitoring.subscribe)
        self.monitoring = config.monitoring
        if self.monitoring is not None:
            try:
                self.monitoring.start(self)
            except BaseException:
                if self._stop_logging is not None:
                    self._stop_logging()
                raise
        self._gc_restore = _raise_gc_threshold(config.gc_threshold)
        logger.info("DataFlowKernel starting in %s", self.run_dir)

        self.memoizer = memoizer
        start_memoizer(self.memoizer, self.run_dir, config.run_dir)

        from flowlib.app.python import INTERNAL_EXECUTOR
        from flowlib.data_provider.data_manager import DataManager
        from flowlib.executors.threads import ThreadPoolExecutor

        self.executors: dict[str, FlowlibExecutor] = {}
        internal = ThreadPoolExecutor(label=INTERNAL_EXECUTOR, max_threads=config.internal_tasks_max_threads)
        try:
            for executor in [*config.executors, internal]:
                self._prepare_executor(executor)
                self.executors[executor.label] = executor  # before start(): a half-started one is shut down too
                executor.start()
                _SHUT_DOWN_BY.pop(executor, None)
                if executor is not internal:
                    log_executor_started(logger, executor)
            self.data_manager = DataManager(self)
            self._poller = self._start_job_status_poller()
        except BaseException:
            self._undo_start()
            raise
        self._atexit: Callable[[], None] | None = _register_atexit(self)

    def add_executors(self, executors: Sequence[FlowlibExecutor]) -> None:
        """Start more executors on this running kernel, as Parsl's ``dfk.add_executors``.

        Their labels must be new; apps may name them from then on, and ``"all"`` apps
        may run on them. Executors with a provider join the scaling strategy.
        """
        if self.cleanup_called:
            raise FlowlibError(f"cannot add executors: this DataFlowKernel ({self.run_dir}) has been cleaned up")
        executors = list(executors)
        self._check_labels(executors)
        taken = sorted({e.label for e in executors if e.label in self.executors})
        if taken:
            raise ConfigurationError(f"executor labels must be unique; already in use by this kernel: {taken}")
        _refuse_shut_down_executors(executors)
        from flowlib.executors.block_provider import BlockProviderExecutor

        for executor in executors:
            self._prepare_executor(executor)
            if self.monitoring is not None:
                self.monitoring.attach_executor(executor)
            self.executors[executor.label] = executor  # cleanup() shuts it down even if start() fails half-way
            executor.start()
            _SHUT_DOWN_BY.pop(executor, None)
            log_executor_started(logger, executor)
            if isinstance(executor, BlockProviderExecutor):
                if self._poller is None:
                    self._poller = self._start_job_status_poller()
                else:
                    self._poller.add_executor(executor)
        self._executor_choices.clear()  # "all" now includes the new ones

    def _undo_start(self) -> None:
        """Release what a failed ``__init__`` had started, so that nothing is left running and load() works again."""
        logger.error("DataFlowKernel in %s failed to start; shutting down what it had started", self.run_dir)
        self.cleanup_called = True
        for executor in reversed(list(self.executors.values())):
            try:
                executor.shutdown()
            except Exception:
                logger.exception("executor %s failed to shut down", executor.label)
            _note_shut_down(executor, self.run_dir)
        for close in (self.memoizer.close, self._close_monitoring):
            try:
                close()
            except Exception:
                logger.exception("closing after a failed start failed")
        _restore_gc_threshold(self._gc_restore, self.config.gc_threshold)
        if self._stop_logging is not None:
            self._stop_logging()
            self._stop_logging = None

    def _start_job_status_poller(self) -> Any:
        from flowlib.executors.block_provider import BlockProviderExecutor

        block_executors = [e for e in self.executors.values() if isinstance(e, BlockProviderExecutor)]
        if not block_executors:
            return None
        from flowlib.jobs.job_status_poller import JobStatusPoller
        from flowlib.jobs.strategy import Strategy

        strategy = Strategy(strategy=self.config.strategy, max_idletime=self.config.max_idletime)
        poller = JobStatusPoller(block_executors, strategy, self.config.strategy_period)
        poller.start()
        return poller

    @staticmethod
    def _check_labels(executors: Sequence[FlowlibExecutor]) -> None:
        from flowlib.app.python import INTERNAL_EXECUTOR

        labels = [e.label for e in executors]
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise ConfigurationError(f"executor labels must be unique; duplicated: {duplicates}")
        if INTERNAL_EXECUTOR in labels:
            raise ConfigurationError(f"the executor label {INTERNAL_EXECUTOR!r} is reserved for flowlib")

    def _start_logging(self) -> None:
        self._log_format: str | None = None
        setting = self.config.initialize_logging
        if setting is False:
            return
        from flowlib.logconfigs.file import DEFAULT_FORMAT, FileLogging

        if setting is True:
            setting = FileLogging()
        self._stop_logging = setting.initialize(self.run_dir)
        custom = getattr(setting, "format_string", None)
        if isinstance(setting, FileLogging) and isinstance(custom, str) and custom != DEFAULT_FORMAT:
            self._log_format = custom  # as in Parsl: the executors' own logs take the run log's format too

    def _prepare_executor(self, executor: FlowlibExecutor) -> None:
        """What every executor gets from the kernel before it starts."""
        executor.run_dir = self.run_dir
        executor.run_id = self.run_id
        if self._log_format is not None and getattr(executor, "log_format", "") is None:
            setattr(executor, "log_format", self._log_format)  # noqa: B010 (only some executors have it)

    # ----------------------------------------------------------------- submit

    def submit(
        self,
        func: Callable[..., Any],
        app_args: tuple[Any, ...] = (),
        executors: str | Sequence[str] = "all",
        cache: bool = False,
        ignore_for_cache: Sequence[str] | None = None,
        app_kwargs: dict[str, Any] | None = None,
        join: bool = False,
    ) -> AppFuture[Any]:
        """Submit ``func`` as a Python (or join) task; the Parsl-compatible low-level entry."""
        from flowlib.app.python import PythonApp

        app: AppBase[Any, Any] = PythonApp(
            func, data_flow_kernel=self, executors=executors, cache=cache, ignore_for_cache=ignore_for_cache, join=join
        )
        return app(*app_args, **(app_kwargs or {}))

    def submit_app(self, app: AppBase[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> AppFuture[Any]:
        """Create the task for one call of ``app`` and return its future."""
        if self.cleanup_called:
            raise NoDataFlowKernelError(
                f"cannot submit {app.__name__}: this DataFlowKernel ({self.run_dir}) has been cleaned up"
            )
        if self._max_in_flight is not None and len(self.tasks) >= self._max_in_flight:
            self._wait_for_room(app.__name__)
        elif self._pacer is not None and len(self.tasks) >= MIN_LIMIT:
            self._pace(app.__name__)
        wanted = app.executors
        label = self._choose_executor(wanted if isinstance(wanted, str) else tuple(wanted), app.__name__)
        resource_spec = kwargs.get("parsl_resource_specification") or kwargs.get("resource_specification") or {}
        record = TaskRecord(
            next(self._tid),
            # As in Parsl, working_dir is where staged files go, not a bash app's cwd: bash apps
            # run in the worker's current directory (htex workers start in working_dir).
            app.executable(label, None),
            app.__name__,
            app.fn_hash if app.cache else "",
            args,
            kwargs,
            label,
            memoize=app.cache,
            ignore_for_cache=app.ignore_for_cache,
            join=app.kind == "join",
            kind=app.kind,
            resource_specification=resource_spec,
            time_invoked=time.time(),
        )
        record.dfk = self
        record.strip_kwargs = app.strip_kwargs
        app_fu: AppFuture[Any] = AppFuture(record)
        record.app_fu = app_fu
        if needs_file_handling(args, kwargs):
            prepare_files(record, self.run_dir, self.data_manager, self.config.std_autopath)
        deps = gather_dependencies(record.args, record.kwargs, self._resolver)
        record.depends = deps or ()
        if logger.isEnabledFor(logging.DEBUG):
            log_submission(logger, record, deps)
        with self._lock:
            self.task_state_counts[_S.unsched] += 1
            self._transition(record, _S.pending)
            self.tasks[record.id] = record
        pending = [d for d in deps if not d.done()] if deps else deps
        if not pending:
            self._trampoline.run(self._launch_if_ready, record)
            return app_fu
        record.outstanding = len(pending) + 1  # +1 until every callback is registered
        callback = partial(self._dependency_done_cb, record)
        for dep in pending:
            dep.add_done_callback(callback)
        self._dependency_done(record, None)
        return app_fu

    def _wait_for_room(self, app_name: str) -> None:
        """Backpressure: the main thread waits while ``max_tasks_in_flight`` tasks are unfinished.

        Other threads never wait: a join app's body or a done-callback that submits
        runs on a thread that finishing tasks may need.
        """
        if threading.current_thread() is not threading.main_thread():
            return
        bound = self._max_in_flight
        assert bound is not None
        with self._room:
            if len(self.tasks) < bound or self.cleanup_called:
                return
            resume = resume_level(bound)
            logger.info(
                "submitting %s waits: %d tasks in flight reached max_tasks_in_flight; resuming at %d",
                app_name,
                len(self.tasks),
                resume,
            )
            self._wait_in_flight_down_to(resume, None)
        self._refuse_if_cleaned_up(app_name)

    def _pace(self, app_name: str) -> None:
        """Pacing (see :mod:`.pacing`): a main thread far ahead of the executors waits briefly for tasks to finish."""
        pacer = self._pacer
        assert pacer is not None
        if threading.current_thread() is not threading.main_thread():
            return
        now = time.monotonic()
        limit = pacer.limit(now)
        if limit is None or len(self.tasks) < limit:
            return
        resume = resume_level(limit)
        deadline = now + WAIT_SECONDS
        with self._room:
            timed_out = self._wait_in_flight_down_to(resume, deadline)
        pacer.waited(time.monotonic(), timed_out=timed_out)
        if timed_out:
            logger.info(
                "submitting %s: %d tasks in flight and few finishing; submission pacing is off for a while",
                app_name,
                len(self.tasks),
            )
        self._refuse_if_cleaned_up(app_name)

    def _wait_in_flight_down_to(self, resume: int, deadline: float | None) -> bool:
        """With ``_room`` held: wait for at most ``resume`` tasks in flight, or cleanup; True if ``deadline`` came."""
        self._resume_at = resume
        self._waiting_submitters += 1
        try:
            while len(self.tasks) > resume and not self.cleanup_called:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return True
                self._room.wait(left)
        finally:
            self._waiting_submitters -= 1
        return False

    def _refuse_if_cleaned_up(self, app_name: str) -> None:
        if self.cleanup_called:
            raise NoDataFlowKernelError(
                f"cannot submit {app_name}: this DataFlowKernel ({self.run_dir}) was cleaned up while the "
                "submission waited for tasks in flight to finish"
            )

    def _task_slots(self) -> int | None:
        return executor_slots(self.executors.values())

    def _choose_executor(self, wanted: str | tuple[str, ...], app_name: str) -> str:
        choices = self._executor_choices.get(wanted)
        if choices is None:
            from flowlib.app.python import INTERNAL_EXECUTOR

            if wanted == "all":
                choices = [label for label in self.executors if label != INTERNAL_EXECUTOR]
            else:
                unknown = [label for label in wanted if label not in self.executors]
                if unknown:
                    known = [label for label in self.executors if label != INTERNAL_EXECUTOR]
                    raise ValueError(
                        f"app {app_name!r} asks for unknown executor(s) {unknown}; the known executors are {known}"
                    )
                choices = list(wanted)
            if not choices:
                raise ValueError(f"app {app_name!r}: no executor to run on")
            self._executor_choices[wanted] = choices
        return choices[0] if len(choices) == 1 else random.choice(choices)

    def _transition(self, record: TaskRecord, new: States, exception: BaseException | None = None) -> None:
        """Move ``record`` to ``new``; the caller holds ``self._lock``."""
        old = check_transition(record, new)
        counts = self.task_state_counts
        counts[old] -= 1
        counts[new] += 1
        if self.events.active:  # an O(1) append; subscribers run on the bus's own thread
            self.events.publish(record, old, new, time.time(), exception)
        if self._debug:  # per-task detail only when DEBUG was asked for
            log_transition(logger, record, old, new)

    # ------------------------------------------------------------ dependencies

    def _dependency_done(self, record: TaskRecord, _fut: Future[Any] | None) -> None:
        with self._lock:
            record.outstanding -= 1
            ready = record.outstanding == 0
        if ready:
            self._trampoline.run(self._launch_if_ready, record)

    def _launch_if_ready(self, record: TaskRecord) -> None:
        if record.status is not _S.pending:
            return  # cancelled while waiting
        deps = record.depends
        if deps:
            failures = failed_dependencies(deps)
            if failures:
                self._finish(record, _S.dep_fail, exception=DependencyError(failures, record.id))
                return
            record.args, record.kwargs = unwrap_arguments(record.args, record.kwargs, self._resolver)
            record.depends = ()  # unlike Parsl: a held future must not keep its whole upstream alive
        if record.memoize:
            try:
                memo_fu = self.memoizer.check_memo(record)
            except Exception as e:
                self._finish(record, _S.failed, exception=e)
                return
            if memo_fu is not None:
                record.from_memo = True
                memo_fu.add_done_callback(partial(self._memo_done, record))
                return
        self._launch(record)

    def _memo_done(self, record: TaskRecord, memo_fu: Future[Any]) -> None:
        self._trampoline.run(self._finish_from_future, record, memo_fu, _S.memo_done)

    # ------------------------------------------------------------------ launch

    def _launch(self, record: TaskRecord) -> None:
        with self._lock:
            if record.status is _S.cancelled:
                return
            self._transition(record, _S.launched)
        func, kwargs = build_call(record)
        try:
            exec_fu = self.executors[record.executor].submit(
                func, record.resource_specification, *record.args, **kwargs
            )
        except Exception as e:
            self._finish(record, _S.failed, exception=_name_task(e, record))
            return
        record.exec_fu = exec_fu
        if self._debug:
            # looked up on the class: some executors' futures lift any attribute into a new future
            task_id = getattr(type(exec_fu), "executor_task_id", None)
            log_binding(logger, record, task_id.__get__(exec_fu) if isinstance(task_id, property) else None)
        exec_fu.add_done_callback(partial(self._exec_done_cb, record))

    def _exec_done(self, record: TaskRecord, exec_fu: Future[Any]) -> None:
        self._trampoline.run(self._handle_result, record, exec_fu)

    def _handle_result(self, record: TaskRecord, exec_fu: Future[Any]) -> None:
        if exec_fu is not record.exec_fu or record.status in FINAL_STATES:
            return  # a stale try, or already cancelled
        if exec_fu.cancelled():
            self._finish(record, _S.cancelled, cancelled=True)
            return
        exc = exec_fu.exception()
        result = None
        if exc is None:
            result = exec_fu.result()
            if type(result) is RemoteExceptionWrapper:
                exc = result.get_exception()
        if exc is not None:
            self._handle_failure(record, exc)
        elif record.join:
            self._start_join(record, result)
        else:
            self._finish(record, _S.exec_done, result=result)

    def _handle_failure(self, record: TaskRecord, exc: BaseException) -> None:
        if isinstance(exc, Exception):
            exc = _name_task(exc, record)
        if isinstance(exc, _NOT_RETRIED):
            self._finish(record, _S.failed, exception=exc)
            return
        retry, exc = should_retry(record, exc, self.config.retries, self.config.retry_handler)
        if not retry:
            self._finish(record, _S.failed, exception=exc)
            return
        logger.info("task %s (%s) failed on try %s; retrying", record.id, record.func_name, record.try_id)
        with self._lock:
            self._transition(record, _S.fail_retryable, exc)
        record.try_id += 1
        record.exec_fu = None
        self._launch(record)

    # -------------------------------------------------------------------- join

    def _start_join(self, record: TaskRecord, returned: Any) -> None:
        inner = list(returned) if isinstance(returned, (list, tuple)) else [returned]
        bad = [x for x in inner if not isinstance(x, Future)]
        if bad:
            err = TypeError(
                f"join_app {record.func_name} (task {record.id}) must return a Future or a list of Futures; "
                f"it returned {type(returned).__name__} containing {type(bad[0]).__name__}"
            )
            self._finish(record, _S.failed, exception=err)
            return
        with self._lock:
            self._transition(record, _S.joining)
        record.joins = returned
        record.outstanding = len(inner) + 1
        callback = partial(self._join_dependency_done, record)
        for fut in inner:
            fut.add_done_callback(callback)
        self._join_dependency_done(record, None)

    def _join_dependency_done(self, record: TaskRecord, _fut: Future[Any] | None) -> None:
        with self._lock:
            record.outstanding -= 1
            ready = record.outstanding == 0
        if ready:
            self._trampoline.run(self._finish_join, record)

    def _finish_join(self, record: TaskRecord) -> None:
        joins = record.joins
        inner = list(joins) if isinstance(joins, (list, tuple)) else [joins]
        failures = failed_dependencies(inner)
        if failures:
            self._finish(record, _S.failed, exception=JoinError(failures, record.id))
        elif isinstance(joins, (list, tuple)):
            self._finish(record, _S.exec_done, result=[f.result() for f in inner])
        else:
            self._finish(record, _S.exec_done, result=joins.result())

    # ------------------------------------------------------------------ finish

    def _finish_from_future(self, record: TaskRecord, fut: Future[Any], state: States) -> None:
        if fut.cancelled():
            from concurrent.futures import CancelledError

            self._finish(
                record, _S.failed, exception=CancelledError("the cached task this task waited for was cancelled")
            )
            return
        exc = fut.exception()
        if exc is not None:
            self._finish(record, state, exception=exc)
        else:
            self._finish(record, state, result=fut.result())

    def _finish(
        self,
        record: TaskRecord,
        state: States,
        *,
        result: Any = None,
        exception: BaseException | None = None,
        cancelled: bool = False,
    ) -> None:
        """Move a task to a final state, record it for caching, and complete its future."""
        with self._lock:
            if record.status in FINAL_STATES:
                return
            self._transition(record, state, exception)
            self.tasks.pop(record.id, None)
            if self._waiting_submitters and len(self.tasks) <= self._resume_at:
                self._room.notify_all()
        record.time_returned = time.time()
        app_fu = record.app_fu
        assert app_fu is not None
        if record.memoize and record.hashsum is not None and not record.from_memo:
            try:
                if cancelled:
                    self.memoizer.discard(record)
                elif exception is None:
                    self.memoizer.update_memo_result(record, result)
                else:
                    self.memoizer.update_memo_exception(record, exception)
            except Exception:
                logger.exception("could not record task %s in the memo table", record.id)
        record.exec_fu = None
        record.joins = None
        record.app_fu = None  # the future keeps its record; the record need not keep its future (no cycle)
        if cancelled:
            app_fu._set_cancelled()
        elif exception is not None:
            if state is _S.dep_fail or state is _S.failed:
                logger.info("task %s (%s) %s: %s", record.id, record.func_name, state.name, _short(exception))
            app_fu.set_exception(exception)
        else:
            app_fu.set_result(result)

    # ------------------------------------------------------------------ cancel

    def _cancel_task(self, record: TaskRecord) -> bool:
        """Cancel ``record`` if it has not started; see :meth:`AppFuture.cancel`."""
        with self._lock:
            status = record.status
            if status is _S.pending or status is _S.unsched:
                self._transition(record, _S.cancelled)
                self.tasks.pop(record.id, None)
                if self._waiting_submitters and len(self.tasks) <= self._resume_at:
                    self._room.notify_all()
                exec_fu = None
            elif status is _S.launched:
                exec_fu = record.exec_fu
            else:
                return status is _S.cancelled
        if exec_fu is None:
            if status is _S.launched:
                return False
            assert record.app_fu is not None
            self._trampoline.run(record.app_fu._set_cancelled)
            return True
        if exec_fu.cancel():
            return record.status is _S.cancelled
        return False

    # ------------------------------------------------------------- lifecycle

    def wait_for_current_tasks(self) -> None:
        """Block until every task submitted so far (and those they start) has finished."""
        while True:
            with self._lock:
                pending = [r.app_fu for r in self.tasks.values()]
            if not pending:
                return
            for fut in pending:
                if fut is not None:
                    try:
                        fut.exception()
                    except CancelledError:  # noqa: S110 - a cancelled task is finished
                        pass

    def checkpoint(self) -> str | None:
        """Write the results cached so far to this run's checkpoint; return the checkpoint directory.

        ``None`` when the memoizer keeps no checkpoint (no ``checkpoint_mode``).
        """
        return self.memoizer.checkpoint()

    def cleanup(self) -> None:
        """Shut the kernel down: executors, checkpoint store, logging.

        Tasks still waiting for dependencies are failed with an error saying the
        kernel was cleaned up, so no future is left pending forever.
        """
        if self.cleanup_called:
            raise FlowlibError(f"cleanup() has already been called on the DataFlowKernel of {self.run_dir}")
        with self._room:
            self.cleanup_called = True
            self._room.notify_all()  # a submission waiting for room gives up
        logger.info("DataFlowKernel cleaning up %s", self.run_dir)
        if self._poller is not None:
            self._poller.close()
        for executor in self.executors.values():
            try:
                executor.shutdown()
            except Exception:
                logger.exception("executor %s failed to shut down", executor.label)
            _note_shut_down(executor, self.run_dir)
        with self._lock:
            leftover = list(self.tasks.values())
        for record in leftover:
            error = FlowlibError(
                f"task {record.id} ({record.func_name}) did not complete: its DataFlowKernel was cleaned up"
            )
            self._trampoline.run(partial(self._finish, record, _S.failed, exception=error))
        with self._lock:
            counts = dict(self.task_state_counts)
        log_summary(logger, counts)
        try:
            self.memoizer.close()
        except Exception:
            logger.exception("closing the memoizer failed")
        monitoring_error = self._close_monitoring()
        _restore_gc_threshold(self._gc_restore, self.config.gc_threshold)
        if DataFlowKernelLoader._dfk is self:
            DataFlowKernelLoader._dfk = None
        logger.info("DataFlowKernel cleanup complete")
        if self._stop_logging is not None:
            self._stop_logging()
            self._stop_logging = None
        if self._atexit is not None:
            atexit.unregister(self._atexit)
            self._atexit = None
        if monitoring_error is not None:
            raise monitoring_error

    def _close_monitoring(self) -> BaseException | None:
        """Flush and stop the monitoring router and the event bus; return the store's error, if any."""
        error = None
        if self.monitoring is not None:
            try:
                self.monitoring.close()
            except Exception as e:
                logger.error("monitoring: %s", e)
                error = e
        self.events.close()
        return error

    def __enter__(self) -> DataFlowKernel:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        mode = self.config.exit_mode
        if mode == "skip":
            return
        try:
            if mode == "wait" and exc_type is None:
                self.wait_for_current_tasks()  # Ctrl-C here still cleans up (queued tasks cancelled)
        finally:
            if not self.cleanup_called:
                self.cleanup()

    def __repr__(self) -> str:
        return f"<DataFlowKernel {self.run_dir} tasks_in_flight={len(self.tasks)}>"


_SHUT_DOWN_BY: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
"""Executor -> the run directory of the kernel whose cleanup shut it down (until it starts again)."""


def _note_shut_down(executor: Any, run_dir: str) -> None:
    try:
        _SHUT_DOWN_BY[executor] = run_dir
    except TypeError:  # an executor that cannot be weakly referenced or hashed: not tracked
        pass


def _refuse_shut_down_executors(executors: Sequence[Any]) -> None:
    """ConfigurationError for an executor that an earlier kernel shut down and that cannot start again."""
    for executor in executors:
        try:
            run_dir = _SHUT_DOWN_BY.get(executor)
        except TypeError:
            continue
        if run_dir is None or getattr(executor, "restartable", True):
            continue
        raise ConfigurationError(
            f"executor {executor.label!r} ({type(executor).__name__}) of this Config was shut down when the "
            f"DataFlowKernel of {run_dir} was cleaned up, and it cannot be started again: load a new Config, "
            "e.g. fresh_config() from a flowlib.configs module, or a function that builds the Config on each call "
            "(nothing was loaded; flowlib.load() works again with a new Config)"
        )


def _name_task(exc: Exception, record: TaskRecord) -> Exception:
    """Attach the task's id and app name to a (De)SerializationError raised at submit or on a worker."""
    from flowlib.serialize.errors import DeserializationError, SerializationError

    if isinstance(exc, (SerializationError, DeserializationError)) and exc.task_id is None:
        exc.task_id = record.id
        if exc.function_name is None:
            exc.function_name = record.func_name
    return exc


def _raise_gc_threshold(threshold: int | None) -> tuple[int, int, int] | None:
    """Raise the young-generation GC threshold; return what to restore (None: nothing changed)."""
    previous = gc.get_threshold()
    if threshold is None or previous[0] >= threshold:
        return None
    gc.set_threshold(threshold, *previous[1:])
    return previous


def _restore_gc_threshold(previous: tuple[int, int, int] | None, threshold: int | None) -> None:
    # restore only if nobody changed it since (another kernel, or the application)
    if previous is not None and gc.get_threshold()[0] == threshold:
        gc.set_threshold(*previous)


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) < 300 else text[:297] + "..."


def _register_atexit(dfk: DataFlowKernel) -> Callable[[], None]:
    ref = weakref.ref(dfk)

    def cleanup_at_exit() -> None:
        kernel = ref()
        if kernel is not None and not kernel.cleanup_called:
            kernel.cleanup()

    atexit.register(cleanup_at_exit)
    return cleanup_at_exit
