"""Run tasks on a Dask cluster through a ``distributed.Client``.

::

    kernel --submit--> DaskExecutor --client.submit(func, pure=False, resources=...)--> Dask scheduler
                          |                                                               |
                          |  as_completed(with_results=True)                              v
    future <-- results thread <------------------- result or exception ----------- Dask workers

Each task becomes one Dask task, submitted with ``pure=False`` (Dask would
otherwise merge identical calls into one key and run them once). The call is
serialized by flowlib (:mod:`flowlib.executors.remote_call`), as for the
high-throughput executor, so an argument that cannot be sent fails with a
SerializationError naming it, and a task's exception comes back with its type and
the worker's traceback; Dask carries the bytes. One thread of this executor collects
finished tasks from ``distributed.as_completed`` (which fetches results
concurrently on the client's event loop) and completes flowlib's futures.

The executor talks to the cluster it is given and owns only what it creates:

=========================  ==============================  ==========================
``address`` given           at ``start()``                   at ``shutdown()``
=========================  ==============================  ==========================
None                        a LocalCluster + a Client        closes both
a scheduler address (str)   a Client to it                   closes the Client
a dask Cluster object       a Client to it                   closes the Client only
a ``distributed.Client``    uses it                          cancels its own tasks only
=========================  ==============================  ==========================
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, InvalidStateError
from numbers import Real
from typing import Any

from flowlib.errors import OptionalModuleMissing
from flowlib.executors.base import ExecutorStatistics, FlowlibExecutor
from flowlib.executors.errors import BadStateException, InvalidResourceSpecification
from flowlib.executors.remote_call import pack_call, run_packed_call, unpack_outcome
from flowlib.validation import validate_arguments

__all__ = ["DaskExecutor"]

logger = logging.getLogger(__name__)

_EXTRA = "pip install 'flowlib[dask]'"

# LocalCluster settings when the executor makes its own cluster; local_cluster_kwargs override them.
_LOCAL_DEFAULTS: dict[str, Any] = {
    "processes": True,
    "host": "127.0.0.1",
    "dashboard_address": None,
    # Without a dashboard the scheduler still serves HTTP (health, metrics) on :8787 by default,
    # and a second cluster on the machine then warns that the port is taken: use a free port.
    "scheduler_kwargs": {"dashboard_address": "127.0.0.1:0"},
}


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise OptionalModuleMissing(
            ["distributed"], f"DaskExecutor needs dask.distributed; install it with {_EXTRA}"
        ) from None
    return distributed


class DaskExecutor(FlowlibExecutor):
    """Send tasks to a Dask cluster.

    Parameters:
        address: where the tasks go: None (a ``LocalCluster`` made at ``start()``
            with ``local_cluster_kwargs``), a scheduler address such as
            ``"tcp://127.0.0.1:8786"``, any dask ``Cluster`` object
            (``LocalCluster``, dask-jobqueue's ``SLURMCluster``, ...) or a
            ``distributed.Client``. Clusters and clients passed in are left running
            at shutdown; only what the executor created is closed.
        label: the executor's name in ``executors=[...]``.
        local_cluster_kwargs: keyword arguments for the ``LocalCluster`` made when
            ``address`` is None (defaults: worker processes, 127.0.0.1, no dashboard).
        storage_access: staging providers for files (None: the defaults).
        working_dir: the directory bash apps run in (None: the worker's current directory).

    A task's resource specification names Dask worker resources:
    ``{"GPU": 1, "MEMORY": 4e9}`` is submitted as ``resources={"GPU": 1, "MEMORY": 4e9}``
    and runs only on a worker that declares at least that much.

    Raises:
        OptionalModuleMissing: ``distributed`` is not installed.
        TypeError: an argument has the wrong type.
    """

    restartable = False  # start() after shutdown() does not bring it back: load a new Config

    def __init__(
        self,
        address: Any = None,
        label: str = "DaskExecutor",
        local_cluster_kwargs: dict[str, Any] | None = None,
        storage_access: list[Any] | None = None,
        working_dir: str | None = None,
    ) -> None:
        distributed = _distributed()
        validate_arguments(
            "DaskExecutor",
            {
                "label": (label, str),
                "local_cluster_kwargs": (local_cluster_kwargs, dict[str, Any] | None),
                "storage_access": (storage_access, list[Any] | None),
                "working_dir": (working_dir, str | None),
            },
        )
        if not (address is None or isinstance(address, (str, distributed.Client)) or _is_cluster(address)):
            raise TypeError(
                "DaskExecutor argument 'address' must be None, a scheduler address (str), a dask Cluster "
                f"or a distributed.Client, got {type(address).__name__} ({address!r})"
            )
        if local_cluster_kwargs is not None and address is not None:
            raise ValueError("DaskExecutor: local_cluster_kwargs applies only when address is None")
        self.address = address
        self.label = label
        self.local_cluster_kwargs = dict(local_cluster_kwargs or {})
        self.storage_access = storage_access
        self.working_dir = working_dir
        self.client: Any = None
        self.cluster: Any = None
        self._owns_client = False
        self._owns_cluster = False
        self._lock = threading.Lock()
        self._outstanding: dict[Any, Future[Any]] = {}  # dask future -> flowlib's future
        self._submitted = 0
        self._completed = 0
        self._worker_resources: list[dict[str, float]] = []
        self._started = False
        self._shutdown = False
        self._tasks_added = threading.Event()
        self._as_completed: Any = None
        self._results_thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Connect to (or create) the cluster and start the results thread."""
        if self._started:
            return
        distributed = _distributed()
        if isinstance(self.address, distributed.Client):
            self.client = self.address
        elif self.address is None:
            options = {**_LOCAL_DEFAULTS, **self.local_cluster_kwargs}
            self.cluster = distributed.LocalCluster(**options)
            self._owns_cluster = True
            self.client = distributed.Client(self.cluster, set_as_default=False)
            self._owns_client = True
        else:
            self.cluster = self.address if _is_cluster(self.address) else None
            self.client = distributed.Client(self.address, set_as_default=False)
            self._owns_client = True
        self._as_completed = distributed.as_completed(loop=self.client.loop, with_results=True, raise_errors=False)
        self._results_thread = threading.Thread(
            target=self._collect_results, name=f"flowlib-dask-results-{self.label}", daemon=True
        )
        self._results_thread.start()
        self._started = True
        logger.info("DaskExecutor %s started on scheduler %s", self.label, self.client.scheduler.address)

    def shutdown(self) -> None:
        """Cancel tasks still running, stop the results thread, close what this executor created."""
        with self._lock:
            if self._shutdown:
                return
            self._shutdown = True
            left = dict(self._outstanding)
        if self.client is not None and left:
            try:
                self.client.cancel(list(left))
            except Exception:  # a client that is already closed has nothing left to cancel
                logger.debug("cancelling outstanding Dask tasks failed", exc_info=True)
        self._tasks_added.set()
        if self._results_thread is not None:
            self._results_thread.join(timeout=30)
        with self._lock:
            left = dict(self._outstanding)
            self._outstanding.clear()
        for future in left.values():
            _set_exception(future, BadStateException(self, "the executor was shut down before the task finished"))
        if self._owns_client and self.client is not None:
            self.client.close()
        if self._owns_cluster and self.cluster is not None:
            self.cluster.close()

    # ------------------------------------------------------------------ submit

    def submit(
        self, func: Callable[..., Any], resource_specification: dict[str, Any], /, *args: Any, **kwargs: Any
    ) -> Future[Any]:
        """Submit ``func(*args, **kwargs)`` to Dask; the future completes with its outcome.

        Raises:
            InvalidResourceSpecification: a value is not a positive number, or no
                worker of the cluster declares enough of a resource (names it).
            SerializationError: the call cannot be serialized (names the part).
            BadStateException: the executor has not been started or has been shut down.
        """
        if self._shutdown or not self._started:
            raise BadStateException(self, "the executor has been shut down" if self._shutdown else "not started")
        resources = self._resources_for(resource_specification) if resource_specification else None
        payload = pack_call(func, args, kwargs)
        future: Future[Any] = Future()
        key = f"{getattr(func, '__name__', 'task')}-{uuid.uuid4().hex}"
        dask_future = self.client.submit(run_packed_call, payload, key=key, pure=False, resources=resources)
        with self._lock:
            self._outstanding[dask_future] = future
            self._submitted += 1
        future.add_done_callback(lambda f: f.cancelled() and dask_future.cancel())
        self._as_completed.add(dask_future)
        self._tasks_added.set()
        return future

    def _resources_for(self, spec: Mapping[str, Any]) -> dict[str, float]:
        bad = sorted(k for k, v in spec.items() if isinstance(v, bool) or not isinstance(v, Real) or v <= 0)
        if bad:
            raise InvalidResourceSpecification(
                set(bad),
                f"DaskExecutor {self.label!r}: resource specification values must be positive numbers "
                f"(Dask worker resources); bad: " + ", ".join(f"{k}={spec[k]!r}" for k in bad),
            )
        request = {str(k): float(v) for k, v in spec.items()}
        if not _fits(request, self._worker_resources):
            self._worker_resources = self._current_worker_resources()
            if self._worker_resources and not _fits(request, self._worker_resources):
                raise InvalidResourceSpecification(
                    set(request), _unsatisfiable(self.label, request, self._worker_resources)
                )
        return request

    def _current_worker_resources(self) -> list[dict[str, float]]:
        workers = self.client.scheduler_info(n_workers=-1).get("workers", {})
        return [dict(w.get("resources") or {}) for w in workers.values()]

    # ------------------------------------------------------------------ results

    def _collect_results(self) -> None:
        ac = self._as_completed
        while True:
            self._tasks_added.wait()
            self._tasks_added.clear()
            for batch in ac.batches():
                for dask_future, outcome in batch:
                    self._complete(dask_future, outcome)
            if self._shutdown and ac.is_empty():
                return

    def _complete(self, dask_future: Any, outcome: Any) -> None:
        with self._lock:
            future = self._outstanding.pop(dask_future, None)
            if future is None:
                return
            self._completed += 1
        status = dask_future.status
        if status == "finished":
            try:
                _set_result(future, unpack_outcome(outcome))
            except Exception as e:  # a result that cannot be rebuilt here (a module missing on this side)
                _set_exception(future, e)
        elif status == "error":
            _, exc, tb = outcome
            _set_exception(future, exc.with_traceback(tb))
        elif future.cancelled():
            pass
        else:  # cancelled by Dask (a lost scheduler, a closed client) or released
            _set_exception(future, BadStateException(self, f"Dask reported the task as {status}: {outcome!r}"))

    def statistics(self) -> ExecutorStatistics:
        """Tasks submitted and completed so far, and the workers connected (0 before start)."""
        with self._lock:
            submitted, completed = self._submitted, self._completed
        workers = 0
        if self.client is not None and not self._shutdown:
            workers = len(self.client.scheduler_info(n_workers=-1).get("workers", {}))
        return ExecutorStatistics(self.label, submitted, completed, workers)

    def __repr__(self) -> str:
        return f"DaskExecutor(label={self.label!r}, address={self.address!r})"


def _is_cluster(obj: Any) -> bool:
    try:
        from distributed.deploy.cluster import Cluster
    except ImportError:
        return False
    return isinstance(obj, Cluster)


def _fits(request: Mapping[str, float], workers: list[dict[str, float]]) -> bool:
    return any(all(w.get(name, 0) >= amount for name, amount in request.items()) for w in workers)


def _unsatisfiable(label: str, request: Mapping[str, float], workers: list[dict[str, float]]) -> str:
    short = []
    for name, amount in request.items():
        largest = max((w.get(name, 0) for w in workers), default=0)
        if largest < amount:
            short.append(f"{name!r} (asked {amount:g}, largest on a worker {largest:g})")
    if short:
        what = "no worker has enough of " + ", ".join(short)
    else:
        what = "no single worker has all of " + ", ".join(f"{n}={a:g}" for n, a in request.items())
    return (
        f"DaskExecutor {label!r}: {what} among the {len(workers)} connected workers; Dask would wait forever. "
        "Workers declare resources with 'dask worker --resources \"GPU=2\"' or LocalCluster(resources={...})"
    )


def _set_result(future: Future[Any], value: Any) -> None:
    try:
        future.set_result(value)
    except InvalidStateError:
        pass  # cancelled meanwhile


def _set_exception(future: Future[Any], exc: BaseException) -> None:
    try:
        future.set_exception(exc)
    except InvalidStateError:
        pass
