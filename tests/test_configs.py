"""The ready configs in flowlib.configs, and auto()/detect().

Every config module is imported in a fresh interpreter whose PATH is an empty
directory and in which starting a process or opening a connection raises: an
import that ran a scheduler command or contacted a host would fail there. auto()
is checked against fake Slurm and PBS allocations (environment variables, a fake
``scontrol``, a PBS_NODEFILE), and run for real: on this machine, and inside the
fake allocations with tests/fakebin's ``srun``/``mpiexec``, which start every
"node"'s worker pool here.
"""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import try_assert

import flowlib
import flowlib.configs
from flowlib import python_app
from flowlib.config import Config
from flowlib.configs import BUILT_ON_FIRST_USE, READY, AllocationProvider, auto, detect
from flowlib.errors import ConfigurationError
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.executors.threads import ThreadPoolExecutor
from flowlib.launchers import MpiExecLauncher, SingleNodeLauncher, SrunLauncher
from flowlib.providers import GridEngineProvider, LocalProvider, PBSProProvider, SlurmProvider

pytestmark = pytest.mark.timeout(60)

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
FAKEBIN = TESTS / "fakebin"

# Variables that make detect() see a batch job; removed for every test.
BATCH_VARIABLES = (
    "SLURM_JOB_ID",
    "SLURM_JOBID",
    "SLURM_JOB_NODELIST",
    "SLURM_NODELIST",
    "SLURM_NNODES",
    "SLURM_JOB_NUM_NODES",
    "PBS_JOBID",
    "PBS_NODEFILE",
    "FLOWLIB_SLURM_PARTITION",
    "FLOWLIB_SSH_HOST",
    "FLOWLIB_SSH_USER",
)


@pytest.fixture(autouse=True)
def _outside_batch_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in BATCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def only(config: Config) -> Any:
    """The one executor of ``config``."""
    assert len(config.executors) == 1
    return config.executors[0]


# ----------------------------------------------------------------------------- imports

IMPORT_CHECK = textwrap.dedent(
    """
    import os, socket, subprocess, sys

    def refuse(*args, **kwargs):
        raise AssertionError(f"a config module tried to run or contact something: {args!r}")

    subprocess.Popen.__init__ = refuse
    os.system = refuse
    os.posix_spawn = refuse
    os.fork = refuse
    socket.socket.connect = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse

    import flowlib.configs
    from flowlib.config import Config
    module = getattr(flowlib.configs, sys.argv[1])  # a bare attribute access imports the module
    assert module is sys.modules["flowlib.configs." + sys.argv[1]]
    if sys.argv[1] in flowlib.configs.BUILT_ON_FIRST_USE:
        assert "config" not in vars(module), "config was built at import"
        assert not {"globus_compute_sdk", "globus_sdk"} & set(sys.modules), "the SDK was imported at import"
        print("ok built on first use")
        sys.exit(0)
    assert isinstance(module.config, Config), module.config
    fresh = module.fresh_config()
    assert isinstance(fresh, Config) and fresh is not module.config
    assert fresh.executors[0] is not module.config.executors[0]
    heavy = sorted({"zmq", "paramiko", "kubernetes", "boto3"} & set(sys.modules))
    assert not heavy, f"importing the config imported {heavy}"
    print("ok", type(module.config.executors[0]).__name__)
    """
)


@pytest.mark.parametrize("name", READY)
def test_module_imports_without_running_or_writing_anything(name: str, tmp_path: Path) -> None:
    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir()
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in BATCH_VARIABLES}
    env.update(PATH=str(empty_bin), HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_CHECK, name],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok ")
    assert list(workdir.iterdir()) == [], "importing a config wrote files"
    assert not (tmp_path / "home").exists(), "importing a config wrote to the home directory"


def test_ready_lists_every_module() -> None:
    on_disk = {p.stem for p in Path(flowlib.configs.__file__).parent.glob("*.py") if not p.stem.startswith("_")}
    assert on_disk == set(READY)
    assert set(READY) <= set(dir(flowlib.configs))
    with pytest.raises(AttributeError, match="no_such_machine"):
        flowlib.configs.no_such_machine  # noqa: B018


