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


class MalformedPayload(FlowlibError):
    """The task's argument or result did not arrive whole: one of its parts was missing or malformed.

    A large payload travels as several frames (see the page "High-throughput
    executor", "Large payloads"); the receiver of a batch whose frames do not add up
    fails its tasks with this error (naming the task and the mismatch) instead of
    dropping them. It means a bug or a corrupted peer, not a problem with the task.
    """
