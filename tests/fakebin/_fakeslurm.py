"""Fake Slurm commands for tests/test_launchers.py.

srun: starts a job step's tasks as local processes, inside a (fake) allocation
named by SLURM_JOB_NODELIST. Options as documented in srun(1): -N/--nodes, -n/--ntasks,
--ntasks-per-node, -w/--nodelist, -l/--label, --overlap, --exclusive, --cpu-bind, --export.
Tasks are placed in block distribution; each sees SLURM_PROCID, SLURM_LOCALID, SLURM_NODEID,
SLURMD_NODENAME, SLURM_NTASKS, SLURM_NNODES, SLURM_STEP_NODELIST and FAKE_NODE.

scontrol: only `scontrol show hostnames [LIST]` (LIST defaults to
SLURM_JOB_NODELIST), which prints one host name a line, as the real one does.
"""

from __future__ import annotations

import math
import os
import sys

import _fakelib as fake

SPEC = {
    "-N": "value",
    "--nodes": "value",
    "-n": "value",
    "--ntasks": "value",
    "--ntasks-per-node": "value",
    "-w": "value",
    "--nodelist": "value",
    "-l": "flag",
    "--label": "flag",
    "--overlap": "flag",
    "--exclusive": "flag",
    "--cpu-bind": "value",
    "--export": "value",
}


def srun(argv: list[str]) -> int:
    fake.log_call("srun", argv)
    options, program = fake.parse("srun", argv, SPEC)
    allocation = fake.expand_hostlist(os.environ.get("SLURM_JOB_NODELIST", ""))
    if not allocation:
        fake.fail("srun", "this fake srun runs only inside a job allocation (SLURM_JOB_NODELIST)")
    wanted = fake.expand_hostlist(fake.option(options, "-w", "--nodelist") or "")
    if any(node not in allocation for node in wanted):
        fake.fail("srun", f"Requested node configuration is not available (nodelist {wanted}, job has {allocation})")
    nodes = fake.positive("srun", "--nodes", fake.option(options, "-N", "--nodes")) or len(wanted) or len(allocation)
    if nodes > len(allocation) or len(wanted) > nodes:
        fake.fail("srun", f"Requested node configuration is not available ({nodes} nodes, job has {len(allocation)})")
    used = (wanted + [node for node in allocation if node not in wanted])[:nodes]
    per_node = fake.positive("srun", "--ntasks-per-node", fake.option(options, "--ntasks-per-node"))
    ntasks = fake.positive("srun", "--ntasks", fake.option(options, "-n", "--ntasks")) or (per_node or 1) * nodes
    if per_node and ntasks > per_node * nodes:
        fake.fail("srun", f"--ntasks={ntasks} does not fit {nodes} nodes with --ntasks-per-node={per_node}")
    placement = fake.block_placement(ntasks, used, per_node or math.ceil(ntasks / nodes))
    common = {
        "SLURM_NTASKS": str(ntasks),
        "SLURM_STEP_NUM_TASKS": str(ntasks),
        "SLURM_NNODES": str(nodes),
        "SLURM_STEP_NODELIST": ",".join(used),
    }
    copies = [
        {
            **common,
            "SLURM_PROCID": str(rank),
            "SLURM_LOCALID": str(local),
            "SLURM_NODEID": str(used.index(node)),
            "SLURMD_NODENAME": node,
            "FAKE_NODE": node,
        }
        for rank, (node, local) in enumerate(zip(placement, fake.local_ranks(placement), strict=True))
    ]
    label = "-l" in options or "--label" in options
    return fake.run_copies(copies, program, label=label)


def scontrol(argv: list[str]) -> int:
    fake.log_call("scontrol", argv)
    args = list(argv)
    if args[:2] != ["show", "hostnames"] or len(args) > 3:
        fake.fail("scontrol", f"this fake knows only 'show hostnames [LIST]', got {args}")
    listed = args[2] if len(args) == 3 else os.environ.get("SLURM_JOB_NODELIST", "")
    if not listed:
        fake.fail("scontrol", "no hostlist given and SLURM_JOB_NODELIST is not set")
    print("\n".join(fake.expand_hostlist(listed)))
    return 0


MAINS = {"srun": srun, "scontrol": scontrol}

if __name__ == "__main__":
    sys.exit(MAINS[sys.argv[1]](sys.argv[2:]))
