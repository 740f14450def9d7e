"""The fake Flux of tests/fakeflux/ for the tests of FluxExecutor (Flux cannot be installed here).

``flux start`` is tests/fakeflux/bin/flux (passed as ``flux_path``, never put on PATH, so the
real-Flux tests still skip when no real ``flux`` is installed), and the fake ``flux`` package is
made importable in this process, where ``flux.job.FluxExecutor`` runs each job as local processes.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from conftest import REPO_ROOT

FAKEFLUX = os.path.join(REPO_ROOT, "tests", "fakeflux")
FAKE_FLUX_COMMAND = os.path.join(FAKEFLUX, "bin", "flux")
# Jobs import the test modules that define the apps.
JOB_PYTHONPATH = os.pathsep.join([REPO_ROOT, os.path.join(REPO_ROOT, "tests")])


def use_fake_flux() -> None:
    """Make the fake ``flux`` package importable here (idempotent)."""
    if FAKEFLUX not in sys.path:
        sys.path.insert(0, FAKEFLUX)
    loaded = sys.modules.get("flux")
    if loaded is not None and not (getattr(loaded, "__file__", "") or "").startswith(FAKEFLUX):
        raise RuntimeError(f"another 'flux' package is already imported: {loaded!r}")


def make_executor(tmp_path: Any, label: str = "exec", **kwargs: Any) -> Any:
    """A FluxExecutor on a LocalProvider block running the fake ``flux start``."""
    use_fake_flux()
    from flowlib.executors.flux import FluxExecutor

    kwargs.setdefault("environment", {"PYTHONPATH": JOB_PYTHONPATH})
    kwargs.setdefault("flux_path", FAKE_FLUX_COMMAND)
    return FluxExecutor(label=label, **kwargs)
