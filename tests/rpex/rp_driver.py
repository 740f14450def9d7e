"""A workflow on a real local RADICAL-Pilot session; run by test_radical_pilot.py in a child process.

It runs in its own process (and process group) so that a hung RP session can be killed
as a whole: inside the pytest process RP's session start was seen to block for good.
Prints one JSON object with what it observed. Usage: python rp_driver.py WORKDIR
"""

from __future__ import annotations

import json
import os
import sys
import traceback

import flowlib
from flowlib import bash_app, python_app
from flowlib.config import Config
from flowlib.executors.radical import RadicalPilotExecutor, ResourceConfig


@python_app
def where_and_square(x):
    import os

    return os.environ.get("RP_TASK_ID"), os.getpid(), x * x


@python_app
def add(a, b):
    return a + b


@python_app
def fail_with(message):
    raise LookupError(message)


@python_app
def sleep_for(seconds):
    import time

    time.sleep(seconds)
    return seconds


@bash_app
def shell(command, stdout=None):
    return command


def outcome(fut, timeout=200):
    exc = fut.exception(timeout=timeout)
    if exc is None:
        return {"result": fut.result()}
    return {"error": type(exc).__name__, "message": str(exc)[:500], "cause": str(exc.__cause__ or "")[:2000]}


def main(root: str) -> dict:
    seen: dict = {}
    executor = RadicalPilotExecutor(
        "local.localhost",
        label="rp",
        rpex_cfg=ResourceConfig(worker_cores_per_node=2),
        runtime=15,
        cores=4,
        sandbox=os.path.join(root, "sandbox"),
    )
    with flowlib.load(Config(executors=[executor], run_dir=os.path.join(root, "runinfo"), strategy="none")):
        seen["squares"] = [outcome(where_and_square(i)) for i in range(4)]
        seen["driver_pid"] = os.getpid()
        seen["chain"] = outcome(add(add(1, 2), add(3, 4)))
        seen["error"] = outcome(fail_with("on the pilot"))
        out = os.path.join(root, "out.txt")
        seen["bash"] = outcome(shell("echo from the pilot; echo task=$RP_TASK_ID", stdout=out))
        seen["bash_out"] = open(out).read() if os.path.exists(out) else None
        seen["bash_exit"] = outcome(shell("exit 4"))
        seen["walltime_python"] = outcome(sleep_for(30, walltime=1))
        seen["walltime_bash"] = outcome(shell("sleep 30", walltime=1))
        spec = {"cores_per_rank": 2, "mem_per_rank": 64}
        seen["spec"] = outcome(where_and_square(5, parsl_resource_specification=spec))
        if "result" in seen["spec"]:
            (task,) = executor._tmgr.get_tasks(uids=[seen["spec"]["result"][0]])
            d = task.description
            seen["spec_description"] = [d["cores_per_rank"], d["mem_per_rank"], d["ranks"], d["mode"]]
        seen["too_many_cores"] = outcome(add(1, 1, parsl_resource_specification={"cores_per_rank": 3}))
        seen["unknown_key"] = outcome(add(1, 1, parsl_resource_specification={"num_nodes": 2}))
    return seen


if __name__ == "__main__":
    try:
        print(json.dumps(main(sys.argv[1])), flush=True)
    except Exception:
        print(json.dumps({"driver_failed": traceback.format_exc()}), flush=True)
        sys.exit(1)
