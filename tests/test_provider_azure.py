"""AzureProvider against a fake Azure Resource Manager, in process.

No Azure subscription is reachable here and Azure has no emulator for compute.
The real management SDK clients (azure-mgmt-compute, -network, -resource) are
used; the provider's ``client_options`` seam gives them an azure-core transport
whose requests session is served by a fake adapter implementing the few ARM
endpoints used, with the JSON shapes the ARM REST reference documents. So the
SDK builds, authenticates (with a fake token) and sends every request; only
the server is fake. A created VM "boots" by running its custom data with bash
(only scripts that do not power off), so the power state follows the script.
"""

from __future__ import annotations

import base64
import builtins
import importlib
import io
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from flowlib.errors import ConfigurationError, OptionalModuleMissing
from flowlib.jobs.states import JobState
from flowlib.launchers import SrunMPILauncher
from flowlib.launchers.base import Launcher
from flowlib.providers.azure import AzureProvider
from flowlib.providers.errors import ExecutionProviderException, SubmitException

pytestmark = pytest.mark.timeout(60)


def _need(module: str) -> Any:
    """The optional package these tests need: skipped where it is missing, but in CI
    (``CI`` set) a missing package fails, so that CI cannot go green by skipping."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)


_need("azure.mgmt.compute")
_need("azure.mgmt.network")
requests = _need("requests")
urllib3 = _need("urllib3")

from azure.core.credentials import AccessToken  # noqa: E402
from azure.core.pipeline.transport import RequestsTransport  # noqa: E402
from requests.adapters import BaseAdapter  # noqa: E402

VM_REFERENCE = {
    "vm_size": "Standard_D2s_v3",
    "publisher": "Canonical",
    "offer": "0001-com-ubuntu-server-jammy",
    "sku": "22_04-lts",
    "version": "latest",
    "admin_username": "flowlib",
    "ssh_public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests flowlib@test",
    "disk_size_gb": 64,
}

_ROUTE = re.compile(
    r"/subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<group>[^/]+)"
    r"(?:/providers/(?P<provider>Microsoft\.\w+)/(?P<kind>\w+)/(?P<name>[^/]+)(?P<view>/instanceView)?)?",
    re.IGNORECASE,
)


class PlainLauncher(Launcher):
    def __call__(self, command: str, tasks_per_node: int, nodes_per_block: int) -> str:
        return command


class FakeCredential:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("fake-token", int(time.time()) + 3600)


class FakeARM(BaseAdapter):
    """Resource groups, virtual networks, public IPs, NICs and VMs, kept in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.resources: dict[tuple[str, str], dict[str, Any]] = {}
        self.vms: dict[str, subprocess.Popen[bytes] | None] = {}
        self.requests: list[tuple[str, str, Any]] = []

    def _reply(self, request: Any, status: int, body: dict[str, Any] | None) -> Any:
        content = json.dumps(body).encode() if body is not None else b""
        headers = {"Content-Type": "application/json", "Content-Length": str(len(content))}
        response = requests.Response()
        response.status_code = status
        response.raw = urllib3.response.HTTPResponse(
            body=io.BytesIO(content), preload_content=False, status=status, headers=headers
        )
        response.headers = requests.structures.CaseInsensitiveDict(headers)
        response.request, response.url = request, request.url
        return response

    def _error(self, request: Any, status: int, code: str, message: str) -> Any:
        return self._reply(request, status, {"error": {"code": code, "message": message}})

    def send(self, request: Any, **kwargs: Any) -> Any:
        assert request.headers["Authorization"] == "Bearer fake-token"
        path = request.path_url.split("?")[0]
        body = json.loads(request.body) if request.body else None
        self.requests.append((request.method, path, body))
        match = _ROUTE.fullmatch(path)
        assert match, f"the fake ARM has no route for {request.method} {path}"
        kind, name = (match["kind"] or "resourceGroups"), (match["name"] or match["group"])
        key = (kind.lower(), name)
        if request.method == "PUT":
            return self._put(request, path, key, body)
        if key not in self.resources:
            return self._error(request, 404, "ResourceNotFound", f"The Resource '{kind}/{name}' was not found.")
        if request.method == "DELETE":
            del self.resources[key]
            process = self.vms.pop(name, None)
            if process is not None and process.poll() is None:
                process.kill()
            if process is not None:
                process.wait()
            return self._reply(request, 202, None)
        if match["view"]:
            return self._reply(request, 200, {"statuses": self._vm_statuses(name)})
        return self._reply(request, 200, self.resources[key])

    def _put(self, request: Any, path: str, key: tuple[str, str], body: dict[str, Any]) -> Any:
        resource = {**body, "id": path, "name": key[1]}
        properties = dict(body.get("properties") or {})
        properties["provisioningState"] = "Succeeded"
        if key[0] == "virtualnetworks":
            properties["subnets"] = [{**s, "id": f"{path}/subnets/{s['name']}"} for s in properties["subnets"]]
        if key[0] == "virtualmachines":
            if properties["hardwareProfile"]["vmSize"] == "Standard_Bogus":
                return self._error(request, 400, "InvalidParameter", "The value Standard_Bogus is not a VM size.")
            properties["provisioningState"] = "Creating"
            script = base64.b64decode(properties["osProfile"]["customData"]).decode()
            no_capacity = properties["hardwareProfile"]["vmSize"] == "Standard_NoCapacity"
            # never run a script that would power this machine off
            self.vms[key[1]] = None if no_capacity or "shutdown" in script else subprocess.Popen(["bash", "-c", script])
        resource["properties"] = properties
        self.resources[key] = resource
        return self._reply(request, 201 if key[0] == "virtualmachines" else 200, resource)

    def _vm_statuses(self, name: str) -> list[dict[str, Any]]:
        vm = self.resources[("virtualmachines", name)]
        if vm["properties"]["hardwareProfile"]["vmSize"] == "Standard_NoCapacity":
            return [{"code": "ProvisioningState/failed/AllocationFailed", "message": "Allocation failed."}]
        process = self.vms.get(name)
        power = "stopped" if process is not None and process.poll() is not None else "running"
        if process is None:
            power = "starting"
        return [{"code": "ProvisioningState/succeeded"}, {"code": f"PowerState/{power}"}]

    def close(self) -> None:
        for process in self.vms.values():
            if process is not None and process.poll() is None:
                process.kill()
            if process is not None:
                process.wait()