@pytest.mark.parametrize("name", [n for n in READY if n not in BUILT_ON_FIRST_USE])
def test_fresh_config_passes_config_keywords(name: str, tmp_path: Path) -> None:
    module = importlib.import_module(f"flowlib.configs.{name}")
    config = module.fresh_config(run_dir=str(tmp_path / "runs"), retries=2)
    assert config.retries == 2
    assert config.run_dir == str(tmp_path / "runs")
    with pytest.raises(TypeError, match="retries"):
        module.fresh_config(retries="two")


# --------------------------------------------------------------------- what each has


def test_local_threads() -> None:
    from flowlib.configs import local_threads

    executor = only(local_threads.config)
    assert isinstance(executor, ThreadPoolExecutor)
    assert executor.label == "threads"
    assert only(local_threads.fresh_config(max_threads=7)).max_threads == 7


def test_local_htex() -> None:
    from flowlib.configs import local_htex

    executor = only(local_htex.config)
    assert isinstance(executor, HighThroughputExecutor)
    assert type(executor.provider) is LocalProvider
    assert isinstance(executor.provider.launcher, SingleNodeLauncher)
    assert executor.max_workers_per_node is None  # the pool counts the usable cores when it starts
    assert only(local_htex.fresh_config(max_workers_per_node=3)).max_workers_per_node == 3


def test_slurm(monkeypatch: pytest.MonkeyPatch) -> None:
    from flowlib.configs import slurm

    provider = only(slurm.config).provider
    assert isinstance(provider, SlurmProvider)
    assert isinstance(provider.launcher, SrunLauncher)
    assert provider.partition is None
    monkeypatch.setenv("FLOWLIB_SLURM_PARTITION", "gpu-short")
    assert only(slurm.fresh_config()).provider.partition == "gpu-short"
    assert only(slurm.fresh_config(partition="other")).provider.partition == "other"
    provider = only(slurm.fresh_config(account="proj", nodes_per_block=2, max_blocks=3)).provider
    assert (provider.account, provider.nodes_per_block, provider.max_blocks) == ("proj", 2, 3)


def test_slurm_ssh(monkeypatch: pytest.MonkeyPatch) -> None:
    from flowlib.channels.ssh import SSHChannel
    from flowlib.configs import slurm_ssh

    provider = only(slurm_ssh.fresh_config()).provider
    assert isinstance(provider, SlurmProvider)
    assert isinstance(provider.launcher, SrunLauncher)
    assert isinstance(provider.channel, SSHChannel)
    assert provider.channel.hostname == slurm_ssh.HOST_PLACEHOLDER
    assert provider.channel.script_dir == ".flowlib/scripts"
    monkeypatch.setenv("FLOWLIB_SSH_HOST", "login.example.net")
    monkeypatch.setenv("FLOWLIB_SSH_USER", "alice")
    monkeypatch.setenv("FLOWLIB_SLURM_PARTITION", "debug")
    provider = only(slurm_ssh.fresh_config()).provider
    assert (provider.channel.hostname, provider.channel.username) == ("login.example.net", "alice")
    assert provider.partition == "debug"
    assert only(slurm_ssh.fresh_config(hostname="other")).provider.channel.hostname == "other"


def test_pbspro_launcher_follows_nodes_per_block() -> None:
    from flowlib.configs import pbspro

    provider = only(pbspro.config).provider
    assert isinstance(provider, PBSProProvider)
    assert isinstance(provider.launcher, SingleNodeLauncher)
    provider = only(pbspro.fresh_config(nodes_per_block=4, cpus_per_node=16, select_options="ngpus=2")).provider
    assert isinstance(provider.launcher, MpiExecLauncher)
    assert (provider.nodes_per_block, provider.cpus_per_node, provider.select_options) == (4, 16, "ngpus=2")


