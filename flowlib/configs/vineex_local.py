"""Parsl's ``vineex_local`` name: a TaskVine executor on this machine. flowlib has none; this is htex on it.

::

    from flowlib.configs.vineex_local import config, fresh_config

Parsl's ``parsl.configs.vineex_local`` runs CCTools' TaskVine with a local worker.
flowlib has no TaskVine executor (CCTools comes from conda-forge's ndcctools, not
from PyPI), so this module gives what that config is used for, many tasks on this
machine's cores: flowlib's HighThroughputExecutor on a LocalProvider, labelled
``"parsl-vine-example"`` as in Parsl so that apps naming that label still run.
TaskVine resource specifications: htex honours ``cores``, ``memory`` and ``gpus``,
and refuses others (``disk``, ...) with an error naming them. For new code use
:mod:`flowlib.configs.htex_local`.
"""

from __future__ import annotations

from typing import Any

from flowlib.config import Config
from flowlib.configs._common import local_htex

__all__ = ["config", "fresh_config"]


def fresh_config(*, max_workers_per_node: int | None = None, **config_kwargs: Any) -> Config:
    """A new Config with one HighThroughputExecutor labelled ``"parsl-vine-example"`` on this machine.

    :param max_workers_per_node: at most this many workers (None: one per usable core).
    :param config_kwargs: other :class:`~flowlib.config.Config` keywords.
    """
    return local_htex("parsl-vine-example", config_kwargs, max_workers_per_node)


config = fresh_config()
"""A Config built at import; load it once (use :func:`fresh_config` to load it again)."""
