"""Fake Cray ALPS aprun. Options as documented in aprun(1): -n width (processing elements, default 1),
-N per node, -d depth, -cc cpu list, -j. Inside a PBS job (PBS_NODEFILE) the PEs must fit its nodes;
otherwise nodes are named nid00000, nid00001, ... Each PE sees ALPS_APP_PE and FAKE_NODE.
"""

from __future__ import annotations

import math
import sys

import _fakelib as fake

SPEC = {"-n": "value", "-N": "value", "-d": "value", "-cc": "value", "-j": "value"}


def aprun(argv: list[str]) -> int:
    fake.log_call("aprun", argv)
    options, program = fake.parse("aprun", argv, SPEC)
    width = fake.positive("aprun", "-n", fake.option(options, "-n")) or 1
    per_node = fake.positive("aprun", "-N", fake.option(options, "-N")) or width
    needed = math.ceil(width / per_node)
    nodes = fake.allocation_nodes() or [f"nid{i:05d}" for i in range(needed)]
    if needed > len(nodes):
        fake.fail("aprun", f"apsched: claim exceeds reservation's node-count ({needed} > {len(nodes)})")
    placement = fake.block_placement(width, nodes, per_node)
    copies = [{"ALPS_APP_PE": str(pe), "FAKE_NODE": node} for pe, node in enumerate(placement)]
    return fake.run_copies(copies, program)


MAINS = {"aprun": aprun}

if __name__ == "__main__":
    sys.exit(MAINS[sys.argv[1]](sys.argv[2:]))
