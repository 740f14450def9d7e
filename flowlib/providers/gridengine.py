"""GridEngineProvider: blocks are (Son of / Univa / Altair) Grid Engine jobs, via ``qsub``, ``qstat``, ``qdel``.

``qstat`` lists only queued and running jobs, so a job that leaves it is looked up
in the accounting file with ``qacct -j ID``. Grid Engine writes accounting records
a little after a job ends (its ``flush_time``); until :attr:`accounting_grace`
seconds have passed, a job that left ``qstat`` but has no record yet keeps its
last known state, then it is reported MISSING.
"""

from __future__ import annotations

import logging
import re
import shlex
import time
from typing import Any

from flowlib.channels.base import Channel
from flowlib.jobs.states import JobState, JobStatus
from flowlib.launchers.base import Launcher
from flowlib.providers.cluster import ClusterProvider
from flowlib.providers.cluster_checks import check_positive_int
from flowlib.providers.errors import SchedulerCommandError
from flowlib.validation import validate_arguments

logger = logging.getLogger(__name__)

__all__ = ["GridEngineProvider", "translate_qstat_state"]


def translate_qstat_state(code: str) -> JobState:
    """A qstat state string (one letter per flag, e.g. ``qw``, ``r``, ``dr``, ``Eqw``) as a JobState.

    The letters are documented in qstat(1), section "state": d(eletion), E(rror),
    h(old), r(unning), R(estarted), s(uspended), S(uspended by the queue),
    t(ransferring), T(hreshold), w(aiting), q(ueued); see
    https://gridscheduler.sourceforge.net/htmlman/htmlman1/qstat.html. Flags are
    checked most decisive first.
    """
    if not code or not code.isalpha():
        return JobState.UNKNOWN
    if "d" in code:
        return JobState.CANCELLED  # being deleted (qdel)
    if "E" in code:
        return JobState.FAILED  # error: the job could not start; it stays queued until cleared
    if "h" in code:
        return JobState.HELD
    if "s" in code or "S" in code or "T" in code:
        return JobState.HELD  # suspended by a user, a queue or a load threshold
    if "r" in code or "t" in code:
        return JobState.RUNNING  # running or being transferred to its execution host
    if "q" in code or "w" in code:
        return JobState.PENDING
    return JobState.UNKNOWN


