"""Run one flowlib call as an RP executable task: ``python -m flowlib.executors.radical.task_main IN OUT``.

Used for tasks with ``ranks`` > 1, which RP launches itself (every rank runs this).
Every rank runs the call; rank 0 writes the outcome to OUT (the other ranks' outcomes
are dropped), as flowlib's MPI-style apps expect rank 0 to speak for the task.
"""

from __future__ import annotations

import os
import sys

from flowlib.executors.remote_call import run_packed_call

_RANK_VARIABLES = ("RP_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID")


def rank() -> int:
    """This process's rank in the task, from the launcher's environment (0 when none is set)."""
    for name in _RANK_VARIABLES:
        value = os.environ.get(name)
        if value is not None and value.isdigit():
            return int(value)
    return 0


def main(argv: list[str]) -> int:
    """Run the call in ``argv[0]``; rank 0 writes the outcome to ``argv[1]``."""
    source, target = argv
    with open(source, "rb") as f:
        outcome = run_packed_call(f.read())
    if rank() == 0:
        partial = f"{target}.partial"
        with open(partial, "wb") as f:
            f.write(outcome)
        os.replace(partial, target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