@pytest.fixture
def arm() -> Iterator[tuple[FakeARM, dict[str, Any]]]:
    fake = FakeARM()
    session = requests.Session()
    session.mount("https://", fake)
    transport = RequestsTransport(session=session, session_owner=False)
    options = {"credential": FakeCredential(), "subscription_id": "sub-1", "client_options": {"transport": transport}}
    try:
        yield fake, options
    finally:
        fake.close()
        session.close()


def _wait(provider: AzureProvider, job_id: str, wanted: JobState) -> Any:
    deadline = time.monotonic() + 15
    while (status := provider.status([job_id])[0]).state is not wanted and time.monotonic() < deadline:
        time.sleep(0.05)
    return status


def test_vm_life_cycle(arm: Any, tmp_path: Any) -> None:
    fake, options = arm
    provider = AzureProvider(
        VM_REFERENCE, worker_init="export GREETING=hi", linger=True, launcher=PlainLauncher(), **options
    )
    marker = tmp_path / "ran"
    job_id = provider.submit(f'sleep 0.5; echo "$GREETING" > {marker}', tasks_per_node=1, job_name="block-0")
    puts = {path.split("/")[-2]: body for method, path, body in fake.requests if method == "PUT"}
    assert puts["resourcegroups"] == {"location": "westus"}
    assert puts["virtualNetworks"]["properties"]["subnets"][0]["name"] == "flowlib.subnet"
    nic_config = puts["networkInterfaces"]["properties"]["ipConfigurations"][0]["properties"]
    assert nic_config["subnet"]["id"].endswith("/virtualNetworks/flowlib.vnet/subnets/flowlib.subnet")
    assert nic_config["publicIPAddress"]["properties"] == {"deleteOption": "Delete"}
    vm = puts["virtualMachines"]["properties"]
    assert vm["hardwareProfile"] == {"vmSize": "Standard_D2s_v3"}
    assert vm["storageProfile"]["imageReference"]["offer"] == "0001-com-ubuntu-server-jammy"
    assert vm["storageProfile"]["osDisk"] == {"createOption": "FromImage", "deleteOption": "Delete", "diskSizeGB": 64}
    assert vm["osProfile"]["linuxConfiguration"]["disablePasswordAuthentication"] is True
    assert vm["networkProfile"]["networkInterfaces"][0]["properties"]["deleteOption"] == "Delete"

    assert _wait(provider, job_id, JobState.RUNNING).state is JobState.RUNNING
    assert _wait(provider, job_id, JobState.COMPLETED).state is JobState.COMPLETED
    assert marker.read_text() == "hi\n"

    sleeper = provider.submit("sleep 30", 1)
    assert provider.cancel([sleeper]) == [True]
    assert ("virtualmachines", sleeper) not in fake.resources
    assert provider.status([sleeper])[0].state is JobState.CANCELLED
    assert provider.cancel(["flowlib-never-was"]) == [True]  # already gone counts as deleted
    assert provider.status(["flowlib-other"])[0].state is JobState.MISSING


