"""Run each task as a Flux job, in a Flux instance started on a block from a provider.

::

    client process                                        the block (provider job)
    FluxExecutor ----provider.submit(launch_cmd)--------> flux start python instance.py tcp HOST PORT
        |  <---------------- ZMQ: {"uri": ..., "host": ...} ------- (the instance's initial program)
        |  flux.job.FluxExecutor(handle_args=(uri,))
        |  submit(JobspecV1: python -m flowlib.executors.flux.run_task IN OUT) --> Flux schedules the job
    future <-- done callback reads OUT <-------------------------------------- rank 0 writes OUT

A task's call is serialized by flowlib (:mod:`flowlib.executors.remote_call`) into a
file in the executor's directory (a filesystem shared with the block's nodes); the
Flux job runs it and writes the outcome next to it. Flux itself does the
scheduling, the placement of ranks and cores, and the cancellation of jobs; this
executor only translates. One submission thread starts the instance, waits for
its address and hands queued tasks to ``flux.job.FluxExecutor``, so ``submit()``
never blocks on the batch queue or on a filesystem.
"""

from __future__ import annotations

import logging
import os
import queue
import shlex
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from numbers import Integral
from typing import Any

from flowlib.errors import OptionalModuleMissing
from flowlib.executors.base import ExecutorStatistics, FlowlibExecutor
from flowlib.executors.errors import BadStateException, ExecutorError, InvalidResourceSpecification
from flowlib.executors.remote_call import pack_call, unpack_outcome
from flowlib.providers.base import ExecutionProvider
from flowlib.validation import validate_arguments

__all__ = ["DEFAULT_LAUNCH_CMD", "FluxExecutor", "FluxJobFailed"]

logger = logging.getLogger(__name__)

_EXTRA = "pip install 'flowlib[flux]'"

DEFAULT_LAUNCH_CMD = "{flux} start {python} {manager} {protocol} {hostname} {port}"
"""The command a block runs: a new Flux instance whose initial program reports its address."""

#: Resource specification key -> ``JobspecV1.from_command`` keyword (and the smallest value allowed).
RESOURCE_KEYS: dict[str, int] = {"num_tasks": 1, "cores_per_task": 1, "gpus_per_task": 0, "num_nodes": 1}

_INSTANCE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "instance.py")


class FluxJobFailed(ExecutorError):
    """A task's Flux job ended without writing its result (killed, out of memory, lost node, bad python).

    Raised into the task's future; the kernel may retry it. Carries the job id, the
    job's exit status (``-signum`` when killed by a signal) and the tail of its stderr.
    """

    def __init__(self, executor: object, jobid: Any, returncode: int, stderr_tail: str) -> None:
        self.jobid = jobid
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        how = f"was killed by signal {-returncode}" if returncode < 0 else f"exited with status {returncode}"
        reason = f"Flux job {jobid} {how} without writing the task's result"
        if stderr_tail:
            reason += f"; its stderr ends with:\n{stderr_tail}"
        super().__init__(executor, reason)


def _flux_job() -> Any:
    try:
        import flux.job
    except ImportError as e:
        raise OptionalModuleMissing(
            ["flux"],
            "FluxExecutor needs Flux's Python bindings (the 'flux' package, which comes with flux-core): "
            f"{_EXTRA}, and put flux-core's Python directory on PYTHONPATH (for example by running "
            f"inside 'flux env' or 'flux start'); importing it failed: {e}",
        ) from None
    return flux.job


@dataclass
class _Task:
    """One task between submit() and its Flux job's end."""

    task_id: int
    future: Future[Any]
    payload: bytes
    resources: dict[str, int]
    flux_future: Any = None


