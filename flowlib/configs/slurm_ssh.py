"""A Slurm cluster reached over SSH: ``sbatch``/``squeue``/``scancel`` run on its login node.

::

    export FLOWLIB_SSH_HOST=login.cluster.example.org FLOWLIB_SSH_USER=alice
    from flowlib.configs.slurm_ssh import config, fresh_config
    config = fresh_config(partition="debug", key_filename="~/.ssh/id_ed25519")

The workflow runs on your machine; a :class:`~flowlib.channels.SSHChannel`
(``pip install 'flowlib[ssh]'``) carries the scheduler's commands and the submit
scripts to the login node, and the worker pools' connections back through an SSH
tunnel, so no port of your machine needs to be open. Creating the config does not
connect: loading it does.

Assumes, and what to adapt:

- ``hostname``: ``$FLOWLIB_SSH_HOST``, else the placeholder
  ``login.cluster.example.org``; ``username``: ``$FLOWLIB_SSH_USER``, else your
  local user name. Authentication uses ssh-agent or your default keys (or
  ``key_filename``); the host must already be in ``~/.ssh/known_hosts`` (log in
  once with ``ssh``): unknown hosts are refused.
- Submit scripts and worker logs go to ``script_dir`` on the cluster
  (``.flowlib/scripts``, relative to your remote home directory).
- ``python3`` on the cluster (after ``worker_init``) has the same flowlib version.
- ``partition``: ``$FLOWLIB_SLURM_PARTITION`` when set, else the cluster's
  default; ``account``, ``walltime``, ``max_blocks`` as in :mod:`flowlib.configs.slurm`.
- The tunnel's remote end listens on the login node's loopback interface by
  default, which suits pools running on the login node itself. For pools on
  compute nodes, pass ``login_address``: the login node's address as the compute
  nodes see it; the tunnel then listens there (the login node's sshd must allow
  ``GatewayPorts clientspecified``; see "Where the remote port listens" in the SSH
  documentation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flowlib.channels.ssh import SSHChannel
from flowlib.config import Config
from flowlib.configs._common import WORKER_INIT_PLACEHOLDER, from_env
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.launchers import SrunLauncher
from flowlib.providers.slurm import SlurmProvider

__all__ = ["HOST_PLACEHOLDER", "config", "fresh_config"]

HOST_PLACEHOLDER = "login.cluster.example.org"
"""The login node used when neither ``hostname`` nor ``$FLOWLIB_SSH_HOST`` is given; not a real host."""


def fresh_config(
    *,
    hostname: str | None = None,
    username: str | None = None,
    key_filename: str | Sequence[str] | None = None,
    script_dir: str = ".flowlib/scripts",
    partition: str | None = None,
    account: str | None = None,
    walltime: str = "00:30:00",
    max_blocks: int = 1,
    worker_init: str = WORKER_INIT_PLACEHOLDER,
    login_address: str | None = None,
    **config_kwargs: Any,
) -> Config:
    """A new Config with one HighThroughputExecutor labelled ``"htex_slurm_ssh"``: Slurm through an SSHChannel.

    :param hostname: the login node (None: ``$FLOWLIB_SSH_HOST``, else :data:`HOST_PLACEHOLDER`).
    :param username: the remote user (None: ``$FLOWLIB_SSH_USER``, else the local user name).
    :param key_filename: private key file(s) to log in with (None: ssh-agent and default keys).
    :param script_dir: where submit scripts go on the cluster (relative: to the remote home).
    :param partition: ``--partition`` (None: ``$FLOWLIB_SLURM_PARTITION``, else the default).
    :param account: ``--account`` to charge.
    :param walltime: each block's ``--time``.
    :param max_blocks: the most Slurm jobs at once.
    :param worker_init: shell run in each job before the workers start.
    :param login_address: the login node's address as compute nodes see it (None: pools
        run on the login node and reach the tunnel on its loopback).
    :param config_kwargs: other :class:`~flowlib.config.Config` keywords.
    """
    channel = SSHChannel(
        hostname=hostname or from_env("FLOWLIB_SSH_HOST", HOST_PLACEHOLDER) or HOST_PLACEHOLDER,
        username=username or from_env("FLOWLIB_SSH_USER"),
        key_filename=key_filename,
        script_dir=script_dir,
    )
    provider = SlurmProvider(
        channel=channel,
        partition=partition or from_env("FLOWLIB_SLURM_PARTITION"),
        account=account,
        walltime=walltime,
        nodes_per_block=1,
        init_blocks=1,
        min_blocks=0,
        max_blocks=max_blocks,
        worker_init=worker_init,
        launcher=SrunLauncher(),
    )
    executor = HighThroughputExecutor(label="htex_slurm_ssh", provider=provider, address=login_address)
    return Config(executors=[executor], **config_kwargs)


config = fresh_config()
"""A Config built at import; load it once (use :func:`fresh_config` to load it again)."""