def test_gridengine() -> None:
    from flowlib.configs import gridengine

    provider = only(gridengine.config).provider
    assert isinstance(provider, GridEngineProvider)
    assert isinstance(provider.launcher, SingleNodeLauncher)
    assert only(gridengine.fresh_config(queue="all.q")).provider.queue == "all.q"


def test_kubernetes() -> None:
    from flowlib.configs import kubernetes
    from flowlib.providers.kubernetes import KubernetesProvider

    provider = only(kubernetes.config).provider
    assert isinstance(provider, KubernetesProvider)
    assert provider.image == kubernetes.IMAGE_PLACEHOLDER
    provider = only(kubernetes.fresh_config(image="me/worker:1", cpu=2, memory="4Gi")).provider
    assert (provider.image, provider.max_cpu, provider.init_mem) == ("me/worker:1", 2.0, "4Gi")


@pytest.mark.parametrize(("name", "devices"), [("polaris", 4), ("aurora", 12)])
def test_alcf_machines_use_pals_mpiexec(name: str, devices: int) -> None:
    module = importlib.import_module(f"flowlib.configs.{name}")
    executor = only(module.fresh_config(account="MyProject", nodes_per_block=2))
    provider = executor.provider
    assert isinstance(provider, PBSProProvider)
    assert (provider.account, provider.queue, provider.nodes_per_block) == ("MyProject", "debug", 2)
    assert "#PBS -l filesystems=" in provider.scheduler_options
    assert isinstance(provider.launcher, MpiExecLauncher)
    text = provider.launcher("CMD", 1, 2)
    assert "--cpu-bind none" in text and "--ppn 1" in text
    assert len(executor.options.available_accelerators) == devices
    assert executor.max_workers_per_node == devices


def test_aurora_tiles_are_named_for_ze_affinity_mask() -> None:
    from flowlib.configs import aurora

    assert only(aurora.config).options.available_accelerators[:3] == ("0.0", "0.1", "1.0")


def test_frontier() -> None:
    from flowlib.configs import frontier

    executor = only(frontier.fresh_config(account="ABC123", qos="debug"))
    provider = executor.provider
    assert isinstance(provider, SlurmProvider)
    assert isinstance(provider.launcher, SrunLauncher)
    assert (provider.account, provider.partition, provider.qos) == ("ABC123", "batch", "debug")
    assert provider.gpus_per_node == 8
    assert executor.options.available_accelerators == tuple(str(i) for i in range(8))


@pytest.mark.parametrize(("constraint", "gpus"), [("gpu", 4), ("cpu", 0)])
def test_perlmutter(constraint: str, gpus: int) -> None:
    from flowlib.configs import perlmutter

    executor = only(perlmutter.fresh_config(constraint=constraint))  # type: ignore[arg-type]
    provider = executor.provider
    assert isinstance(provider, SlurmProvider)
    assert isinstance(provider.launcher, SrunLauncher)
    assert (provider.constraint, provider.qos) == (constraint, "debug")
    assert len(executor.options.available_accelerators) == gpus
    assert provider.gpus_per_node == (gpus or None)
    with pytest.raises(ValueError, match="constraint"):
        perlmutter.fresh_config(constraint="fpga")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ detect


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "local"),
        ({"SLURM_JOB_ID": "12", "SLURM_JOB_NODELIST": "nid[001-004]"}, "slurm"),
        ({"SLURM_JOBID": "12", "SLURM_NODELIST": "nid001"}, "slurm"),
        ({"SLURM_JOB_ID": "12"}, "local"),  # a job id without nodes is no allocation to use
        ({"PBS_JOBID": "7.server", "PBS_NODEFILE": "/var/spool/pbs/aux/7.server"}, "pbs"),
        ({"PBS_JOBID": "7.server"}, "local"),
        ({"SLURM_JOB_ID": " ", "SLURM_JOB_NODELIST": "n1"}, "local"),
    ],
)
def test_detect(environ: dict[str, str], expected: str) -> None:
    assert detect(environ) == expected


