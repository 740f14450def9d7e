"""Errors of the monitoring store and router."""

from __future__ import annotations

from flowlib.errors import FlowlibError


class MonitoringError(FlowlibError):
    """The monitoring store could not be opened or written.

    Raised by ``MonitoringHub.start`` (bad URL, unreachable server, a database of a
    newer schema) and by ``DataFlowKernel.cleanup`` when the router's writes failed
    during the run: the original database error is the ``__cause__``.
    """
