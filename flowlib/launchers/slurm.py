"""Launchers for Slurm jobs: SrunLauncher (one job step) and SrunMPILauncher (one step per node)."""

from __future__ import annotations

from flowlib.launchers._shell import ShellLauncher, check_constructor, snippet


class SrunLauncher(ShellLauncher):
    """Start the copies as one Slurm job step across the block.

    Renders ``srun --nodes=N --ntasks=N*T --ntasks-per-node=T --label <overrides>
    /bin/bash -c <command>``: ``tasks_per_node`` copies on each of the block's
    nodes; each copy sees Slurm's ``SLURM_PROCID`` (0 .. N*T-1), ``SLURM_LOCALID``,
    ``SLURM_NODEID`` and ``SLURMD_NODENAME``; output lines carry the copy's rank.
    ``overrides`` is shell text added to the ``srun`` options (one line), e.g.
    ``"--cpu-bind=none --gpus-per-task=1"``. The exit status is srun's: the
    highest of the copies'.
    """

    template = "srun.sh"

    def __init__(self, debug: bool = True, overrides: str = "") -> None:
        check_constructor(
            "SrunLauncher", {"debug": (debug, bool), "overrides": (overrides, str)}, one_line=("overrides",)
        )
        super().__init__(debug=debug)
        self.overrides = overrides

    def template_values(self, tasks_per_node: int, nodes_per_block: int) -> dict[str, str | int]:
        return {"overrides": self.overrides}


class SrunMPILauncher(ShellLauncher):
    """Start one independent Slurm job step per node, for worker pools that run MPI apps with srun.

    For each of the block's nodes (from ``scontrol show hostnames
    $SLURM_JOB_NODELIST``) it runs, in the background, ``srun --nodes=1
    --ntasks=T --nodelist=<node> --overlap --label <overrides> /bin/bash -c
    <command>``, then waits for all of them. Two choices make apps work:

    - one step per node, so each pool's environment (``SLURM_STEP_NODELIST``,
      ``SLURM_NTASKS``, ...) describes its own node;
    - ``--overlap`` (Slurm 20.11 and later): a pool's step shares its node's CPUs
      and memory with later steps, so an ``srun`` that the pool starts for an MPI
      app gets the node's resources instead of waiting behind the pool's own step.

    The job must have at least ``nodes_per_block`` nodes (else the text fails
    with a message saying how many it has). The exit status is that of the
    first step (in node order) that failed, else 0. ``overrides`` is shell text
    added to every ``srun`` (one line).
    """

    template = "srun_mpi.sh"

    def __init__(self, debug: bool = True, overrides: str = "") -> None:
        check_constructor(
            "SrunMPILauncher", {"debug": (debug, bool), "overrides": (overrides, str)}, one_line=("overrides",)
        )
        super().__init__(debug=debug)
        self.overrides = overrides

    def template_values(self, tasks_per_node: int, nodes_per_block: int) -> dict[str, str | int]:
        return {
            "overrides": self.overrides,
            "node_functions": snippet("nodes.sh", "SrunMPILauncher"),
            "wait_functions": snippet("wait.sh", "SrunMPILauncher"),
        }
