"""Run tasks on a Globus Compute endpoint through the Globus Compute SDK's ``Executor``.

::

    kernel --submit--> GlobusComputeExecutor --submit(run_packed_call, bytes)--> globus_compute_sdk.Executor
                                                                                  |  HTTPS: register, batch_run
                                                                                  v
    future <-- unpack_outcome <-- ComputeFuture <--AMQP result queue-- Globus Compute service <--> endpoint

flowlib serializes each call itself (:mod:`flowlib.executors.remote_call`); the SDK
carries the bytes and one registered function, :func:`run_packed_call`, which runs
the call on the endpoint and sends back its result or its exception with the
remote traceback. The endpoint's Python environment therefore needs flowlib
installed (and the modules the apps come from), as htex workers do.

A task's resource specification goes to the SDK per task: the key
``user_endpoint_config`` becomes the SDK executor's ``user_endpoint_config``, the
other keys its ``resource_specification``. A task without one gets the values the
SDK executor was built with.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any

from flowlib.app.errors import RemoteTraceback
from flowlib.errors import OptionalModuleMissing
from flowlib.executors.base import ExecutorStatistics, FlowlibExecutor
from flowlib.executors.errors import BadStateException, InvalidResourceSpecification
from flowlib.executors.remote_call import pack_call, run_packed_call, unpack_outcome
from flowlib.validation import validate_arguments

__all__ = ["GlobusComputeExecutor"]

_EXTRA = "pip install 'flowlib[globus-compute]'"


def _sdk() -> Any:
    try:
        import globus_compute_sdk
    except ImportError:
        raise OptionalModuleMissing(
            ["globus_compute_sdk"], f"GlobusComputeExecutor needs the Globus Compute SDK; install it with {_EXTRA}"
        ) from None
    return globus_compute_sdk


class GlobusComputeExecutor(FlowlibExecutor):
    """Send tasks to a Globus Compute endpoint, through a ``globus_compute_sdk.Executor``.

    Parameters:
        executor: a ``globus_compute_sdk.Executor`` with its ``endpoint_id`` (and
            ``client``) set. flowlib sets its ``resource_specification`` and
            ``user_endpoint_config`` per task and shuts it down at cleanup.
        label: the executor's name in ``executors=[...]``.
        storage_access: staging providers for files (None: the defaults).
        working_dir: the directory bash apps run in on the endpoint (None: the
            endpoint worker's current directory).

    Raises:
        OptionalModuleMissing: the ``globus_compute_sdk`` package is not installed.
        TypeError: ``executor`` is not a ``globus_compute_sdk.Executor``, or
            another argument has the wrong type.
    """

    restartable = False  # start() after shutdown() does not bring it back: load a new Config

    def __init__(
        self,
        executor: Any,
        label: str = "GlobusComputeExecutor",
        storage_access: list[Any] | None = None,
        working_dir: str | None = None,
    ) -> None:
        sdk = _sdk()
        if not isinstance(executor, sdk.Executor):
            raise TypeError(
                f"GlobusComputeExecutor argument 'executor' must be a globus_compute_sdk.Executor, "
                f"got {type(executor).__name__}"
            )
        validate_arguments(
            "GlobusComputeExecutor",
            {
                "label": (label, str),
                "storage_access": (storage_access, list[Any] | None),
                "working_dir": (working_dir, str | None),
            },
        )
        self.executor = executor
        self.label = label
        self.storage_access = storage_access
        self.working_dir = working_dir
        self._default_resource_specification: dict[str, Any] | None = None
        self._default_user_endpoint_config: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._outstanding: set[Future[Any]] = set()
        self._submitted = 0
        self._completed = 0
        self._started = False
        self._shutdown = False

    def start(self) -> None:
        """Remember the SDK executor's own resource specification and endpoint config as defaults."""
        self._default_resource_specification = copy.deepcopy(self.executor.resource_specification)
        self._default_user_endpoint_config = copy.deepcopy(self.executor.user_endpoint_config)
        self._started = True

    def _split(self, resource_specification: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        spec = dict(resource_specification)
        uep = spec.pop("user_endpoint_config", self._default_user_endpoint_config)
        if uep is not None and not isinstance(uep, dict):
            raise InvalidResourceSpecification(
                {"user_endpoint_config"},
                f"resource specification key 'user_endpoint_config' must be a dict, got {type(uep).__name__}",
            )
        return (spec or self._default_resource_specification), uep

    def submit(
        self, func: Callable[..., Any], resource_specification: dict[str, Any], /, *args: Any, **kwargs: Any
    ) -> Future[Any]:
        """Send ``func(*args, **kwargs)`` to the endpoint; the future completes with its outcome.

        Raises:
            InvalidResourceSpecification: ``user_endpoint_config`` is not a dict, or
                the SDK refuses the specification (it must be JSON-serializable).
            SerializationError: the call cannot be serialized (names the part).
            BadStateException: the executor, or the SDK executor, has been shut down.
        """
        if self._shutdown:
            raise BadStateException(self, "the executor has been shut down")
        res_spec, uep = self._split(resource_specification)
        payload = pack_call(func, args, kwargs)
        with self._lock:
            try:
                self.executor.resource_specification = res_spec
                self.executor.user_endpoint_config = uep
            except (TypeError, ValueError) as e:
                raise InvalidResourceSpecification(
                    set(resource_specification), f"Globus Compute refused it: {e}"
                ) from e
            try:
                sdk_future = self.executor.submit(run_packed_call, payload)
            except RuntimeError as e:
                raise BadStateException(self, f"the Globus Compute SDK executor cannot take tasks: {e}") from e
            future: Future[Any] = Future()
            self._outstanding.add(future)
            self._submitted += 1
        future.add_done_callback(lambda f: f.cancelled() and sdk_future.cancel())
        sdk_future.add_done_callback(lambda sf: self._complete(future, sf))
        return future

    def _complete(self, future: Future[Any], sdk_future: Future[Any]) -> None:
        with self._lock:
            if future not in self._outstanding:
                return
            self._outstanding.discard(future)
            self._completed += 1
        try:
            if sdk_future.cancelled():
                future.cancel()
                return
            exc = sdk_future.exception()
            if exc is not None:
                remote = getattr(exc, "remote_data", None)  # TaskExecutionFailed: the endpoint's traceback
                if isinstance(remote, str) and exc.__cause__ is None:
                    exc.__cause__ = RemoteTraceback(remote)
                future.set_exception(exc)
                return
            data = sdk_future.result()
            if not isinstance(data, bytes):
                future.set_exception(
                    TypeError(f"the endpoint returned {type(data).__name__}, not the bytes run_packed_call returns")
                )
                return
            try:
                outcome = unpack_outcome(data)
            except Exception as e:
                future.set_exception(e)
                return
            future.set_result(outcome)
        except InvalidStateError:
            pass  # cancelled by the kernel meanwhile

    def shutdown(self) -> None:
        """Shut the SDK executor down (unsent tasks are cancelled); fail tasks still running."""
        with self._lock:
            if self._shutdown:
                return
            self._shutdown = True
            left = list(self._outstanding)
            self._outstanding.clear()
        self.executor.shutdown(wait=False, cancel_futures=True)
        for future in left:
            if not future.done():
                try:
                    future.set_exception(
                        BadStateException(self, "the executor was shut down before the task's result arrived")
                    )
                except InvalidStateError:
                    pass

    def statistics(self) -> ExecutorStatistics:
        """Tasks submitted and completed so far (workers: unknown here, reported as 0)."""
        with self._lock:
            return ExecutorStatistics(self.label, self._submitted, self._completed, 0)

    def __repr__(self) -> str:
        return f"GlobusComputeExecutor(label={self.label!r}, executor={self.executor!r})"
