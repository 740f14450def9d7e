"""The base shared by the batch-scheduler providers (Slurm, Grid Engine, PBS Pro, Torque) and LocalProvider.

::

    executor ── submit / status / cancel ──▶ ClusterProvider ── execute_wait(cmd, cmd_timeout) ──▶ Channel
                                               │                                             (local or SSH)
                                               ├─ renders templates/<scheduler>.sh into script_dir   │
                                               ├─ keeps the job table ``resources``                   ▼
                                               └─ translates answers with tables citing the docs   sbatch / squeue /
                                                                                                  scancel / qsub ...

A subclass says how to submit (``_submit_command``, ``_parse_job_id``), how to ask
for states (``_query_status``, ``_resolve_vanished``) and how to cancel
(``_cancel_command``); this class does the rest: validation, script rendering,
retries with backoff, batching, the job table and the stderr of failed jobs.
Constructors do no I/O; nothing runs until ``submit``/``status``/``cancel``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shlex
import string
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from importlib import resources as importlib_resources
from typing import ClassVar, NamedTuple, TypedDict

from flowlib.channels.base import Channel
from flowlib.channels.errors import ChannelError
from flowlib.errors import ConfigurationError
from flowlib.jobs.states import JobState, JobStatus
from flowlib.launchers.base import Launcher, call_launcher
from flowlib.providers.base import ExecutionProvider
from flowlib.providers.cluster_checks import LAUNCHER_NEEDS, check_launcher, check_positive_int, validate_common
from flowlib.providers.errors import SchedulerCommandError, SubmitException
from flowlib.providers.walltime import Walltime, parse_walltime
from flowlib.validation import validate_arguments

logger = logging.getLogger(__name__)

__all__ = ["ClusterProvider", "CommandResult", "JobRecord"]

# Answers that mean "the scheduler is busy or unreachable right now; ask again".
_TRANSIENT = re.compile(
    r"timed out|temporarily|try again|unable to contact|connection refused|socket|not responding"
    r"|cannot connect|can't connect|commlib error|resource temporarily unavailable",
    re.IGNORECASE,
)


# A line that bash's ``set -x`` wrote (PS4 is "+ ", repeated once per nesting level).
_SHELL_TRACE = re.compile(r"^\++ ")


class JobRecord(TypedDict):
    """One row of a provider's job table ``resources`` (keyed by job id)."""

    job_id: str
    job_name: str
    status: JobStatus
    submit_time: float
    script_path: str
    stdout_path: str
    stderr_path: str
    job_stdout_path: str
    """Parsl's name for ``stdout_path``."""
    job_stderr_path: str
    """Parsl's name for ``stderr_path``."""


class CommandResult(NamedTuple):
    """What a scheduler command printed and returned."""

    rc: int
    stdout: str
    stderr: str


def chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    """``items`` in lists of at most ``size``."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class ClusterProvider(ExecutionProvider):
    """Common keywords of every scheduler provider, validated in one place (:mod:`~flowlib.providers.cluster_checks`).

    :param label: a name for log messages.
    :param channel: where the scheduler's commands run (default: a new ``LocalChannel()``).
    :param nodes_per_block: nodes in each block (job).
    :param init_blocks: blocks to start with; may exceed ``max_blocks`` (as in Parsl).
    :param min_blocks: blocks to keep even when idle.
    :param max_blocks: most blocks at once.
    :param parallelism: 0..1, the share of outstanding tasks to provision blocks for.
    :param walltime: ``"HH:MM:SS"`` or ``"D-HH:MM:SS"`` (see :mod:`flowlib.providers.walltime`).
    :param worker_init: shell run in the job before the workers start; if its last command
        fails, the job stops with that exit code and its stderr is reported.
    :param scheduler_options: text added verbatim to the submit script's directives.
    :param launcher: wraps the worker command for the block's nodes (default per provider).
    :param cmd_timeout: seconds a scheduler command may run before it is retried, then reported.
    :param move_files: copy submit scripts to the channel's ``script_dir``: ``None`` when
        the channel has a different ``script_dir``, ``True`` always, ``False`` never
        (a file system shared with the scheduler's side).
    """

    scheduler: ClassVar[str] = "scheduler"
    """The scheduler's name, for messages."""
    template: ClassVar[str] = ""
    """The submit-script template in ``flowlib/providers/templates``."""
    incompatible_launchers: ClassVar[frozenset[str]] = frozenset(LAUNCHER_NEEDS)
    """Launcher class names this provider refuses (checked through the launcher's MRO)."""
    command_attempts: int = 3
    """Tries of a scheduler command that times out or gives a transient error."""
    retry_backoff: float = 0.5
    """Seconds before the first retry; doubled for each later one."""
    status_batch_size: int = 100
    """Job ids per status command."""
    cancel_batch_size: int = 100
    """Job ids per cancel command."""
    stderr_tail_bytes: int = 4096
    """How much of a failed job's stderr goes into its status message."""

    def __init__(
        self,
        *,
        label: str,
        channel: Channel | None,
        nodes_per_block: int,
        init_blocks: int,
        min_blocks: int,
        max_blocks: int,
        parallelism: float,
        walltime: str | None,
        worker_init: str,
        scheduler_options: str,
        launcher: Launcher | None,
        cmd_timeout: float,
        move_files: bool | None,
    ) -> None:
        owner = type(self).__name__
        validate_common(owner, locals())
        self.label = label
        if channel is None:
            from flowlib.channels.local import LocalChannel

            channel = LocalChannel()
        self.channel = channel
        self.nodes_per_block = nodes_per_block
        self.init_blocks = init_blocks
        self.min_blocks = min_blocks
        self.max_blocks = max_blocks
        self.parallelism = parallelism
        self.walltime = walltime
        self._walltime: Walltime | None = None if walltime is None else parse_walltime(walltime, owner)
        self.worker_init = worker_init
        self.scheduler_options = scheduler_options
        self.launcher = self._default_launcher() if launcher is None else launcher
        check_launcher(owner, self.launcher, self.nodes_per_block, self.incompatible_launchers, self.scheduler)
        self.cmd_timeout = cmd_timeout
        self.move_files = move_files
        self.resources: dict[str, JobRecord] = {}
        self._lock = threading.Lock()

    def _default_launcher(self) -> Launcher:
        """A new launcher for this provider (never a shared default instance)."""
        from flowlib.launchers import SingleNodeLauncher

        return SingleNodeLauncher()

    # ---- submit -------------------------------------------------------------------------

    def submit(self, command: str, tasks_per_node: int, job_name: str = "flowlib.auto") -> str:
        """Render the submit script, hand it to the scheduler and return the job id.

        Raises :class:`SubmitException` (naming the command and the scheduler's answer)
        when the scheduler refuses the job, or its command is missing or broken.
        """
        owner = type(self).__name__
        validate_arguments(f"{owner}.submit", {"command": (command, str), "job_name": (job_name, str)})
        check_positive_int(f"{owner}.submit", "tasks_per_node", tasks_per_node)
        local_dir = self._require_script_dir()
        name = f"{re.sub(r'[^A-Za-z0-9_.-]', '_', job_name)}.{uuid.uuid4().hex[:8]}"
        remote_dir = self._remote_dir(local_dir)
        stdout_path = os.path.join(remote_dir, f"{name}.stdout")
        stderr_path = os.path.join(remote_dir, f"{name}.stderr")
        values = {
            "job_name": name,
            "stdout_path": stdout_path,
            "stderr_path": stderr_path,
            "nodes_per_block": str(self.nodes_per_block),
            "tasks_per_node": str(tasks_per_node),
            "walltime": self._walltime.hms if self._walltime else "",
            "scheduler_options": self.scheduler_options,
            "worker_init": self.worker_init,
            "launch_command": call_launcher(self.launcher, command, tasks_per_node, self.nodes_per_block, remote_dir),
        }
        values.update(self._template_values(name, tasks_per_node))
        local_script = os.path.join(local_dir, f"{name}.submit")
        with open(local_script, "w") as f:
            f.write(self.render(values))
        os.chmod(local_script, 0o700)
        try:
            script_path = self._place_script(local_script, remote_dir)
            job_id = self._submit_script(name, script_path, stdout_path, stderr_path)
        except (SchedulerCommandError, ChannelError) as e:
            raise SubmitException(name, str(e)) from e
        record = JobRecord(
            job_id=job_id,
            job_name=name,
            status=JobStatus(self.submitted_state, stdout_path=stdout_path, stderr_path=stderr_path),
            submit_time=time.time(),
            script_path=script_path,
            stdout_path=stdout_path,
            stderr_path=stderr_path,
            job_stdout_path=stdout_path,
            job_stderr_path=stderr_path,
        )
        with self._lock:
            self.resources[job_id] = record
        logger.info("%s %s: submitted %s as job %s", owner, self.label, name, job_id)
        return job_id

    def render(self, values: dict[str, str]) -> str:
        """The submit script: this provider's template with ``values`` substituted."""
        text = importlib_resources.files("flowlib.providers").joinpath("templates", self.template).read_text()
        return string.Template(text).substitute(values)

    def _template_values(self, job_name: str, tasks_per_node: int) -> dict[str, str]:
        """Provider-specific template values (e.g. ``directives``)."""
        return {}

    def _require_script_dir(self) -> str:
        if not self.script_dir:
            raise ConfigurationError(
                f"{type(self).__name__} {self.label!r}: script_dir is not set; the executor sets "
                "provider.script_dir (its run directory) before the first submit"
            )
        path = os.path.abspath(self.script_dir)
        os.makedirs(path, exist_ok=True)
        return path

    def _remote_dir(self, local_dir: str) -> str:
        if self.move_files is False or not self.channel.script_dir:
            return local_dir
        return self.channel.script_dir

    def _place_script(self, local_script: str, remote_dir: str) -> str:
        """Copy the script to the channel's side when that is another directory."""
        if remote_dir == os.path.dirname(local_script):
            return local_script
        self.channel.makedirs(remote_dir, exist_ok=True)
        return self.channel.push_file(local_script, remote_dir)

    def _submit_script(self, name: str, script_path: str, stdout_path: str, stderr_path: str) -> str:
        """Run the submit command; return the job id or raise SubmitException."""
        cmd = self._submit_command(script_path)
        result = self.run(cmd, idempotent=False)
        job_id = self._parse_job_id(result.stdout) if result.rc == 0 else None
        if job_id is None:
            why = f"{cmd!r} exited with code {result.rc}" if result.rc else f"no job id in the answer of {cmd!r}"
            asked = ", ".join(f"{k}={v!r}" for k, v in self._submit_context().items() if v is not None)
            why += f" (asked for {asked})" if asked else ""
            raise SubmitException(name, why, stdout=result.stdout, stderr=result.stderr)
        return job_id

    def _submit_context(self) -> dict[str, object]:
        """What the job asked the scheduler for, named in submit errors (e.g. the partition)."""
        return {}

    def _submit_command(self, script_path: str) -> str:
        raise NotImplementedError

    def _parse_job_id(self, stdout: str) -> str | None:
        raise NotImplementedError

    # ---- running scheduler commands -----------------------------------------------------

    def execute_wait(self, cmd: str, timeout: float | None = None) -> tuple[int, str, str]:
        """Run the shell command ``cmd`` through the channel; return ``(exit code, stdout, stderr)``.

        Parsl's provider API: every scheduler command goes through here (so a subclass
        or a test may replace it). ``timeout`` defaults to ``cmd_timeout``.
        """
        rc, out, err = self.channel.execute_wait(cmd, walltime=self.cmd_timeout if timeout is None else timeout)
        return rc, out, err

    def run(self, cmd: str, *, idempotent: bool) -> CommandResult:
        """Run ``cmd`` through the channel with ``cmd_timeout``, retrying with backoff.

        Retried (``command_attempts`` tries in all): transient errors (the scheduler busy
        or unreachable), and timeouts or channel errors when ``idempotent`` (a status
        query; a submit that timed out may have been accepted, so it is not repeated).
        Other non-zero exit codes are returned for the caller to read. Raises
        :class:`SchedulerCommandError` naming the command when it is missing from PATH
        or every try failed.
        """
        failure, cause = "", None
        for attempt in range(1, self.command_attempts + 1):
            retryable = True
            try:
                rc, out, err = self.execute_wait(cmd, self.cmd_timeout)
            except Exception as e:  # a channel error: timeout, broken connection
                failure, retryable, cause = f"{type(e).__name__}: {e}", idempotent, e
            else:
                if rc == 127:  # bash: "NAME: command not found"
                    missing = re.search(r"([^\s:]+): command not found", err)
                    program = missing.group(1) if missing else cmd.split(None, 1)[0]
                    raise SchedulerCommandError(
                        cmd, f"{program} was not found on the PATH of {type(self.channel).__name__} ({err.strip()})"
                    )
                if rc == 0 or not _TRANSIENT.search(out + err):
                    return CommandResult(rc, out, err)
                failure = f"exit code {rc}: {(err or out).strip()[:1000]}"
            if not retryable or attempt == self.command_attempts:
                break
            delay = self.retry_backoff * 2 ** (attempt - 1)
            logger.warning("%s: %r failed (%s); retry %d in %.1f s", self.label, cmd, failure, attempt, delay)
            time.sleep(delay)
        tries = f" after {attempt} attempt{'s' if attempt > 1 else ''}"
        raise SchedulerCommandError(cmd, failure + tries) from cause

    # ---- status -------------------------------------------------------------------------

    def status(self, job_ids: list[str]) -> list[JobStatus]:
        """The status of each job, in the order given, polling the scheduler for unfinished ones.

        Jobs already in a terminal state are not polled again. Jobs that the scheduler
        no longer lists are resolved by :meth:`_resolve_vanished` (accounting, or
        MISSING with a message). When a poll fails, the job table keeps its last
        known states, the error is logged, and :class:`SchedulerCommandError` is raised.
        """
        ids = [str(j) for j in job_ids]
        with self._lock:
            known = {j: self.resources[j]["status"] for j in ids if j in self.resources}
        to_poll = [j for j in dict.fromkeys(ids) if j not in known or not known[j].terminal]
        fresh: dict[str, JobStatus] = {}
        if to_poll:
            try:
                fresh = self._poll(to_poll)
            except SchedulerCommandError as e:
                logger.error(
                    "%s %s: status poll failed, keeping the last known states: %s", self.scheduler, self.label, e
                )
                raise
            fresh = {j: self._describe(j, s, known.get(j)) for j, s in fresh.items()}
            with self._lock:
                for job_id, new in fresh.items():
                    if job_id in self.resources:
                        self.resources[job_id]["status"] = new
        with self._lock:
            return [self.resources[j]["status"] if j in self.resources else fresh[j] for j in ids]

    def _poll(self, job_ids: list[str]) -> dict[str, JobStatus]:
        found: dict[str, JobStatus] = {}
        for batch in chunks(job_ids, self.status_batch_size):
            found.update(self._query_status(batch))
        vanished = [j for j in job_ids if j not in found]
        if vanished:
            found.update(self._resolve_vanished(vanished))
        for job_id in job_ids:
            found.setdefault(job_id, JobStatus(JobState.MISSING, f"{self.scheduler} no longer knows job {job_id}"))
        return found

    def _describe(self, job_id: str, status: JobStatus, before: JobStatus | None) -> JobStatus:
        """Add output paths, and for a job that just failed the tail of its stderr."""
        with self._lock:
            record = self.resources.get(job_id)
        if record is None:
            return status
        status = dataclasses.replace(status, stdout_path=record["stdout_path"], stderr_path=record["stderr_path"])
        failed = status.state in (JobState.FAILED, JobState.TIMEOUT, JobState.MISSING)
        if failed and (before is None or before.state != status.state):
            tail = self.stderr_tail(record["stderr_path"])
            if tail:
                status = dataclasses.replace(status, message=f"{status.message or status.state.name}; stderr: {tail}")
        if before is None or before.state != status.state:
            log = logger.warning if failed else logger.debug
            log("%s %s: job %s is %s (%s)", self.scheduler, self.label, job_id, status.state.name, status.message)
        return status

    def stderr_tail(self, path: str) -> str:
        """The end of the file ``path`` on the channel's side ('' if unreadable), without shell traces.

        Of the last ``stderr_tail_bytes``, the lines that launchers trace their shell
        commands with (``set -x``, as Parsl's do) are dropped, so that the error shows
        what the job said (the scheduler's, the worker_init's and the worker pool's
        messages). The file keeps everything.
        """
        cmd = f"tail -c {int(self.stderr_tail_bytes)} {shlex.quote(path)}"
        try:
            rc, out, _ = self.execute_wait(cmd, self.cmd_timeout)
        except Exception as e:
            logger.debug("cannot read %s: %s", path, e)
            return ""
        if rc != 0:
            return ""
        return "\n".join(line for line in out.splitlines() if line.strip() and not _SHELL_TRACE.match(line))

    def _query_status(self, job_ids: list[str]) -> dict[str, JobStatus]:
        """Ask the scheduler about one batch; return the jobs it lists. Garbage: SchedulerCommandError."""
        raise NotImplementedError

    def _resolve_vanished(self, job_ids: list[str]) -> dict[str, JobStatus]:
        """Find how jobs that the scheduler no longer lists ended (default: not at all)."""
        return {}

    # ---- cancel -------------------------------------------------------------------------

    def cancel(self, job_ids: list[str]) -> list[bool]:
        """Cancel the jobs, ``cancel_batch_size`` ids per command; True where the scheduler accepted.

        Accepted jobs become CANCELLED in the job table at once. If a batch's command
        fails, the other batches are still cancelled, then the first error is raised.
        """
        ids = [str(j) for j in job_ids]
        accepted: dict[str, bool] = {}
        error: SchedulerCommandError | None = None
        for batch in chunks(list(dict.fromkeys(ids)), self.cancel_batch_size):
            try:
                accepted.update(self._cancel_batch(batch))
            except SchedulerCommandError as e:
                logger.error("%s %s: cancel failed: %s", self.scheduler, self.label, e)
                accepted.update(dict.fromkeys(batch, False))
                error = error or e
        with self._lock:
            for job_id, ok in accepted.items():
                record = self.resources.get(job_id)
                if ok and record is not None and not record["status"].terminal:
                    record["status"] = JobStatus(
                        JobState.CANCELLED,
                        "cancelled by flowlib",
                        stdout_path=record["stdout_path"],
                        stderr_path=record["stderr_path"],
                    )
        if error is not None:
            raise error
        return [accepted[j] for j in ids]

    def _cancel_batch(self, job_ids: list[str]) -> dict[str, bool]:
        result = self.run(self._cancel_command(job_ids), idempotent=True)
        return dict.fromkeys(job_ids, result.rc == 0)

    def _cancel_command(self, job_ids: list[str]) -> str:
        raise NotImplementedError