class GridEngineProvider(ClusterProvider):
    """Blocks as Grid Engine jobs.

    :param queue: ``-q`` (the cluster's default queue when None).
    :param pe: parallel environment for ``-pe PE SLOTS``; the slots are
        ``nodes_per_block * (cores_per_node or tasks_per_node)``. None: no PE.
    :param cores_per_node: slots to ask per node when ``pe`` is set.
    :param walltime: ``-l h_rt``; ``"HH:MM:SS"`` or ``"D-HH:MM:SS"`` (sent as hours).
    :param scheduler_options: extra ``#$`` lines, added as given.

    Jobs run with ``-V`` (the submitting environment) and ``-cwd``. The default
    launcher is a new ``SingleNodeLauncher()``; srun-, aprun- and jsrun-based
    launchers are refused. See :class:`~flowlib.providers.cluster.ClusterProvider`.
    """

    scheduler = "Grid Engine"
    template = "gridengine.sh"
    status_batch_size = 10**9  # qstat lists all of the user's jobs in one call anyway
    accounting_grace: float = 30.0
    """Seconds to wait for qacct to know a job that left qstat before calling it MISSING."""

    def __init__(
        self,
        nodes_per_block: int = 1,
        init_blocks: int = 1,
        min_blocks: int = 0,
        max_blocks: int = 1,
        parallelism: float = 1,
        walltime: str = "00:10:00",
        scheduler_options: str = "",
        worker_init: str = "",
        launcher: Launcher | None = None,
        cmd_timeout: float = 60,
        queue: str | None = None,
        pe: str | None = None,
        cores_per_node: int | None = None,
        channel: Channel | None = None,
        move_files: bool | None = None,
        label: str = "grid_engine",
    ) -> None:
        self._validate_sge(locals())
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
        self.queue = queue
        self.pe = pe
        self.cores_per_node = cores_per_node
        self._vanished_at: dict[str, float] = {}

    @staticmethod
    def _validate_sge(values: dict[str, Any]) -> None:
        owner = "GridEngineProvider"
        validate_arguments(owner, {"queue": (values["queue"], str | None), "pe": (values["pe"], str | None)})
        if values["cores_per_node"] is not None:
            check_positive_int(owner, "cores_per_node", values["cores_per_node"])
        if values["nodes_per_block"] != 1 and values["pe"] is None:
            raise ValueError(
                f"{owner} with nodes_per_block={values['nodes_per_block']} needs a parallel environment (pe=...): "
                "Grid Engine spreads a job over several hosts only through one"
            )

    # ---- submit -------------------------------------------------------------------------

    def _template_values(self, job_name: str, tasks_per_node: int) -> dict[str, str]:
        assert self._walltime is not None
        lines = [f"-l h_rt={self._walltime.hms}"]
        if self.queue:
            lines.append(f"-q {self.queue}")
        if self.pe:
            slots = self.nodes_per_block * (self.cores_per_node or tasks_per_node)
            lines.append(f"-pe {self.pe} {slots}")
        return {"directives": "\n".join(f"#$ {line}" for line in lines)}

    def _submit_context(self) -> dict[str, object]:
        return {"queue": self.queue, "pe": self.pe}

    def _submit_command(self, script_path: str) -> str:
        return f"qsub -terse {shlex.quote(script_path)}"

    def _parse_job_id(self, stdout: str) -> str | None:
        lines = [line.strip() for line in stdout.splitlines() if line.strip()]
        match = re.fullmatch(r"(\d+)(?:\.\S+)?", lines[-1]) if lines else None  # "12", arrays: "12.1-10:1"
        return match.group(1) if match else None

    # ---- status -------------------------------------------------------------------------

    def _query_status(self, job_ids: list[str]) -> dict[str, JobStatus]:
        cmd = "qstat"
        rc, out, err = self.run(cmd, idempotent=True)
        if rc != 0:
            raise SchedulerCommandError(cmd, f"exit code {rc}: {(err or out).strip()[:1000]}")
        wanted = set(job_ids)
        found: dict[str, JobStatus] = {}
        for line in out.splitlines():
            if not line.strip() or line.startswith("job-ID") or set(line.strip()) == {"-"}:
                continue
            fields = line.split()
            if len(fields) < 5 or not fields[0].isdigit():
                raise SchedulerCommandError(cmd, f"cannot parse qstat's answer line {line.strip()[:200]!r}")
            job_id, code = fields[0], fields[4]
            if job_id in wanted and job_id not in found:
                state = translate_qstat_state(code)
                hint = "; see qstat -j " + job_id if state is JobState.FAILED else ""
                found[job_id] = JobStatus(state, f"qstat state {code}{hint}")
                self._vanished_at.pop(job_id, None)
        return found

    def _resolve_vanished(self, job_ids: list[str]) -> dict[str, JobStatus]:
        found: dict[str, JobStatus] = {}
        now = time.monotonic()
        for job_id in job_ids:
            record = self._qacct(job_id)
            if record is not None:
                found[job_id] = self._from_accounting(job_id, record)
                self._vanished_at.pop(job_id, None)
                continue
            with self._lock:
                last = self.resources[job_id]["status"] if job_id in self.resources else None
            since = self._vanished_at.setdefault(job_id, now)
            if last is not None and now - since < self.accounting_grace:
                found[job_id] = last  # accounting not written yet: keep the last known state
            else:
                self._vanished_at.pop(job_id, None)
                before = f"; it was last {last.state.name}" if last else ""
                found[job_id] = JobStatus(
                    JobState.MISSING,
                    f"Grid Engine job {job_id} left qstat and qacct has no record of it{before} "
                    "(deleted with qdel before it started?)",
                )
        return found

    def _qacct(self, job_id: str) -> dict[str, str] | None:
        """The last accounting record of the job (``qacct -j ID``), or None."""
        try:
            rc, out, _ = self.run(f"qacct -j {shlex.quote(job_id)}", idempotent=True)
        except SchedulerCommandError as e:
            logger.warning("qacct failed for job %s: %s", job_id, e)
            return None
        if rc != 0:
            return None
        record: dict[str, str] = {}
        for line in out.splitlines():
            if line.startswith("====="):
                record = {}  # a job started more than once has one record per start: keep the last
                continue
            key, _, value = line.partition(" ")
            if key:
                record[key] = value.strip()
        return record or None

    def _from_accounting(self, job_id: str, record: dict[str, str]) -> JobStatus:
        """Translate ``failed`` and ``exit_status`` as accounting(5) documents them
        (https://gridscheduler.sourceforge.net/htmlman/htmlman5/accounting.html)."""
        failed_text = record.get("failed", "0")
        failed = int(failed_text.split()[0]) if failed_text.split() and failed_text.split()[0].isdigit() else -1
        exit_text = record.get("exit_status", "")
        exit_code = int(exit_text.split()[0]) if exit_text.split() and exit_text.split()[0].isdigit() else None
        if failed == 0:
            state = JobState.COMPLETED if exit_code == 0 else JobState.FAILED
            return JobStatus(state, f"qacct exit_status {exit_code}", exit_code)
        if failed == 100 and exit_code is not None and exit_code > 128:  # "assumedly after job": ended by a signal
            wallclock = re.match(r"\d+", record.get("ru_wallclock", ""))
            if self._walltime and wallclock and int(wallclock.group()) >= self._walltime.seconds - 1:
                return JobStatus(JobState.TIMEOUT, f"killed at its walltime h_rt={self._walltime.hms}", exit_code)
            message = f"killed by signal {exit_code - 128} (qdel, or a resource limit)"
            return JobStatus(JobState.CANCELLED, message, exit_code)
        return JobStatus(JobState.FAILED, f"qacct failed {failed_text}, exit_status {exit_text}", exit_code)

    # ---- cancel -------------------------------------------------------------------------

    def _cancel_command(self, job_ids: list[str]) -> str:
        return "qdel " + " ".join(shlex.quote(j) for j in job_ids)

    def _cancel_batch(self, job_ids: list[str]) -> dict[str, bool]:
        rc, out, err = self.run(self._cancel_command(job_ids), idempotent=True)
        if rc == 0:
            return dict.fromkeys(job_ids, True)
        # "user has registered the job 4 for deletion" / "user has deleted job 5" / 'denied: job "9" does not exist'
        accepted = set(re.findall(r"(?:registered the job|deleted job) (\d+)", out + err))
        return {job_id: job_id in accepted for job_id in job_ids}
