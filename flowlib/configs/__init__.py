"""Ready configs, one module per kind of machine, and :func:`auto` for wherever this runs.

Each module builds a module-level ``config`` at import and offers ``fresh_config()``,
which builds a new one on every call (a Config holds executors, which keep state
once loaded, so load each Config object once)::

    from flowlib.configs.local_threads import config           # the shared instance
    from flowlib.configs.htex_local import fresh_config        # a new one per call
    flowlib.load(fresh_config(run_dir="runs", retries=2))

    flowlib.load(flowlib.configs.auto())                       # Slurm job, PBS job or this machine

Modules: :data:`READY`, that is every module Parsl ships under ``parsl.configs``
at the same name (:data:`PARSL_MODULES`: ``from flowlib.configs.htex_local import
config`` works as in Parsl) and flowlib's own (:data:`FLOWLIB_MODULES`).
:class:`AllocationProvider` (what ``auto()`` uses inside a batch job) starts
blocks on the nodes of the allocation this process runs in.
Importing a config module does no I/O and contacts nothing; the scheduler, cloud
or SSH host is first reached when the config is loaded. The Globus Compute modules
(:data:`BUILT_ON_FIRST_USE`) build ``config`` when it is first used, since that
logs in to Globus.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flowlib.configs._auto import auto, detect

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from flowlib.configs._allocation import AllocationProvider

__all__ = ["BUILT_ON_FIRST_USE", "FLOWLIB_MODULES", "PARSL_MODULES", "READY", "AllocationProvider", "auto", "detect"]

PARSL_MODULES = (
    "ASPIRE1",
    "Azure",
    "anvil",
    "bridges",
    "cc_in2p3",
    "delta",
    "ec2",
    "expanse",
    "frontera",
    "gc_multisite",
    "gc_tutorial",
    "htex_local",
    "illinoiscluster",
    "improv",
    "kubernetes",
    "local_threads",
    "midway",
    "osg",
    "polaris",
    "stampede2",
    "summit",
    "toss3_llnl",
    "vineex_local",
    "wqex_local",
)
"""The config modules Parsl ships under ``parsl.configs``, under the same names here."""

FLOWLIB_MODULES = (
    "local_htex",
    "slurm",
    "slurm_ssh",
    "pbspro",
    "gridengine",
    "aurora",
    "frontier",
    "perlmutter",
)
"""flowlib's own config modules (``local_htex`` is the earlier name of ``htex_local``)."""

BUILT_ON_FIRST_USE = ("gc_multisite", "gc_tutorial")
"""Modules whose ``config`` is built when first used, not at import: building it logs in to Globus."""

READY = PARSL_MODULES + FLOWLIB_MODULES
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
