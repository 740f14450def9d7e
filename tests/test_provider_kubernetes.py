"""KubernetesProvider against a fake Kubernetes API server on 127.0.0.1.

No Kubernetes cluster can run here. The fake server below implements the few
REST endpoints the provider uses (create, list by label selector, delete pods in
a namespace) with the JSON shapes the Kubernetes API documents, and it really
runs each pod's ``command + args`` as a local process (ignoring the image), so
the phase moves Pending/Running -> Succeeded/Failed as the worker command does.
The real ``kubernetes`` client talks to it over HTTP, so its serialisation and
error handling are exercised.
"""

from __future__ import annotations

import builtins
import importlib
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from flowlib.errors import OptionalModuleMissing
from flowlib.jobs.states import JobState
from flowlib.providers.errors import SchedulerCommandError, SubmitException
from flowlib.providers.kubernetes import KubernetesProvider

pytestmark = pytest.mark.timeout(60)


def _need(module: str) -> Any:
    """The optional package these tests need: skipped where it is missing, but in CI
    (``CI`` set) a missing package fails, so that CI cannot go green by skipping."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)


kubernetes = _need("kubernetes")

_PODS = re.compile(r"^/api/v1/namespaces/([^/]+)/pods(?:/([^/]+))?$")


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class FakeKubernetes:
    """Pods kept in memory; each pod's container command runs as a local process."""

    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.procs: dict[tuple[str, str], subprocess.Popen[bytes]] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.fail_create: tuple[int, str, str] | None = None
        self.lock = threading.Lock()

    def create(self, ns: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.fail_create:
            return self.fail_create[0], _status(*self.fail_create)
        name = body["metadata"]["name"]
        if (ns, name) in self.pods:
            return 409, _status(409, "AlreadyExists", f'pods "{name}" already exists')
        container = body["spec"]["containers"][0]
        pod = dict(body)
        pod["metadata"] = {
            **body["metadata"],
            "namespace": ns,
            "uid": f"uid-{name}",
            "creationTimestamp": "2024-01-01T00:00:00Z",
        }
        pod["status"] = {"phase": "Pending"}
        self.pods[(ns, name)] = pod
        if container["image"] == "no-such-image:latest":
            pod["status"]["containerStatuses"] = [
                self._cstatus(container, {"waiting": {"reason": "InvalidImageName", "message": "bad image"}})
            ]
        else:
            self.procs[(ns, name)] = subprocess.Popen(container["command"] + container.get("args", []))
        return 201, pod

    @staticmethod
    def _cstatus(container: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": container["name"],
            "image": container["image"],
            "imageID": "",
            "ready": "running" in state,
            "restartCount": 0,
            "state": state,
        }

    def refresh(self, key: tuple[str, str]) -> dict[str, Any]:
        pod = self.pods[key]
        proc = self.procs.get(key)
        if proc is not None:
            container = pod["spec"]["containers"][0]
            code = proc.poll()
            if code is None:
                pod["status"] = {"phase": "Running", "containerStatuses": [self._cstatus(container, {"running": {}})]}
            else:
                done = {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error"}}
                pod["status"] = {
                    "phase": "Succeeded" if code == 0 else "Failed",
                    "containerStatuses": [self._cstatus(container, done)],
                }
        return pod

    def select(self, ns: str, selector: str) -> list[dict[str, Any]]:
        match = re.fullmatch(r"\s*([\w./-]+)\s+in\s+\(([^)]*)\)\s*", selector)
        assert match, f"the fake API only understands 'key in (a,b)' selectors, got {selector!r}"
        key, values = match.group(1), {v.strip() for v in match.group(2).split(",")}
        return [
            self.refresh(k)
            for k, pod in self.pods.items()
            if k[0] == ns and pod["metadata"]["labels"].get(key) in values
        ]

    def delete(self, ns: str, name: str) -> tuple[int, dict[str, Any]]:
        if (ns, name) not in self.pods:
            return 404, _status(404, "NotFound", f'pods "{name}" not found')
        proc = self.procs.pop((ns, name), None)
        if proc is not None and proc.poll() is None:
            proc.kill()
        if proc is not None:
            proc.wait()
        return 200, self.pods.pop((ns, name))

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _handler(fake: FakeKubernetes) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self, method: str) -> None:
            url = urlparse(self.path)
            match = _PODS.match(url.path)
            body = None
            if self.headers.get("Content-Length"):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"null")
            with fake.lock:
                fake.requests.append((method, self.path, body))
                if not match:
                    self._reply(404, _status(404, "NotFound", f"no route {url.path}"))
                elif method == "POST" and match.group(2) is None:
                    self._reply(*fake.create(match.group(1), body))
                elif method == "GET" and match.group(2) is None:
                    selector = parse_qs(url.query).get("labelSelector", [""])[0]
                    items = fake.select(match.group(1), selector)
                    self._reply(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})
                elif method == "DELETE" and match.group(2) is not None:
                    self._reply(*fake.delete(match.group(1), match.group(2)))
                else:
                    self._reply(405, _status(405, "MethodNotAllowed", f"{method} {url.path}"))

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_DELETE(self) -> None:
            self._route("DELETE")

    return Handler


