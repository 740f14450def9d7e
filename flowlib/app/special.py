"""The keyword arguments an app call gives meaning to."""

from __future__ import annotations

SPECIAL_KEYWORDS = frozenset(
    {
        "inputs",
        "outputs",
        "stdout",
        "stderr",
        "walltime",
        "label",
        "parsl_resource_specification",
        "resource_specification",
    }
)
"""Keywords the kernel reads; passed on to the function only when it declares them."""

AUTO_LOGNAME = -1
"""Give as ``stdout=`` / ``stderr=`` to have the kernel choose a path under the run directory."""