def test_detect_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    assert detect() == "local"
    monkeypatch.setenv("PBS_JOBID", "1.pbs")
    monkeypatch.setenv("PBS_NODEFILE", "/nodes")
    assert detect() == "pbs"


# -------------------------------------------------------------------------- auto: unit


@pytest.fixture
def fake_scontrol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake ``scontrol show hostnames`` on PATH printing three hosts; returns its call log."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "scontrol.log"
    script = bindir / "scontrol"
    script.write_text(f'#!/bin/sh\necho "$@" >> {log}\nprintf "nid001\\nnid002\\nnid007\\n"\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return log


def test_auto_in_slurm_allocation(
    fake_scontrol: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_JOB_NODELIST", "nid[001-002,007]")
    monkeypatch.setenv("SLURM_NNODES", "3")
    with caplog.at_level(logging.INFO, logger="flowlib.configs"):
        config = auto()
    executor = only(config)
    assert isinstance(executor, HighThroughputExecutor)
    provider = executor.provider
    assert isinstance(provider, AllocationProvider) and isinstance(provider, LocalProvider)
    assert provider.nodes_per_block == 3
    assert (provider.init_blocks, provider.min_blocks, provider.max_blocks) == (1, 1, 1)
    assert isinstance(provider.launcher, SrunLauncher)
    assert "--overlap" in provider.launcher.overrides
    assert fake_scontrol.read_text().split() == ["show", "hostnames", "nid[001-002,007]"]
    # Workers on other nodes must reach the interchange: it listens on every interface.
    assert executor.options.bind_address(provider) == "*"
    assert "Slurm allocation" in caplog.text and "SLURM_JOB_ID=4242" in caplog.text and "nid007" in caplog.text


def test_auto_in_slurm_allocation_without_scontrol_counts_slurm_nnodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no scontrol
    monkeypatch.setenv("SLURM_JOB_ID", "1")
    monkeypatch.setenv("SLURM_JOB_NODELIST", "n[1-4]")
    monkeypatch.setenv("SLURM_NNODES", "4")
    assert only(auto()).provider.nodes_per_block == 4
    monkeypatch.delenv("SLURM_NNODES")
    with pytest.raises(ConfigurationError, match=r"cannot list the nodes of Slurm job 'n\[1-4\]'"):
        auto()


def test_auto_in_pbs_allocation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    nodefile = tmp_path / "7.pbs01"
    nodefile.write_text("x3001c0s7b0n0\nx3001c0s7b0n0\nx3001c0s13b1n0\nx3001c0s13b1n0\nx3002c0s1b0n0\n")
    monkeypatch.setenv("PBS_JOBID", "7.pbs01")
    monkeypatch.setenv("PBS_NODEFILE", str(nodefile))
    with caplog.at_level(logging.INFO, logger="flowlib.configs"):
        executor = only(auto())
    provider = executor.provider
    assert isinstance(provider, AllocationProvider)
    assert provider.nodes_per_block == 3
    assert isinstance(provider.launcher, MpiExecLauncher)
    assert "PBS allocation" in caplog.text and "x3002c0s1b0n0" in caplog.text


@pytest.mark.parametrize("content", [None, "", "\n\n"])
def test_auto_in_pbs_allocation_with_unusable_nodefile(
    content: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nodefile = tmp_path / "nodes"
    if content is not None:
        nodefile.write_text(content)
    monkeypatch.setenv("PBS_JOBID", "7.pbs01")
    monkeypatch.setenv("PBS_NODEFILE", str(nodefile))
    with pytest.raises(ConfigurationError, match="PBS_NODEFILE"):
        auto()


def test_auto_local_uses_usable_cores(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2, 5})
    with caplog.at_level(logging.INFO, logger="flowlib.configs"):
        executor = only(auto())
    assert isinstance(executor, HighThroughputExecutor)
    assert type(executor.provider) is LocalProvider
    assert executor.max_workers_per_node == 3
    assert "local" in caplog.text and "3 usable core(s)" in caplog.text


def test_auto_local_on_one_core_uses_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    assert isinstance(only(auto()), ThreadPoolExecutor)


def test_auto_passes_overrides_and_returns_fresh_configs(tmp_path: Path) -> None:
    first = auto(run_dir=str(tmp_path), retries=3, strategy="none")
    assert (first.run_dir, first.retries, first.strategy) == (str(tmp_path), 3, "none")
    second = auto()
    assert second is not first and second.executors[0] is not first.executors[0]
    with pytest.raises(TypeError, match="executors"):
        auto(executors=[ThreadPoolExecutor()])
    with pytest.raises(TypeError, match="retries"):
        auto(retries="many")


# -------------------------------------------------------------------------- real runs


@python_app
def double(x: int) -> int:
    return 2 * x


@python_app
def where() -> str | None:
    import os

    return os.environ.get("FAKE_NODE")


def pools_on_all_nodes(executor: HighThroughputExecutor, count: int) -> None:
    """Wait until ``count`` worker pools (one per node) have registered."""
    try_assert(lambda: len(executor.connected_managers) == count, timeout=40, message=f"{count} pools never registered")


@pytest.fixture
def workers_import_tests(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Worker processes unpickle this module's apps by name: put it on their path."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), str(REPO), os.environ.get("PYTHONPATH", "")]))
    yield


def test_local_threads_fresh_config_runs_a_task(tmp_path: Path) -> None:
    with flowlib.load(flowlib.configs.local_threads.fresh_config(run_dir=str(tmp_path))):
        assert double(21).result(timeout=30) == 42


def test_auto_runs_a_task_on_this_machine(tmp_path: Path, workers_import_tests: None) -> None:
    config = auto(run_dir=str(tmp_path))
    with flowlib.load(config) as dfk:
        assert double(21).result(timeout=45) == 42
        assert isinstance(
            only(config), HighThroughputExecutor if len(os.sched_getaffinity(0)) > 1 else ThreadPoolExecutor
        )
        assert dfk.run_dir.startswith(str(tmp_path))


def test_auto_runs_tasks_on_every_node_of_a_fake_slurm_allocation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers_import_tests: None
) -> None:
    # tests/fakebin's srun starts one copy per "node" of SLURM_JOB_NODELIST here, naming it in FAKE_NODE.
    monkeypatch.setenv("PATH", f"{FAKEBIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKEBIN_PYTHON", sys.executable)
    monkeypatch.setenv("SLURM_JOB_ID", "99")
    monkeypatch.setenv("SLURM_JOB_NODELIST", "node[1-2]")
    config = auto(run_dir=str(tmp_path))
    assert only(config).provider.nodes_per_block == 2
    with flowlib.load(config):
        pools_on_all_nodes(only(config), 2)
        nodes = {where().result(timeout=45) for _ in range(40)}
    assert nodes == {"node1", "node2"}


def test_auto_runs_tasks_on_every_node_of_a_fake_pbs_allocation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers_import_tests: None
) -> None:
    # tests/fakebin's mpiexec (MPICH flavour: no root refusal) starts the ranks here, naming the host in FAKE_NODE.
    nodefile = tmp_path / "nodefile"
    nodefile.write_text("hostA\nhostA\nhostB\nhostB\n")
    monkeypatch.setenv("PATH", f"{FAKEBIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKEBIN_PYTHON", sys.executable)
    monkeypatch.setenv("FAKE_MPI_FLAVOR", "mpich")
    monkeypatch.setenv("PBS_JOBID", "5.server")
    monkeypatch.setenv("PBS_NODEFILE", str(nodefile))
    config = auto(run_dir=str(tmp_path / "runs"))
    with flowlib.load(config):
        pools_on_all_nodes(only(config), 2)
        nodes = {where().result(timeout=45) for _ in range(40)}
    assert nodes == {"hostA", "hostB"}
