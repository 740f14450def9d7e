"""Which CPUs and which accelerator each worker of a pool gets.

Pure functions of the policy, the worker's rank and the node's CPUs, so that
they can be tested without starting processes. The worker applies the result
to itself (``os.sched_setaffinity``, environment variables) as it starts.

CPU policies (``--cpu-affinity``, Parsl's ``cpu_affinity``), with ``A`` the
sorted list of CPUs this pool may use and ``k = max(1, floor(cores_per_worker))``
CPUs per worker:

``none``
    workers inherit the pool's affinity.
``block``
    worker ``r`` gets ``k`` contiguous CPUs starting at ``A[floor(r * cores_per_worker)]``
    (with ``cores_per_worker < 1`` neighbouring workers share a CPU).
``block-reverse``
    as ``block``, counting from the end of ``A``.
``alternating``
    worker ``r`` gets ``A[r], A[r + W], A[r + 2W], ...`` (``k`` of them), ``W`` the worker count.
``list:0,1:2,3``
    explicit lists, one per worker, separated by ``:``; each list holds CPU
    numbers and ranges (``0-3``) separated by ``,``. The pool starts at most as
    many workers as there are lists.

Indexes past the end of ``A`` wrap around, so an oversubscribed pool still gets
a valid CPU set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

POLICIES = ("none", "block", "alternating", "block-reverse", "list")
"""Names accepted by :func:`parse_cpu_affinity` (``list`` takes ``list:...``)."""

ACCELERATOR_VARIABLES = ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "ZE_AFFINITY_MASK")
"""Environment variables set to a worker's accelerator (NVIDIA, AMD, Intel)."""


@dataclass(frozen=True)
class AffinityPolicy:
    """A parsed ``--cpu-affinity`` value."""

    name: str
    """One of :data:`POLICIES`."""
    lists: tuple[tuple[int, ...], ...] = ()
    """For ``list``: the CPUs of each worker, by rank."""

    @property
    def max_workers(self) -> float:
        """How many workers the policy can place (``inf`` unless it is ``list``)."""
        return len(self.lists) if self.name == "list" else math.inf


def parse_cpu_affinity(text: str) -> AffinityPolicy:
    """Parse a ``--cpu-affinity`` value; ValueError naming the problem if it is not valid."""
    text = text.strip()
    if text in ("none", "block", "alternating", "block-reverse"):
        return AffinityPolicy(text)
    if not text.startswith("list:"):
        raise ValueError(
            f"unknown cpu affinity {text!r}; expected one of none, block, alternating, block-reverse, list:..."
        )
    lists = []
    for i, part in enumerate(text[len("list:") :].split(":")):
        cpus: list[int] = []
        for item in part.split(","):
            item = item.strip()
            try:
                if "-" in item:
                    low, high = (int(x) for x in item.split("-", 1))
                    if high < low:
                        raise ValueError
                    cpus.extend(range(low, high + 1))
                else:
                    cpus.append(int(item))
            except ValueError:
                raise ValueError(
                    f"cpu affinity list {i} ({part!r}): {item!r} is not a CPU number or a range a-b"
                ) from None
        if any(c < 0 for c in cpus):
            raise ValueError(f"cpu affinity list {i} ({part!r}) has a negative CPU number")
        lists.append(tuple(dict.fromkeys(cpus)))
    return AffinityPolicy("list", tuple(lists))


def worker_cpus(
    policy: AffinityPolicy, rank: int, workers: int, cpus: Sequence[int], cores_per_worker: float
) -> tuple[int, ...] | None:
    """The CPUs worker ``rank`` of ``workers`` should run on, or None to leave affinity alone.

    ``cpus`` are the CPUs the pool itself may use (``os.sched_getaffinity(0)``).
    """
    if policy.name == "none":
        return None
    if policy.name == "list":
        return policy.lists[rank]
    available = sorted(cpus)
    if policy.name == "block-reverse":
        available.reverse()
    count = len(available)
    per_worker = max(1, math.floor(cores_per_worker))
    if policy.name == "alternating":
        picked = [available[(rank + i * workers) % count] for i in range(per_worker)]
    else:  # block, block-reverse
        start = math.floor(rank * cores_per_worker)
        picked = [available[(start + i) % count] for i in range(per_worker)]
    return tuple(sorted(set(picked)))


def accelerator_environment(accelerator: str | None) -> dict[str, str]:
    """Environment variables that pin a worker to ``accelerator`` (empty if None)."""
    if accelerator is None:
        return {}
    return dict.fromkeys(ACCELERATOR_VARIABLES, accelerator)
