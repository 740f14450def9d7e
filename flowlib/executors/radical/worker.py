"""flowlib's RAPTOR worker: the RP-side code that runs flowlib tasks inside the pilot.

RP loads this file in its worker process (``raptor_file``/``raptor_class`` of the
worker's task description). A flowlib task arrives as an RP function task whose
``function`` is ``run_flowlib`` and whose only argument is the call, serialized by
flowlib and base64-encoded. RP 1.103's worker runs function tasks through its own
asynchronous dispatcher (``asyncio.run``), which resolves ``run_flowlib`` to the
method below and calls it; the method returns the outcome, base64-encoded, as the
task's return value. Failures of the task itself come back inside that outcome
(with their type and traceback), so RP sees every flowlib task succeed unless RP
itself fails it (a timeout, a lost worker).

::

    RP task manager --function task--> RAPTOR master --> FlowlibWorker (this file)
                                                           run_flowlib(b64) -> run_packed_call
    <-- return_value (b64 outcome) ----------------------------/
"""

from __future__ import annotations

import base64

import radical.pilot as rp

from flowlib.executors.remote_call import run_packed_call


class FlowlibWorker(rp.raptor.DefaultWorker):
    """RP's default worker, plus the ``run_flowlib`` call that function tasks name."""

    def run_flowlib(self, payload: str) -> str:
        """Run one flowlib call (base64 of :func:`pack_call` bytes); return its base64 outcome."""
        return base64.b64encode(run_packed_call(base64.b64decode(payload))).decode("ascii")
