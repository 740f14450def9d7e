"""LocalProvider: each block is a process group on the channel's machine, with no scheduler.

::

    submit:  setsid bash -c '<record pid>; bash SCRIPT; echo $? > SCRIPT.ec'  > NAME.stdout 2> NAME.stderr &
               └─ the job id is that wrapper's pid, which is also its session and process-group id
    status:  SCRIPT.ec exists -> COMPLETED (0) / FAILED (its exit code)
             the session still has a live process running SCRIPT -> RUNNING
             neither -> CANCELLED (the whole group was killed before it could record an exit code)
    cancel:  SIGTERM to the group, SIGKILL after ``cancel_grace`` seconds if anything is left

Everything runs through the channel, so the same works on a login node over SSH.
"""

from __future__ import annotations

import logging
import os
import shlex

from flowlib.channels.base import Channel
from flowlib.jobs.states import JobState, JobStatus
from flowlib.launchers.base import Launcher
from flowlib.providers.cluster import ClusterProvider
from flowlib.providers.errors import SchedulerCommandError, SubmitException

logger = logging.getLogger(__name__)

__all__ = ["LocalProvider"]

# Is session $1 (a setsid'd wrapper's pid) still running anything that is not a zombie?
# PID 1 may reap orphans late, so `kill -0` alone would count zombies as alive.
_ALIVE = 'flowlib_alive() { ps -o stat= -s "$1" 2>/dev/null | grep -qv "^Z"; }'
_KILL_GRACE = 5.0
"""Seconds for SIGKILLed processes to be gone before a cancel is reported as failed (a busy machine is slow)."""


