"""Globus Compute's public tutorial endpoint: tasks go through the Globus Compute service.

::

    from flowlib.configs.gc_tutorial import config        # built on first use: may ask you to log in
    from flowlib.configs.gc_tutorial import fresh_config
    config = fresh_config(endpoint_id="<your endpoint's UUID>")

The same name as Parsl's ``parsl.configs.gc_tutorial``. Needs ``pip install
'flowlib[globus-compute]'``. Building the SDK's ``Executor`` logs in to Globus
(a browser or a pasted code, the first time), so unlike the other config modules
``config`` is built when it is first used (``from ... import config``), not when
the module is imported.

What this config assumes:

- the tutorial endpoint (:data:`TUTORIAL_ENDPOINT`, the public one Globus Compute's
  and Parsl's tutorials use) runs your tasks; it is for trying things out, with
  short tasks and no access to your files. Pass your own ``endpoint_id`` for
  real work.
- The endpoint's Python environment has flowlib installed (as htex workers need),
  and the modules your apps import.
"""

from __future__ import annotations

from typing import Any

from flowlib.config import Config

__all__ = ["TUTORIAL_ENDPOINT", "fresh_config"]  # and ``config``, built on first use

TUTORIAL_ENDPOINT = "4b116d3c-1703-4f8f-9f6f-39921e5864df"
"""The public Globus Compute tutorial endpoint."""


def fresh_config(
    *,
    endpoint_id: str = TUTORIAL_ENDPOINT,
    label: str = "Tutorial_Endpoint_py3.11",
    client: Any = None,
    **config_kwargs: Any,
) -> Config:
    """A new Config with one GlobusComputeExecutor sending tasks to ``endpoint_id``.

    :param endpoint_id: the Globus Compute endpoint's UUID.
    :param label: the executor's label.
    :param client: a ``globus_compute_sdk.Client`` to use (None: the SDK makes one, logging in if needed).
    :param config_kwargs: other :class:`~flowlib.config.Config` keywords.
    """
    from flowlib.executors.globus_compute import GlobusComputeExecutor, _sdk

    sdk_executor = _sdk().Executor(endpoint_id=endpoint_id, client=client)
    return Config(executors=[GlobusComputeExecutor(executor=sdk_executor, label=label)], **config_kwargs)


def __getattr__(name: str) -> Any:
    # ``config`` is built on first use: building it may log in to Globus.
    if name == "config":
        built = fresh_config()
        globals()["config"] = built
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
