"""Threads in this process: the simplest config, for laptops, notebooks and I/O-bound apps.

::

    from flowlib.configs.local_threads import config        # one shared Config
    from flowlib.configs.local_threads import fresh_config  # a new Config per call

Assumes nothing: tasks run on a :class:`~flowlib.executors.threads.ThreadPoolExecutor`
in the submitting process, without serialization. CPU-bound Python code gains
little from threads (the GIL); use :mod:`flowlib.configs.htex_local` for that.
"""

from __future__ import annotations

from typing import Any

from flowlib.config import Config
from flowlib.executors.threads import ThreadPoolExecutor

__all__ = ["config", "fresh_config"]


def fresh_config(*, max_threads: int = 4, **config_kwargs: Any) -> Config:
    """A new Config with one ThreadPoolExecutor labelled ``"threads"``.

    :param max_threads: the number of worker threads.
    :param config_kwargs: other :class:`~flowlib.config.Config` keywords (``run_dir``, ``retries``, ...).
    """
    return Config(executors=[ThreadPoolExecutor(label="threads", max_threads=max_threads)], **config_kwargs)


config = fresh_config()
"""A Config built at import; load it once (use :func:`fresh_config` to load it again)."""
