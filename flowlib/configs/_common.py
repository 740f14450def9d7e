"""Small helpers shared by the ready configs. Nothing here does I/O."""

from __future__ import annotations

import os

__all__ = ["from_env", "WORKER_INIT_PLACEHOLDER"]

WORKER_INIT_PLACEHOLDER = (
    "# set up the Python environment that has flowlib installed here (module load ..., source .../activate)"
)
"""The default ``worker_init`` of the cluster configs: a shell comment that does nothing.

Replace it with the commands that make ``python3 -m flowlib...`` work on the compute
nodes, e.g. ``"module load python; source ~/envs/flowlib/bin/activate"``.
"""


def from_env(name: str, default: str | None = None) -> str | None:
    """``$name`` when it is set and not blank, else ``default``."""
    value = os.environ.get(name, "").strip()
    return value or default
