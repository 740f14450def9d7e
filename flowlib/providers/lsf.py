"""LSFProvider: blocks are IBM Spectrum LSF jobs, via ``bsub``, ``bjobs`` and ``bkill``.

::

    ClusterProvider (script rendering, channel, retries, job table)
        └─ LSFProvider: templates/lsf_job.sh with #BSUB directives
             bsub [<] SCRIPT           -> "Job <ID> is submitted to queue <QUEUE>."
             bjobs -a -noheader -o ... -> one line per job: id|STAT|exit code|exit reason
             bkill ID ...              -> "Job <ID> is being terminated" (one line per job)

LSF cannot run on flowlib's CI machines; this provider is tested against the command
output the LSF documentation describes, with fake ``bsub``/``bjobs``/``bkill``
(tests/fakebin_lsf) that run each job as a real local process.
"""

from __future__ import annotations

import math
import re
import shlex

from flowlib.channels.base import Channel
from flowlib.jobs.states import JobState, JobStatus
from flowlib.launchers.base import Launcher
from flowlib.providers.cluster import ClusterProvider
from flowlib.providers.cluster_checks import check_positive_int
from flowlib.providers.errors import SchedulerCommandError
from flowlib.validation import validate_arguments

__all__ = ["LSFProvider", "LSF_STATES"]

# LSF job states, "bjobs" command reference, section "Job states" (STAT column):
# https://www.ibm.com/docs/en/spectrum-lsf/10.1.0?topic=bjobs-description
LSF_STATES: dict[str, JobState] = {
    "PEND": JobState.PENDING,  # pending: not yet started
    "PROV": JobState.PENDING,  # its hosts are being provisioned (dynamic hosts)
    "WAIT": JobState.PENDING,  # a chunk-job member waiting to run
    "RUN": JobState.RUNNING,  # running
    "PSUSP": JobState.HELD,  # suspended by its owner or an administrator while pending
    "USUSP": JobState.HELD,  # suspended by its owner or an administrator while running
    "SSUSP": JobState.HELD,  # suspended by LSF (load conditions, run window, preemption)
    "DONE": JobState.COMPLETED,  # finished with exit code 0
    "EXIT": JobState.FAILED,  # non-zero exit code, or killed (refined from the exit reason)
    "UNKWN": JobState.UNKNOWN,  # mbatchd lost contact with the sbatchd of the job's host
    "ZOMBI": JobState.FAILED,  # killed while its host was unreachable; LSF lost track of it
}
"""``bjobs`` STAT -> JobState. An EXIT job whose exit reason is a run-time limit
(``TERM_RUNLIMIT``) is TIMEOUT, one killed by its owner or an administrator
(``TERM_OWNER``, ``TERM_ADMIN``, ``TERM_FORCE_OWNER``, ``TERM_FORCE_ADMIN``) is CANCELLED."""

_CANCEL_REASONS = ("TERM_OWNER", "TERM_ADMIN", "TERM_FORCE_OWNER", "TERM_FORCE_ADMIN")
_FIELDS = "jobid stat exit_code exit_reason delimiter='|'"
_NOT_FOUND = re.compile(r"Job <(\d+(?:\[\d+\])?)> is not found")


