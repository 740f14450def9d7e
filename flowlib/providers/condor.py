"""CondorProvider: blocks are HTCondor jobs, via ``condor_submit``, ``condor_q``/``condor_history`` and ``condor_rm``.

::

    ClusterProvider (script rendering, channel, retries, job table)
        └─ CondorProvider: templates/condor_job.sh (worker_init + launcher) is rendered, then
           base64-encoded into the arguments of templates/condor_job.sub (the submit description)
             condor_submit FILE                  -> "1 job(s) submitted to cluster C."
             condor_q C ... -af:jt ATTRS         -> jobs still in the queue
             condor_history C ... -af:jt ATTRS   -> jobs that left it (completed or removed)
             condor_rm C ...                     -> "All jobs in cluster C have been marked for removal"

Each block is one job (one slot) in the vanilla universe; its id is the cluster id.
HTCondor cannot run on flowlib's CI machines; this provider is tested against the
command output the HTCondor manual describes, with fake ``condor_*`` commands
(tests/fakebin_condor) that run each job as a real local process.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
import string
from collections.abc import Sequence
from importlib import resources as importlib_resources

from flowlib.channels.base import Channel
from flowlib.jobs.states import JobState, JobStatus
from flowlib.launchers.base import Launcher
from flowlib.providers.cluster import ClusterProvider
from flowlib.providers.cluster_checks import check_positive_int
from flowlib.providers.errors import SchedulerCommandError
from flowlib.validation import validate_arguments

__all__ = ["CondorProvider", "CONDOR_STATES"]

# JobStatus, HTCondor manual, "Job ClassAd Attributes":
# https://htcondor.readthedocs.io/en/latest/classad-attributes/job-classad-attributes.html
CONDOR_STATES: dict[str, JobState] = {
    "1": JobState.PENDING,  # Idle: waiting for a matching slot
    "2": JobState.RUNNING,  # Running
    "3": JobState.CANCELLED,  # Removed (condor_rm, or a periodic_remove expression: see below)
    "4": JobState.COMPLETED,  # Completed (refined from ExitCode: non-zero is FAILED)
    "5": JobState.HELD,  # Held: needs attention (HoldReason says why, e.g. a failed file transfer)
    "6": JobState.RUNNING,  # Transferring Output: the job has ended, its output is coming back
    "7": JobState.HELD,  # Suspended
}
"""HTCondor JobStatus code -> JobState. A job removed by the walltime's
``periodic_remove`` (its RemoveReason names PeriodicRemove) is TIMEOUT."""

_ATTRIBUTES = "JobStatus ExitCode HoldReason RemoveReason"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _quote_value(value: str) -> str:
    """One environment value in HTCondor's new syntax: single-quoted, ' and " doubled."""
    return "'" + value.replace("'", "''").replace('"', '""') + "'"


