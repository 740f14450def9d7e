"""PSIJProvider: blocks submitted through PSI/J, the portable job API of the ExaWorks SDK.

::

    flowlib (this process)                 psij-python (in this process)            the resource
    PSIJProvider -- writes <script_dir>/<name>.sh (worker_init + launcher(command))
                 -- JobExecutor.submit(Job(JobSpec(/bin/bash <script>, ResourceSpecV1,
                                               JobAttributes(duration, queue, account, ...))))
                                                       -- executor 'local' -------------> a child process
                                                       -- 'slurm', 'pbs', 'lsf', ... -----> sbatch / qsub / bsub
                 <- job.status (updated by PSI/J's own polling thread): NEW, QUEUED, ACTIVE, COMPLETED, FAILED, CANCELED
                 -- job.cancel()

PSI/J owns the scheduler dialogue (its batch executors render their own submit
scripts); flowlib writes only the block's script, reads the states PSI/J keeps up
to date, and translates them. ``psij-python`` (the ``[psij]`` extra) is imported on
the first submit; note that importing PSI/J's local executor installs a SIGCHLD
handler in the process (PSI/J's own design).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import uuid
from datetime import timedelta
from typing import Any

from flowlib.errors import ConfigurationError, OptionalModuleMissing
from flowlib.extras import require
from flowlib.jobs.states import JobState, JobStatus
from flowlib.launchers.base import Launcher, call_launcher
from flowlib.providers.base import ExecutionProvider
from flowlib.providers.cluster_checks import LAUNCHER_NEEDS, check_launcher, validate_common
from flowlib.providers.errors import SubmitException
from flowlib.providers.walltime import parse_walltime
from flowlib.validation import validate_arguments

logger = logging.getLogger(__name__)

# validate_common checks the keywords shared with the scheduler providers; these are not ours.
_NOT_A_SCHEDULER = {**dict.fromkeys(("channel", "walltime", "launcher", "move_files")), "scheduler_options": ""}

__all__ = ["PSIJProvider", "PSIJ_STATES"]

PSIJ_STATES: dict[str, JobState] = {
    # PSI/J specification, "Job states" (https://exaworks.org/job-api-spec/), as documented on psij.JobState
    "NEW": JobState.PENDING,  # created, not yet submitted
    "QUEUED": JobState.PENDING,  # submitted; waiting in the resource manager's queue
    "ACTIVE": JobState.RUNNING,  # resources allocated; the executable runs
    "COMPLETED": JobState.COMPLETED,  # finished (PSI/J reports a non-zero exit code as FAILED)
    "FAILED": JobState.FAILED,  # failed: non-zero exit code, launch error, or killed by the scheduler
    "CANCELED": JobState.CANCELLED,  # cancelled through PSI/J or the resource manager
}
"""PSI/J JobState name -> JobState, from the PSI/J specification's job states."""


# System-tied launchers that work inside the allocations of a PSI/J batch executor.
_LAUNCHERS_FOR = {
    "slurm": frozenset({"SrunLauncher", "SrunMPILauncher"}),
    "lsf": frozenset({"JsrunLauncher"}),
    "pbs": frozenset({"AprunLauncher"}),
    "cobalt": frozenset({"AprunLauncher"}),
}

_SCRIPT = """#!/bin/bash
# a flowlib block submitted through PSI/J, written by PSIJProvider
{worker_init}
flowlib_status=$?
if [ "$flowlib_status" -ne 0 ]; then
    echo "flowlib: worker_init failed with exit code $flowlib_status; the workers are not started" >&2
    exit "$flowlib_status"
fi
{launched}
"""


def _psij() -> Any:
    try:
        import psij
    except ImportError as exc:
        raise OptionalModuleMissing(
            ["psij-python"], f"PSIJProvider needs PSI/J: pip install 'flowlib[psij]' ({exc})"
        ) from exc
    return psij