class LSFProvider(ClusterProvider):
    """Blocks as LSF jobs (keywords as Parsl's LSFProvider).

    :param queue: ``-q`` queue; ``project``: ``-P`` project to charge.
    :param walltime: ``-W``, sent in LSF's ``[hours:]minutes`` (rounded up to a minute).
    :param request_by_nodes: ask for whole nodes with ``-nnodes nodes_per_block`` (IBM's
        CSM-based systems, e.g. Summit). When False, ``cores_per_block`` is required and
        sent as ``-n``, with ``-R "span[ptile=cores_per_node]"`` when ``cores_per_node`` is given.
    :param bsub_redirection: submit as ``bsub < SCRIPT`` (LSF reads ``#BSUB`` lines from
        standard input) instead of ``bsub SCRIPT``; needed where ``LSB_BSUB_PARSE_SCRIPT``
        is not enabled.
    :param scheduler_options: extra ``#BSUB`` lines, added as given.

    The default launcher is a new ``SingleNodeLauncher()``; ``JsrunLauncher`` is the usual
    choice for multi-node blocks. See :class:`~flowlib.providers.cluster.ClusterProvider`.
    """

    scheduler = "LSF"
    template = "lsf_job.sh"
    incompatible_launchers = frozenset({"SrunLauncher", "SrunMPILauncher", "AprunLauncher"})

    def __init__(
        self,
        channel: Channel | None = None,
        nodes_per_block: int = 1,
        cores_per_block: int | None = None,
        cores_per_node: int | None = None,
        init_blocks: int = 1,
        min_blocks: int = 0,
        max_blocks: int = 1,
        parallelism: float = 1,
        walltime: str = "00:10:00",
        scheduler_options: str = "",
        worker_init: str = "",
        project: str | None = None,
        queue: str | None = None,
        cmd_timeout: float = 120,
        move_files: bool | None = None,
        bsub_redirection: bool = False,
        request_by_nodes: bool = True,
        launcher: Launcher | None = None,
        label: str = "LSF",
    ) -> None:
        validate_arguments(
            "LSFProvider",
            {
                "project": (project, str | None),
                "queue": (queue, str | None),
                "bsub_redirection": (bsub_redirection, bool),
                "request_by_nodes": (request_by_nodes, bool),
            },
        )
        for name, value in (("cores_per_block", cores_per_block), ("cores_per_node", cores_per_node)):
            if value is not None:
                check_positive_int("LSFProvider", name, value)
        if not request_by_nodes and cores_per_block is None:
            raise ValueError("LSFProvider with request_by_nodes=False needs cores_per_block (sent as bsub -n)")
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
        self.cores_per_block = cores_per_block
        self.cores_per_node = cores_per_node
        self.project = project
        self.queue = queue
        self.bsub_redirection = bsub_redirection
        self.request_by_nodes = request_by_nodes

    # ---- submit -------------------------------------------------------------------------

    def _template_values(self, job_name: str, tasks_per_node: int) -> dict[str, str]:
        lines = []
        if self._walltime is not None:
            minutes = math.ceil(self._walltime.seconds / 60)
            lines.append(f"-W {minutes // 60}:{minutes % 60:02d}")
        if self.request_by_nodes:
            lines.append(f"-nnodes {self.nodes_per_block}")
        else:
            lines.append(f"-n {self.cores_per_block}")
            if self.cores_per_node is not None:
                lines.append(f'-R "span[ptile={self.cores_per_node}]"')
        if self.queue:
            lines.append(f"-q {self.queue}")
        if self.project:
            lines.append(f"-P {self.project}")
        return {"directives": "\n".join(f"#BSUB {line}" for line in lines)}

    def _submit_context(self) -> dict[str, object]:
        return {"queue": self.queue, "project": self.project}

    def _submit_command(self, script_path: str) -> str:
        return f"bsub {'< ' if self.bsub_redirection else ''}{shlex.quote(script_path)}"

    def _parse_job_id(self, stdout: str) -> str | None:
        match = re.search(r"Job <(\d+)> is submitted", stdout)
        return match.group(1) if match else None

    # ---- status -------------------------------------------------------------------------

    def _query_status(self, job_ids: list[str]) -> dict[str, JobStatus]:
        cmd = f'bjobs -a -noheader -o "{_FIELDS}" ' + " ".join(shlex.quote(j) for j in job_ids)
        rc, out, err = self.run(cmd, idempotent=True)
        complaints = [line for line in (err + out).splitlines() if "is not found" in line]
        if rc != 0 and not complaints:
            raise SchedulerCommandError(cmd, f"exit code {rc}: {(err or out).strip()[:1000]}")
        found: dict[str, JobStatus] = {}
        for line in out.splitlines():
            if not line.strip() or _NOT_FOUND.search(line):
                continue
            fields = line.split("|")
            if len(fields) != 4 or not re.fullmatch(r"\d+(\[\d+\])?", fields[0].strip()):
                raise SchedulerCommandError(cmd, f"cannot parse bjobs' answer: {line.strip()[:200]!r}")
            job_id, stat, code, reason = (field.strip() for field in fields)
            found[job_id] = self._translate(stat, code, reason)
        return found

    @staticmethod
    def _translate(stat: str, code: str, reason: str) -> JobStatus:
        state = LSF_STATES.get(stat, JobState.UNKNOWN)
        exit_code = int(code) if re.fullmatch(r"-?\d+", code) else (0 if stat == "DONE" else None)
        reason = "" if reason == "-" else reason
        if stat == "EXIT" and reason.startswith("TERM_RUNLIMIT"):
            state = JobState.TIMEOUT
        elif stat == "EXIT" and reason.startswith(_CANCEL_REASONS):
            state = JobState.CANCELLED
        message = f"bjobs STAT {stat}" + (f": {reason}" if reason else "")
        return JobStatus(state, message, exit_code)

    # ---- cancel -------------------------------------------------------------------------

    def _cancel_command(self, job_ids: list[str]) -> str:
        return "bkill " + " ".join(shlex.quote(j) for j in job_ids)

    def _cancel_batch(self, job_ids: list[str]) -> dict[str, bool]:
        """bkill answers per job: "is being terminated" and "has already finished" count as done."""
        result = self.run(self._cancel_command(job_ids), idempotent=True)
        answers = result.stdout + "\n" + result.stderr
        accepted: dict[str, bool] = {}
        for job_id in job_ids:
            mine = [line for line in answers.splitlines() if f"<{job_id}>" in line]
            ok = any("is being terminated" in line or "already finished" in line for line in mine)
            accepted[job_id] = ok or (result.rc == 0 and not mine)
        return accepted
