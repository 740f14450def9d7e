"""SlurmProvider: blocks are Slurm batch jobs (``sbatch``), watched with ``squeue`` and ended with ``scancel``.

Status goes in batches (``squeue --jobs=id1,id2,... --states=all``). A job that
``squeue`` no longer lists (slurmctld forgets finished jobs after ``MinJobAge``) is
looked up in ``sacct`` when accounting is enabled, else with ``scontrol show job``,
else reported MISSING with a message.
"""

from __future__ import annotations

import logging
import re
import shlex
from typing import Any

from flowlib.channels.base import Channel
from flowlib.jobs.states import JobState, JobStatus
from flowlib.launchers.base import Launcher
from flowlib.providers.cluster import ClusterProvider
from flowlib.providers.cluster_checks import check_positive_int
from flowlib.providers.errors import SchedulerCommandError
from flowlib.validation import validate_arguments

logger = logging.getLogger(__name__)

__all__ = ["SlurmProvider", "SQUEUE_STATES", "SLURM_LONG_STATES"]

# squeue's compact state codes: https://slurm.schedmd.com/squeue.html#SECTION_JOB-STATE-CODES
SQUEUE_STATES: dict[str, JobState] = {
    "BF": JobState.FAILED,  # BOOT_FAIL: terminated due to launch failure
    "CA": JobState.CANCELLED,  # CANCELLED: by the user or an administrator
    "CD": JobState.COMPLETED,  # COMPLETED: all processes ended with exit code 0
    "CF": JobState.PENDING,  # CONFIGURING: resources allocated, waiting for them to be ready
    "CG": JobState.RUNNING,  # COMPLETING: ending; some processes may still be alive
    "DL": JobState.TIMEOUT,  # DEADLINE: terminated on deadline
    "F": JobState.FAILED,  # FAILED: non-zero exit code or other failure
    "NF": JobState.FAILED,  # NODE_FAIL: a node failed
    "OOM": JobState.FAILED,  # OUT_OF_MEMORY
    "PD": JobState.PENDING,  # PENDING: awaiting resources
    "PR": JobState.CANCELLED,  # PREEMPTED
    "R": JobState.RUNNING,  # RUNNING
    "RD": JobState.HELD,  # RESV_DEL_HOLD: held, its reservation was deleted
    "RF": JobState.PENDING,  # REQUEUE_FED: requeued by a federation
    "RH": JobState.HELD,  # REQUEUE_HOLD: requeued and held
    "RQ": JobState.PENDING,  # REQUEUED
    "RS": JobState.RUNNING,  # RESIZING
    "RV": JobState.CANCELLED,  # REVOKED: removed because a sibling in a federation started
    "SI": JobState.RUNNING,  # SIGNALING: being signalled
    "SE": JobState.FAILED,  # SPECIAL_EXIT: requeued in a special state
    "SO": JobState.RUNNING,  # STAGE_OUT: staging out files
    "ST": JobState.HELD,  # STOPPED: SIGSTOP, resources kept
    "S": JobState.HELD,  # SUSPENDED: resources released to other jobs
    "TO": JobState.TIMEOUT,  # TIMEOUT: reached its time limit
}

# Full state names, as sacct (https://slurm.schedmd.com/sacct.html#SECTION_JOB-STATE-CODES) and
# scontrol show job (JobState=, https://slurm.schedmd.com/job_state_codes.html) print them.
SLURM_LONG_STATES: dict[str, JobState] = {
    "BOOT_FAIL": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED,  # sacct adds " by <uid>"
    "COMPLETED": JobState.COMPLETED,
    "COMPLETING": JobState.RUNNING,
    "CONFIGURING": JobState.PENDING,
    "DEADLINE": JobState.TIMEOUT,
    "FAILED": JobState.FAILED,
    "NODE_FAIL": JobState.FAILED,
    "OUT_OF_MEMORY": JobState.FAILED,
    "PENDING": JobState.PENDING,
    "PREEMPTED": JobState.CANCELLED,
    "REQUEUED": JobState.PENDING,
    "REQUEUE_FED": JobState.PENDING,
    "REQUEUE_HOLD": JobState.HELD,
    "RESIZING": JobState.RUNNING,
    "RESV_DEL_HOLD": JobState.HELD,
    "REVOKED": JobState.CANCELLED,
    "RUNNING": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "SPECIAL_EXIT": JobState.FAILED,
    "STAGE_OUT": JobState.RUNNING,
    "STOPPED": JobState.HELD,
    "SUSPENDED": JobState.HELD,
    "TIMEOUT": JobState.TIMEOUT,
}

