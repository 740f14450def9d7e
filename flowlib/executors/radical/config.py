"""How the RADICAL-Pilot executor lays out its pilot: RAPTOR masters and workers."""

from __future__ import annotations

from dataclasses import dataclass

from flowlib.validation import validate_arguments


@dataclass(frozen=True)
class ResourceConfig:
    """The RAPTOR layout inside the pilot (Parsl's ``ResourceConfig`` keywords, a subset).

    Python and bash apps run as RP function tasks on RAPTOR workers, which keep a
    Python process warm instead of starting one per task. Tasks with ``ranks`` > 1
    bypass RAPTOR: they are RP executable tasks that RP launches with its MPI
    launch method.
    """

    masters: int = 1
    """RAPTOR masters (each dispatches function tasks to its workers)."""
    workers: int = 1
    """RAPTOR workers per master."""
    worker_cores_per_node: int = 4
    """Cores of each worker: how many single-core function tasks it runs at once."""
    worker_gpus_per_node: int = 0
    """GPUs of each worker."""
    cores_per_master: int = 1
    """Cores reserved for each master."""
    worker_type: str = "DefaultWorker"
    """Only ``DefaultWorker`` (RP's MPI worker needs an MPI launch for the worker itself)."""

    def __post_init__(self) -> None:
        validate_arguments(
            "ResourceConfig",
            {
                "masters": (self.masters, int),
                "workers": (self.workers, int),
                "worker_cores_per_node": (self.worker_cores_per_node, int),
                "worker_gpus_per_node": (self.worker_gpus_per_node, int),
                "cores_per_master": (self.cores_per_master, int),
                "worker_type": (self.worker_type, str),
            },
        )
        for name in ("masters", "workers", "worker_cores_per_node", "cores_per_master"):
            if getattr(self, name) < 1:
                raise ValueError(f"ResourceConfig {name} must be at least 1, got {getattr(self, name)}")
        if self.worker_gpus_per_node < 0:
            raise ValueError(f"ResourceConfig worker_gpus_per_node must be >= 0, got {self.worker_gpus_per_node}")
        if self.worker_type != "DefaultWorker":
            raise ValueError(f"ResourceConfig worker_type must be 'DefaultWorker', got {self.worker_type!r}")
