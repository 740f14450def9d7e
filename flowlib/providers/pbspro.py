"""PBSProProvider: blocks are PBS Professional / OpenPBS jobs, asked for with ``-l select=``.

Shares the command set and ``qstat -f`` parsing with
:class:`~flowlib.providers.torque.TorqueProvider`. Finished jobs are read with
``qstat -x`` (job history; PBS Pro keeps finished jobs for ``job_history_duration``).

PBS Pro cannot run on flowlib's CI machines; this provider is tested against the
command output its documentation describes, with fake ``qsub``/``qstat``/``qdel``.
"""

from __future__ import annotations

from typing import ClassVar

from flowlib.channels.base import Channel
from flowlib.jobs.states import JobState
from flowlib.launchers.base import Launcher
from flowlib.providers.cluster_checks import check_positive_int
from flowlib.providers.torque import TorqueProvider
from flowlib.validation import validate_arguments

__all__ = ["PBSProProvider", "PBSPRO_STATES"]

# PBS Pro job states, PBS Professional Reference Guide, "Job States" (qstat(1B) job_state):
# https://help.altair.com/2022.1.0/PBS%20Professional/PBSReferenceGuide2022.1.pdf
# F (finished) and X (finished subjob) are translated from Exit_status instead.
PBSPRO_STATES: dict[str, JobState] = {
    "B": JobState.RUNNING,  # job array has begun
    "E": JobState.RUNNING,  # exiting after having run
    "F": JobState.COMPLETED,  # finished (history)
    "H": JobState.HELD,  # held
    "M": JobState.MISSING,  # moved to another server
    "Q": JobState.PENDING,  # queued
    "R": JobState.RUNNING,  # running
    "S": JobState.HELD,  # suspended by the server
    "T": JobState.PENDING,  # in transition to a new location
    "U": JobState.HELD,  # suspended: workstation became busy
    "W": JobState.PENDING,  # waiting for its execution time or after failed staging
    "X": JobState.COMPLETED,  # subjob finished (history)
}


class PBSProProvider(TorqueProvider):
    """Blocks as PBS Pro jobs.

    :param account: ``-A`` account (project) to charge.
    :param queue: ``-q`` destination queue.
    :param select_options: appended to each chunk of ``-l select=N:ncpus=C``,
        e.g. ``"mpiprocs=4:ngpus=1"`` (without the leading colon).
    :param cpus_per_node: ``ncpus`` per chunk (node).
    :param walltime: ``-l walltime``; ``"HH:MM:SS"`` or ``"D-HH:MM:SS"`` (sent as hours).
    :param scheduler_options: extra ``#PBS`` lines, added as given.

    The default launcher is a new ``SingleNodeLauncher()``. See
    :class:`~flowlib.providers.cluster.ClusterProvider` for the common keywords.
    """

    scheduler = "PBS Pro"
    template = "pbspro.sh"
    states: ClassVar[dict[str, JobState]] = PBSPRO_STATES
    exit_key: ClassVar[str] = "Exit_status"
    finished_letters: ClassVar[frozenset[str]] = frozenset({"F", "X"})
    qstat_options: ClassVar[str] = "-f -x"

    def __init__(
        self,
        account: str | None = None,
        queue: str | None = None,
        scheduler_options: str = "",
        select_options: str = "",
        worker_init: str = "",
        nodes_per_block: int = 1,
        cpus_per_node: int = 1,
        init_blocks: int = 1,
        min_blocks: int = 0,
        max_blocks: int = 1,
        parallelism: float = 1,
        launcher: Launcher | None = None,
        walltime: str = "00:20:00",
        cmd_timeout: float = 120,
        channel: Channel | None = None,
        move_files: bool | None = None,
        label: str = "pbspro",
    ) -> None:
        validate_arguments("PBSProProvider", {"select_options": (select_options, str)})
        check_positive_int("PBSProProvider", "cpus_per_node", cpus_per_node)
        super().__init__(
            channel=channel,
            account=account,
            queue=queue,
            scheduler_options=scheduler_options,
            worker_init=worker_init,
            nodes_per_block=nodes_per_block,
            init_blocks=init_blocks,
            min_blocks=min_blocks,
            max_blocks=max_blocks,
            parallelism=parallelism,
            launcher=launcher,
            walltime=walltime,
            cmd_timeout=cmd_timeout,
            move_files=move_files,
            label=label,
        )
        self.select_options = select_options.lstrip(":")
        self.cpus_per_node = cpus_per_node
        self.cores_per_node = cpus_per_node

    def _resource_lines(self, tasks_per_node: int) -> list[str]:
        chunk = f"{self.nodes_per_block}:ncpus={self.cpus_per_node}"
        if self.select_options:
            chunk += f":{self.select_options}"
        return [f"-l select={chunk}"]