_SQUEUE_LINE = re.compile(r"(?P<id>\d+(?:[_+]\S+)?)\|(?P<state>[A-Z]+)\|(?P<reason>.*)")


def _exit_code(text: str | None) -> int | None:
    """Slurm's ``ExitCode=3:0`` (exit code : signal) as one number (128 + signal when killed)."""
    if not text or not re.fullmatch(r"\d+:\d+", text):
        return None
    code, signal = (int(part) for part in text.split(":"))
    return 128 + signal if signal else code


class SlurmProvider(ClusterProvider):
    """Blocks as Slurm jobs. Keywords as Parsl documents them, plus flowlib's common ones.

    :param partition: ``--partition``; the cluster's default when None.
    :param account: ``--account`` to charge.
    :param qos: ``--qos``.
    :param constraint: ``--constraint`` (node features).
    :param clusters: ``--clusters`` for a multi-cluster Slurm; also passed to squeue/scancel.
    :param cores_per_node: cores each node must have (``--cpus-per-task`` = cores / tasks).
    :param mem_per_node: memory per node in GB (``--mem``).
    :param gpus_per_node: ``--gpus-per-node`` (a count, or ``type:count``).
    :param gres: ``--gres`` (generic resources, e.g. ``gpu:2``).
    :param exclusive: ``--exclusive`` (whole nodes; default True, as in Parsl).
    :param walltime: ``--time``; ``"HH:MM:SS"`` or ``"D-HH:MM:SS"``.
    :param scheduler_options: extra ``#SBATCH`` lines, added as given.
    :param regex_job_id: a regex with a group ``id`` for sbatch's answer; by default
        flowlib calls ``sbatch --parsable`` and needs none.

    The default launcher is a new ``SrunLauncher()``. See
    :class:`~flowlib.providers.cluster.ClusterProvider` for the common keywords.
    """

    scheduler = "Slurm"
    template = "slurm.sh"
    incompatible_launchers = frozenset({"AprunLauncher", "JsrunLauncher"})

    def __init__(
        self,
        partition: str | None = None,
        account: str | None = None,
        qos: str | None = None,
        constraint: str | None = None,
        clusters: str | None = None,
        nodes_per_block: int = 1,
        cores_per_node: int | None = None,
        mem_per_node: float | None = None,
        init_blocks: int = 1,
        min_blocks: int = 0,
        max_blocks: int = 1,
        parallelism: float = 1,
        walltime: str = "00:10:00",
        scheduler_options: str = "",
        regex_job_id: str | None = None,
        worker_init: str = "",
        exclusive: bool = True,
        launcher: Launcher | None = None,
        gpus_per_node: int | str | None = None,
        gres: str | None = None,
        channel: Channel | None = None,
        cmd_timeout: float = 10,
        move_files: bool | None = None,
        label: str = "slurm",
    ) -> None:
        self._validate_slurm(locals())
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
        self.partition = partition
        self.account = account
        self.qos = qos
        self.constraint = constraint
        self.clusters = clusters
        self.cores_per_node = cores_per_node
        self.mem_per_node = mem_per_node
        self.gpus_per_node = gpus_per_node
        self.gres = gres
        self.exclusive = exclusive
        self.regex_job_id = regex_job_id
        self._sacct_usable: bool | None = None  # unknown until the first try

    @staticmethod
    def _validate_slurm(values: dict[str, Any]) -> None:
        owner = "SlurmProvider"
        optional_str = str | None
        validate_arguments(
            owner,
            {
                **{k: (values[k], optional_str) for k in ("partition", "account", "qos", "constraint", "clusters")},
                "mem_per_node": (values["mem_per_node"], int | float | None),
                "gpus_per_node": (values["gpus_per_node"], int | str | None),
                "gres": (values["gres"], optional_str),
                "regex_job_id": (values["regex_job_id"], optional_str),
                "exclusive": (values["exclusive"], bool),
            },
        )
        if values["cores_per_node"] is not None:
            check_positive_int(owner, "cores_per_node", values["cores_per_node"])
        if isinstance(values["gpus_per_node"], int):
            check_positive_int(owner, "gpus_per_node", values["gpus_per_node"])
        mem = values["mem_per_node"]
        if mem is not None and (isinstance(mem, bool) or mem <= 0):
            raise ValueError(f"{owner} argument 'mem_per_node' must be a positive number of GB, got {mem!r}")
        if values["regex_job_id"] is not None:
            try:
                pattern = re.compile(values["regex_job_id"])
            except re.error as e:
                raise ValueError(f"{owner} argument 'regex_job_id' is not a regular expression: {e}") from None
            if "id" not in pattern.groupindex:
                raise ValueError(f"{owner} argument 'regex_job_id' needs a group named 'id', got {pattern.pattern!r}")

    def _default_launcher(self) -> Launcher:
        from flowlib.launchers import SrunLauncher

        return SrunLauncher()

    # ---- submit -------------------------------------------------------------------------

    def _template_values(self, job_name: str, tasks_per_node: int) -> dict[str, str]:
        assert self._walltime is not None
        lines = [f"--time={self._walltime.slurm}"]
        options = {
            "partition": self.partition,
            "account": self.account,
            "qos": self.qos,
            "constraint": self.constraint,
            "clusters": self.clusters,
            "gres": self.gres,
            "gpus-per-node": None if self.gpus_per_node is None else str(self.gpus_per_node),
        }
        lines += [f"--{name}={value}" for name, value in options.items() if value is not None]
        if self.cores_per_node is not None:
            lines.append(f"--cpus-per-task={max(1, self.cores_per_node // tasks_per_node)}")
        if self.mem_per_node is not None:
            lines.append(f"--mem={max(1, int(self.mem_per_node * 1024))}M")
        if self.exclusive:
            lines.append("--exclusive")
        return {"directives": "\n".join(f"#SBATCH {line}" for line in lines)}

    def _submit_context(self) -> dict[str, object]:
        return {"partition": self.partition, "account": self.account, "qos": self.qos, "clusters": self.clusters}

    def _submit_command(self, script_path: str) -> str:
        parsable = "" if self.regex_job_id else "--parsable "
        return f"sbatch {parsable}{shlex.quote(script_path)}"

    def _parse_job_id(self, stdout: str) -> str | None:
        if self.regex_job_id:
            match = re.search(self.regex_job_id, stdout)
            return match.group("id") if match else None
        lines = [line.strip() for line in stdout.splitlines() if line.strip()]
        match = re.fullmatch(r"(\d+)(?:;\S+)?", lines[-1]) if lines else None  # "id" or "id;cluster"
        if match is None and lines:  # sbatch without --parsable (a wrapper script, a site's sbatch)
            match = re.fullmatch(r"Submitted batch job (\d+)(?: on cluster \S+)?", lines[-1])
        return match.group(1) if match else None

    # ---- status -------------------------------------------------------------------------

    def _cluster_option(self) -> str:
        return f" --clusters={shlex.quote(self.clusters)}" if self.clusters else ""

    def _query_status(self, job_ids: list[str]) -> dict[str, JobStatus]:
        cmd = f"squeue --noheader --states=all --format='%i|%t|%r'{self._cluster_option()} --jobs={','.join(job_ids)}"
        rc, out, err = self.run(cmd, idempotent=True)
        if rc != 0:
            if "Invalid job id" in err:  # none of the ids is known any more
                return {}
            raise SchedulerCommandError(cmd, f"exit code {rc}: {(err or out).strip()[:1000]}")
        wanted = set(job_ids)
        found: dict[str, JobStatus] = {}
        for line in out.splitlines():
            line = line.strip()
            if not line or line.startswith("CLUSTER:"):
                continue
            match = _SQUEUE_LINE.fullmatch(line)
            if match is None:
                raise SchedulerCommandError(cmd, f"cannot parse squeue's answer line {line[:200]!r}")
            job_id, code, reason = match["id"], match["state"], match["reason"].strip()
            if job_id not in wanted:
                continue
            state = SQUEUE_STATES.get(code, JobState.UNKNOWN)
            found[job_id] = self._status(job_id, state, code, reason)
        return found

    def _status(self, job_id: str, state: JobState, code: str, reason: str) -> JobStatus:
        message = f"squeue state {code}" + (f", reason {reason}" if reason and reason != "None" else "")
        exit_code = None
        if state in (JobState.FAILED, JobState.TIMEOUT):
            details = self._scontrol(job_id) or {}
            exit_code = _exit_code(details.get("ExitCode"))
            if exit_code is not None:
                message += f", exit code {exit_code}"
        elif state is JobState.COMPLETED:
            exit_code = 0
        return JobStatus(state, message, exit_code=exit_code)

    def _resolve_vanished(self, job_ids: list[str]) -> dict[str, JobStatus]:
        found = self._from_sacct(job_ids) if self._sacct_usable is not False else {}
        for job_id in job_ids:
            if job_id in found:
                continue
            details = self._scontrol(job_id)
            if details is not None and "JobState" in details:
                long_state = details["JobState"]
                exit_code = _exit_code(details.get("ExitCode"))
                message = f"scontrol JobState={long_state}, Reason={details.get('Reason', '?')}, exit code {exit_code}"
                found[job_id] = JobStatus(SLURM_LONG_STATES.get(long_state, JobState.UNKNOWN), message, exit_code)
        for job_id in job_ids:
            found.setdefault(
                job_id,
                JobStatus(
                    JobState.MISSING,
                    f"Slurm no longer knows job {job_id}: not in squeue, "
                    + ("sacct" if self._sacct_usable else "sacct (accounting disabled)")
                    + " or scontrol show job",
                ),
            )
        return found

    def _from_sacct(self, job_ids: list[str]) -> dict[str, JobStatus]:
        cmd = f"sacct --noheader --parsable2 --allocations --format=JobID,State,ExitCode,Reason{self._cluster_option()}"
        cmd += f" --jobs={','.join(job_ids)}"
        try:
            rc, out, err = self.run(cmd, idempotent=True)
        except SchedulerCommandError as e:
            logger.warning("sacct unusable, falling back to scontrol: %s", e)
            return {}
        if rc != 0:
            if "accounting storage is disabled" in err.lower() or "slurmdbd" in err.lower():
                self._sacct_usable = False
            logger.info("sacct cannot resolve jobs (%s); using scontrol", err.strip()[:200])
            return {}
        self._sacct_usable = True
        found: dict[str, JobStatus] = {}
        for line in out.splitlines():
            parts = line.strip().split("|")  # JobID|State|ExitCode|Reason; State may be "CANCELLED by 0"
            if len(parts) < 3 or parts[0] not in job_ids or not parts[1]:
                continue
            state, exit_code = parts[1].split()[0], _exit_code(parts[2])
            message = f"sacct State={parts[1]}, exit code {exit_code}"
            found[parts[0]] = JobStatus(SLURM_LONG_STATES.get(state, JobState.UNKNOWN), message, exit_code)
        return found

    def _scontrol(self, job_id: str) -> dict[str, str] | None:
        """``scontrol show job -o ID`` as a dict, or None when Slurm does not know the job."""
        try:
            rc, out, _ = self.run(f"scontrol --oneliner show job {shlex.quote(job_id)}", idempotent=True)
        except SchedulerCommandError as e:
            logger.warning("scontrol failed for job %s: %s", job_id, e)
            return None
        if rc != 0:
            return None
        return dict(token.split("=", 1) for token in out.split() if "=" in token)

    # ---- cancel -------------------------------------------------------------------------

    def _cancel_command(self, job_ids: list[str]) -> str:
        return f"scancel{self._cluster_option()} " + " ".join(shlex.quote(j) for j in job_ids)

    def _cancel_batch(self, job_ids: list[str]) -> dict[str, bool]:
        rc, _, err = self.run(self._cancel_command(job_ids), idempotent=True)
        if rc == 0:
            return dict.fromkeys(job_ids, True)
        refused = set(re.findall(r"job id (\d+)", err))
        if not refused:
            return dict.fromkeys(job_ids, False)
        return {job_id: job_id not in refused for job_id in job_ids}
