"""Failures of the high-throughput executor's workers, pools and protocol."""

from __future__ import annotations

from flowlib.errors import FlowlibError


class WorkerLost(FlowlibError):
    """The worker process running the task died (killed, crashed, out of memory).

    Raised on the task's future; the kernel retries it when the config has retries.
    The message names the worker, its host and how it died.
    """


class ManagerLost(FlowlibError):
    """The worker pool (a node) holding the task stopped answering heartbeats or exited.

    Raised on the task's future; the kernel retries it when the config has retries.
    """


class VersionMismatch(FlowlibError):
    """A worker pool speaks another protocol version than the interchange; it was refused.

    The message names both versions. flowlib and Python patch releases may differ
    between the two sides as long as the protocol version matches.
    """
