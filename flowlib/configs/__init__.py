"""Ready configs, one module per kind of machine, and :func:`auto` for wherever this runs.

Each module builds a module-level ``config`` at import and offers ``fresh_config()``,
which builds a new one on every call (a Config holds executors, which keep state
once loaded, so load each Config object once)::

    from flowlib.configs.local_threads import config           # the shared instance
    from flowlib.configs.local_htex import fresh_config        # a new one per call
    flowlib.load(fresh_config(run_dir="runs", retries=2))

    flowlib.load(flowlib.configs.auto())                       # Slurm job, PBS job or this machine

Modules: :data:`READY`. :class:`AllocationProvider` (what ``auto()`` uses inside a
batch job) starts blocks on the nodes of the allocation this process runs in.
Importing a config module does no I/O and contacts nothing; the scheduler, cloud
or SSH host is first reached when the config is loaded.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flowlib.configs._auto import auto, detect

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from flowlib.configs._allocation import AllocationProvider

__all__ = ["READY", "AllocationProvider", "auto", "detect"]

READY = (
    "local_threads",
    "htex_local",
    "local_htex",
    "slurm",
    "slurm_ssh",
    "pbspro",
    "gridengine",
    "kubernetes",
    "polaris",
    "aurora",
    "frontier",
    "perlmutter",
)
"""The ready config modules under ``flowlib.configs``."""


def __getattr__(name: str) -> Any:
    # flowlib.configs.local_threads works after a bare ``import flowlib.configs``.
    if name in READY:
        return importlib.import_module(f"{__name__}.{name}")
    if name == "AllocationProvider":
        from flowlib.configs._allocation import AllocationProvider

        return AllocationProvider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(READY) | {"AllocationProvider"})
