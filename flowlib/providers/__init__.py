"""Providers: get blocks of nodes from a batch scheduler, a cloud or this machine.

The batch-scheduler providers and LocalProvider are imported here; the cloud,
Kubernetes and other providers are imported on first use (module ``__getattr__``),
so that ``import flowlib.providers`` stays light and needs no optional package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flowlib.providers.base import ExecutionProvider
from flowlib.providers.gridengine import GridEngineProvider
from flowlib.providers.local import LocalProvider
from flowlib.providers.pbspro import PBSProProvider
from flowlib.providers.slurm import SlurmProvider
from flowlib.providers.torque import TorqueProvider

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from flowlib.providers.aws import AWSProvider
    from flowlib.providers.azure import AzureProvider
    from flowlib.providers.condor import CondorProvider
    from flowlib.providers.googlecloud import GoogleCloudProvider
    from flowlib.providers.kubernetes import KubernetesProvider
    from flowlib.providers.lsf import LSFProvider
    from flowlib.providers.psij import PSIJProvider

# Provider name -> the module that defines it, imported when the name is first used.
_LAZY = {
    "LSFProvider": "flowlib.providers.lsf",
    "CondorProvider": "flowlib.providers.condor",
    "KubernetesProvider": "flowlib.providers.kubernetes",
    "AWSProvider": "flowlib.providers.aws",
    "GoogleCloudProvider": "flowlib.providers.googlecloud",
    "AzureProvider": "flowlib.providers.azure",
    "PSIJProvider": "flowlib.providers.psij",
}

__all__ = [
    "AWSProvider",
    "AzureProvider",
    "CondorProvider",
    "ExecutionProvider",
    "GoogleCloudProvider",
    "GridEngineProvider",
    "KubernetesProvider",
    "LSFProvider",
    "LocalProvider",
    "PBSProProvider",
    "PSIJProvider",
    "SlurmProvider",
    "TorqueProvider",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
