"""Microsoft Azure: each block is an Azure VM whose worker pool connects back to this machine.

::

    from flowlib.configs.Azure import config, fresh_config
    config = fresh_config(vm_reference={**VM_REFERENCE, "ssh_public_key": open(key).read()})

The same name as Parsl's ``parsl.configs.Azure``. Needs ``pip install
'flowlib[azure]'`` (imported when the config is loaded, not at import) and Azure
credentials (``az login``, or the environment variables of
``azure.identity.DefaultAzureCredential``) with ``AZURE_SUBSCRIPTION_ID`` set.

What this config assumes:

- ``vm_reference`` describes the VM: the default (:data:`VM_REFERENCE`) is an
  Ubuntu 22.04 LTS ``Standard_D2s_v3`` with admin user ``flowlib`` and a placeholder
  SSH public key: put your own key (or a password) there.
- ``worker_init`` installs Python and flowlib on the VM (Ubuntu's cloud image has
  neither flowlib nor pip).
- One VM per block, up to ``max_blocks``; this machine must be reachable from the
  VMs on the interchange's ports.
"""

from __future__ import annotations

from typing import Any

from flowlib.config import Config
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.providers.azure import AzureProvider

__all__ = ["VM_REFERENCE", "config", "fresh_config"]

VM_REFERENCE: dict[str, Any] = {
    "vm_size": "Standard_D2s_v3",
    "publisher": "Canonical",
    "offer": "0001-com-ubuntu-server-jammy",
    "sku": "22_04-lts-gen2",
    "version": "latest",
    "admin_username": "flowlib",
    "ssh_public_key": "ssh-ed25519 YOUR_PUBLIC_KEY",
    "disk_size_gb": 30,
}
"""The default ``vm_reference``; the ``ssh_public_key`` is a placeholder."""

WORKER_INIT = "sudo apt-get update -y && sudo apt-get install -y python3-pip && pip3 install flowlib"
"""The default ``worker_init``: install flowlib on a fresh Ubuntu VM."""


def fresh_config(
    *,
    vm_reference: dict[str, Any] | None = None,
    location: str = "westus",
    max_blocks: int = 1,
    worker_init: str = WORKER_INIT,
    **config_kwargs: Any,
) -> Config:
    """A new Config with one HighThroughputExecutor labelled ``"azure_single_node"`` on an AzureProvider.

    :param vm_reference: the VM's description (None: :data:`VM_REFERENCE`).
    :param location: the Azure region.
    :param max_blocks: the most VMs at once.
    :param worker_init: shell run on each VM before the workers start.
    :param config_kwargs: other :class:`~flowlib.config.Config` keywords.
    """
    provider = AzureProvider(
        vm_reference=dict(VM_REFERENCE if vm_reference is None else vm_reference),
        location=location,
        init_blocks=1,
        min_blocks=0,
        max_blocks=max_blocks,
        worker_init=worker_init,
    )
    executor = HighThroughputExecutor(label="azure_single_node", provider=provider)
    return Config(executors=[executor], **config_kwargs)


config = fresh_config()
"""A Config built at import; load it once (use :func:`fresh_config` to load it again)."""
