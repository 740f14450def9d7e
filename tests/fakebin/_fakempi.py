"""The fake mpiexec/mpirun: Open MPI's command line by default, MPICH Hydra's with FAKE_MPI_FLAVOR=mpich.

Open MPI (mpirun(1) of Open MPI 4): ``-n/-np N``, ``--hostfile/--machinefile F``
with lines ``host [slots=K]`` (a host without ``slots`` has as many as this
machine has cores; a repeated host adds up), ``--host h[:K],...``, ``--bind-to``,
``--map-by``, ``--oversubscribe``, ``--allow-run-as-root``, ``-x VAR``. Without a
hostfile or ``--host``, the slots are the job's nodes (Slurm, PBS), else this
machine's cores. Ranks fill each host's slots in order ("by slot"); more ranks
than slots is an error unless ``--oversubscribe``. As root it refuses to run
unless ``--allow-run-as-root`` or ``OMPI_ALLOW_RUN_AS_ROOT=1`` and
``OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1``. Ranks see ``OMPI_COMM_WORLD_RANK``,
``_SIZE``, ``_LOCAL_RANK``.

MPICH Hydra (mpiexec(1) of MPICH): ``-n/-np N``, ``-ppn K``, ``-f/-hostfile/
--hostfile/-machinefile F`` with lines ``host[:K]``, ``-bind-to``. With ``-ppn``
each host takes K ranks in turn; without, each takes its K (default 1). Ranks
see ``PMI_RANK``, ``PMI_SIZE``, ``MPI_LOCALRANKID``.

Every rank also sees ``FAKE_NODE``, the host it was placed on.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import _fakelib as fake

OPEN_MPI = {
    "-n": "value",
    "-np": "value",
    "--n": "value",
    "--np": "value",
    "--hostfile": "value",
    "-hostfile": "value",
    "--machinefile": "value",
    "-machinefile": "value",
    "--host": "value",
    "-H": "value",
    "--bind-to": "value",
    "--map-by": "value",
    "--oversubscribe": "flag",
    "--allow-run-as-root": "flag",
    "-x": "value",
}
MPICH = {
    "-n": "value",
    "-np": "value",
    "-ppn": "value",
    "--ppn": "value",
    "-f": "value",
    "-hostfile": "value",
    "--hostfile": "value",
    "-machinefile": "value",
    "-bind-to": "value",
    "--bind-to": "value",
}


def main(tool: str, argv: Sequence[str]) -> int:
    fake.log_call(tool, argv)
    flavor = os.environ.get("FAKE_MPI_FLAVOR", "openmpi")
    if list(argv) == ["--version"]:
        print(
            f"{tool} (OpenRTE) 4.1.4 (fake)" if flavor == "openmpi" else "HYDRA build details:\n    Version: 4.0 (fake)"
        )
        return 0
    if flavor == "openmpi":
        return _open_mpi(tool, argv)
    return _mpich(tool, argv)


def _open_mpi(tool: str, argv: Sequence[str]) -> int:
    options, program = fake.parse(tool, argv, OPEN_MPI)
    allowed = (
        os.environ.get("OMPI_ALLOW_RUN_AS_ROOT") == "1" and os.environ.get("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM") == "1"
    )
    if os.geteuid() == 0 and "--allow-run-as-root" not in options and not allowed:
        fake.fail(tool, "mpiexec has detected an attempt to run as root (fake Open MPI)")
    slots: dict[str, int] = {}
    hostfile = fake.option(options, "--hostfile", "-hostfile", "--machinefile", "-machinefile")
    hosts = fake.option(options, "--host", "-H")
    if hostfile:
        with open(hostfile, encoding="utf-8") as lines:
            for line in lines:
                words = line.split("#")[0].split()
                if words:
                    count = next((int(w[6:]) for w in words[1:] if w.startswith("slots=")), os.cpu_count() or 1)
                    slots[words[0]] = slots.get(words[0], 0) + count
    elif hosts:
        for entry in hosts.split(","):
            name, _, given = entry.partition(":")
            slots[name] = slots.get(name, 0) + int(given or 1)
    else:
        slots = {node: os.cpu_count() or 1 for node in fake.allocation_nodes() or ["localhost"]}
    total = sum(slots.values())
    ranks = fake.positive(tool, "-n", fake.option(options, "-n", "-np", "--n", "--np")) or total
    if ranks > total and "--oversubscribe" not in options:
        fake.fail(tool, f"There are not enough slots available in the system to satisfy the {ranks} slots")
    by_slot = [node for node, count in slots.items() for _ in range(count)]
    placement = [by_slot[i % len(by_slot)] for i in range(ranks)]
    copies = [
        {
            "OMPI_COMM_WORLD_RANK": str(rank),
            "OMPI_COMM_WORLD_SIZE": str(ranks),
            "OMPI_COMM_WORLD_LOCAL_RANK": str(local),
            "FAKE_NODE": node,
        }
        for rank, (node, local) in enumerate(zip(placement, fake.local_ranks(placement), strict=True))
    ]
    return fake.run_copies(copies, program)


def _mpich(tool: str, argv: Sequence[str]) -> int:
    options, program = fake.parse(tool, argv, MPICH)
    hosts: list[tuple[str, int]] = []
    hostfile = fake.option(options, "-f", "-hostfile", "--hostfile", "-machinefile")
    if hostfile:
        with open(hostfile, encoding="utf-8") as lines:
            for line in lines:
                word = line.split("#")[0].strip()
                if word:
                    name, _, count = word.partition(":")
                    hosts.append((name, int(count or 1)))
    hosts = hosts or [("localhost", 1)]
    ranks = fake.positive(tool, "-n", fake.option(options, "-n", "-np")) or sum(count for _, count in hosts)
    ppn = fake.positive(tool, "-ppn", fake.option(options, "-ppn", "--ppn"))
    cycle = [name for name, count in hosts for _ in range(ppn or count)]
    placement = [cycle[i % len(cycle)] for i in range(ranks)]
    copies = [
        {"PMI_RANK": str(rank), "PMI_SIZE": str(ranks), "MPI_LOCALRANKID": str(local), "FAKE_NODE": node}
        for rank, (node, local) in enumerate(zip(placement, fake.local_ranks(placement), strict=True))
    ]
    return fake.run_copies(copies, program)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