def test_azure_errors_are_reported(arm: Any) -> None:
    fake, options = arm
    bogus = AzureProvider({**VM_REFERENCE, "vm_size": "Standard_Bogus"}, launcher=PlainLauncher(), **options)
    with pytest.raises(SubmitException, match="Standard_Bogus is not a VM size"):
        bogus.submit("true", 1, job_name="bad-size")
    assert not [k for k in fake.resources if k[0] in ("publicipaddresses", "networkinterfaces")]  # cleaned up
    full = AzureProvider({**VM_REFERENCE, "vm_size": "Standard_NoCapacity"}, launcher=PlainLauncher(), **options)
    job_id = full.submit("true", 1)
    status = full.status([job_id])[0]
    assert status.state is JobState.FAILED and "AllocationFailed" in (status.message or "")
    assert (
        "shutdown -h now"
        in base64.b64decode(
            fake.resources[("virtualmachines", job_id)]["properties"]["osProfile"]["customData"]
        ).decode()
    )


def test_constructor_checks_and_credentials(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_SUBSCRIPTION_ID", raising=False)
    provider = AzureProvider(VM_REFERENCE, launcher=PlainLauncher(), credential=FakeCredential())
    assert provider._clients is None and provider.group_name == "flowlib.group" and provider.location == "westus"
    with pytest.raises(ExecutionProviderException, match="needs a subscription"):
        provider.submit("true", 1)
    keys = tmp_path / "azure.json"
    keys.write_text('{"AZURE_CLIENT_ID": "c"}')
    with pytest.raises(ExecutionProviderException, match="AZURE_TENANT_ID"):
        AzureProvider(VM_REFERENCE, key_file=str(keys), launcher=PlainLauncher()).submit("true", 1)
    shown = repr(AzureProvider({**VM_REFERENCE, "password": "S3cret!pw"}, launcher=PlainLauncher()))
    assert "S3cret!pw" not in shown and "'password': '***'" in shown
    with pytest.raises(ValueError, match="admin_username"):
        AzureProvider({k: v for k, v in VM_REFERENCE.items() if k != "admin_username"})
    with pytest.raises(ValueError, match="password / ssh_public_key"):
        AzureProvider({k: v for k, v in VM_REFERENCE.items() if k != "ssh_public_key"})
    with pytest.raises(TypeError, match="'vm_reference'"):
        AzureProvider("Standard_D2s_v3")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'location'"):
        AzureProvider(VM_REFERENCE, location=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="cannot use launcher SrunMPILauncher"):
        AzureProvider(VM_REFERENCE, launcher=SrunMPILauncher())
    with pytest.raises(ValueError, match="parallelism"):
        AzureProvider(VM_REFERENCE, parallelism=2)
    with pytest.raises(ValueError, match="walltime"):
        AzureProvider(VM_REFERENCE, walltime="12h")


def test_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_azure(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("azure"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_azure)
    provider = AzureProvider(VM_REFERENCE, launcher=PlainLauncher(), credential=FakeCredential(), subscription_id="s")
    with pytest.raises(OptionalModuleMissing, match=r"azure-mgmt-compute.*flowlib\[azure\]"):
        provider.submit("true", 1)
