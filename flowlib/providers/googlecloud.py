"""GoogleCloudProvider: each block is one Compute Engine instance whose startup script starts the workers.

::

    flowlib (this process)                   Compute Engine API v1 (googleapiclient)       the instance
    GoogleCloudProvider -- instances().insert(body with metadata startup-script) --> boots, runs the script:
                        -- instances().get -> status (PROVISIONING, RUNNING, ...)     worker_init; launcher(command);
                        -- zoneOperations().get -> why an insert failed                power off (unless linger)
                        -- instances().delete (cancel)

The job id is the instance name. The API client is built on first use from
``key_file`` (a service-account JSON key) or, without one, from the application
default credentials; ``client`` replaces it with any object that has the
discovery client's shape (``instances()``, ``zones()``, ``zoneOperations()``).
googleapiclient and google-auth (the ``[google]`` extra) are imported lazily.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from typing import Any

from flowlib.errors import OptionalModuleMissing
from flowlib.extras import require
from flowlib.jobs.states import JobState, JobStatus
from flowlib.launchers.base import Launcher, call_launcher
from flowlib.providers.aws import cloud_startup_script
from flowlib.providers.base import ExecutionProvider
from flowlib.providers.cluster_checks import LAUNCHER_NEEDS, check_launcher, validate_common
from flowlib.providers.errors import ExecutionProviderException, SchedulerCommandError, SubmitException
from flowlib.providers.walltime import parse_walltime
from flowlib.validation import validate_arguments

logger = logging.getLogger(__name__)

# validate_common checks the keywords shared with the scheduler providers; these are not ours.
_NOT_A_SCHEDULER = {**dict.fromkeys(("channel", "walltime", "launcher", "move_files")), "scheduler_options": ""}

__all__ = ["GoogleCloudProvider", "INSTANCE_STATUSES"]

INSTANCE_STATUSES: dict[str, JobState] = {
    # https://cloud.google.com/compute/docs/instances/instance-life-cycle
    "PROVISIONING": JobState.PENDING,  # resources are being allocated
    "STAGING": JobState.PENDING,  # resources acquired; the instance is being prepared for first boot
    "RUNNING": JobState.RUNNING,  # booting up or running (our startup script runs)
    "PENDING_STOP": JobState.COMPLETED,  # the instance is about to stop
    "STOPPING": JobState.COMPLETED,  # stopping: our script powered it off, or someone stopped it
    "TERMINATED": JobState.COMPLETED,  # stopped (the disk remains until the instance is deleted)
    "SUSPENDING": JobState.HELD,  # being suspended; can be resumed
    "SUSPENDED": JobState.HELD,  # suspended; can be resumed
    "REPAIRING": JobState.UNKNOWN,  # being repaired after an internal error or host failure
}
"""Compute Engine instance status -> JobState, from the instance life-cycle documentation."""

_ZONE = re.compile(r"^[a-z]+-[a-z]+[0-9]+-[a-z]$")


def _http_status(exc: BaseException) -> int | None:
    """The HTTP status of a googleapiclient HttpError (or any error shaped like one)."""
    status = getattr(exc, "status_code", None) or getattr(getattr(exc, "resp", None), "status", None)
    return int(status) if status is not None else None


class GoogleCloudProvider(ExecutionProvider):
    """Blocks as Compute Engine instances (keywords as Parsl's GoogleCloudProvider, plus the
    shared ``worker_init``/``nodes_per_block``, ``walltime``, ``linger``, ``network``, ``cmd_timeout``
    and the ``client`` seam).

    ``region`` may be a region (``us-central1``: the first zone that is UP is used) or a zone
    (``us-central1-a``). The boot disk comes from the image family ``os_family`` of project
    ``os_project`` (for example ``debian-cloud`` / ``debian-12``).
    """

    def __init__(
        self,
        project_id: str,
        key_file: str | None,
        region: str,
        os_project: str,
        os_family: str,
        google_version: str = "v1",
        instance_type: str = "n1-standard-1",
        init_blocks: int = 1,
        min_blocks: int = 0,
        max_blocks: int = 10,
        launcher: Launcher | None = None,
        parallelism: float = 1,
        nodes_per_block: int = 1,
        worker_init: str = "",
        walltime: str | None = None,
        linger: bool = False,
        network: str = "global/networks/default",
        cmd_timeout: float = 30.0,
        client: Any = None,
    ) -> None:
        if client is None:  # a client given by the caller needs none of them
            require(
                "GoogleCloudProvider",
                "google",
                ["googleapiclient", "google.auth", "google_auth_httplib2"],
                ["google-api-python-client", "google-auth", "google-auth-httplib2"],
            )
        validate_common("GoogleCloudProvider", {"label": "", **_NOT_A_SCHEDULER, **locals()})
        validate_arguments(
            "GoogleCloudProvider",
            {
                "project_id": (project_id, str),
                "key_file": (key_file, str | None),
                "region": (region, str),
                "os_project": (os_project, str),
                "os_family": (os_family, str),
                "google_version": (google_version, str),
                "instance_type": (instance_type, str),
                "linger": (linger, bool),
                "network": (network, str),
            },
        )
        self._walltime = None if walltime is None else parse_walltime(walltime, "GoogleCloudProvider")
        if nodes_per_block != 1:
            raise ValueError(
                f"GoogleCloudProvider starts one instance per block: nodes_per_block must be 1, got {nodes_per_block}"
            )
        for name, value in (("project_id", project_id), ("region", region), ("os_family", os_family)):
            if not value:
                raise ValueError(f"GoogleCloudProvider argument {name!r} must not be empty")
        self.project_id = project_id
        self.key_file = key_file
        self.region = region
        self.os_project = os_project
        self.os_family = os_family
        self.google_version = google_version
        self.instance_type = instance_type
        self.init_blocks = init_blocks
        self.min_blocks = min_blocks
        self.max_blocks = max_blocks
        if launcher is None:
            from flowlib.launchers import SingleNodeLauncher

            launcher = SingleNodeLauncher()
        check_launcher("GoogleCloudProvider", launcher, 1, LAUNCHER_NEEDS, "Compute Engine instances")
        self.launcher = launcher
        self.parallelism = parallelism
        self.nodes_per_block = nodes_per_block
        self.worker_init = worker_init
        self.walltime = walltime
        self.linger = linger
        self.network = network
        self.cmd_timeout = cmd_timeout
        self.client = client
        self.label = "google_cloud"
        self.zone: str | None = region if _ZONE.match(region) else None
        self.resources: dict[str, dict[str, Any]] = {}
        """Job id (instance name) -> {"operation": insert operation name, "status": JobStatus, "cancelled": bool}."""
        self._lock = threading.Lock()

    # -- client and zone -------------------------------------------------------------------

    def _compute(self) -> Any:
        if self.client is None:
            try:
                import google.auth
                import google_auth_httplib2
                import httplib2
                from google.oauth2 import service_account
                from googleapiclient import discovery
            except ImportError as exc:
                raise OptionalModuleMissing(
                    ["google-api-python-client", "google-auth"],
                    f"GoogleCloudProvider needs the Google API client: pip install 'flowlib[google]' ({exc})",
                ) from exc
            scopes = ["https://www.googleapis.com/auth/cloud-platform"]
            try:
                if self.key_file is not None:
                    credentials = service_account.Credentials.from_service_account_file(self.key_file, scopes=scopes)
                else:
                    credentials, _ = google.auth.default(scopes=scopes)
            except Exception as exc:
                where = f"key_file {self.key_file!r}" if self.key_file else "the application default credentials"
                raise ExecutionProviderException(f"GoogleCloudProvider cannot load {where}: {exc}") from exc
            http = google_auth_httplib2.AuthorizedHttp(credentials, http=httplib2.Http(timeout=self.cmd_timeout))
            self.client = discovery.build("compute", self.google_version, http=http, cache_discovery=False)
        return self.client

    def _zone(self) -> str:
        if self.zone is None:
            try:
                zones = self._compute().zones().list(project=self.project_id).execute(num_retries=2)
            except Exception as exc:
                raise SchedulerCommandError(f"compute zones.list {self.project_id}", str(exc)) from exc
            names = sorted(
                z["name"]
                for z in zones.get("items", [])
                if z.get("status") == "UP" and z["name"].startswith(self.region)
            )
            if not names:
                raise ExecutionProviderException(
                    f"GoogleCloudProvider found no zone that is UP in region {self.region!r} "
                    f"of project {self.project_id!r}"
                )
            self.zone = names[0]
        return self.zone

    # -- submit ----------------------------------------------------------------------------

    def _body(self, name: str, script: str) -> dict[str, Any]:
        zone = self._zone()
        image = f"projects/{self.os_project}/global/images/family/{self.os_family}"
        return {
            "name": name,
            "machineType": f"zones/{zone}/machineTypes/{self.instance_type}",
            "labels": {"flowlib-block": name},
            "disks": [{"boot": True, "autoDelete": True, "initializeParams": {"sourceImage": image}}],
            "networkInterfaces": [
                {"network": self.network, "accessConfigs": [{"type": "ONE_TO_ONE_NAT", "name": "External NAT"}]}
            ],
            "metadata": {"items": [{"key": "startup-script", "value": script}]},
        }

    def submit(self, command: str, tasks_per_node: int, job_name: str = "flowlib.auto") -> str:
        """Insert one instance; return its name as the job id."""
        compute = self._compute()
        name = f"flowlib-{uuid.uuid4().hex[:16]}"
        script = cloud_startup_script(
            self.worker_init,
            call_launcher(self.launcher, command, tasks_per_node, 1, self.script_dir),
            self._walltime,
            self.linger,
        )
        try:
            operation = (
                compute.instances()
                .insert(project=self.project_id, zone=self._zone(), body=self._body(name, script))
                .execute(num_retries=2)
            )
        except ExecutionProviderException:
            raise
        except Exception as exc:  # HttpError, transport errors
            raise SubmitException(job_name, f"Compute Engine refused instance {name}: {exc}") from exc
        if operation.get("error"):
            raise SubmitException(job_name, f"Compute Engine refused instance {name}: {_errors(operation)}")
        with self._lock:
            self.resources[name] = {
                "operation": operation.get("name"),
                "status": JobStatus(JobState.PENDING),
                "cancelled": False,
            }
        logger.debug("submitted block %s as instance %s", job_name, name)
        return name

    # -- status ----------------------------------------------------------------------------

    def status(self, job_ids: list[str]) -> list[JobStatus]:
        """One instances().get per unfinished block."""
        for job_id in job_ids:
            with self._lock:
                entry = self.resources.setdefault(job_id, {"operation": None, "status": None, "cancelled": False})
                if entry["status"] is not None and entry["status"].terminal:
                    continue
            new = self._instance_status(job_id, entry)
            with self._lock:
                entry["status"] = new
        with self._lock:
            return [self.resources[j]["status"] for j in job_ids]

    def _instance_status(self, name: str, entry: dict[str, Any]) -> JobStatus:
        compute, zone = self._compute(), self._zone()
        try:
            instance = compute.instances().get(project=self.project_id, zone=zone, instance=name).execute(num_retries=2)
        except Exception as exc:
            if _http_status(exc) != 404:
                raise SchedulerCommandError(f"compute instances.get {name}", str(exc)) from exc
            return self._vanished(name, entry)
        state = INSTANCE_STATUSES.get(instance.get("status", ""), JobState.UNKNOWN)
        if state.terminal and entry["cancelled"]:
            state = JobState.CANCELLED
        message = instance.get("statusMessage") or (
            f"Compute Engine status {instance.get('status')!r}" if state is JobState.UNKNOWN else None
        )
        return JobStatus(state, message)

    def _vanished(self, name: str, entry: dict[str, Any]) -> JobStatus:
        """The instance does not exist: deleted by us, never created (see its insert operation), or gone."""
        if entry["cancelled"]:
            return JobStatus(JobState.CANCELLED, "instance deleted by flowlib")
        if entry["operation"]:
            try:
                operation = (
                    self._compute()
                    .zoneOperations()
                    .get(project=self.project_id, zone=self._zone(), operation=entry["operation"])
                    .execute(num_retries=2)
                )
            except Exception as exc:
                raise SchedulerCommandError(f"compute zoneOperations.get {entry['operation']}", str(exc)) from exc
            if operation.get("error"):
                return JobStatus(JobState.FAILED, f"instance {name} was not created: {_errors(operation)}")
            if operation.get("status") != "DONE":
                return JobStatus(JobState.PENDING, f"insert operation {operation.get('status')}")
        return JobStatus(JobState.MISSING, f"instance {name} does not exist in {self.project_id}/{self.zone}")

    # -- cancel ----------------------------------------------------------------------------

    def cancel(self, job_ids: list[str]) -> list[bool]:
        """Delete each instance; one that is already gone counts as deleted."""
        compute, zone, results = self._compute(), self._zone(), []
        for name in job_ids:
            try:
                compute.instances().delete(project=self.project_id, zone=zone, instance=name).execute(num_retries=2)
                ok = True
            except Exception as exc:
                ok = _http_status(exc) == 404
                if not ok:
                    logger.warning("cannot delete instance %s: %s", name, exc)
            with self._lock:
                entry = self.resources.setdefault(name, {"operation": None, "status": None, "cancelled": False})
                if ok:
                    entry["cancelled"] = True
                    entry["status"] = JobStatus(JobState.CANCELLED, "instance deleted by flowlib")
            results.append(ok)
        return results


def _errors(operation: dict[str, Any]) -> str:
    errors = (operation.get("error") or {}).get("errors") or []
    return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors) or str(operation.get("error"))
