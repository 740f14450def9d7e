"""Service gates and the shared endpoint stand-in for the Globus Compute tests.

One endpoint stand-in process (endpoint_stand_in.py in the endpoint venv) serves the
whole pytest process, as one real endpoint serves many clients; it is started on
first use and stopped at exit (it also stops by itself when this process dies, since
it watches its stdin). All executors share one task group, hence one SDK result
watcher thread and one AMQP connection for the session.
"""

from __future__ import annotations

import atexit
import os
import select
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from conftest import REPO_ROOT, require_service

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
ENDPOINT_VENV = os.environ.get("FLOWLIB_GC_ENDPOINT_VENV", "/tmp/flowlib-gc-endpoint-venv")
STAND_IN = Path(__file__).with_name("endpoint_stand_in.py")
TASK_GROUP_ID = uuid.uuid4()


def rabbitmq_answers() -> bool:
    with socket.create_connection(("127.0.0.1", 5672), timeout=2):
        return True


def endpoint_venv_ready() -> bool:
    return os.path.exists(os.path.join(ENDPOINT_VENV, ".flowlib-stamp"))


def require_globus_services() -> None:
    """Skip (fail in CI) unless RabbitMQ answers and the endpoint venv exists."""
    require_service("rabbitmq", rabbitmq_answers)
    require_service("globus-endpoint", endpoint_venv_ready)


class EndpointStandIn:
    """The endpoint process: consumes ``queue``, runs tasks on the real ThreadPoolEngine."""

    def __init__(self) -> None:
        self.endpoint_id = uuid.uuid4()
        self.queue = f"flowlib-test-endpoint-{self.endpoint_id}"
        self.run_dir = tempfile.mkdtemp(prefix="flowlib-gce-endpoint-")
        env = dict(os.environ)
        # The endpoint's workers import flowlib and the test modules that define the apps.
        env["PYTHONPATH"] = os.pathsep.join([REPO_ROOT, os.path.join(REPO_ROOT, "tests")])
        with open(os.path.join(self.run_dir, "stand_in.log"), "wb") as log:
            self.process = subprocess.Popen(
                [os.path.join(ENDPOINT_VENV, "bin", "python"), str(STAND_IN), AMQP_URL, self.queue, self.run_dir],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
            )
        self._wait_ready(timeout=60)

    def _wait_ready(self, timeout: float) -> None:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if ready:
                line = self.process.stdout.readline()
                if line.strip() == b"ready":
                    return
                if not line:
                    break
        log = Path(self.run_dir, "stand_in.log").read_text(errors="replace")[-3000:]
        self.stop()
        raise RuntimeError(f"the endpoint stand-in did not start within {timeout} s; its log ends:\n{log}")

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()  # the stand-in stops when its stdin closes
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None and not stream.closed:
                stream.close()
        shutil.rmtree(self.run_dir, ignore_errors=True)


_shared: EndpointStandIn | None = None


def shared_endpoint() -> EndpointStandIn:
    """The endpoint stand-in of this pytest process, started on first use."""
    global _shared
    if _shared is None or _shared.process.poll() is not None:
        _shared = EndpointStandIn()
        atexit.register(_shared.stop)
    return _shared


def make_executor(tmp_path: Any, service: Any = None, **sdk_kwargs: Any) -> Any:
    """A GlobusComputeExecutor (label ``exec``) on a real SDK Executor, fake service, real endpoint."""
    require_globus_services()
    from globus_compute_sdk import Executor

    from flowlib.executors.globus_compute import GlobusComputeExecutor
    from gce.fake_service import FakeComputeService

    endpoint = shared_endpoint()
    service = service or FakeComputeService(AMQP_URL, endpoint.queue)
    sdk_kwargs.setdefault("task_group_id", TASK_GROUP_ID)
    # The SDK spaces out small batches (4 per 16 s by default) to spare the cloud service;
    # a local fake needs no such care, and dependent tasks come one batch each.
    sdk_kwargs.setdefault("api_burst_limit", 8)
    sdk_kwargs.setdefault("api_burst_window_s", 1)
    sdk = Executor(endpoint_id=endpoint.endpoint_id, client=service.client(), **sdk_kwargs)
    return GlobusComputeExecutor(sdk, label="exec")