class PSIJProvider(ExecutionProvider):
    """Blocks as PSI/J jobs on any PSI/J executor (``local``, ``slurm``, ``pbs``, ``lsf``, ``cobalt``, ``flux``).

    :param executor: the PSI/J executor name, as ``psij.JobExecutor.get_instance`` takes it.
    :param url: the executor's URL, for executors that take one.
    :param executor_config: a ``psij.JobExecutorConfig`` (e.g. ``psij.executors.batch.slurm.SlurmExecutorConfig``).
    :param queue: the queue (partition) name; ``account`` and ``project`` the charge account
        and project; ``reservation_id`` a reservation.
    :param custom_attributes: executor-specific attributes, e.g. ``{'slurm.constraint': 'knl'}``,
        passed to ``psij.JobAttributes(custom_attributes=...)``.
    :param environment: variables set for the job (on top of the inherited environment).
    """

    def __init__(
        self,
        executor: str = "local",
        url: str | None = None,
        executor_config: Any = None,
        nodes_per_block: int = 1,
        init_blocks: int = 1,
        min_blocks: int = 0,
        max_blocks: int = 1,
        parallelism: float = 1,
        walltime: str = "00:10:00",
        queue: str | None = None,
        account: str | None = None,
        project: str | None = None,
        reservation_id: str | None = None,
        custom_attributes: dict[str, Any] | None = None,
        environment: dict[str, str] | None = None,
        worker_init: str = "",
        launcher: Launcher | None = None,
        cmd_timeout: float = 30.0,
        label: str = "psij",
    ) -> None:
        require("PSIJProvider", "psij", ["psij"], ["psij-python"])
        validate_common("PSIJProvider", {"label": "", **_NOT_A_SCHEDULER, **locals()})
        validate_arguments(
            "PSIJProvider",
            {
                "executor": (executor, str),
                "url": (url, str | None),
                "queue": (queue, str | None),
                "account": (account, str | None),
                "project": (project, str | None),
                "reservation_id": (reservation_id, str | None),
                "custom_attributes": (custom_attributes, dict[str, Any] | None),
                "environment": (environment, dict[str, str] | None),
            },
        )
        self._walltime = parse_walltime(walltime, "PSIJProvider")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", executor):
            raise ValueError(f"PSIJProvider argument 'executor' must be a PSI/J executor name, got {executor!r}")
        self.executor = executor
        self.url = url
        self.executor_config = executor_config
        self.nodes_per_block = nodes_per_block
        self.init_blocks = init_blocks
        self.min_blocks = min_blocks
        self.max_blocks = max_blocks
        self.parallelism = parallelism
        self.walltime = walltime
        self.queue = queue
        self.account = account
        self.project = project
        self.reservation_id = reservation_id
        self.custom_attributes = dict(custom_attributes or {})
        self.environment = dict(environment or {})
        self.worker_init = worker_init
        if launcher is None:
            from flowlib.launchers import SingleNodeLauncher

            launcher = SingleNodeLauncher()
        usable = _LAUNCHERS_FOR.get(executor, frozenset())
        check_launcher(
            "PSIJProvider", launcher, nodes_per_block, set(LAUNCHER_NEEDS) - usable, f"PSI/J's {executor!r} executor"
        )
        self.launcher = launcher
        self.cmd_timeout = cmd_timeout
        self.label = label
        self.resources: dict[str, dict[str, Any]] = {}
        """Job id (PSI/J native id) -> {"job": psij.Job, "status": JobStatus, "cancelled": bool, paths}."""
        self._lock = threading.Lock()
        self._executor: Any = None

    def _job_executor(self) -> Any:
        if self._executor is None:
            psij = _psij()
            try:
                self._executor = psij.JobExecutor.get_instance(self.executor, url=self.url, config=self.executor_config)
            except ValueError as exc:  # an unknown executor name
                known = ", ".join(sorted(psij.JobExecutor.get_executor_names()))
                raise ConfigurationError(
                    f"PSIJProvider: PSI/J has no executor {self.executor!r} ({exc}); known: {known}"
                ) from exc
        return self._executor

    def submit(self, command: str, tasks_per_node: int, job_name: str = "flowlib.auto") -> str:
        """Write the block's script and submit it as one PSI/J job; return PSI/J's native id."""
        if not self.script_dir:
            raise ConfigurationError(
                f"PSIJProvider {self.label!r}: script_dir is not set; the executor sets provider.script_dir "
                "(its run directory) before the first submit"
            )
        psij = _psij()
        executor = self._job_executor()
        directory = os.path.abspath(self.script_dir)
        os.makedirs(directory, exist_ok=True)
        name = f"{re.sub(r'[^A-Za-z0-9_.-]', '_', job_name)}.{uuid.uuid4().hex[:8]}"
        script = os.path.join(directory, f"{name}.sh")
        launched = call_launcher(self.launcher, command, tasks_per_node, self.nodes_per_block, directory)
        with open(script, "w") as f:
            f.write(_SCRIPT.format(worker_init=self.worker_init, launched=launched))
        os.chmod(script, 0o700)
        stdout, stderr = os.path.join(directory, f"{name}.stdout"), os.path.join(directory, f"{name}.stderr")
        attributes = psij.JobAttributes(
            duration=timedelta(seconds=self._walltime.seconds),
            queue_name=self.queue,
            account=self.account,
            project_name=self.project,
            reservation_id=self.reservation_id,
            custom_attributes=self.custom_attributes or None,
        )
        spec = psij.JobSpec(
            executable="/bin/bash",
            arguments=[script],
            directory=directory,
            name=name,
            environment=self.environment or None,
            stdout_path=stdout,
            stderr_path=stderr,
            resources=psij.ResourceSpecV1(node_count=self.nodes_per_block, processes_per_node=tasks_per_node),
            attributes=attributes,
            launcher="single",
        )
        job = psij.Job(spec)
        try:
            executor.submit(job)
        except Exception as exc:  # psij.SubmitException, psij.InvalidJobException
            raise SubmitException(name, f"PSI/J executor {self.executor!r} refused the job: {exc}") from exc
        job_id = str(job.native_id or job.id)
        with self._lock:
            self.resources[job_id] = {"job": job, "status": None, "cancelled": False, "stderr_path": stderr}
            self.resources[job_id]["status"] = self._translate(job_id)
        logger.debug("submitted block %s through PSI/J %s as job %s", name, self.executor, job_id)
        return job_id

    def _translate(self, job_id: str) -> JobStatus:
        """The table entry's PSI/J status as a JobStatus (called with the lock held)."""
        entry = self.resources[job_id]
        current = entry["job"].status
        state = PSIJ_STATES.get(current.state.name, JobState.UNKNOWN)
        if entry["cancelled"] and not state.terminal:
            state = JobState.CANCELLED
        message = current.message
        if state is JobState.FAILED:
            tail = _tail(entry["stderr_path"])
            message = "; ".join(t for t in (message, f"stderr: {tail}" if tail else None) if t) or None
        stdout = entry["job"].spec.stdout_path
        return JobStatus(state, message, current.exit_code, str(stdout) if stdout else None, entry["stderr_path"])

    def status(self, job_ids: list[str]) -> list[JobStatus]:
        """The states PSI/J keeps up to date for the jobs this provider submitted."""
        results = []
        with self._lock:
            for job_id in job_ids:
                entry = self.resources.get(job_id)
                if entry is None:
                    results.append(JobStatus(JobState.MISSING, f"job {job_id} was not submitted by this provider"))
                    continue
                if not entry["status"].terminal:
                    entry["status"] = self._translate(job_id)
                results.append(entry["status"])
        return results

    def cancel(self, job_ids: list[str]) -> list[bool]:
        """Ask PSI/J to cancel each job; True where the request was accepted."""
        results = []
        for job_id in job_ids:
            with self._lock:
                entry = self.resources.get(job_id)
            if entry is None:
                results.append(False)
                continue
            try:
                if not entry["job"].status.final:
                    entry["job"].cancel()
            except Exception as exc:
                logger.warning("PSI/J could not cancel job %s: %s", job_id, exc)
                results.append(False)
                continue
            with self._lock:
                entry["cancelled"] = True
                if not entry["status"].terminal:
                    entry["status"] = JobStatus(
                        JobState.CANCELLED, "cancelled by flowlib", stderr_path=entry["stderr_path"]
                    )
            results.append(True)
        return results


def _tail(path: str, size: int = 4096) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - size))
            return f.read().decode("utf-8", errors="replace").strip()
    except OSError:
        return ""
