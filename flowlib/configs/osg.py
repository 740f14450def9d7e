"""The Open Science Pool (OSG): HTCondor, one worker per slot, workers anywhere on the pool.

::

    from flowlib.configs.osg import config, fresh_config
    config = fresh_config(project="<your OSG project>", max_blocks=20)

The same name as Parsl's ``parsl.configs.osg``. Run on an OSG access point; each
block is one HTCondor job (one slot) whose worker pool runs one worker and
connects back to the access point.

What this config assumes:

- ``project``: your OSG project name, written as ``+ProjectName`` in the submit
  description (jobs without one are refused by OSG access points).
- ``requirements``: a ClassAd expression choosing slots (default: 64-bit Linux
  slots that have the OSG software stack); ``cores_per_slot`` 1.
- ``worker_init`` must make flowlib importable on the execute node, which has
  nothing of yours: e.g. unpack a conda-pack tarball sent with
  ``transfer_input_files``, or use a container image. The default is a comment
  that does nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flowlib.config import Config
from flowlib.configs._common import WORKER_INIT_PLACEHOLDER
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.providers.condor import CondorProvider

__all__ = ["DEFAULT_REQUIREMENTS", "config", "fresh_config"]

DEFAULT_REQUIREMENTS = 'Arch == "X86_64" && OpSys == "LINUX" && HAS_MODULES =?= True'
"""Slots this config asks for unless ``requirements`` says otherwise."""


def fresh_config(
    *,
    project: str = "YOUR_OSG_PROJECT",
    requirements: str = DEFAULT_REQUIREMENTS,
    walltime: str = "00:20:00",
    max_blocks: int = 1,
    transfer_input_files: Sequence[str] = (),
    worker_init: str = WORKER_INIT_PLACEHOLDER,
    **config_kwargs: Any,
) -> Config:
    """A new Config with one HighThroughputExecutor labelled ``"OSG_HTEX"`` on a CondorProvider.

    :param project: the OSG project name (``+ProjectName``).
    :param requirements: the jobs' ClassAd ``requirements``.
    :param walltime: how long each block may run.
    :param max_blocks: the most HTCondor jobs at once.
    :param transfer_input_files: files HTCondor sends with each job.
    :param worker_init: shell run in each job before the worker starts.
    :param config_kwargs: other :class:`~flowlib.config.Config` keywords.
    """
    provider = CondorProvider(
        nodes_per_block=1,
        cores_per_slot=1,
        init_blocks=1,
        min_blocks=0,
        max_blocks=max_blocks,
        scheduler_options=f'+ProjectName = "{project}"',
        requirements=requirements,
        transfer_input_files=transfer_input_files,
        walltime=walltime,
        worker_init=worker_init,
    )
    executor = HighThroughputExecutor(label="OSG_HTEX", provider=provider, max_workers_per_node=1)
    return Config(executors=[executor], **config_kwargs)


config = fresh_config()
"""A Config built at import; load it once (use :func:`fresh_config` to load it again)."""
