"""The RADICAL-Pilot executor: flowlib tasks as RP tasks inside one pilot.

::

    kernel --submit--> RadicalPilotExecutor --rp.TaskDescription--> RP TaskManager
                         | ranks <= 1: function task "run_flowlib"     |
                         | ranks  > 1: executable task (task_main)     v
                         |                                 pilot (a job on `resource`)
                         |                                   RAPTOR master --> FlowlibWorker(s)
    future <-- outcome <-- state callback (DONE / FAILED / CANCELED) <-- RP

At start the executor opens an RP session, submits one pilot described by
``resource`` and the pilot keywords, and the RAPTOR masters and workers of
``rpex_cfg`` (workers are :class:`~flowlib.executors.radical.worker.FlowlibWorker`).
Each task is serialized by flowlib (:mod:`flowlib.executors.remote_call`) and travels
base64-encoded as the function task's argument; the outcome comes back as its return
value, so the app's exceptions keep their type and remote traceback. A task whose
resource specification asks for more than one rank is an RP executable task
(``python -m flowlib.executors.radical.task_main``), launched by RP with as many
ranks; its payload and outcome go through files in the executor's directory.

Resource specification keys map one to one onto RP's task description:
``ranks``, ``cores_per_rank``, ``gpus_per_rank`` and ``mem_per_rank`` (MB).
"""

from __future__ import annotations

import base64
import importlib.util
import itertools
import logging
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Any

from flowlib.errors import OptionalModuleMissing
from flowlib.executors.base import ExecutorStatistics, FlowlibExecutor
from flowlib.executors.errors import BadStateException, ExecutorError, InvalidResourceSpecification
from flowlib.executors.radical.config import ResourceConfig
from flowlib.executors.remote_call import pack_call, unpack_outcome
from flowlib.validation import validate_arguments

logger = logging.getLogger(__name__)

__all__ = ["RadicalPilotExecutor", "RadicalTaskFailed"]

_EXTRA = "pip install 'flowlib[radical-pilot]'"
_SPEC_KEYS = ("ranks", "cores_per_rank", "gpus_per_rank", "mem_per_rank")


class RadicalTaskFailed(ExecutorError):
    """RADICAL-Pilot failed or cancelled a task outside the app (a lost worker, a launch error).

    ``state`` is RP's final state, ``detail`` what RP reported (its exception, or the
    task's stderr).
    """

    def __init__(self, executor: object, task_uid: str, state: str, detail: str) -> None:
        self.task_uid = task_uid
        self.state = state
        self.detail = detail
        super().__init__(executor, f"RADICAL-Pilot task {task_uid} ended {state}: {detail}")


@dataclass
class _Pending:
    future: Future[Any]
    outcome_file: str | None  # executable tasks: where task_main writes the outcome


