"""Parsl's config modules under flowlib.configs: every name Parsl ships, the right executor,
provider and launcher for each, the local ones running apps, and flowlib's earlier names.

The list of names is the ``parsl/configs`` directory of Parsl 2026.10; the kinds of
executor, provider and launcher are those Parsl's configuration documentation gives
for each machine (flowlib's stand-ins are noted where flowlib lacks the executor).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from flowlib.config import Config
from flowlib.configs import BUILT_ON_FIRST_USE, PARSL_MODULES, READY
from flowlib.errors import ConfigurationError
from flowlib.executors.globus_compute import GlobusComputeExecutor
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.executors.threads import ThreadPoolExecutor
from flowlib.launchers import JsrunLauncher, MpiExecLauncher, MpiRunLauncher, SingleNodeLauncher, SrunLauncher
from flowlib.providers import (
    AWSProvider,
    AzureProvider,
    CondorProvider,
    GridEngineProvider,
    KubernetesProvider,
    LocalProvider,
    LSFProvider,
    PBSProProvider,
    SlurmProvider,
)

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parent.parent

PARSL_2026_10 = {
    "ASPIRE1", "Azure", "anvil", "bridges", "cc_in2p3", "delta", "ec2", "expanse", "frontera",
    "gc_multisite", "gc_tutorial", "htex_local", "illinoiscluster", "improv", "kubernetes",
    "local_threads", "midway", "osg", "polaris", "stampede2", "summit", "toss3_llnl",
    "vineex_local", "wqex_local",
}  # fmt: skip

HTEX = HighThroughputExecutor
# name -> (executor, provider, launcher); None: no provider / no launcher
EXPECTED: dict[str, tuple[type, type | None, type | None]] = {
    "ASPIRE1": (HTEX, PBSProProvider, MpiRunLauncher),
    "Azure": (HTEX, AzureProvider, SingleNodeLauncher),
    "anvil": (HTEX, SlurmProvider, SrunLauncher),
    "bridges": (HTEX, SlurmProvider, SrunLauncher),
    "cc_in2p3": (HTEX, GridEngineProvider, SingleNodeLauncher),
    "delta": (HTEX, SlurmProvider, SrunLauncher),
    "ec2": (HTEX, AWSProvider, SingleNodeLauncher),
    "expanse": (HTEX, SlurmProvider, SrunLauncher),
    "frontera": (HTEX, SlurmProvider, SrunLauncher),
    "htex_local": (HTEX, LocalProvider, SingleNodeLauncher),
    "illinoiscluster": (HTEX, SlurmProvider, SrunLauncher),
    "improv": (HTEX, PBSProProvider, MpiRunLauncher),
    "kubernetes": (HTEX, KubernetesProvider, None),
    "local_threads": (ThreadPoolExecutor, None, None),
    "midway": (HTEX, SlurmProvider, SrunLauncher),
    "osg": (HTEX, CondorProvider, SingleNodeLauncher),
    "polaris": (HTEX, PBSProProvider, MpiExecLauncher),
    "stampede2": (HTEX, SlurmProvider, SrunLauncher),
    "summit": (HTEX, LSFProvider, JsrunLauncher),
    "toss3_llnl": (HTEX, SlurmProvider, SrunLauncher),  # Parsl: FluxExecutor on this provider
    "vineex_local": (HTEX, LocalProvider, SingleNodeLauncher),  # Parsl: TaskVineExecutor
    "wqex_local": (HTEX, LocalProvider, SingleNodeLauncher),  # Parsl: WorkQueueExecutor
}


def test_every_config_module_parsl_ships_is_here_under_its_name() -> None:
    assert set(PARSL_MODULES) == PARSL_2026_10
    assert set(PARSL_MODULES) <= set(READY)
    for name in PARSL_MODULES:
        assert importlib.import_module(f"flowlib.configs.{name}").__name__ == f"flowlib.configs.{name}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_has_the_executor_provider_and_launcher_parsl_documents(name: str) -> None:
    module = importlib.import_module(f"flowlib.configs.{name}")
    executor_type, provider_type, launcher_type = EXPECTED[name]
    for config in (module.config, module.fresh_config()):
        assert isinstance(config, Config)
        (executor,) = config.executors
        assert type(executor) is executor_type
        provider = getattr(executor, "provider", None)
        assert (type(provider) if provider is not None else None) is provider_type
        launcher = getattr(provider, "launcher", None)
        assert (type(launcher) if launcher is not None else None) is launcher_type
    assert module.fresh_config().executors[0] is not module.config.executors[0]


def test_facility_configs_carry_their_machine_settings() -> None:
    from flowlib.configs import ASPIRE1, delta, expanse, osg, summit, toss3_llnl

    delta_provider = delta.config.executors[0].provider
    assert (delta_provider.partition, delta_provider.gpus_per_node, delta_provider.cores_per_node) == (
        "gpuA100x4",
        1,
        32,
    )
    assert expanse.fresh_config(account="abc123").executors[0].provider.account == "abc123"
    assert expanse.config.executors[0].max_workers_per_node == 32
    assert toss3_llnl.config.executors[0].provider.launcher.overrides == "--mpibind=off"
    assert ASPIRE1.fresh_config(array_jobs=4).executors[0].provider.scheduler_options == "#PBS -J 1-4"
    assert ASPIRE1.config.executors[0].provider.scheduler_options == ""
    assert '+ProjectName = "bio42"' in osg.fresh_config(project="bio42").executors[0].provider.scheduler_options
    assert summit.fresh_config(project="ABC123").executors[0].provider.project == "ABC123"


def test_flowlib_earlier_name_local_htex_is_htex_local() -> None:
    from flowlib.configs import htex_local, local_htex

    assert local_htex.config is htex_local.config
    assert local_htex.fresh_config is htex_local.fresh_config
    assert htex_local.config.executors[0].label == "htex_local"


# ------------------------------------------------------------------- Globus Compute


@pytest.fixture
def fake_sdk_executor(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The SDK's Executor without the Globus login its constructor does; records each construction."""
    sdk = pytest.importorskip("globus_compute_sdk")
    made: list[dict[str, Any]] = []

    class NoLoginExecutor(sdk.Executor):  # type: ignore[misc]
        def __init__(self, endpoint_id: str | None = None, client: Any = None) -> None:
            made.append({"endpoint_id": endpoint_id, "client": client})
            self.resource_specification = None
            self.user_endpoint_config = None

    monkeypatch.setattr(sdk, "Executor", NoLoginExecutor)
    return made