class FluxExecutor(FlowlibExecutor):
    """Run each task as a job of a Flux instance that this executor starts through its provider.

    The keywords up to ``launch_cmd`` are those of Parsl's FluxExecutor;
    ``environment`` and ``storage_access`` are flowlib's.

    Parameters:
        provider: where the Flux instance runs (default: a new ``LocalProvider()``,
            this machine). One block is started; Flux schedules the tasks inside it.
        working_dir: the directory for the executor's files (task inputs and
            outputs) and the Flux jobs' current directory; it must be on a filesystem
            shared with the block's nodes. Bash apps run there too. Default: a
            directory in the run directory for the files, and this process's current
            directory for the jobs.
        label: the executor's name in ``executors=[...]``.
        flux_executor_kwargs: keyword arguments for ``flux.job.FluxExecutor``
            (``threads``, ``poll_interval``, ...); ``handle_args`` is set by flowlib.
        flux_path: the ``flux`` command (default: the one on PATH).
        launch_cmd: the command a block runs (default :data:`DEFAULT_LAUNCH_CMD`);
            placeholders ``{flux}``, ``{python}``, ``{manager}``, ``{protocol}``,
            ``{hostname}``, ``{port}``.
        environment: variables set in every job on top of this process's
            environment (a job otherwise gets a copy of ``os.environ`` at start).
        storage_access: staging providers for files (None: the defaults).

    A task's resource specification maps to the Flux jobspec
    (``JobspecV1.from_command``): ``num_tasks``, ``cores_per_task``,
    ``gpus_per_task``, ``num_nodes``. Any other key is refused, naming it.

    Raises:
        OptionalModuleMissing: the ``flux`` Python package cannot be imported.
        TypeError: an argument has the wrong type.
    """

    restartable = False  # start() after shutdown() does not bring it back: load a new Config

    def __init__(
        self,
        provider: ExecutionProvider | None = None,
        working_dir: str | None = None,
        label: str = "FluxExecutor",
        flux_executor_kwargs: dict[str, Any] | None = None,
        flux_path: str | None = None,
        launch_cmd: str | None = None,
        *,
        environment: dict[str, str] | None = None,
        storage_access: list[Any] | None = None,
    ) -> None:
        _flux_job()
        validate_arguments(
            "FluxExecutor",
            {
                "provider": (provider, ExecutionProvider | None),
                "working_dir": (working_dir, str | None),
                "label": (label, str),
                "flux_executor_kwargs": (flux_executor_kwargs, dict[str, Any] | None),
                "flux_path": (flux_path, str | None),
                "launch_cmd": (launch_cmd, str | None),
                "environment": (environment, dict[str, str] | None),
                "storage_access": (storage_access, list[Any] | None),
            },
        )
        if flux_executor_kwargs and "handle_args" in flux_executor_kwargs:
            raise ValueError("FluxExecutor: flux_executor_kwargs may not set 'handle_args' (flowlib sets the URI)")
        if provider is None:
            from flowlib.providers.local import LocalProvider

            provider = LocalProvider()
        self.provider = provider
        self.working_dir = working_dir
        self.label = label
        self.flux_executor_kwargs = dict(flux_executor_kwargs or {})
        self.flux_path = flux_path
        self.launch_cmd = launch_cmd if launch_cmd is not None else DEFAULT_LAUNCH_CMD
        self.environment = dict(environment or {})
        self.storage_access = storage_access
        self.job_id: str | None = None
        self.flux_uri: str | None = None
        self._files_dir = ""
        self._job_cwd = ""
        self._job_env: dict[str, str] = {}
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._tasks: dict[int, _Task] = {}
        self._next_id = 0
        self._submitted = 0
        self._completed = 0
        self._started = False
        self._shutdown = False
        self._failure: BaseException | None = None
        self._flux_executor: Any = None
        self._flux_handle: Any = None
        self._zmq_context: Any = None
        self._zmq_socket: Any = None
        self._instance_ready = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Find ``flux``, open the address socket and start the block; tasks queue until it reports."""
        if self._started:
            return
        import shutil

        import zmq

        flux = self.flux_path or shutil.which("flux")
        if flux is None or not os.access(flux, os.X_OK):
            raise BadStateException(
                self,
                f"the flux command {self.flux_path!r} is not executable"
                if self.flux_path
                else "no 'flux' command on PATH; set flux_path",
            )
        base = os.path.abspath(self.working_dir or os.path.join(self.run_dir, self.label))
        self._files_dir = os.path.join(base, "flux_tasks")
        os.makedirs(self._files_dir, exist_ok=True)
        self._job_cwd = os.path.abspath(self.working_dir) if self.working_dir else os.getcwd()
        self._job_env = {**os.environ, **self.environment}
        if self.provider.script_dir is None:
            self.provider.script_dir = os.path.join(base, "submit_scripts")
            os.makedirs(self.provider.script_dir, exist_ok=True)

        hostname = "127.0.0.1" if getattr(self.provider, "workers_on_this_machine", False) else socket.getfqdn()
        self._zmq_context = zmq.Context()
        self._zmq_socket = self._zmq_context.socket(zmq.REP)
        self._zmq_socket.setsockopt(zmq.LINGER, 0)
        bind_host = hostname if hostname == "127.0.0.1" else "*"
        port = self._zmq_socket.bind_to_random_port(f"tcp://{bind_host}")
        command = self.launch_cmd.format(
            flux=shlex.quote(flux),
            python=shlex.quote(sys.executable),
            manager=shlex.quote(_INSTANCE_SCRIPT),
            protocol="tcp",
            hostname=hostname,
            port=port,
        )
        try:
            self.job_id = self.provider.submit(command, 1, job_name=f"flowlib.{self.label}.flux")
        except BaseException:
            self._zmq_socket.close()
            self._zmq_context.term()
            self._zmq_socket = None
            raise
        logger.info("FluxExecutor %s: Flux instance submitted as job %s: %s", self.label, self.job_id, command)
        self._started = True
        self._thread = threading.Thread(target=self._run, name=f"flowlib-flux-{self.label}", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Cancel jobs still running, stop the Flux instance and release its block."""
        with self._lock:
            if self._shutdown:
                return
            self._shutdown = True
            left = list(self._tasks.values())
            self._tasks.clear()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=30)
        for task in left:
            _set_exception(task.future, BadStateException(self, "the executor was shut down before the task finished"))
            self._cancel_job(task)
        if self._flux_executor is not None:
            self._flux_executor.shutdown(wait=False, cancel_futures=True)
        self._stop_instance()

    def _stop_instance(self) -> None:
        if self._zmq_socket is not None and self._instance_ready.is_set():
            try:
                self._zmq_socket.send_json({"stop": True})
            except Exception:  # the instance went away already
                logger.debug("could not tell the Flux instance to stop", exc_info=True)
        if self.job_id is not None:
            try:
                deadline = time.monotonic() + (5 if self._instance_ready.is_set() else 0)
                while time.monotonic() < deadline and not self.provider.status([self.job_id])[0].terminal:
                    time.sleep(0.25)  # the block ends once flux start's initial program returns
                if not self.provider.status([self.job_id])[0].terminal:
                    self.provider.cancel([self.job_id])
            except Exception:
                logger.exception("FluxExecutor %s: could not release the block (job %s)", self.label, self.job_id)
        if self._zmq_socket is not None:
            self._zmq_socket.close()
            self._zmq_context.term()
            self._zmq_socket = None

    # ------------------------------------------------------------------ submit

    def submit(
        self, func: Callable[..., Any], resource_specification: dict[str, Any], /, *args: Any, **kwargs: Any
    ) -> Future[Any]:
        """Queue ``func(*args, **kwargs)`` as a Flux job; the future completes with its outcome.

        Raises:
            InvalidResourceSpecification: a key other than num_tasks, cores_per_task,
                gpus_per_task, num_nodes (names them), or a value that is not a
                whole number large enough.
            SerializationError: the call cannot be serialized (names the part).
            BadStateException: the executor is not started, shut down, or its
                Flux instance failed to start.
        """
        if self._shutdown or not self._started:
            raise BadStateException(self, "the executor has been shut down" if self._shutdown else "not started")
        if self._failure is not None:
            raise self._failure
        resources = self._resources_for(resource_specification)
        payload = pack_call(func, args, kwargs)
        future: Future[Any] = Future()
        with self._lock:
            task = _Task(self._next_id, future, payload, resources)
            self._next_id += 1
            self._tasks[task.task_id] = task
            self._submitted += 1
        future.add_done_callback(lambda f: self._cancel_job(task) if f.cancelled() else None)
        self._queue.put(task)
        return future

    def _resources_for(self, spec: dict[str, Any]) -> dict[str, int]:
        unknown = sorted(set(spec) - set(RESOURCE_KEYS))
        if unknown:
            raise InvalidResourceSpecification(
                set(unknown),
                f"FluxExecutor {self.label!r}: unknown resource specification keys {unknown}; "
                f"a Flux jobspec takes {', '.join(RESOURCE_KEYS)}",
            )
        bad = [k for k, v in spec.items() if isinstance(v, bool) or not isinstance(v, Integral) or v < RESOURCE_KEYS[k]]
        if bad:
            raise InvalidResourceSpecification(
                set(bad),
                f"FluxExecutor {self.label!r}: resource specification values must be whole numbers "
                "(at least 1; gpus_per_task at least 0); bad: " + ", ".join(f"{k}={spec[k]!r}" for k in bad),
            )
        return {k: int(v) for k, v in spec.items()}

    # ------------------------------------------------------------------ submission thread

    def _run(self) -> None:
        try:
            uri = self._wait_for_instance()
        except BaseException as e:
            self._fail_all(e)
            return
        if uri is None:  # shut down before the instance reported
            return
        try:
            flux_job = _flux_job()
            import flux

            self._flux_handle = flux.Flux(uri)
            self._flux_executor = flux_job.FluxExecutor(handle_args=(uri,), **self.flux_executor_kwargs)
        except Exception as e:
            self._fail_all(BadStateException(self, f"could not connect to the Flux instance at {uri}: {e}"))
            return
        while True:
            task = self._queue.get()
            if task is None:
                return
            if task.future.done():  # cancelled while queued
                continue
            try:
                self._submit_job(flux_job, task)
            except Exception as e:
                self._finish(task)
                _set_exception(task.future, e)

    def _wait_for_instance(self) -> str | None:
        """Block until the instance sends its URI; fail if the block ends first."""
        assert self._zmq_socket is not None and self.job_id is not None
        next_poll = 0.0  # ask the scheduler at most once per the provider's polling interval
        while not self._shutdown:
            if self._zmq_socket.poll(200):
                message = self._zmq_socket.recv_json()
                uri = str(message["uri"])
                host = str(message.get("host", ""))
                if uri.startswith("local://") and host and host != socket.gethostname():
                    uri = f"ssh://{host}{uri[len('local://') :]}"  # reach the broker on its node
                self.flux_uri = uri
                self._instance_ready.set()
                logger.info("FluxExecutor %s: Flux instance up at %s", self.label, uri)
                return uri
            if time.monotonic() < next_poll:
                continue
            next_poll = time.monotonic() + self.provider.status_polling_interval
            status = self.provider.status([self.job_id])[0]
            if status.terminal:
                details = f": {status.message.strip()}" if status.message else ""
                where = f" (its stderr: {status.stderr_path})" if status.stderr_path else ""
                raise BadStateException(
                    self,
                    f"the Flux instance (job {self.job_id}) ended as {status.state.name} before reporting "
                    f"its address{details}{where}",
                )
        return None

    def _submit_job(self, flux_job: Any, task: _Task) -> None:
        stem = os.path.join(self._files_dir, f"task_{task.task_id}")
        with open(stem + ".in", "wb") as f:
            f.write(task.payload)
        command = [sys.executable, "-m", "flowlib.executors.flux.run_task", stem + ".in", stem + ".out"]
        jobspec = flux_job.JobspecV1.from_command(
            command,
            num_tasks=task.resources.get("num_tasks", 1),
            cores_per_task=task.resources.get("cores_per_task", 1),
            gpus_per_task=task.resources.get("gpus_per_task"),
            num_nodes=task.resources.get("num_nodes"),
        )
        jobspec.cwd = self._job_cwd
        jobspec.environment = self._job_env
        jobspec.stdout = stem + ".stdout"
        jobspec.stderr = stem + ".stderr"
        task.flux_future = self._flux_executor.submit(jobspec)
        if task.future.done():  # cancelled meanwhile
            self._cancel_job(task)
        task.flux_future.add_done_callback(lambda ff: self._job_done(task, ff, stem))

    # ------------------------------------------------------------------ results

    def _job_done(self, task: _Task, flux_future: Any, stem: str) -> None:
        self._finish(task)
        if task.future.done():
            _remove(stem, (".in", ".out", ".stdout", ".stderr"))
            return
        if flux_future.cancelled():
            _set_exception(task.future, BadStateException(self, "the Flux job was cancelled before it was submitted"))
            return
        exc = flux_future.exception()
        if exc is not None:
            _set_exception(task.future, exc)
            return
        try:
            with open(stem + ".out", "rb") as f:
                data = f.read()
        except FileNotFoundError:
            jobid = flux_future.jobid(0)
            _set_exception(task.future, FluxJobFailed(self, jobid, int(flux_future.result()), _tail(stem + ".stderr")))
            return
        try:
            outcome = unpack_outcome(data)
        except Exception as e:  # a result that cannot be rebuilt here
            _set_exception(task.future, e)
            return
        _remove(stem, (".in", ".out"))
        _remove_if_empty(stem, (".stdout", ".stderr"))
        _set_result(task.future, outcome)

    def _finish(self, task: _Task) -> None:
        with self._lock:
            if self._tasks.pop(task.task_id, None) is not None:
                self._completed += 1

    def _cancel_job(self, task: _Task) -> None:
        """Cancel the task's Flux job if it has one (flux.job.cancel kills it where it runs)."""
        ff = task.flux_future
        if ff is None or ff.done() or ff.cancel():
            return
        try:
            jobid = ff.jobid(0)
        except Exception:  # not submitted yet: Flux fails the future, _job_done ignores it
            return
        try:
            _flux_job().cancel(self._flux_handle, jobid, "cancelled by flowlib")
        except Exception:  # the job ended meanwhile
            logger.debug("cancelling Flux job %s failed", jobid, exc_info=True)

    def _fail_all(self, exc: BaseException) -> None:
        logger.error("FluxExecutor %s: %s", self.label, exc)
        self._failure = exc
        with self._lock:
            left = list(self._tasks.values())
            self._tasks.clear()
            self._completed += len(left)
        for task in left:
            _set_exception(task.future, exc)

    def statistics(self) -> ExecutorStatistics:
        """Tasks submitted and completed so far (workers: 1 once the Flux instance is up)."""
        with self._lock:
            return ExecutorStatistics(self.label, self._submitted, self._completed, int(self._instance_ready.is_set()))

    def __repr__(self) -> str:
        return f"FluxExecutor(label={self.label!r}, provider={self.provider!r})"


def _tail(path: str, limit: int = 2000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            return f.read().decode(errors="replace").strip()
    except OSError:
        return ""


def _remove(stem: str, suffixes: tuple[str, ...]) -> None:
    for suffix in suffixes:
        try:
            os.unlink(stem + suffix)
        except OSError:
            pass


def _remove_if_empty(stem: str, suffixes: tuple[str, ...]) -> None:
    for suffix in suffixes:
        try:
            if os.path.getsize(stem + suffix) == 0:
                os.unlink(stem + suffix)
        except OSError:
            pass


def _set_result(future: Future[Any], value: Any) -> None:
    try:
        future.set_result(value)
    except InvalidStateError:
        pass


def _set_exception(future: Future[Any], exc: BaseException) -> None:
    try:
        future.set_exception(exc)
    except InvalidStateError:
        pass