class RadicalPilotExecutor(FlowlibExecutor):
    """Run tasks in a RADICAL-Pilot pilot (Parsl's constructor).

    Parameters:
        resource: the RP resource the pilot runs on, e.g. ``"local.localhost"`` or
            ``"tacc.frontera"`` (RP's resource configurations).
        label: the executor's name in ``executors=[...]``.
        bulk_mode: collect tasks and hand them to RP in batches (fewer calls into
            RP for large fan-outs) instead of one call per task.
        working_dir: where the files of multi-rank tasks go (None: ``<run_dir>/radical``).
            RP itself writes its client session directory ``rp.session.<id>`` into the
            current directory.
        rpex_cfg: the RAPTOR layout (:class:`ResourceConfig`; None: the defaults).
        **pilot_kwargs: the pilot description: ``runtime`` (minutes), ``cores``,
            ``gpus``, ``nodes``, ``memory``, ``sandbox``, ``queue``, ``project``,
            ``access_schema``, ...

    Raises:
        OptionalModuleMissing: ``radical.pilot`` is not installed.
        TypeError / ValueError: an argument has the wrong type or value.
    """

    restartable = False  # start() after shutdown() does not bring it back: load a new Config

    def __init__(
        self,
        resource: str,
        label: str = "RadicalPilotExecutor",
        bulk_mode: bool = False,
        working_dir: str | None = None,
        rpex_cfg: ResourceConfig | None = None,
        **pilot_kwargs: Any,
    ) -> None:
        if importlib.util.find_spec("radical") is None or importlib.util.find_spec("radical.pilot") is None:
            raise OptionalModuleMissing(
                ["radical.pilot"], f"RadicalPilotExecutor needs RADICAL-Pilot; install it with {_EXTRA}"
            )
        validate_arguments(
            "RadicalPilotExecutor",
            {
                "resource": (resource, str),
                "label": (label, str),
                "bulk_mode": (bulk_mode, bool),
                "working_dir": (working_dir, str | None),
                "rpex_cfg": (rpex_cfg, ResourceConfig | None),
            },
        )
        if "resource" in pilot_kwargs:
            raise TypeError("RadicalPilotExecutor got 'resource' twice")
        self.resource = resource
        self.label = label
        self.bulk_mode = bulk_mode
        self.working_dir = working_dir
        self.rpex_cfg = rpex_cfg or ResourceConfig()
        self.pilot_kwargs = dict(pilot_kwargs)
        self.storage_access = None
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._ids = itertools.count()
        self._submitted = 0
        self._completed = 0
        self._masters: list[str] = []
        self._next_master = itertools.cycle([0])
        self._bulk: list[Any] = []
        self._bulk_wake = threading.Event()
        self._bulk_thread: threading.Thread | None = None
        self._session: Any = None
        self._tmgr: Any = None
        self._pilot: Any = None
        self._broken: str | None = None
        self._shutdown = False
        self._task_dir = ""

    # ------------------------------------------------------------------ start

    def start(self) -> None:
        """Open the RP session, submit the pilot and the RAPTOR masters and workers (does not wait for them)."""
        import radical.pilot as rp

        from flowlib.executors.radical import worker

        self._rp = rp
        base = os.path.abspath(self.working_dir or os.path.join(self.run_dir, "radical"))
        self._task_dir = os.path.join(base, "tasks")
        os.makedirs(self._task_dir, exist_ok=True)
        if sys.prefix != sys.base_prefix and not os.environ.get("VIRTUAL_ENV"):
            # A venv's python run without activation: RP starts its bridges by name from PATH, and
            # resources with virtenv_mode "local" (local.localhost among them) reuse the client's
            # environment, found through VIRTUAL_ENV. Activate it as far as RP needs.
            os.environ["VIRTUAL_ENV"] = sys.prefix
            bin_dir = os.path.join(sys.prefix, "bin")
            if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
                os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
        self._session = rp.Session()  # RP writes its client session directory into the current directory
        try:
            pmgr = rp.PilotManager(session=self._session)
            self._tmgr = rp.TaskManager(session=self._session)
            self._tmgr.register_callback(self._task_state)
            pmgr.register_callback(self._pilot_state)
            # exit_on_error (RP's default) would SIGTERM the user's main thread when the pilot fails;
            # flowlib fails the pending tasks instead (see _pilot_state).
            description = {"resource": self.resource, "exit_on_error": False, **self.pilot_kwargs}
            self._pilot = pmgr.submit_pilots(rp.PilotDescription(description))
            self._tmgr.add_pilots(self._pilot)
            cfg = self.rpex_cfg
            masters = self._tmgr.submit_raptors(
                [
                    rp.TaskDescription({"mode": rp.RAPTOR_MASTER, "ranks": 1, "cores_per_rank": cfg.cores_per_master})
                    for _ in range(cfg.masters)
                ]
            )
            self._masters = [m.uid for m in masters]
            self._next_master = itertools.cycle(range(len(self._masters)))
            self._tmgr.submit_workers(
                [
                    rp.TaskDescription(
                        {
                            "mode": rp.RAPTOR_WORKER,
                            "raptor_id": master,
                            "raptor_class": "FlowlibWorker",
                            "raptor_file": worker.__file__,
                            "ranks": 1,
                            "cores_per_rank": cfg.worker_cores_per_node,
                            "gpus_per_rank": cfg.worker_gpus_per_node,
                        }
                    )
                    for master in self._masters
                    for _ in range(cfg.workers)
                ]
            )
        except Exception:
            self._session.close(download=False)
            raise
        if self.bulk_mode:
            self._bulk_thread = threading.Thread(target=self._bulk_loop, name=f"flowlib-rpex-{self.label}", daemon=True)
            self._bulk_thread.start()

    # ----------------------------------------------------------------- submit

    def _check_spec(self, spec: dict[str, Any]) -> dict[str, int]:
        unknown = set(spec) - set(_SPEC_KEYS)
        if unknown:
            raise InvalidResourceSpecification(
                unknown,
                f"RadicalPilotExecutor accepts the resource specification keys {list(_SPEC_KEYS)}; "
                f"got unknown {sorted(unknown)}",
            )
        out: dict[str, int] = {}
        for key, value in spec.items():
            least = 1 if key in ("ranks", "cores_per_rank") else 0
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise InvalidResourceSpecification(
                    {key}, f"resource specification {key!r} must be an int >= {least}, got {value!r}"
                )
            out[key] = value
        cfg = self.rpex_cfg
        if out.get("ranks", 1) == 1:
            # Function tasks run on a RAPTOR worker, which would wait forever for cores it does not have.
            for key, have in (
                ("cores_per_rank", cfg.worker_cores_per_node),
                ("gpus_per_rank", cfg.worker_gpus_per_node),
            ):
                if out.get(key, 0) > have:
                    raise InvalidResourceSpecification(
                        {key},
                        f"resource specification {key}={out[key]} exceeds what a RAPTOR worker has "
                        f"({have}; rpex_cfg.worker_{key.split('_')[0]}_per_node)",
                    )
        return out

    def submit(
        self, func: Callable[..., Any], resource_specification: dict[str, Any], /, *args: Any, **kwargs: Any
    ) -> Future[Any]:
        """Describe ``func(*args, **kwargs)`` as an RP task and hand it to RP.

        Raises:
            InvalidResourceSpecification: an unknown key, a bad value, or more cores or
                GPUs than a RAPTOR worker has (for tasks of one rank).
            SerializationError: the call cannot be serialized.
            BadStateException: the executor is shut down, or its pilot failed.
        """
        if self._shutdown or self._tmgr is None:
            raise BadStateException(self, "the executor is not running (not started, or shut down)")
        if self._broken:
            raise BadStateException(self, self._broken)
        spec = self._check_spec(resource_specification)
        rp = self._rp
        number = next(self._ids)
        uid = f"flowlib.{self.label}.{number:06d}"
        payload = pack_call(func, args, kwargs, task_id=uid)
        description: dict[str, Any] = {"uid": uid, **spec}
        outcome_file = None
        if spec.get("ranks", 1) > 1:
            source = os.path.join(self._task_dir, f"{number:06d}.in")
            outcome_file = os.path.join(self._task_dir, f"{number:06d}.out")
            with open(source, "wb") as f:
                f.write(payload)
            description.update(
                mode=rp.TASK_EXECUTABLE,
                executable=sys.executable,
                arguments=["-m", "flowlib.executors.radical.task_main", source, outcome_file],
            )
        else:
            description.update(
                mode=rp.TASK_FUNCTION,
                raptor_id=self._masters[next(self._next_master)],
                function="run_flowlib",
                args=[base64.b64encode(payload).decode("ascii")],
            )
        future: Future[Any] = Future()
        with self._lock:
            self._pending[uid] = _Pending(future, outcome_file)
            self._submitted += 1
        future.add_done_callback(lambda f: self._cancel(uid) if f.cancelled() else None)
        td = rp.TaskDescription(description)
        if self.bulk_mode:
            with self._lock:
                self._bulk.append(td)
            self._bulk_wake.set()
        else:
            self._hand_over([td])
        return future

    def _hand_over(self, descriptions: list[Any]) -> None:
        try:
            self._tmgr.submit_tasks(descriptions)
        except Exception as e:
            for td in descriptions:
                self._finish(td.uid, exception=BadStateException(self, f"RADICAL-Pilot refused the task: {e!r}"))

    def _bulk_loop(self) -> None:
        while not self._shutdown:
            self._bulk_wake.wait()
            self._bulk_wake.clear()
            with self._lock:
                batch, self._bulk = self._bulk, []
            if batch:
                self._hand_over(batch)

    def _cancel(self, uid: str) -> None:
        if self._tmgr is not None and not self._shutdown:
            try:
                self._tmgr.cancel_tasks([uid])
            except Exception:
                logger.debug("cancelling RP task %s failed", uid, exc_info=True)

    # -------------------------------------------------------------- callbacks

    def _task_state(self, task: Any, state: str) -> None:
        rp = self._rp
        if state not in (rp.DONE, rp.FAILED, rp.CANCELED):
            return
        with self._lock:
            pending = self._pending.get(task.uid)
        if pending is None:
            return  # a RAPTOR master or worker, or a task already finished
        if state == rp.DONE:
            try:
                if pending.outcome_file is not None:
                    with open(pending.outcome_file, "rb") as f:
                        data = f.read()
                else:
                    data = base64.b64decode(task.return_value)
                self._finish(task.uid, result=unpack_outcome(data))
            except Exception as e:
                self._finish(task.uid, exception=e)
            return
        if state == rp.CANCELED and pending.future.cancelled():
            self._finish(task.uid)
            return
        detail = task.exception_detail or task.exception or (task.stderr or "").strip()[-2000:] or "no detail"
        self._finish(task.uid, exception=RadicalTaskFailed(self, task.uid, state, str(detail)))

    def _pilot_state(self, pilot: Any, state: str) -> None:
        rp = self._rp
        if state in (rp.FAILED, rp.CANCELED, rp.DONE) and not self._shutdown:
            self._broken = f"the RADICAL-Pilot pilot {pilot.uid} ended {state}"
            with self._lock:
                uids = list(self._pending)
            for uid in uids:
                self._finish(uid, exception=BadStateException(self, self._broken))

    def _finish(self, uid: str, result: Any = None, exception: BaseException | None = None) -> None:
        with self._lock:
            pending = self._pending.pop(uid, None)
            if pending is None:
                return
            self._completed += 1
        if pending.outcome_file is not None:
            for path in (pending.outcome_file, pending.outcome_file[:-4] + ".in"):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
        try:
            if exception is not None:
                pending.future.set_exception(exception)
            elif not pending.future.done():
                pending.future.set_result(result)
        except InvalidStateError:
            pass  # cancelled meanwhile

    # --------------------------------------------------------------- shutdown

    def shutdown(self) -> None:
        """Close the RP session (pilot, masters and workers end); fail tasks still pending."""
        with self._lock:
            if self._shutdown:
                return
            self._shutdown = True
        self._bulk_wake.set()
        if self._bulk_thread is not None:
            self._bulk_thread.join(timeout=10)
        if self._session is not None:
            try:
                self._session.close(download=False)
            except Exception:
                logger.exception("closing the RADICAL-Pilot session failed")
        with self._lock:
            uids = list(self._pending)
        for uid in uids:
            self._finish(uid, exception=BadStateException(self, "the executor was shut down before the task finished"))

    def statistics(self) -> ExecutorStatistics:
        """Tasks submitted and completed; workers: RAPTOR workers described."""
        with self._lock:
            return ExecutorStatistics(
                self.label, self._submitted, self._completed, self.rpex_cfg.masters * self.rpex_cfg.workers
            )
