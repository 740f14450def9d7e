"""The Flux executor: each task is a job of a Flux instance (``flux`` is imported only when used)."""

from flowlib.executors.flux.executor import DEFAULT_LAUNCH_CMD, FluxExecutor, FluxJobFailed

__all__ = ["DEFAULT_LAUNCH_CMD", "FluxExecutor", "FluxJobFailed"]
