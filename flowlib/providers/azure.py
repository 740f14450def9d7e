"""AzureProvider: each block is one Azure virtual machine whose custom data starts the workers.

::

    flowlib (this process)                Azure Resource Manager (azure-mgmt-* clients)        the VM
    AzureProvider -- once: resource group, virtual network + subnet (idempotent PUTs)
                  -- per block: public IP, network interface, VM (customData=script) -------> cloud-init runs
                  -- virtual_machines.instance_view -> ProvisioningState/*, PowerState/*     worker_init; launcher;
                  -- virtual_machines.begin_delete (cancel; NIC, IP and disk go with it)     power off (unless linger)

The job id is the VM name. Request bodies are written in the REST shape the Azure
Resource Manager documents (``properties`` nesting, camelCase), which every version
of the management SDK sends as given. The SDK (the ``[azure]`` extra) is imported on
first use. Credentials: ``credential`` (any azure-identity credential), else
``key_file`` (JSON with AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_TENANT_ID,
AZURE_SUBSCRIPTION_ID), else ``DefaultAzureCredential`` and ``$AZURE_SUBSCRIPTION_ID``.
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import os
import threading
import uuid
from typing import Any

from flowlib.errors import OptionalModuleMissing
from flowlib.extras import require
from flowlib.jobs.states import JobState, JobStatus
from flowlib.launchers.base import Launcher, call_launcher
from flowlib.providers.aws import cloud_startup_script
from flowlib.providers.base import ExecutionProvider
from flowlib.providers.cluster_checks import LAUNCHER_NEEDS, check_launcher, validate_common
from flowlib.providers.errors import ExecutionProviderException, SchedulerCommandError, SubmitException
from flowlib.providers.walltime import parse_walltime
from flowlib.validation import validate_arguments

logger = logging.getLogger(__name__)

# validate_common checks the keywords shared with the scheduler providers; these are not ours.
_NOT_A_SCHEDULER = {**dict.fromkeys(("channel", "walltime", "launcher", "move_files")), "scheduler_options": ""}

__all__ = ["AzureProvider", "POWER_STATES", "VM_REFERENCE_KEYS"]

POWER_STATES: dict[str, JobState] = {
    # https://learn.microsoft.com/azure/virtual-machines/states-billing (power states)
    "starting": JobState.PENDING,  # the VM is booting
    "running": JobState.RUNNING,  # running; cloud-init runs our custom data at first boot
    "stopping": JobState.COMPLETED,  # shutting down: our script powered it off, or someone stopped it
    "stopped": JobState.COMPLETED,  # stopped; still allocated and billed
    "deallocating": JobState.COMPLETED,  # releasing its hardware
    "deallocated": JobState.COMPLETED,  # stopped and released
    "unknown": JobState.UNKNOWN,  # the power state could not be read
}
"""Azure VM power state (``PowerState/<state>``) -> JobState, from the Azure VM states documentation.

