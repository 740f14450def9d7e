"""RADICAL-Pilot: run tasks inside a pilot job, through RP's task manager (``flowlib[radical-pilot]``).

Importing this package does not import ``radical.pilot``; the executor does, at start.
"""

from __future__ import annotations

from flowlib.executors.radical.config import ResourceConfig
from flowlib.executors.radical.executor import RadicalPilotExecutor, RadicalTaskFailed

__all__ = ["RadicalPilotExecutor", "RadicalTaskFailed", "ResourceConfig"]
