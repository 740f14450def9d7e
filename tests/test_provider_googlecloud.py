"""GoogleCloudProvider against a fake Compute Engine REST API, in process.

No Google Cloud project is reachable here and Google ships no Compute Engine
emulator. The provider's ``client`` seam gets the real discovery client
(``googleapiclient.discovery.build('compute', 'v1')`` from its bundled static
discovery document), whose HTTP object is a fake that implements the few
endpoints used, with the JSON shapes the Compute Engine API documents. So the
real client builds and sends every request; only the server is fake. The
startup script flowlib generates is run here with bash.
"""

from __future__ import annotations

import builtins
import importlib
import itertools
import json
import os
import re
import subprocess
from typing import Any

import pytest

from flowlib.errors import ConfigurationError, OptionalModuleMissing
from flowlib.jobs.states import JobState
from flowlib.launchers import AprunLauncher
from flowlib.launchers.base import Launcher
from flowlib.providers.errors import ExecutionProviderException, SubmitException
from flowlib.providers.googlecloud import GoogleCloudProvider

pytestmark = pytest.mark.timeout(60)


def _need(module: str) -> Any:
    """The optional package these tests need: skipped where it is missing, but in CI
    (``CI`` set) a missing package fails, so that CI cannot go green by skipping."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)


httplib2 = _need("httplib2")
discovery = _need("googleapiclient.discovery")

_BASE = "https://compute.googleapis.com/compute/v1/projects/"


class PlainLauncher(Launcher):
    def __call__(self, command: str, tasks_per_node: int, nodes_per_block: int) -> str:
        return command


class FakeCompute:
    """The HTTP object of a discovery client: routes requests to in-memory instances."""

    def __init__(self) -> None:
        self.instances: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.counter = itertools.count()
        self.deny_inserts = False

    def _reply(self, status: int, body: dict[str, Any]) -> tuple[Any, bytes]:
        return httplib2.Response({"status": status, "content-type": "application/json"}), json.dumps(body).encode()

    def _error(self, status: int, message: str) -> tuple[Any, bytes]:
        reason = {403: "forbidden", 404: "notFound"}[status]
        return self._reply(status, {"error": {"code": status, "message": message, "errors": [{"reason": reason}]}})

    def _operation(self, zone: str, target: str, error: str | None = None) -> dict[str, Any]:
        """A zone operation; one with an error is RUNNING when returned and DONE, failed, when asked later."""
        name = f"operation-{next(self.counter)}"
        op: dict[str, Any] = {"kind": "compute#operation", "name": name, "zone": zone, "targetLink": target}
        op["status"] = "RUNNING" if error else "DONE"
        self.operations[name] = {**op, "status": "DONE"}
        if error:
            self.operations[name]["error"] = {"errors": [{"code": "ZONE_RESOURCE_POOL_EXHAUSTED", "message": error}]}
        return op

    def request(self, uri: str, method: str = "GET", body: Any = None, headers: Any = None, **_: Any) -> Any:
        path = uri.split("?")[0][len(_BASE) :]
        self.requests.append((method, path, json.loads(body) if body else None))
        if re.fullmatch(r"[^/]+/zones", path):
            zones = [("europe-west1-b", "UP"), ("us-central1-b", "UP"), ("us-central1-a", "DOWN")]
            return self._reply(200, {"items": [{"name": n, "status": s} for n, s in zones]})
        match = re.fullmatch(r"[^/]+/zones/([^/]+)/(instances|operations)(?:/([^/]+))?", path)
        assert match, f"the fake Compute API has no route for {method} {path}"
        zone, kind, name = match.groups()
        if kind == "operations":
            return self._reply(200, self.operations[name]) if name in self.operations else self._error(404, "no op")
        if method == "POST":
            instance = json.loads(body)
            if self.deny_inserts:
                return self._error(403, "Quota 'CPUS' exceeded. Limit: 0.0 in region us-central1.")
            if "bogus" in instance["machineType"]:  # accepted, then fails asynchronously
                return self._reply(200, self._operation(zone, instance["name"], "machine type bogus does not exist"))
            self.instances[instance["name"]] = {**instance, "status": "PROVISIONING"}
            return self._reply(200, self._operation(zone, instance["name"]))
        if name not in self.instances:
            return self._error(404, f"The resource 'projects/p/zones/{zone}/instances/{name}' was not found")
        if method == "DELETE":
            del self.instances[name]
            return self._reply(200, self._operation(zone, name))
        return self._reply(200, self.instances[name])


@pytest.fixture
def fake() -> FakeCompute:
    return FakeCompute()


def _provider(fake: FakeCompute, **kwargs: Any) -> GoogleCloudProvider:
    client = discovery.build("compute", "v1", http=fake, static_discovery=True)
    kwargs.setdefault("launcher", PlainLauncher())
    kwargs.setdefault("region", "us-central1")
    return GoogleCloudProvider(
        "my-project", None, os_project="debian-cloud", os_family="debian-12", client=client, **kwargs
    )


def test_instance_life_cycle(fake: FakeCompute, tmp_path: Any) -> None:
    provider = _provider(fake, worker_init="export GREETING=hi", linger=True, walltime="00:10:00")
    marker = tmp_path / "ran"
    job_id = provider.submit(f'echo "$GREETING" > {marker}', tasks_per_node=2, job_name="block-0")
    assert provider.zone == "us-central1-b"  # the first zone of the region that is UP
    body = [b for m, _, b in fake.requests if m == "POST"][0]
    assert body["name"] == job_id and body["machineType"] == "zones/us-central1-b/machineTypes/n1-standard-1"
    assert body["disks"][0]["initializeParams"]["sourceImage"] == "projects/debian-cloud/global/images/family/debian-12"
    script = body["metadata"]["items"][0]["value"]
    assert "timeout --kill-after=30 600 " in script and "shutdown" not in script
    assert subprocess.run(["bash", "-c", script], timeout=20).returncode == 0
    assert marker.read_text() == "hi\n"

    assert provider.status([job_id])[0].state is JobState.PENDING
    fake.instances[job_id]["status"] = "RUNNING"
    assert provider.status([job_id])[0].state is JobState.RUNNING
    fake.instances[job_id].update(status="TERMINATED", statusMessage="powered off by the guest")
    status = provider.status([job_id])[0]
    assert status.state is JobState.COMPLETED and status.message == "powered off by the guest"
    calls = len(fake.requests)
    assert provider.status([job_id])[0].state is JobState.COMPLETED and len(fake.requests) == calls

    other = provider.submit("true", 1)
    assert provider.cancel([other, "flowlib-not-there"]) == [True, True]
    assert other not in fake.instances
    assert provider.status([other])[0].state is JobState.CANCELLED


def test_failures_are_reported(fake: FakeCompute) -> None:
    provider = _provider(fake, region="us-central1-f", instance_type="bogus-type")
    job_id = provider.submit("true", 1)
    status = provider.status([job_id])[0]
    assert status.state is JobState.FAILED and "machine type bogus does not exist" in (status.message or "")
    assert provider.status(["flowlib-unknown"])[0].state is JobState.MISSING
    fake.deny_inserts = True
    with pytest.raises(SubmitException, match="Quota 'CPUS' exceeded"):
        provider.submit("true", 1, job_name="denied")
    with pytest.raises(ExecutionProviderException, match="no zone that is UP in region 'asia-east9'"):
        _provider(fake, region="asia-east9").submit("true", 1)


def test_constructor_checks_and_credentials(tmp_path: Any) -> None:
    provider = GoogleCloudProvider("p", str(tmp_path / "key.json"), "us-central1", "debian-cloud", "debian-12")
    assert provider.client is None and provider.max_blocks == 10 and provider.instance_type == "n1-standard-1"
    with pytest.raises(ExecutionProviderException, match="cannot load key_file"):
        provider.submit("true", 1)
    with pytest.raises(TypeError, match="'project_id'"):
        GoogleCloudProvider(7, None, "r", "o", "f")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nodes_per_block must be 1"):
        GoogleCloudProvider("p", None, "r", "o", "f", nodes_per_block=2)
    with pytest.raises(ConfigurationError, match="cannot use launcher AprunLauncher"):
        GoogleCloudProvider("p", None, "r", "o", "f", launcher=AprunLauncher())
    with pytest.raises(ValueError, match="walltime"):
        GoogleCloudProvider("p", None, "r", "o", "f", walltime="forever")


def test_missing_client_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_google(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith(("googleapiclient", "google")):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_google)
    provider = GoogleCloudProvider("p", None, "us-central1-a", "debian-cloud", "debian-12", launcher=PlainLauncher())
    with pytest.raises(OptionalModuleMissing, match=r"google-api-python-client.*flowlib\[google\]"):
        provider.submit("true", 1)
