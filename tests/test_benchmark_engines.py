"""flowlib-perf's engine cases: ``--executor dask`` (a real LocalCluster) and ``--executor flux`` (the fake Flux)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from flux_support import FAKEFLUX

from flowlib.benchmark.configs import make_config

pytestmark = pytest.mark.timeout(120)


def _perf(tmp_path: Path, executor: str, workloads: str, env: dict[str, str] | None = None) -> dict:
    out = tmp_path / "out.json"
    command = [sys.executable, "-m", "flowlib.benchmark", "--executor", executor, "--time", "0.2", "--iterate", "1"]
    command += ["--workloads", workloads, "--latency-samples", "5", "--chain-length", "5"]
    command += ["--json", str(out)]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=110, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(out.read_text())


def test_dask_case_runs_on_a_local_cluster(tmp_path: Path) -> None:
    results = _perf(tmp_path, "dask", "throughput,latency,chain")
    assert results["verified"] is True and results["executors"] == ["DaskExecutor(dask)"]
    assert results["workloads"]["throughput"]["tasks_per_s"] > 0


@pytest.mark.slow
def test_flux_case_runs_on_the_fake_flux(tmp_path: Path) -> None:
    env = dict(os.environ, PATH=f"{FAKEFLUX}/bin{os.pathsep}{os.environ['PATH']}", PYTHONPATH=FAKEFLUX)
    results = _perf(tmp_path, "flux", "latency,chain", env)  # throughput's smallest batch takes 20 s
    assert results["verified"] is True and results["executors"] == ["FluxExecutor(flux)"]
    assert results["workloads"]["latency"]["median_ms"] > 0


def test_parsl_has_no_dask_case() -> None:
    with pytest.raises(ValueError, match="parsl has no DaskExecutor"):
        make_config("parsl", "dask")


@pytest.mark.slow
def test_globus_compute_config_runs_on_the_local_stand_ins(tmp_path: Path) -> None:
    from gce.harness import require_globus_services

    require_globus_services()
    config = Path(__file__).resolve().parents[1] / "benchmarks" / "configs" / "globus_compute_local.py"
    out = tmp_path / "out.json"
    command = [sys.executable, "-m", "flowlib.benchmark", "--config", str(config), "--workloads", "latency"]
    command += ["--latency-samples", "3", "--json", str(out)]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=110, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())
    assert results["verified"] is True and results["executors"] == ["GlobusComputeExecutor(exec)"]
