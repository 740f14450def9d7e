"""Launchers through an MPI library's process starter: MpiExecLauncher and MpiRunLauncher."""

from __future__ import annotations

import re
import shlex

from flowlib.launchers._shell import ShellLauncher, check_constructor, snippet

# A -ppn/--ppn option already in the user's overrides: then the launcher adds none.
_PPN_OPTION = re.compile(r"(?:^|\s)--?ppn(?:[\s=]|$)")


class MpiExecLauncher(ShellLauncher):
    """Start the copies with ``mpiexec``, ``tasks_per_node`` on each node of the block.

    The nodes come from the batch job: ``$PBS_NODEFILE`` (PBS Pro, Torque),
    ``$SLURM_JOB_NODELIST`` (Slurm, through ``scontrol show hostnames``) or
    ``$PE_HOSTFILE`` (Grid Engine), first ``nodes_per_block`` of them; outside a
    batch job every copy runs on ``localhost``. The text writes them to a
    temporary hostfile and runs::

        mpiexec -n N*T <bind_cmd> none --hostfile <file> [-ppn T] <overrides> /bin/bash -c <command>

    It asks ``mpiexec --version`` which MPI it is: for Open MPI the hostfile
    gives each node ``slots=T``; for the others (MPICH, Intel MPI, Cray PALS)
    the hostfile lists the nodes and ``-ppn T`` places the copies, unless
    ``overrides`` already has a ``-ppn``/``--ppn``. ``bind_cmd`` is the MPI's
    binding option (``"--bind-to"`` for Open MPI and MPICH, ``"--cpu-bind"`` for
    Cray PALS), given the value ``none`` so that a worker pool is not pinned to
    one core; ``""`` leaves binding to the MPI's default. Copies see the MPI's
    rank variable (``OMPI_COMM_WORLD_RANK`` or ``PMI_RANK``).

    Open MPI refuses to run as root unless ``--allow-run-as-root`` is in
    ``overrides`` or ``OMPI_ALLOW_RUN_AS_ROOT=1`` and
    ``OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1`` are set; the launcher adds neither.
    """

    template = "mpiexec.sh"

    def __init__(self, debug: bool = True, bind_cmd: str = "--bind-to", overrides: str = "") -> None:
        check_constructor(
            "MpiExecLauncher",
            {"debug": (debug, bool), "bind_cmd": (bind_cmd, str), "overrides": (overrides, str)},
            one_line=("bind_cmd", "overrides"),
        )
        super().__init__(debug=debug)
        self.bind_cmd = bind_cmd
        self.overrides = overrides

    def template_values(self, tasks_per_node: int, nodes_per_block: int) -> dict[str, str | int]:
        return {
            "bind": f"{self.bind_cmd} none" if self.bind_cmd.strip() else "",
            "ppn_placement": (
                "flowlib_placement=  # the overrides place the copies"
                if _PPN_OPTION.search(self.overrides)
                else 'flowlib_placement="-ppn $flowlib_per_node"'
            ),
            "overrides": self.overrides,
            "node_functions": snippet("nodes.sh", "MpiExecLauncher"),
        }


class MpiRunLauncher(ShellLauncher):
    """Start the copies with ``mpirun -np N*T <overrides> <bash_location> -c <command>``.

    No hostfile: ``mpirun`` takes the nodes from its own batch-system support
    (Open MPI and MPICH read Slurm, PBS and LSF allocations), and places the
    copies by its own policy; add placement options such as
    ``"--map-by ppr:1:node"`` (Open MPI) or ``"-ppn 1"`` (MPICH) to
    ``overrides`` to control it. ``bash_location`` is the bash that runs each
    copy on the compute nodes. See :class:`MpiExecLauncher` about Open MPI and
    root; outside a batch job Open MPI also needs ``--oversubscribe`` to start
    more copies than this machine has cores.
    """

    template = "mpirun.sh"

    def __init__(self, debug: bool = True, bash_location: str = "/bin/bash", overrides: str = "") -> None:
        check_constructor(
            "MpiRunLauncher",
            {"debug": (debug, bool), "bash_location": (bash_location, str), "overrides": (overrides, str)},
            one_line=("overrides",),
        )
        if not bash_location.strip():
            raise ValueError("MpiRunLauncher argument 'bash_location' must not be empty")
        super().__init__(debug=debug)
        self.bash_location = bash_location
        self.overrides = overrides

    def template_values(self, tasks_per_node: int, nodes_per_block: int) -> dict[str, str | int]:
        return {"bash_location": shlex.quote(self.bash_location), "overrides": self.overrides}
