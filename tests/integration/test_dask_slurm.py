"""DaskExecutor on dask-jobqueue's SLURMCluster: Dask workers started as jobs of the real Slurm.

The Slurm of tests/services/slurm-up.sh (partition "debug", one node: this machine).
The worker job runs this venv's python, readable from the job since Slurm runs it on
this machine as the same user.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

import flowlib
from flowlib import python_app
from flowlib.config import Config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@python_app
def where_am_i(x):
    import os

    return x * 2, os.environ.get("SLURM_JOB_ID")


def test_dask_executor_on_slurmcluster(slurm, tmp_path):
    from dask_jobqueue import SLURMCluster

    from flowlib.executors.dask import DaskExecutor

    cluster = SLURMCluster(
        queue="debug",
        cores=1,
        processes=1,
        memory="1GB",
        walltime="00:05:00",
        python=sys.executable,
        scheduler_options={"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"},
        worker_extra_args=["--host", "127.0.0.1"],
        job_name="flowlib-dask-test",
        log_directory=str(tmp_path / "dask-logs"),
        job_script_prologue=[f"export PYTHONPATH={REPO_ROOT}:{REPO_ROOT}/tests"],
        death_timeout=60,
    )
    try:
        cluster.scale(jobs=1)
        executor = DaskExecutor(cluster, label="slurm-dask")
        with flowlib.load(Config(executors=[executor], run_dir=str(tmp_path / "runinfo"))):
            results = [f.result(timeout=90) for f in [where_am_i(i) for i in range(4)]]
        assert [r[0] for r in results] == [0, 2, 4, 6]
        job_ids = {r[1] for r in results}
        assert len(job_ids) == 1 and None not in job_ids, job_ids
        (job_id,) = job_ids
        state = subprocess.run(
            ["squeue", "-h", "-j", str(job_id), "-o", "%T"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
        assert state == "RUNNING", f"the worker job {job_id} is {state!r}: a user's cluster is left running"
    finally:
        cluster.close()
    assert os.path.isdir(tmp_path / "dask-logs")