@pytest.fixture
def fake_api() -> Iterator[tuple[FakeKubernetes, Any]]:
    fake = FakeKubernetes()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    thread = threading.Thread(target=server.serve_forever, name="fake-kube-api", daemon=True)
    thread.start()
    config = kubernetes.client.Configuration(host=f"http://127.0.0.1:{server.server_address[1]}")
    api_client = kubernetes.client.ApiClient(config)
    try:
        yield fake, api_client
    finally:
        api_client.close()
        server.shutdown()
        server.server_close()
        thread.join(5)
        fake.close()


def _wait_state(provider: KubernetesProvider, job_id: str, wanted: set[JobState], timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        status = provider.status([job_id])[0]
        if status.state in wanted or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def test_block_runs_to_completion_and_pod_spec_is_complete(fake_api: Any, tmp_path: Any) -> None:
    fake, api_client = fake_api
    marker = tmp_path / "ran"
    provider = KubernetesProvider(
        image="python:3.11",
        namespace="science",
        worker_init="export GREETING=hello",
        pod_name="Run.One",
        user_id="1000",
        group_id=100,
        run_as_non_root=True,
        secret="pull-secret",
        persistent_volumes=[("data-claim", "/data")],
        service_account_name="flowlib-sa",
        annotations={"team": "physics"},
        extra_labels={"campaign": "c1"},
        max_mem="1Gi",
        api_client=api_client,
    )
    job_id = provider.submit(f'echo "$GREETING" > {marker}', tasks_per_node=1, job_name="block-0")
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", job_id) and len(job_id) <= 63
    status = _wait_state(provider, job_id, {JobState.COMPLETED, JobState.FAILED})
    assert status.state is JobState.COMPLETED, status
    assert status.exit_code == 0
    assert marker.read_text() == "hello\n"

    posted = [body for method, _, body in fake.requests if method == "POST"][0]
    spec = posted["spec"]
    container = spec["containers"][0]
    assert posted["metadata"]["labels"] == {"campaign": "c1", "flowlib-job-id": job_id, "app": job_id}
    assert posted["metadata"]["annotations"] == {"team": "physics"}
    assert spec["restartPolicy"] == "Never"
    assert spec["serviceAccountName"] == "flowlib-sa"
    assert spec["imagePullSecrets"] == [{"name": "pull-secret"}]
    assert spec["volumes"] == [{"name": "vol-0", "persistentVolumeClaim": {"claimName": "data-claim"}}]
    assert container["volumeMounts"] == [{"name": "vol-0", "mountPath": "/data"}]
    assert container["securityContext"] == {"runAsUser": 1000, "runAsGroup": 100, "runAsNonRoot": True}
    assert container["resources"] == {
        "limits": {"cpu": "1", "memory": "1Gi"},
        "requests": {"cpu": "1", "memory": "250Mi"},
    }
    assert container["image"] == "python:3.11"
    # once terminal, the state is remembered: no further API calls
    calls = len(fake.requests)
    assert provider.status([job_id])[0].state is JobState.COMPLETED
    assert len(fake.requests) == calls


def test_multi_node_block_failure_and_cancel(fake_api: Any) -> None:
    fake, api_client = fake_api
    provider = KubernetesProvider(image="busybox", nodes_per_block=2, api_client=api_client)
    failing = provider.submit("exit 3", tasks_per_node=1)
    assert len([k for k in fake.pods if k[1].startswith(failing)]) == 2
    status = _wait_state(provider, failing, {JobState.FAILED})
    assert status.state is JobState.FAILED and status.exit_code == 3
    assert "Error with code 3" in (status.message or "")

    sleeper = provider.submit("sleep 30", tasks_per_node=1)
    assert _wait_state(provider, sleeper, {JobState.RUNNING}).state is JobState.RUNNING
    assert provider.cancel([sleeper]) == [True]
    assert not [k for k in fake.pods if k[1].startswith(sleeper)]
    assert provider.status([sleeper])[0].state is JobState.CANCELLED
    # cancelling again, or a pod that is already gone, still counts as done
    assert provider.cancel([sleeper, "flowlib-never-existed"]) == [True, True]


def test_unknown_job_is_missing_and_bad_image_fails(fake_api: Any) -> None:
    _, api_client = fake_api
    provider = KubernetesProvider(image="no-such-image:latest", api_client=api_client)
    assert provider.status(["flowlib-gone-1234"])[0].state is JobState.MISSING
    job_id = provider.submit("true", 1)
    status = provider.status([job_id])[0]
    assert status.state is JobState.FAILED and "InvalidImageName" in (status.message or "")


def test_api_errors_are_reported(fake_api: Any) -> None:
    fake, api_client = fake_api
    provider = KubernetesProvider(image="busybox", namespace="locked", api_client=api_client)
    fake.fail_create = (403, "Forbidden", 'pods is forbidden: User "x" cannot create resource "pods"')
    with pytest.raises(SubmitException, match="HTTP 403: pods is forbidden"):
        provider.submit("true", 1, job_name="denied")


def test_unreachable_api_server_is_a_clear_error() -> None:
    config = kubernetes.client.Configuration(host="http://127.0.0.1:9")
    config.retries = 0
    api_client = kubernetes.client.ApiClient(config)
    try:
        provider = KubernetesProvider(image="busybox", api_client=api_client, cmd_timeout=2)
        with pytest.raises(SubmitException, match="cannot create pod"):
            provider.submit("true", 1)
        with pytest.raises(SchedulerCommandError, match="list pods"):
            provider.status(["flowlib-x"])
    finally:
        api_client.close()


def test_constructor_does_no_io_and_checks_types() -> None:
    provider = KubernetesProvider(image="busybox")  # no kubeconfig needed to build it
    assert provider._core is None and provider.init_blocks == 4 and provider.max_blocks == 10
    assert "KubernetesProvider(image='busybox'" in repr(provider)
    with pytest.raises(TypeError, match="'namespace'"):
        KubernetesProvider(image="busybox", namespace=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'persistent_volumes'"):
        KubernetesProvider(image="busybox", persistent_volumes=["claim"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="'max_mem'"):
        KubernetesProvider(image="busybox", max_mem="lots")
    with pytest.raises(ValueError, match="'user_id'"):
        KubernetesProvider(image="busybox", user_id="root")
    with pytest.raises(ValueError, match="min_blocks <= max_blocks"):
        KubernetesProvider(image="busybox", min_blocks=20)
    with pytest.raises(TypeError, match="'nodes_per_block'"):
        KubernetesProvider(image="busybox", nodes_per_block="2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'image'"):
        KubernetesProvider(image="")


def test_missing_client_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_kubernetes(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "kubernetes" or name.startswith("kubernetes."):
            raise ImportError("No module named 'kubernetes'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_kubernetes)
    provider = KubernetesProvider(image="busybox")
    with pytest.raises(OptionalModuleMissing, match=r"kubernetes.*flowlib\[kubernetes\]"):
        provider.submit("true", 1)