class CondorProvider(ClusterProvider):
    """Blocks as HTCondor jobs (keywords as Parsl's CondorProvider).

    :param cores_per_slot: ``request_cpus``; also ``cores_per_node`` for the executor.
    :param mem_per_slot: ``request_memory`` in GB (sent in MB); also ``mem_per_node``.
    :param environment: variables for the job, written to the ``environment`` command.
    :param project: ``+ProjectName`` (accounting on the OSG and elsewhere).
    :param requirements: the ``requirements`` ClassAd expression, e.g. ``'OpSys == "LINUX"'``.
    :param transfer_input_files: files sent to the execute node with the job.
    :param walltime: enforced by ``periodic_remove`` once the job has run that long.
    :param scheduler_options: extra submit-description lines, added as given.

    ``nodes_per_block`` must be 1: a vanilla-universe job gets one slot; ask for more
    slots with more blocks. The default launcher is a new ``SingleNodeLauncher()``.
    See :class:`~flowlib.providers.cluster.ClusterProvider` for the common keywords.
    """

    scheduler = "HTCondor"
    template = "condor_job.sub"

    def __init__(
        self,
        nodes_per_block: int = 1,
        cores_per_slot: int | None = None,
        mem_per_slot: float | None = None,
        init_blocks: int = 1,
        min_blocks: int = 0,
        max_blocks: int = 1,
        parallelism: float = 1,
        environment: dict[str, str] | None = None,
        project: str = "",
        scheduler_options: str = "",
        transfer_input_files: Sequence[str] = (),
        walltime: str = "00:10:00",
        worker_init: str = "",
        launcher: Launcher | None = None,
        requirements: str = "",
        cmd_timeout: float = 60,
        channel: Channel | None = None,
        move_files: bool | None = None,
        label: str = "condor",
    ) -> None:
        validate_arguments(
            "CondorProvider",
            {
                "mem_per_slot": (mem_per_slot, int | float | None),
                "environment": (environment, dict[str, str] | None),
                "project": (project, str),
                "transfer_input_files": (transfer_input_files, Sequence[str]),
                "requirements": (requirements, str),
            },
        )
        if isinstance(transfer_input_files, str):
            raise TypeError("CondorProvider argument 'transfer_input_files' must be a list of paths, got one str")
        if cores_per_slot is not None:
            check_positive_int("CondorProvider", "cores_per_slot", cores_per_slot)
        if mem_per_slot is not None and mem_per_slot <= 0:
            raise ValueError(f"CondorProvider argument 'mem_per_slot' must be > 0 (GB), got {mem_per_slot!r}")
        bad = [name for name in (environment or {}) if not _ENV_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"CondorProvider argument 'environment' has invalid variable names: {bad}")
        if nodes_per_block != 1:
            raise ValueError(
                f"CondorProvider runs each block in one HTCondor slot: nodes_per_block must be 1, got "
                f"{nodes_per_block} (use more blocks for more slots)"
            )
        super().__init__(
            label=label,
            channel=channel,
            nodes_per_block=nodes_per_block,
            init_blocks=init_blocks,
            min_blocks=min_blocks,
            max_blocks=max_blocks,
            parallelism=parallelism,
            walltime=walltime,
            worker_init=worker_init,
            scheduler_options=scheduler_options,
            launcher=launcher,
            cmd_timeout=cmd_timeout,
            move_files=move_files,
        )
        self.cores_per_slot = cores_per_slot
        self.mem_per_slot = mem_per_slot
        self.cores_per_node = cores_per_slot
        self.mem_per_node = mem_per_slot
        self.environment = dict(environment or {})
        self.project = project
        self.transfer_input_files = list(transfer_input_files)
        self.requirements = requirements

    # ---- submit -------------------------------------------------------------------------

    def render(self, values: dict[str, str]) -> str:
        """The submit description, carrying the block's script (templates/condor_job.sh) in its arguments."""
        text = importlib_resources.files("flowlib.providers").joinpath("templates", "condor_job.sh").read_text()
        script = string.Template(text).substitute(values)
        base = values["stdout_path"].rsplit(".stdout", 1)[0]
        return super().render(
            {
                **values,
                "script_base64": base64.b64encode(script.encode()).decode(),
                "script_comment": "\n".join(f"#   {line}" for line in script.splitlines()),
                "initial_dir": os.path.dirname(values["stdout_path"]),
                "log_path": f"{base}.log",
            }
        )

    def _template_values(self, job_name: str, tasks_per_node: int) -> dict[str, str]:
        lines = []
        if self._walltime is not None:
            limit = self._walltime.seconds
            lines.append(f"periodic_remove = (JobStatus == 2) && ((time() - EnteredCurrentStatus) > {limit})")
        if self.cores_per_slot is not None:
            lines.append(f"request_cpus = {self.cores_per_slot}")
        if self.mem_per_slot is not None:
            lines.append(f"request_memory = {max(1, round(self.mem_per_slot * 1024))}")
        if self.requirements:
            lines.append(f"requirements = {self.requirements}")
        if self.project:
            lines.append(f'+ProjectName = "{self.project}"')
        if self.environment:
            pairs = " ".join(f"{name}={_quote_value(value)}" for name, value in self.environment.items())
            lines.append(f'environment = "{pairs}"')
        if self.transfer_input_files:
            lines.append(f"transfer_input_files = {','.join(self.transfer_input_files)}")
        return {"directives": "\n".join(lines)}

    def _submit_context(self) -> dict[str, object]:
        return {"requirements": self.requirements or None, "project": self.project or None}

    def _submit_command(self, script_path: str) -> str:
        return f"condor_submit {shlex.quote(script_path)}"

    def _parse_job_id(self, stdout: str) -> str | None:
        match = re.search(r"(\d+) job\(s\) submitted to cluster (\d+)\.", stdout)
        return match.group(2) if match else None

    # ---- status -------------------------------------------------------------------------

    def _ask(self, program: str, job_ids: list[str], extra: str = "") -> dict[str, JobStatus]:
        """Run condor_q or condor_history with ``-af:jt`` and translate each job's line."""
        cmd = f"{program} {' '.join(shlex.quote(j) for j in job_ids)} -af:jt {_ATTRIBUTES}{extra}"
        rc, out, err = self.run(cmd, idempotent=True)
        if rc != 0:
            raise SchedulerCommandError(cmd, f"exit code {rc}: {(err or out).strip()[:1000]}")
        found: dict[str, JobStatus] = {}
        for line in out.splitlines():
            if not line.strip():
                continue
            fields = line.split("\t")
            match = re.fullmatch(r"(\d+)\.\d+", fields[0].strip())
            if match is None or len(fields) != 5 or fields[1].strip() not in CONDOR_STATES:
                raise SchedulerCommandError(cmd, f"cannot parse {program}'s answer: {line.strip()[:200]!r}")
            found[match.group(1)] = self._translate(*(field.strip() for field in fields[1:]))
        return found

    @staticmethod
    def _translate(code: str, exit_text: str, hold_reason: str, remove_reason: str) -> JobStatus:
        state = CONDOR_STATES[code]
        exit_code = int(exit_text) if re.fullmatch(r"-?\d+", exit_text) else None
        reason = next((r for r in (hold_reason, remove_reason) if r and r != "undefined"), "")
        if code == "4" and exit_code != 0:
            state = JobState.FAILED
        if code == "3" and "PeriodicRemove" in reason:
            state, reason = JobState.TIMEOUT, f"walltime reached ({reason})"
        return JobStatus(state, f"HTCondor JobStatus {code}" + (f": {reason}" if reason else ""), exit_code)

    def _query_status(self, job_ids: list[str]) -> dict[str, JobStatus]:
        return self._ask("condor_q", job_ids)

    def _resolve_vanished(self, job_ids: list[str]) -> dict[str, JobStatus]:
        """Completed and removed jobs leave the queue at once: read them from the history."""
        return self._ask("condor_history", job_ids, f" -limit {len(job_ids)}")

    # ---- cancel -------------------------------------------------------------------------

    def _cancel_command(self, job_ids: list[str]) -> str:
        return "condor_rm " + " ".join(shlex.quote(j) for j in job_ids)

    def _cancel_batch(self, job_ids: list[str]) -> dict[str, bool]:
        """condor_rm answers per cluster: "... cluster C have been marked for removal"."""
        result = self.run(self._cancel_command(job_ids), idempotent=True)
        answers = result.stdout + "\n" + result.stderr
        return {
            j: re.search(rf"cluster {re.escape(j)} have been marked for removal", answers) is not None for j in job_ids
        }
