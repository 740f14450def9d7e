"""``globus://`` files, moved by the Globus Transfer service through globus-sdk's ``TransferClient``.

A file ``globus://<collection-uuid>/path/to/data.csv`` lives on a Globus collection
(endpoint). The executor's workers see another collection, ``endpoint_uuid``, whose
directory ``endpoint_path`` is the workers' local directory ``local_path``::

    stage in:   <collection>:/path/to/data.csv  --Transfer-->  endpoint_uuid:<endpoint_path>/data.csv
                the app reads <local_path>/data.csv
    stage out:  the app writes <local_path>/data.csv
                endpoint_uuid:<endpoint_path>/data.csv  --Transfer-->  <collection>:/path/to/data.csv

Each transfer is a separate task on the kernel's internal thread pool (the
TransferClient and its credentials stay in the submitting process): it submits a
Transfer task (``submit_transfer``, which fetches a submission id first) and polls
``get_task`` until the task SUCCEEDED; a FAILED task, or one not finished within
``timeout`` seconds (it is then cancelled), fails the staging with
:class:`~flowlib.data_provider.staging.StagingError`, and the app with it.

Authentication is the caller's: pass ``transfer_client``, a
``globus_sdk.TransferClient`` built with the authorizer (or GlobusApp) of your choice.
Without one, staging fails with a message saying so (flowlib runs no login flow).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from flowlib.data_provider.files import File
from flowlib.data_provider.staging import Staging, StagingError, executor_working_dir, submit_staging_task
from flowlib.errors import OptionalModuleMissing
from flowlib.extras import require
from flowlib.validation import validate_arguments

if TYPE_CHECKING:
    from flowlib.app.futures import DataFuture
    from flowlib.data_provider.data_manager import DataManager

__all__ = ["GlobusStaging", "globus_transfer"]

_FINAL = ("SUCCEEDED", "FAILED")


def _require_globus_sdk() -> Any:
    try:
        import globus_sdk
    except ImportError:
        raise OptionalModuleMissing(
            ["globus_sdk"],
            "GlobusStaging needs the Globus SDK (globus-sdk) to move globus:// files; "
            "install it with pip install 'flowlib[globus]'",
        ) from None
    return globus_sdk


def globus_transfer(
    client: Any,
    url: str,
    source: tuple[str, str],
    destination: tuple[str, str],
    timeout: float,
    poll_interval: float,
    parent: Any = None,
) -> None:
    """Transfer ``source`` to ``destination`` (each ``(collection, path)``) and wait for it to finish.

    Raises:
        StagingError: naming ``url``: the service refused the submission, the task
            FAILED, or it did not finish within ``timeout`` seconds (it is cancelled).
    """
    globus_sdk = _require_globus_sdk()
    data = globus_sdk.TransferData(source[0], destination[0], label=f"flowlib {os.path.basename(source[1])}")
    data.add_item(source[1], destination[1])
    try:
        task_id = client.submit_transfer(data)["task_id"]
    except globus_sdk.GlobusAPIError as e:
        raise StagingError(
            url, f"the Transfer service refused the transfer: {e.http_status} {e.code}: {e.message}"
        ) from None
    deadline = time.monotonic() + timeout
    while True:
        try:
            task = client.get_task(task_id)
        except globus_sdk.GlobusAPIError as e:
            raise StagingError(
                url, f"cannot read transfer task {task_id}: {e.http_status} {e.code}: {e.message}"
            ) from None
        status = task["status"]
        if status == "SUCCEEDED":
            return
        if status == "FAILED":
            details = task.get("fatal_error") or task.get("nice_status_details") or task.get("nice_status")
            raise StagingError(url, f"transfer task {task_id} FAILED: {details}")
        if time.monotonic() >= deadline:
            try:
                client.cancel_task(task_id)
            except globus_sdk.GlobusAPIError:
                pass
            raise StagingError(url, f"transfer task {task_id} did not finish within {timeout} s (last status {status})")
        time.sleep(poll_interval)


class GlobusStaging(Staging):
    """Stages ``globus://`` files in and out with Globus Transfer tasks (see the module docstring).

    Args:
        endpoint_uuid: the Globus collection that the executor's workers read and write.
        endpoint_path: the directory on that collection that is ``local_path`` for
            the workers (``None``: the same path as the local directory).
        local_path: the workers' directory for staged files (``None``: the executor's
            working directory, else the current directory).
        transfer_client: a ``globus_sdk.TransferClient`` (flowlib extension; required
            to actually transfer).
        timeout: seconds a transfer may take before it is cancelled and fails.
        poll_interval: seconds between task status checks.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: ``timeout`` or ``poll_interval`` is not positive.
    """

    def __init__(
        self,
        endpoint_uuid: str,
        endpoint_path: str | None = None,
        local_path: str | None = None,
        transfer_client: Any = None,
        timeout: float = 3600.0,
        poll_interval: float = 2.0,
    ) -> None:
        require("GlobusStaging", "globus", ["globus_sdk"], ["globus-sdk"])
        validate_arguments(
            "GlobusStaging",
            {
                "endpoint_uuid": (endpoint_uuid, str),
                "endpoint_path": (endpoint_path, str | None),
                "local_path": (local_path, str | None),
                "timeout": (timeout, float | int),
                "poll_interval": (poll_interval, float | int),
            },
        )
        for name, value in (("timeout", timeout), ("poll_interval", poll_interval)):
            if value <= 0:
                raise ValueError(f"GlobusStaging {name} must be positive, got {value}")
        self.endpoint_uuid = endpoint_uuid
        self.endpoint_path = endpoint_path
        self.local_path = local_path
        self.transfer_client = transfer_client
        self.timeout = float(timeout)
        self.poll_interval = float(poll_interval)

    def can_stage_in(self, file: File) -> bool:
        """True for the ``globus`` scheme."""
        return file.scheme == "globus"

    def can_stage_out(self, file: File) -> bool:
        """True for the ``globus`` scheme."""
        return file.scheme == "globus"

    def _client(self, file: File) -> Any:
        _require_globus_sdk()
        if self.transfer_client is None:
            raise ValueError(
                f"Cannot stage {file.url!r}: GlobusStaging needs transfer_client=globus_sdk.TransferClient(...) "
                "built with your credentials (flowlib runs no login flow)"
            )
        if not file.netloc:
            raise ValueError(f"Cannot stage {file.url!r}: a globus URL must name its collection: globus://<uuid>/path")
        return self.transfer_client

    def _paths(self, dm: DataManager, executor: str, file: File) -> tuple[str, str]:
        """(the workers' local path, the same file's path on ``endpoint_uuid``)."""
        local_dir = self.local_path or executor_working_dir(dm, executor) or os.getcwd()
        local = os.path.join(local_dir, file.filename)
        return local, os.path.join(self.endpoint_path or local_dir, file.filename)

    def stage_in(self, dm: DataManager, executor: str, file: File, parent_fut: Future[Any] | None) -> DataFuture | None:
        """Submit the transfer to ``endpoint_uuid`` as a task; sets ``file.local_path``."""
        client = self._client(file)
        local, remote = self._paths(dm, executor, file)
        file.local_path = local
        return self._submit(dm, client, file, parent_fut, (file.netloc, file.path), (self.endpoint_uuid, remote))

    def replace_task_stage_out(self, dm: DataManager, executor: str, file: File, func: Any) -> Any:
        """Tell the app where to write the file (``file.local_path``); no wrapper."""
        self._client(file)
        file.local_path = self._paths(dm, executor, file)[0]
        return None

    def stage_out(self, dm: DataManager, executor: str, file: File, app_fu: Future[Any]) -> Future[Any] | None:
        """Submit the transfer from ``endpoint_uuid`` as a task that starts when the app succeeded."""
        client = self._client(file)
        remote = self._paths(dm, executor, file)[1]
        return self._submit(dm, client, file, app_fu, (self.endpoint_uuid, remote), (file.netloc, file.path))

    def _submit(
        self,
        dm: DataManager,
        client: Any,
        file: File,
        parent: Future[Any] | None,
        source: tuple[str, str],
        destination: tuple[str, str],
    ) -> DataFuture:
        from flowlib.app.python import INTERNAL_EXECUTOR

        return submit_staging_task(
            dm,
            INTERNAL_EXECUTOR,
            globus_transfer,
            file,
            parent,
            client,
            file.url,
            source,
            destination,
            self.timeout,
            self.poll_interval,
        )

    def __repr__(self) -> str:
        return (
            f"GlobusStaging(endpoint_uuid={self.endpoint_uuid!r}, "
            f"endpoint_path={self.endpoint_path!r}, local_path={self.local_path!r})"
        )
