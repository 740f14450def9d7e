"""GnuParallelLauncher: GNU parallel over ssh to the job's nodes."""

from __future__ import annotations

from flowlib.launchers._shell import ShellLauncher, check_constructor, snippet


class GnuParallelLauncher(ShellLauncher):
    """Start the copies with GNU ``parallel``, over ssh to each node of the block.

    The nodes come from the batch job as for :class:`MpiExecLauncher`
    (``$PBS_NODEFILE``, ``$SLURM_JOB_NODELIST``, ``$PE_HOSTFILE``); they go into
    a temporary ``--sshloginfile``, where this machine is written as ``:``
    (GNU parallel's name for "run here, no ssh"). Outside a batch job every copy
    runs here. ``parallel`` runs ``tasks_per_node`` copies per node
    (``--jobs``), in the same working directory (``--workdir .``, so it must
    exist on every node, as on a shared file system), with this shell's
    ``PATH``; other environment variables are the remote login shell's, so set
    them in the command. Each copy sees ``PARALLEL_SEQ`` (1 .. N*T) and
    ``PARALLEL_SSHLOGIN``. The command travels in the environment variable
    ``FLOWLIB_LAUNCH_COMMAND`` (``--env``), so GNU parallel's replacement
    strings such as ``{}`` in it are left alone. The exit status is parallel's:
    the number of failed copies (0 when all succeed). Needs password-less ssh
    between the nodes.
    """

    template = "gnu_parallel.sh"

    def __init__(self, debug: bool = True) -> None:
        check_constructor("GnuParallelLauncher", {"debug": (debug, bool)})
        super().__init__(debug=debug)

    def template_values(self, tasks_per_node: int, nodes_per_block: int) -> dict[str, str | int]:
        return {"node_functions": snippet("nodes.sh", "GnuParallelLauncher")}
