"""TorqueProvider: blocks are Torque (OpenPBS lineage) jobs, via ``qsub``, ``qstat -f`` and ``qdel``.

It is also the base of :class:`~flowlib.providers.pbspro.PBSProProvider`: both
schedulers share the command set and the ``qstat -f`` format (a ``Job Id:`` line,
then indented ``key = value`` attributes), and differ in resource requests, state
letters and how finished jobs are shown.

Neither scheduler can run on flowlib's CI machines; both are tested against their
documented command output with fake ``qsub``/``qstat``/``qdel`` (tests/fakebin_sched).
"""

from __future__ import annotations

import logging
import re
import shlex
from typing import ClassVar

from flowlib.channels.base import Channel
from flowlib.jobs.states import JobState, JobStatus
from flowlib.launchers.base import Launcher
from flowlib.providers.cluster import ClusterProvider
from flowlib.providers.errors import SchedulerCommandError
from flowlib.validation import validate_arguments

logger = logging.getLogger(__name__)

__all__ = ["TorqueProvider", "TORQUE_STATES", "parse_qstat_full", "seconds_of"]

# Torque's job states, qstat(1B) "job_state": http://docs.adaptivecomputing.com/torque/6-1-2/adminGuide/torque.htm#topics/torque/commands/qstat.htm
# C finished jobs are translated from their exit_status (see ``_finished``).
TORQUE_STATES: dict[str, JobState] = {
    "C": JobState.COMPLETED,  # completed (after having run)
    "E": JobState.RUNNING,  # exiting after having run
    "H": JobState.HELD,  # held
    "Q": JobState.PENDING,  # queued, eligible to run or routed
    "R": JobState.RUNNING,  # running
    "T": JobState.PENDING,  # being moved to a new location
    "W": JobState.PENDING,  # waiting for its execution time
    "S": JobState.HELD,  # suspended (only on some systems)
}

# Errors that mean "this job id is not known (any more)" rather than a broken command.
_GONE = re.compile(r"Unknown Job Id|Job has finished|nonexistent job", re.IGNORECASE)


def parse_qstat_full(text: str) -> dict[str, dict[str, str]]:
    """``qstat -f`` output as ``{job id: {attribute: value}}``.

    Long values are wrapped onto following lines that carry no ``=``; they are
    joined back. Raises ValueError on a line that fits neither form.
    """
    jobs: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    last_key = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip():
            continue
        if line.startswith("Job Id:"):
            current = jobs.setdefault(line.split(":", 1)[1].strip(), {})
            last_key = ""
        elif current is not None and " = " in line:
            key, _, value = line.strip().partition(" = ")
            current[key] = value
            last_key = key
        elif current is not None and last_key and raw[:1].isspace():
            current[last_key] += line.strip()
        else:
            raise ValueError(f"unexpected line {line[:200]!r}")
    return jobs


def seconds_of(hms: str | None) -> int | None:
    """``"HH:MM:SS"`` (as qstat prints walltimes) in seconds, or None."""
    match = re.fullmatch(r"(\d+):(\d\d):(\d\d)", (hms or "").strip())
    return None if match is None else (int(match[1]) * 60 + int(match[2])) * 60 + int(match[3])