class LocalProvider(ClusterProvider):
    """Run blocks as local process groups (a laptop, a workstation, or inside an allocation).

    :param channel: where the processes run (default: a new ``LocalChannel()``).
    :param nodes_per_block: must be 1 with the default launcher (this is one machine).
    :param launcher: default a new ``SingleNodeLauncher()``.
    :param worker_init: shell run before the workers start.
    :param cmd_timeout: seconds each shell command through the channel may take.

    ``cores_per_node`` and ``mem_per_node`` (GB) describe this machine; they are read
    when first asked for, not at construction.
    """

    scheduler = "local"
    template = "local.sh"
    workers_on_this_machine = True
    cancel_grace: float = 5.0
    """Seconds between SIGTERM and SIGKILL when cancelling."""
    status_batch_size = 200
    submitted_state = JobState.RUNNING  # submit starts the block's process (as Parsl's LocalProvider says)

    def __init__(
        self,
        nodes_per_block: int = 1,
        launcher: Launcher | None = None,
        init_blocks: int = 1,
        min_blocks: int = 0,
        max_blocks: int = 1,
        worker_init: str = "",
        cmd_timeout: float = 30,
        parallelism: float = 1,
        channel: Channel | None = None,
        move_files: bool | None = None,
        label: str = "local",
    ) -> None:
        super().__init__(
            label=label,
            channel=channel,
            nodes_per_block=nodes_per_block,
            init_blocks=init_blocks,
            min_blocks=min_blocks,
            max_blocks=max_blocks,
            parallelism=parallelism,
            walltime=None,
            worker_init=worker_init,
            scheduler_options="",
            launcher=launcher,
            cmd_timeout=cmd_timeout,
            move_files=move_files,
        )
        self._cores: int | None = None
        self._mem: float | None = None

    @property
    def status_polling_interval(self) -> float:
        """Seconds between status polls: 1 (asking costs only a ``ps``)."""
        return 1.0

    # ---- machine size, read lazily ------------------------------------------------------

    @property
    def cores_per_node(self) -> int | None:
        """CPUs of this machine (``os.cpu_count()``), unless set."""
        if self._cores is None:
            self._cores = os.cpu_count()
        return self._cores

    @cores_per_node.setter
    def cores_per_node(self, value: int | None) -> None:
        self._cores = value

    @property
    def mem_per_node(self) -> float | None:
        """Memory of this machine in GB (``MemTotal`` of /proc/meminfo), unless set; None if unknown."""
        if self._mem is None:
            try:
                with open("/proc/meminfo") as f:
                    for line in f:
                        if line.startswith("MemTotal:"):
                            self._mem = int(line.split()[1]) / 1024**2  # kB -> GB
                            break
            except OSError:
                return None
        return self._mem

    @mem_per_node.setter
    def mem_per_node(self, value: float | None) -> None:
        self._mem = value

    # ---- submit -------------------------------------------------------------------------

    def _submit_script(self, name: str, script_path: str, stdout_path: str, stderr_path: str) -> str:
        script = shlex.quote(script_path)
        wrapper = shlex.quote('echo $$ > "$0.pid"; bash "$0"; echo $? > "$0.ec"')
        pid_file = shlex.quote(script_path + ".pid")
        cmd = (
            f"rm -f {pid_file} {shlex.quote(script_path + '.ec')}; "
            f"setsid bash -c {wrapper} {script} > {shlex.quote(stdout_path)} 2> {shlex.quote(stderr_path)} "
            f"< /dev/null & "
            f"for i in $(seq 100); do [ -s {pid_file} ] && break; sleep 0.05; done; cat {pid_file}"
        )
        rc, out, err = self.run(cmd, idempotent=False)
        job_id = out.strip()
        if rc != 0 or not job_id.isdigit():
            raise SubmitException(name, f"the block did not start (exit code {rc})", stdout=out, stderr=err)
        return job_id

    # ---- status -------------------------------------------------------------------------

    def _query_status(self, job_ids: list[str]) -> dict[str, JobStatus]:
        with self._lock:
            scripts = {j: self.resources[j]["script_path"] for j in job_ids if j in self.resources}
        checks = []
        for job_id, script in scripts.items():
            if not job_id.isdigit():
                continue
            ec, q = shlex.quote(script + ".ec"), shlex.quote(script)
            checks.append(
                f"if [ -s {ec} ]; then echo {job_id} exit $(cat {ec}); "
                f"elif flowlib_alive {job_id} && ps -o args= -p {job_id} | grep -qF -- {q}; "
                f"then echo {job_id} running; elif [ -s {ec} ]; then echo {job_id} exit $(cat {ec}); "
                f"else echo {job_id} gone; fi"  # the exit code is read again: the job may just have ended
            )
        if not checks:
            return {}
        cmd = _ALIVE + "; " + "; ".join(checks)
        rc, out, err = self.run(cmd, idempotent=True)
        found: dict[str, JobStatus] = {}
        for line in out.splitlines():
            fields = line.split()
            if rc != 0 or len(fields) < 2 or fields[0] not in scripts:
                raise SchedulerCommandError(
                    "status of local processes", f"unexpected answer {out[:300]!r} {err[:300]!r}"
                )
            job_id, what = fields[0], fields[1]
            if what == "running":
                found[job_id] = JobStatus(JobState.RUNNING, f"process group {job_id} is running")
            elif what == "exit" and len(fields) == 3 and fields[2].lstrip("-").isdigit():
                code = int(fields[2])
                state = JobState.COMPLETED if code == 0 else JobState.FAILED
                # as Parsl's: a job that succeeded has no message; a failure says its exit code
                message = None if code == 0 else f"the block's script exited with code {code}"
                found[job_id] = JobStatus(state, message, exit_code=code)
            else:
                message = f"process group {job_id} ended without recording an exit code (killed by a signal)"
                found[job_id] = JobStatus(JobState.CANCELLED, message)
        return found

    def _resolve_vanished(self, job_ids: list[str]) -> dict[str, JobStatus]:
        return {j: JobStatus(JobState.MISSING, f"{j} is not a block this LocalProvider started") for j in job_ids}

    # ---- cancel -------------------------------------------------------------------------

    def _cancel_batch(self, job_ids: list[str]) -> dict[str, bool]:
        pids = [j for j in job_ids if j.isdigit()]
        if not pids:
            return dict.fromkeys(job_ids, False)
        listed = " ".join(pids)

        def wait_for_exit(seconds: float) -> str:  # poll every 0.1 s until none is alive, at most `seconds`
            steps = max(1, int(seconds / 0.1))
            return (
                f"for i in $(seq {steps}); do left=; for p in {listed}; do flowlib_alive $p && left=1; done; "
                f'[ -z "$left" ] && break; sleep 0.1; done; '
            )

        cmd = (
            f"{_ALIVE}; for p in {listed}; do kill -TERM -- -$p 2>/dev/null; done; "
            + wait_for_exit(self.cancel_grace)
            + f"for p in {listed}; do flowlib_alive $p && kill -KILL -- -$p 2>/dev/null; done; "
            + wait_for_exit(_KILL_GRACE)
            + f"for p in {listed}; do flowlib_alive $p && echo $p alive || echo $p ended; done"
        )
        rc, out, _ = self.run(cmd, idempotent=True)
        ended = {line.split()[0] for line in out.splitlines() if line.endswith(" ended")}
        return {job_id: job_id in ended for job_id in job_ids}