Before a power state exists, ``ProvisioningState/creating`` and ``/updating`` are PENDING;
``ProvisioningState/failed/<code>`` is FAILED at any time; ``/deleting`` is CANCELLED.
"""

VM_REFERENCE_KEYS = ("vm_size", "publisher", "offer", "sku", "version", "admin_username")
"""Keys ``vm_reference`` must have, plus ``password`` or ``ssh_public_key`` (``disk_size_gb`` optional)."""

_SUBNET = "flowlib.subnet"


def _sdk() -> tuple[Any, Any, Any]:
    try:
        from azure.mgmt.compute import ComputeManagementClient
        from azure.mgmt.network import NetworkManagementClient

        try:
            resources = importlib.import_module("azure.mgmt.resource.resources")
        except ImportError:  # azure-mgmt-resource before 24 kept it one level up
            resources = importlib.import_module("azure.mgmt.resource")
    except ImportError as exc:
        raise OptionalModuleMissing(
            ["azure-mgmt-compute", "azure-mgmt-network", "azure-mgmt-resource", "azure-identity"],
            f"AzureProvider needs the Azure management SDK: pip install 'flowlib[azure]' ({exc})",
        ) from exc
    return ComputeManagementClient, NetworkManagementClient, resources.ResourceManagementClient


class AzureProvider(ExecutionProvider):
    """Blocks as Azure VMs (keywords as Parsl's AzureProvider, plus the shared ``nodes_per_block``,
    ``walltime``, ``cmd_timeout``, and ``credential``, ``subscription_id``, ``client_options``).

    ``vm_reference`` describes the VM: size, image (publisher, offer, sku, version), admin user,
    and its password or SSH public key. ``client_options`` are passed to the management clients
    (e.g. ``base_url`` for a sovereign cloud, or ``transport``). ``key_name`` is accepted for
    compatibility and not used: put an SSH key in ``vm_reference['ssh_public_key']``.
    """

    def __init__(
        self,
        vm_reference: dict[str, Any],
        init_blocks: int = 1,
        min_blocks: int = 0,
        max_blocks: int = 10,
        parallelism: float = 1,
        worker_init: str = "",
        location: str = "westus",
        group_name: str = "flowlib.group",
        key_name: str | None = None,
        key_file: str | None = None,
        vnet_name: str = "flowlib.vnet",
        linger: bool = False,
        launcher: Launcher | None = None,
        nodes_per_block: int = 1,
        walltime: str | None = None,
        cmd_timeout: float = 30.0,
        credential: Any = None,
        subscription_id: str | None = None,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        require(
            "AzureProvider",
            "azure",
            ["azure.mgmt.compute", "azure.mgmt.network", "azure.mgmt.resource"],
            ["azure-mgmt-compute", "azure-mgmt-network", "azure-mgmt-resource"],
        )
        validate_common("AzureProvider", {"label": "", **_NOT_A_SCHEDULER, **locals()})
        validate_arguments(
            "AzureProvider",
            {
                "vm_reference": (vm_reference, dict[str, Any]),
                "location": (location, str),
                "group_name": (group_name, str),
                "key_name": (key_name, str | None),
                "key_file": (key_file, str | None),
                "vnet_name": (vnet_name, str),
                "linger": (linger, bool),
                "subscription_id": (subscription_id, str | None),
                "client_options": (client_options, dict[str, Any] | None),
            },
        )
        self._walltime = None if walltime is None else parse_walltime(walltime, "AzureProvider")
        missing = [k for k in VM_REFERENCE_KEYS if not vm_reference.get(k)]
        if missing or not (vm_reference.get("password") or vm_reference.get("ssh_public_key")):
            raise ValueError(
                f"AzureProvider argument 'vm_reference' needs the keys {', '.join(VM_REFERENCE_KEYS)} and "
                f"'password' or 'ssh_public_key'; missing: {', '.join(missing) or 'password / ssh_public_key'}"
            )
        if nodes_per_block != 1:
            raise ValueError(f"AzureProvider starts one VM per block: nodes_per_block must be 1, got {nodes_per_block}")
        self.vm_reference = dict(vm_reference)
        self.init_blocks = init_blocks
        self.min_blocks = min_blocks
        self.max_blocks = max_blocks
        self.parallelism = parallelism
        self.worker_init = worker_init
        self.location = location
        self.group_name = group_name
        self.key_name = key_name
        self.key_file = key_file
        self.vnet_name = vnet_name
        self.linger = linger
        if launcher is None:
            from flowlib.launchers import SingleNodeLauncher

            launcher = SingleNodeLauncher()
        check_launcher("AzureProvider", launcher, 1, LAUNCHER_NEEDS, "Azure virtual machines")
        self.launcher = launcher
        self.nodes_per_block = nodes_per_block
        self.walltime = walltime
        self.cmd_timeout = cmd_timeout
        self.credential = credential
        self.subscription_id = subscription_id
        self.client_options = dict(client_options or {})
        self.label = "azure"
        self.resources: dict[str, dict[str, Any]] = {}
        """Job id (VM name) -> {"status": JobStatus, "cancelled": bool}."""
        self._lock = threading.Lock()
        self._clients: tuple[Any, Any, Any] | None = None
        self._subnet_id: str | None = None

    def __repr__(self) -> str:
        text = super().__repr__()
        password = self.vm_reference.get("password")
        return text.replace(repr(password), "'***'") if password else text

    # -- clients and network -----------------------------------------------------------------

    def _credential(self) -> tuple[Any, str]:
        credential, subscription = self.credential, self.subscription_id
        if credential is None and self.key_file is not None:
            try:
                with open(self.key_file) as f:
                    keys = json.load(f)
                from azure.identity import ClientSecretCredential

                credential = ClientSecretCredential(
                    keys["AZURE_TENANT_ID"], keys["AZURE_CLIENT_ID"], keys["AZURE_CLIENT_SECRET"]
                )
                subscription = subscription or keys["AZURE_SUBSCRIPTION_ID"]
            except ImportError as exc:
                raise OptionalModuleMissing(["azure-identity"], f"pip install 'flowlib[azure]' ({exc})") from exc
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ExecutionProviderException(
                    f"AzureProvider key_file {self.key_file!r} must be JSON with AZURE_TENANT_ID, AZURE_CLIENT_ID, "
                    f"AZURE_CLIENT_SECRET and AZURE_SUBSCRIPTION_ID: {exc!r}"
                ) from exc
        elif credential is None:
            try:
                from azure.identity import DefaultAzureCredential
            except ImportError as exc:
                raise OptionalModuleMissing(["azure-identity"], f"pip install 'flowlib[azure]' ({exc})") from exc
            credential = DefaultAzureCredential()
        subscription = subscription or os.environ.get("AZURE_SUBSCRIPTION_ID")
        if not subscription:
            raise ExecutionProviderException(
                "AzureProvider needs a subscription: give subscription_id, AZURE_SUBSCRIPTION_ID in key_file, "
                "or set $AZURE_SUBSCRIPTION_ID"
            )
        return credential, subscription

    def _sdk_clients(self) -> tuple[Any, Any, Any]:
        """(compute, network, resource) management clients, built on first use."""
        if self._clients is None:
            compute_cls, network_cls, resource_cls = _sdk()
            credential, subscription = self._credential()
            options = {"connection_timeout": self.cmd_timeout, "read_timeout": self.cmd_timeout, **self.client_options}
            self._clients = (
                compute_cls(credential, subscription, **options),
                network_cls(credential, subscription, **options),
                resource_cls(credential, subscription, **options),
            )
        return self._clients

    def _ensure_network(self) -> str:
        if self._subnet_id is None:
            _, network, resource = self._sdk_clients()
            resource.resource_groups.create_or_update(self.group_name, {"location": self.location})
            body = {
                "location": self.location,
                "properties": {
                    "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                    "subnets": [{"name": _SUBNET, "properties": {"addressPrefix": "10.0.0.0/24"}}],
                },
            }
            vnet = network.virtual_networks.begin_create_or_update(self.group_name, self.vnet_name, body).result()
            self._subnet_id = f"{vnet.id}/subnets/{_SUBNET}"
        return self._subnet_id

    # -- submit ----------------------------------------------------------------------------

    def _vm_body(self, name: str, nic_id: str, script: str, job_name: str) -> dict[str, Any]:
        ref = self.vm_reference
        os_profile: dict[str, Any] = {
            "computerName": name,
            "adminUsername": ref["admin_username"],
            "customData": base64.b64encode(script.encode()).decode(),
        }
        if ref.get("ssh_public_key"):
            path = f"/home/{ref['admin_username']}/.ssh/authorized_keys"
            os_profile["linuxConfiguration"] = {
                "disablePasswordAuthentication": not ref.get("password"),
                "ssh": {"publicKeys": [{"path": path, "keyData": ref["ssh_public_key"]}]},
            }
        if ref.get("password"):
            os_profile["adminPassword"] = ref["password"]
        os_disk: dict[str, Any] = {"createOption": "FromImage", "deleteOption": "Delete"}
        if ref.get("disk_size_gb"):
            os_disk["diskSizeGB"] = int(ref["disk_size_gb"])
        image = {key: ref[key] for key in ("publisher", "offer", "sku", "version")}
        return {
            "location": self.location,
            "tags": {"flowlib-job-name": job_name},
            "properties": {
                "hardwareProfile": {"vmSize": ref["vm_size"]},
                "storageProfile": {"imageReference": image, "osDisk": os_disk},
                "osProfile": os_profile,
                "networkProfile": {
                    "networkInterfaces": [{"id": nic_id, "properties": {"primary": True, "deleteOption": "Delete"}}]
                },
            },
        }

    def submit(self, command: str, tasks_per_node: int, job_name: str = "flowlib.auto") -> str:
        """Create the public IP, network interface and VM of one block; return the VM name."""
        compute, network, _ = self._sdk_clients()
        name = f"flowlib-{uuid.uuid4().hex[:12]}"
        launched = call_launcher(self.launcher, command, tasks_per_node, 1, self.script_dir)
        script = cloud_startup_script(self.worker_init, launched, self._walltime, self.linger)
        group, made = self.group_name, []
        try:
            subnet = self._ensure_network()
            ip_body = {"location": self.location, "sku": {"name": "Standard"}}
            ip_body["properties"] = {"publicIPAllocationMethod": "Static"}
            ip = network.public_ip_addresses.begin_create_or_update(group, f"{name}-ip", ip_body).result()
            made.append((network.public_ip_addresses, f"{name}-ip"))
            ip_ref = {"id": ip.id, "properties": {"deleteOption": "Delete"}}
            config = {"name": "ipconfig1", "properties": {"subnet": {"id": subnet}, "publicIPAddress": ip_ref}}
            nic_body = {"location": self.location, "properties": {"ipConfigurations": [config]}}
            nic = network.network_interfaces.begin_create_or_update(group, f"{name}-nic", nic_body).result()
            made.append((network.network_interfaces, f"{name}-nic"))
            body = self._vm_body(name, nic.id, script, job_name)
            compute.virtual_machines.begin_create_or_update(group, name, body, polling=False)
        except Exception as exc:  # HttpResponseError, ClientAuthenticationError, transport errors
            for operations, leftover in reversed(made):
                try:
                    operations.begin_delete(group, leftover, polling=False)
                except Exception as cleanup:
                    logger.warning("cannot delete %s after a failed submit: %s", leftover, cleanup)
            raise SubmitException(job_name, f"Azure refused VM {name}: {_message(exc)}") from exc
        with self._lock:
            self.resources[name] = {"status": JobStatus(JobState.PENDING), "cancelled": False}
        logger.debug("submitted block %s as VM %s", job_name, name)
        return name

    # -- status ----------------------------------------------------------------------------

    def status(self, job_ids: list[str]) -> list[JobStatus]:
        """One instance_view call per unfinished block."""
        for job_id in job_ids:
            with self._lock:
                entry = self.resources.setdefault(job_id, {"status": None, "cancelled": False})
                if entry["status"] is not None and entry["status"].terminal:
                    continue
            new = self._vm_status(job_id, entry["cancelled"])
            with self._lock:
                entry["status"] = new
        with self._lock:
            return [self.resources[j]["status"] for j in job_ids]

    def _vm_status(self, name: str, cancelled: bool) -> JobStatus:
        compute = self._sdk_clients()[0]
        try:
            view = compute.virtual_machines.instance_view(self.group_name, name)
        except Exception as exc:
            if getattr(exc, "status_code", None) != 404:
                raise SchedulerCommandError(f"azure virtual_machines.instance_view {name}", _message(exc)) from exc
            if cancelled:
                return JobStatus(JobState.CANCELLED, "VM deleted by flowlib")
            return JobStatus(JobState.MISSING, f"VM {name} does not exist in resource group {self.group_name}")
        provisioning, power, text = "", "", None
        for item in view.statuses or []:
            kind, _, value = (item.code or "").partition("/")
            if kind.lower() == "provisioningstate":
                provisioning, text = value, item.message or item.display_status
            elif kind.lower() == "powerstate":
                power = value.lower()
        if provisioning.lower().startswith("failed"):
            return JobStatus(JobState.FAILED, f"ProvisioningState/{provisioning}: {text}")
        provisioning = provisioning.lower()
        if provisioning == "deleting" or (
            cancelled and power in ("stopping", "stopped", "deallocating", "deallocated")
        ):
            return JobStatus(JobState.CANCELLED, "VM being deleted")
        if power:
            state = POWER_STATES.get(power, JobState.UNKNOWN)
            return JobStatus(state, f"Azure power state {power!r}" if state is JobState.UNKNOWN else None)
        return JobStatus(JobState.PENDING, f"provisioning {provisioning or 'not started'}")

    # -- cancel ----------------------------------------------------------------------------

    def cancel(self, job_ids: list[str]) -> list[bool]:
        """Delete each VM (its network interface, public IP and disk are deleted with it)."""
        compute, results = self._sdk_clients()[0], []
        for name in job_ids:
            try:
                compute.virtual_machines.begin_delete(self.group_name, name, polling=False)
                ok = True
            except Exception as exc:
                ok = getattr(exc, "status_code", None) == 404
                if not ok:
                    logger.warning("cannot delete VM %s: %s", name, _message(exc))
            with self._lock:
                entry = self.resources.setdefault(name, {"status": None, "cancelled": False})
                if ok:
                    entry["cancelled"] = True
                    entry["status"] = JobStatus(JobState.CANCELLED, "VM deleted by flowlib")
            results.append(ok)
        return results


def _message(exc: BaseException) -> str:
    """The Azure error's own message (its ``message`` attribute), else the exception's text."""
    return str(getattr(exc, "message", None) or exc).splitlines()[0]
