"""The command of every Flux job a FluxExecutor submits: ``python -m flowlib.executors.flux.run_task IN OUT``.

It runs the call serialized in ``IN`` (see :mod:`flowlib.executors.remote_call`)
and, in the job's rank 0 (``FLUX_TASK_RANK``), writes the serialized outcome to
``OUT`` (through a temporary file and a rename, so the executor never reads half
a result). The other ranks of a multi-task job run the call too and discard the
outcome, as each rank of an MPI program does its part.
"""

from __future__ import annotations

import os
import sys

from flowlib.executors.remote_call import run_packed_call


def main(argv: list[str]) -> int:
    """Run the task in ``argv[0]``; write its outcome to ``argv[1]`` on rank 0."""
    if len(argv) != 2:
        print("usage: python -m flowlib.executors.flux.run_task IN OUT", file=sys.stderr)
        return 2
    source, target = argv
    with open(source, "rb") as f:
        payload = f.read()
    outcome = run_packed_call(payload)
    if os.environ.get("FLUX_TASK_RANK", "0") == "0":
        partial = f"{target}.{os.getpid()}.tmp"
        with open(partial, "wb") as f:
            f.write(outcome)
        os.replace(partial, target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