class TorqueProvider(ClusterProvider):
    """Blocks as Torque jobs.

    :param account: ``-A`` account to charge.
    :param queue: ``-q`` destination queue.
    :param walltime: ``-l walltime``; ``"HH:MM:SS"`` or ``"D-HH:MM:SS"`` (sent as hours).
    :param scheduler_options: extra ``#PBS`` lines, added as given.

    Nodes are asked as ``-l nodes=N:ppn=tasks_per_node``. Jobs run with ``-V``.
    The default launcher is a new ``SingleNodeLauncher()`` (``AprunLauncher`` also
    works, on Cray systems). See :class:`~flowlib.providers.cluster.ClusterProvider`.
    """

    scheduler = "Torque"
    template = "torque.sh"
    incompatible_launchers = frozenset({"SrunLauncher", "SrunMPILauncher", "JsrunLauncher"})
    states: ClassVar[dict[str, JobState]] = TORQUE_STATES
    exit_key: ClassVar[str] = "exit_status"
    finished_letters: ClassVar[frozenset[str]] = frozenset({"C"})
    qstat_options: ClassVar[str] = "-f"

    def __init__(
        self,
        account: str | None = None,
        queue: str | None = None,
        scheduler_options: str = "",
        worker_init: str = "",
        nodes_per_block: int = 1,
        init_blocks: int = 1,
        min_blocks: int = 0,
        max_blocks: int = 1,
        parallelism: float = 1,
        launcher: Launcher | None = None,
        walltime: str = "00:20:00",
        cmd_timeout: float = 120,
        channel: Channel | None = None,
        move_files: bool | None = None,
        label: str = "torque",
    ) -> None:
        validate_arguments(type(self).__name__, {"account": (account, str | None), "queue": (queue, str | None)})
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
        self.account = account
        self.queue = queue

    # ---- submit -------------------------------------------------------------------------

    def _resource_lines(self, tasks_per_node: int) -> list[str]:
        return [f"-l nodes={self.nodes_per_block}:ppn={tasks_per_node}"]

    def _template_values(self, job_name: str, tasks_per_node: int) -> dict[str, str]:
        assert self._walltime is not None
        lines = [f"-l walltime={self._walltime.hms}", *self._resource_lines(tasks_per_node)]
        if self.queue:
            lines.append(f"-q {self.queue}")
        if self.account:
            lines.append(f"-A {self.account}")
        return {"directives": "\n".join(f"#PBS {line}" for line in lines)}

    def _submit_context(self) -> dict[str, object]:
        return {"queue": self.queue, "account": self.account}

    def _submit_command(self, script_path: str) -> str:
        return f"qsub {shlex.quote(script_path)}"

    def _parse_job_id(self, stdout: str) -> str | None:
        lines = [line.strip() for line in stdout.splitlines() if line.strip()]
        match = re.fullmatch(r"\d+(?:\[\d*\])?(?:\.\S+)?", lines[-1]) if lines else None  # "123.server"
        return match.group(0) if match else None

    # ---- status -------------------------------------------------------------------------

    def _query_status(self, job_ids: list[str]) -> dict[str, JobStatus]:
        cmd = f"qstat {self.qstat_options} " + " ".join(shlex.quote(j) for j in job_ids)
        rc, out, err = self.run(cmd, idempotent=True)
        complaints = [line for line in err.splitlines() if line.strip()]
        if rc != 0 and not all(_GONE.search(line) for line in complaints):
            raise SchedulerCommandError(cmd, f"exit code {rc}: {(err or out).strip()[:1000]}")
        try:
            jobs = parse_qstat_full(out)
        except ValueError as e:
            raise SchedulerCommandError(cmd, f"cannot parse qstat's answer: {e}") from None
        found: dict[str, JobStatus] = {}
        for job_id in job_ids:
            attributes = jobs.get(job_id) or self._by_sequence(jobs, job_id)
            if attributes is None:
                continue
            letter = attributes.get("job_state", "")
            if letter in self.finished_letters:
                found[job_id] = self._finished(attributes)
            else:
                state = self.states.get(letter, JobState.UNKNOWN)
                comment = attributes.get("comment")
                found[job_id] = JobStatus(state, f"qstat job_state {letter}" + (f": {comment}" if comment else ""))
        return found

    @staticmethod
    def _by_sequence(jobs: dict[str, dict[str, str]], job_id: str) -> dict[str, str] | None:
        """qstat may print the id with a longer server name than qsub did: match on the number."""
        number = job_id.split(".", 1)[0]
        return next((attrs for key, attrs in jobs.items() if key.split(".", 1)[0] == number), None)

    def _finished(self, attributes: dict[str, str]) -> JobStatus:
        """A finished job's state from its exit status (documented for PBS Pro and Torque:
        negative = could not start, 256 + N = killed by signal N)."""
        text = attributes.get(self.exit_key, "")
        exit_code = int(text) if re.fullmatch(r"-?\d+", text) else None
        used = seconds_of(attributes.get("resources_used.walltime"))
        limit = seconds_of(attributes.get("Resource_List.walltime"))
        if exit_code == 0:
            return JobStatus(JobState.COMPLETED, f"{self.exit_key} 0", 0)
        if exit_code == -29 or (exit_code is not None and exit_code > 256 and used and limit and used >= limit):
            return JobStatus(JobState.TIMEOUT, f"killed at its walltime ({self.exit_key} {exit_code})", exit_code)
        if exit_code is not None and exit_code > 256:
            message = f"killed by signal {exit_code - 256} (qdel, or a resource limit)"
            return JobStatus(JobState.CANCELLED, message, exit_code)
        if exit_code is not None and exit_code < 0:
            return JobStatus(JobState.FAILED, f"the job could not start ({self.exit_key} {exit_code})", exit_code)
        return JobStatus(JobState.FAILED, f"{self.exit_key} {text or 'unknown'}", exit_code)

    def _resolve_vanished(self, job_ids: list[str]) -> dict[str, JobStatus]:
        return {
            job_id: JobStatus(
                JobState.MISSING,
                f"{self.scheduler} no longer knows job {job_id} (finished longer ago than the server keeps "
                "jobs, or deleted); users cannot read its accounting",
            )
            for job_id in job_ids
        }

    # ---- cancel -------------------------------------------------------------------------

    def _cancel_command(self, job_ids: list[str]) -> str:
        return "qdel " + " ".join(shlex.quote(j) for j in job_ids)

    def _cancel_batch(self, job_ids: list[str]) -> dict[str, bool]:
        rc, out, err = self.run(self._cancel_command(job_ids), idempotent=True)
        if rc == 0:
            return dict.fromkeys(job_ids, True)
        refused = {j for j in job_ids if re.search(rf"\b{re.escape(j)}\b", out + err)}
        if not refused:
            return dict.fromkeys(job_ids, False)
        return {job_id: job_id not in refused for job_id in job_ids}
