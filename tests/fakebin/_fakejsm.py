"""Fake IBM jsrun. Options as documented in jsrun(1): -n/--nrs resource sets, -r/--rs_per_host,
-a/--tasks_per_rs (default 1), -c/--cpu_per_rs, -g/--gpu_per_rs, -b/--bind. Hosts are named
host0, host1, ...; each task sees JSM_NAMESPACE_RANK, JSM_NAMESPACE_SIZE, JSM_NAMESPACE_LOCAL_RANK,
OMPI_COMM_WORLD_RANK and FAKE_NODE.
"""

from __future__ import annotations

import math
import sys

import _fakelib as fake

SPEC = {
    "-n": "value",
    "--nrs": "value",
    "-r": "value",
    "--rs_per_host": "value",
    "-a": "value",
    "--tasks_per_rs": "value",
    "-c": "value",
    "--cpu_per_rs": "value",
    "-g": "value",
    "--gpu_per_rs": "value",
    "-b": "value",
    "--bind": "value",
}


def jsrun(argv: list[str]) -> int:
    fake.log_call("jsrun", argv)
    options, program = fake.parse("jsrun", argv, SPEC)
    sets = fake.positive("jsrun", "--nrs", fake.option(options, "-n", "--nrs")) or 1
    per_host = fake.positive("jsrun", "--rs_per_host", fake.option(options, "-r", "--rs_per_host")) or sets
    tasks_per_set = fake.positive("jsrun", "--tasks_per_rs", fake.option(options, "-a", "--tasks_per_rs")) or 1
    hosts = [f"host{i}" for i in range(math.ceil(sets / per_host))]
    placement = [node for node in fake.block_placement(sets, hosts, per_host) for _ in range(tasks_per_set)]
    size = str(len(placement))
    copies = [
        {
            "JSM_NAMESPACE_RANK": str(rank),
            "JSM_NAMESPACE_SIZE": size,
            "JSM_NAMESPACE_LOCAL_RANK": str(local),
            "OMPI_COMM_WORLD_RANK": str(rank),
            "FAKE_NODE": node,
        }
        for rank, (node, local) in enumerate(zip(placement, fake.local_ranks(placement), strict=True))
    ]
    return fake.run_copies(copies, program)


MAINS = {"jsrun": jsrun}

if __name__ == "__main__":
    sys.exit(MAINS[sys.argv[1]](sys.argv[2:]))