@pytest.mark.parametrize("name", BUILT_ON_FIRST_USE)
def test_globus_compute_configs_are_built_on_first_use(
    name: str, fake_sdk_executor: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    module = importlib.import_module(f"flowlib.configs.{name}")
    monkeypatch.delitem(vars(module), "config", raising=False)
    assert not fake_sdk_executor
    if name == "gc_tutorial":
        config = module.config  # what `from flowlib.configs.gc_tutorial import config` does
        assert isinstance(config, Config)
        (executor,) = config.executors
        assert type(executor) is GlobusComputeExecutor and executor.label == "Tutorial_Endpoint_py3.11"
        assert module.config is config  # built once
        assert fake_sdk_executor == [{"endpoint_id": module.TUTORIAL_ENDPOINT, "client": None}]
    else:
        with pytest.raises(ConfigurationError, match="perlmutter_endpoint is the placeholder"):
            module.config  # noqa: B018
        perlmutter, expanse = "0b4e1c3a-0000-4000-8000-000000000001", "0b4e1c3a-0000-4000-8000-000000000002"
        config = module.fresh_config(perlmutter_endpoint=perlmutter, expanse_endpoint=expanse)
        assert isinstance(config, Config)
        assert all(type(e) is GlobusComputeExecutor for e in config.executors)
        assert [e.label for e in config.executors] == ["Perlmutter", "Expanse"]
        assert [m["endpoint_id"] for m in fake_sdk_executor] == [perlmutter, expanse]
    with pytest.raises(AttributeError, match="no_such_name"):
        module.no_such_name  # noqa: B018


# ------------------------------------------------------------------- the local ones run

RUN_MODULE_CONFIG = textwrap.dedent(
    """
    import importlib, sys
    import flowlib
    from flowlib import bash_app, python_app

    @python_app
    def double(x):
        return 2 * x

    @bash_app
    def write(path):
        return f"echo made > {path}"

    module = importlib.import_module("flowlib.configs." + sys.argv[1])
    with flowlib.load(module.config) as dfk:   # the module-level config, as Parsl's docs use it
        assert [double(i).result(timeout=60) for i in range(4)] == [0, 2, 4, 6]
        assert write("made.txt").result(timeout=60) == 0
        print("ok", *dfk.executors)
    """
)


@pytest.mark.parametrize("name", ["htex_local", "local_threads", "local_htex", "wqex_local", "vineex_local"])
def test_local_config_runs_apps(name: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", RUN_MODULE_CONFIG, name],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    label = importlib.import_module(f"flowlib.configs.{name}").config.executors[0].label
    assert done.stdout.split() == ["ok", label, "_flowlib_internal"]
    assert (tmp_path / "made.txt").read_text() == "made\n"
    assert (tmp_path / "runinfo" / "000").is_dir()
