"""Two Globus Compute endpoints in one Config (Parsl's multi-site example: Perlmutter and Expanse).

::

    from flowlib.configs.gc_multisite import fresh_config
    config = fresh_config(perlmutter_endpoint="<UUID>", expanse_endpoint="<UUID>")

    @python_app(executors=["Perlmutter"])
    def simulate(...): ...

The same name as Parsl's ``parsl.configs.gc_multisite``. Needs ``pip install
'flowlib[globus-compute]'``. Start your own endpoint on each machine (Globus
Compute's documentation has example endpoint configurations for Perlmutter at
NERSC and Expanse at SDSC) and pass their UUIDs; the defaults are placeholders,
which ``fresh_config()`` (and so ``config``) refuses with an error saying so.
Building the SDK's ``Executor`` logs in to Globus, so ``config`` is built when it
is first used, not when the module is imported.

Apps choose a site with ``executors=["Perlmutter"]`` or ``["Expanse"]``; without
``executors`` each task goes to either.
"""

from __future__ import annotations

from typing import Any

from flowlib.config import Config

__all__ = ["EXPANSE_ENDPOINT", "PERLMUTTER_ENDPOINT", "fresh_config"]  # and ``config``, built on first use

PERLMUTTER_ENDPOINT = "YOUR_PERLMUTTER_ENDPOINT_UUID"
"""Placeholder: the UUID of the endpoint you started on Perlmutter."""

EXPANSE_ENDPOINT = "YOUR_EXPANSE_ENDPOINT_UUID"
"""Placeholder: the UUID of the endpoint you started on Expanse."""


def fresh_config(
    *,
    perlmutter_endpoint: str = PERLMUTTER_ENDPOINT,
    expanse_endpoint: str = EXPANSE_ENDPOINT,
    client: Any = None,
    **config_kwargs: Any,
) -> Config:
    """A new Config with two GlobusComputeExecutors, labelled ``"Perlmutter"`` and ``"Expanse"``.

    :param perlmutter_endpoint: the Perlmutter endpoint's UUID.
    :param expanse_endpoint: the Expanse endpoint's UUID.
    :param client: a ``globus_compute_sdk.Client`` both use (None: the SDK makes one).
    :param config_kwargs: other :class:`~flowlib.config.Config` keywords.
    """
    from flowlib.errors import ConfigurationError
    from flowlib.executors.globus_compute import GlobusComputeExecutor, _sdk

    for keyword, value, placeholder in (
        ("perlmutter_endpoint", perlmutter_endpoint, PERLMUTTER_ENDPOINT),
        ("expanse_endpoint", expanse_endpoint, EXPANSE_ENDPOINT),
    ):
        if value == placeholder:
            raise ConfigurationError(
                f"flowlib.configs.gc_multisite: {keyword} is the placeholder {placeholder!r}; start a Globus Compute "
                f"endpoint on that machine and pass its UUID: fresh_config({keyword}='<UUID>', ...)"
            )
    sdk = _sdk()
    executors = [
        GlobusComputeExecutor(executor=sdk.Executor(endpoint_id=endpoint, client=client), label=label)
        for label, endpoint in (("Perlmutter", perlmutter_endpoint), ("Expanse", expanse_endpoint))
    ]
    return Config(executors=executors, **config_kwargs)


def __getattr__(name: str) -> Any:
    # ``config`` is built on first use: building it may log in to Globus.
    if name == "config":
        built = fresh_config()
        globals()["config"] = built
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
