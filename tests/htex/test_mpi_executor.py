"""MPIExecutor: resource specifications, launch prefixes, node lists, node allocation, and real MPI runs.

The pure parts (:mod:`.mpi_prefix`, the node-list readers, the allocator) are
tested directly. The executor tests start a real MPIExecutor on a
LocalProvider and run a real MPI program (``mpi_hello.c``, compiled with
``mpicc``) through ``$PARSL_MPI_PREFIX`` with Open MPI from Debian. A machine
of one node cannot give a block several nodes, so the multi-node tests give
the block a node list that names this host twice (``localhost`` and its host
name, through ``$FLOWLIB_MPI_NODES``): Open MPI runs both "nodes" here.

Open MPI and its compiler (openmpi-bin, libopenmpi-dev) are installed by
tests/services/install-mpi-dev.sh when the tests run as root. Without them the
executor tests skip when not root, and fail as root or when ``CI=true``.
"""

from __future__ import annotations

import glob
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import flowlib
from flowlib import bash_app, python_app
from flowlib.config import Config
from flowlib.errors import ConfigurationError
from flowlib.executors.errors import InvalidResourceSpecification
from flowlib.executors.high_throughput.mpi_executor import MPIExecutor
from flowlib.executors.high_throughput.mpi_prefix import (
    MPIRequest,
    compose_prefix,
    flavor_from_version,
    mpi_environment,
    parse_request,
)
from flowlib.executors.high_throughput.mpi_resource import (
    MPITask,
    NodeAllocator,
    NodeListError,
    PoolContext,
    block_nodes,
    detect_flavor,
    expand_slurm_hostlist,
)
from flowlib.launchers import SimpleLauncher, SingleNodeLauncher
from flowlib.providers import LocalProvider

from .conftest import wait_for

pytestmark = pytest.mark.timeout(120)

HERE = pathlib.Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
SERVICES = REPO_ROOT / "tests" / "services"
IS_ROOT = os.geteuid() == 0
IN_CI = os.environ.get("CI") == "true"
HOST = socket.gethostname()


# --------------------------------------------------------------------------- resource specifications


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, MPIRequest(1, 1, 1)),
        (None, MPIRequest(1, 1, 1)),
        ({"num_nodes": 2}, MPIRequest(2, 1, 2)),
        ({"num_nodes": 2, "ranks_per_node": 3}, MPIRequest(2, 3, 6)),
        ({"num_nodes": 2, "num_ranks": 6}, MPIRequest(2, 3, 6)),
        ({"num_nodes": 2, "num_ranks": 5}, MPIRequest(2, 3, 5)),
        ({"ranks_per_node": 4, "num_ranks": 8}, MPIRequest(2, 4, 8)),
        ({"num_ranks": 3}, MPIRequest(1, 3, 3)),
        ({"ranks_per_node": 2}, MPIRequest(1, 2, 2)),
        ({"num_nodes": 3, "ranks_per_node": 2, "num_ranks": 6}, MPIRequest(3, 2, 6)),
        ({"num_nodes": 1, "launcher_options": "--bind-to none"}, MPIRequest(1, 1, 1, "--bind-to none")),
    ],
)
def test_a_specification_becomes_a_request(spec: dict[str, Any] | None, expected: MPIRequest) -> None:
    assert parse_request(spec) == (expected, {})


def test_priority_passes_through_to_the_interchange() -> None:
    assert parse_request({"num_nodes": 1, "priority": 5}) == (MPIRequest(1, 1, 1), {"priority": 5})


@pytest.mark.parametrize(
    ("spec", "keys"),
    [
        ({"num_nodes": 2, "ranks_per_node": 2, "num_ranks": 5}, {"num_nodes", "ranks_per_node", "num_ranks"}),
        ({"num_nodes": 2, "ranks_per_node": 2, "num_ranks": 2}, {"num_nodes", "ranks_per_node", "num_ranks"}),
        ({"num_nodes": 3, "num_ranks": 4}, {"num_nodes", "num_ranks"}),
        ({"num_nodes": 4, "num_ranks": 2}, {"num_nodes", "num_ranks"}),
    ],
)
def test_inconsistent_counts_are_refused_naming_the_keys(spec: dict[str, Any], keys: set[str]) -> None:
    with pytest.raises(InvalidResourceSpecification, match="inconsistent resource specification") as info:
        parse_request(spec)
    assert info.value.invalid_keys == keys
    for key in keys:
        assert f"{key}={spec[key]}" in str(info.value)


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        ({"cores": 2}, "cores"),
        ({"num_nodes": 1, "memory": 10}, "memory"),
        ({"num_nodes": 0}, "num_nodes"),
        ({"num_nodes": 1.5}, "num_nodes"),
        ({"ranks_per_node": True}, "ranks_per_node"),
        ({"num_ranks": "4"}, "num_ranks"),
        ({"launcher_options": ["-x"]}, "launcher_options"),
        ({"priority": "high"}, "priority"),
    ],
)
def test_unknown_keys_and_bad_values_are_refused_naming_the_key(spec: dict[str, Any], key: str) -> None:
    with pytest.raises(InvalidResourceSpecification, match=key) as info:
        parse_request(spec)
    assert info.value.invalid_keys == {key}


def test_more_nodes_than_a_block_has_are_refused() -> None:
    with pytest.raises(InvalidResourceSpecification, match=r"num_nodes=3 is more than the 2 node\(s\) of a block"):
        parse_request({"num_nodes": 3}, max_nodes=2)
    assert parse_request({"num_nodes": 2}, max_nodes=2)[0].num_nodes == 2


# --------------------------------------------------------------------------- launch prefixes


TWO_BY_TWO = MPIRequest(num_nodes=2, ranks_per_node=2, num_ranks=4)


@pytest.mark.parametrize(
    ("launcher", "flavor", "expected"),
    [
        ("mpiexec", "openmpi", "mpiexec -n 4 --host n1:2,n2:2"),
        ("mpiexec", "mpich", "mpiexec -n 4 -ppn 2 -hosts n1,n2"),
        ("srun", "", "srun -N 2 --ntasks 4 --ntasks-per-node 2 --nodelist n1,n2"),
        ("aprun", "", "aprun -n 4 -N 2 -L n1,n2"),
    ],
)
def test_the_prefix_of_each_launcher(launcher: str, flavor: str, expected: str) -> None:
    assert compose_prefix(launcher, flavor, TWO_BY_TWO, ["n1", "n2"]) == expected


def test_launcher_options_follow_the_prefix() -> None:
    request = MPIRequest(1, 3, 3, launcher_options=" --cpu-bind core ")
    assert compose_prefix("srun", "", request, ["a"]) == (
        "srun -N 1 --ntasks 3 --ntasks-per-node 3 --nodelist a --cpu-bind core"
    )


def test_aprun_takes_node_ids() -> None:
    assert compose_prefix("aprun", "", TWO_BY_TWO, ["nid00012", "nid00130"]).endswith("-L 12,130")


def test_compose_prefix_refuses_what_it_cannot_build() -> None:
    with pytest.raises(ValueError, match="2 node"):
        compose_prefix("srun", "", TWO_BY_TWO, ["n1"])
    with pytest.raises(ValueError, match="unknown MPI launcher 'jsrun'"):
        compose_prefix("jsrun", "", TWO_BY_TWO, ["n1", "n2"])
    with pytest.raises(ValueError, match="unknown mpiexec flavor"):
        compose_prefix("mpiexec", "", TWO_BY_TWO, ["n1", "n2"])


def test_the_environment_has_parsl_and_flowlib_twins() -> None:
    env = mpi_environment("srun -N 2", TWO_BY_TWO, ["n1", "n2"])
    for twin in ("PARSL", "FLOWLIB"):
        assert env[f"{twin}_MPI_PREFIX"] == "srun -N 2"
        assert env[f"{twin}_NUM_NODES"] == "2"
        assert env[f"{twin}_RANKS_PER_NODE"] == "2"
        assert env[f"{twin}_NUM_RANKS"] == "4"
        assert env[f"{twin}_MPI_NODELIST"] == "n1,n2"
    assert len(env) == 10


@pytest.mark.parametrize(
    ("text", "flavor"),
    [
        ("mpiexec (OpenRTE) 4.1.4\n\nReport bugs to http://www.open-mpi.org/community/help/", "openmpi"),
        ("mpiexec (Open MPI) 5.0.3", "openmpi"),
        ("HYDRA build details:\n    Version:                                 4.1.2", "mpich"),
        ("Intel(R) MPI Library for Linux* OS, Version 2021.10", "mpich"),
        ("", "mpich"),
    ],
)
def test_the_flavor_of_mpiexec(text: str, flavor: str) -> None:
    assert flavor_from_version(text) == flavor


# --------------------------------------------------------------------------- the block's nodes


@pytest.mark.parametrize(
    ("text", "hosts"),
    [
        ("n1", ["n1"]),
        ("n[1-3]", ["n1", "n2", "n3"]),
        ("nid[008-010,012],login1", ["nid008", "nid009", "nid010", "nid012", "login1"]),
        ("r[1-2]-n[01-02]", ["r1-n01", "r1-n02", "r2-n01", "r2-n02"]),
        ("a,b[7]", ["a", "b7"]),
    ],
)
def test_slurm_node_lists_are_expanded(text: str, hosts: list[str]) -> None:
    assert expand_slurm_hostlist(text) == hosts


@pytest.mark.parametrize("text", ["n[1-3", "n1]", "n[3-1]", "n[a-b]"])
def test_malformed_slurm_node_lists_are_refused(text: str) -> None:
    with pytest.raises(NodeListError, match="Slurm node list"):
        expand_slurm_hostlist(text)


def test_the_override_comes_first_then_pbs(tmp_path: pathlib.Path) -> None:
    nodefile = tmp_path / "nodes"
    nodefile.write_text("c1\nc1\nc2\n\nc1\nc3\n")  # PBS repeats a node once per core
    env = {"PBS_NODEFILE": str(nodefile), "SLURM_JOB_NODELIST": "s[1-2]"}
    assert block_nodes(env) == ["c1", "c2", "c3"]
    assert block_nodes({**env, "FLOWLIB_MPI_NODES": "x, y,x"}) == ["x", "y"]


def test_unreadable_or_empty_pbs_nodefiles_are_errors(tmp_path: pathlib.Path) -> None:
    with pytest.raises(NodeListError, match="cannot read .PBS_NODEFILE"):
        block_nodes({"PBS_NODEFILE": str(tmp_path / "missing")})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(NodeListError, match="lists no node"):
        block_nodes({"PBS_NODEFILE": str(tmp_path / "empty")})


def _path_with(tmp_path: pathlib.Path, scontrol: str | None) -> str:
    fakebin = tmp_path / "bin"
    fakebin.mkdir()
    if scontrol is not None:
        script = fakebin / "scontrol"
        script.write_text(f"#!/bin/sh\n{scontrol}\n")
        script.chmod(0o755)
    return str(fakebin)


def test_slurm_nodes_come_from_scontrol(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = tmp_path / "args"
    monkeypatch.setenv("PATH", _path_with(tmp_path, f'echo "$*" > {args}; printf "sa\\nsb\\n"'))  # shell builtins
    assert block_nodes({"SLURM_NODELIST": "s[a-b]-ignored"}) == ["sa", "sb"]
    assert args.read_text().split() == ["show", "hostnames", "s[a-b]-ignored"]


def test_slurm_nodes_without_scontrol(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", _path_with(tmp_path, None))
    assert block_nodes({"SLURM_JOB_NODELIST": "gpu[01-02]"}) == ["gpu01", "gpu02"]


def test_a_failing_scontrol_is_reported(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", _path_with(tmp_path, 'echo "no such job" >&2; exit 1'))
    with pytest.raises(NodeListError, match="no such job"):
        block_nodes({"SLURM_JOB_NODELIST": "n1"})


def test_outside_a_batch_job_the_block_is_this_host() -> None:
    assert block_nodes({}) == [HOST]


def test_the_flavor_can_be_forced(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert detect_flavor({"FLOWLIB_MPI_FLAVOR": "MPICH"}) == "mpich"
    with pytest.raises(NodeListError, match="FLOWLIB_MPI_FLAVOR"):
        detect_flavor({"FLOWLIB_MPI_FLAVOR": "lam"})
    monkeypatch.setenv("PATH", _path_with(tmp_path, None))
    assert detect_flavor({}) == "mpich"  # no mpiexec at all


# --------------------------------------------------------------------------- node allocation


@pytest.fixture
def allocator(tmp_path: pathlib.Path) -> Iterator[NodeAllocator]:
    nodes = NodeAllocator.create(["n1", "n2", "n3"], parent=str(tmp_path))
    yield nodes
    nodes.remove()
    assert not os.path.exists(nodes.lock_dir)


def test_a_task_waits_until_enough_nodes_are_free(allocator: NodeAllocator) -> None:
    first = allocator.allocate(2)
    assert first.nodes == ["n1", "n2"]
    waiting = threading.Event()
    second: list[list[str]] = []

    def take_two() -> None:
        with allocator.allocate(2, on_wait=lambda missing: waiting.set()) as nodes:
            second.append(nodes)

    thread = threading.Thread(target=take_two, name="allocate")
    thread.start()
    assert waiting.wait(30), "the second allocation did not wait"
    assert not second
    first.release()
    thread.join(30)
    assert second == [["n1", "n3"]]  # it took the free n3 at once, then waited for n1
    with allocator.allocate(3) as nodes:
        assert nodes == ["n1", "n2", "n3"]


def test_the_nodes_of_a_killed_worker_are_freed(allocator: NodeAllocator) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from flowlib.executors.high_throughput.mpi_resource import NodeAllocator; "
            "a = NodeAllocator(sys.argv[1], ['n1', 'n2', 'n3']).allocate(3); print(a.nodes, flush=True); "
            "time.sleep(600)",
            allocator.lock_dir,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "['n1', 'n2', 'n3']"
        holder.send_signal(signal.SIGKILL)
        with allocator.allocate(3) as nodes:  # waits, if need be, until the kernel has reaped the holder
            assert nodes == ["n1", "n2", "n3"]
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def test_allocating_more_nodes_than_the_block_has_is_an_error(allocator: NodeAllocator) -> None:
    with pytest.raises(ValueError, match="4 node"):
        allocator.allocate(4)


def _report(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": args, "kwargs": kwargs, "prefix": os.environ.get("PARSL_MPI_PREFIX")}


def test_a_task_sees_the_variables_only_while_it_runs(
    allocator: NodeAllocator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARSL_MPI_PREFIX", "before")
    monkeypatch.delenv("FLOWLIB_NUM_RANKS", raising=False)
    for name, value in PoolContext(("n1", "n2", "n3"), allocator.lock_dir, "srun", "").environment().items():
        monkeypatch.setenv(name, value)
    task = MPITask(_report, MPIRequest(2, 2, 4))
    assert task.__name__ == "_report"
    assert task(1, x=2) == {"args": (1,), "kwargs": {"x": 2}, "prefix": "srun -N 2 --ntasks 4 --ntasks-per-node 2 "
                            "--nodelist n1,n2"}  # fmt: skip
    assert os.environ["PARSL_MPI_PREFIX"] == "before"
    assert "FLOWLIB_NUM_RANKS" not in os.environ
    with pytest.raises(InvalidResourceSpecification, match=r"more than the 3 node\(s\) of this block \(n1,n2,n3\)"):
        MPITask(_report, MPIRequest(4, 1, 4))()


def test_a_task_outside_an_mpi_pool_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWLIB_MPI_POOL_NODES", raising=False)
    with pytest.raises(RuntimeError, match="FLOWLIB_MPI_POOL_NODES.*launch_cmd"):
        MPITask(_report, MPIRequest())()


# --------------------------------------------------------------------------- the executor's options


def test_the_default_provider_has_a_simple_launcher() -> None:
    executor = MPIExecutor()
    assert executor.label == "MPIExecutor"
    assert isinstance(executor.provider.launcher, SimpleLauncher)
    assert executor.options.max_workers_per_node == 1
    assert executor.options.launch_cmd is not None
    assert "mpi_resource --mpi-launcher mpiexec {options}" in executor.options.launch_cmd
    assert flowlib.executors.MPIExecutor is MPIExecutor


def test_the_local_fast_paths_can_be_turned_off() -> None:
    assert MPIExecutor().options.unix_sockets and MPIExecutor().options.shared_memory
    executor = MPIExecutor(unix_sockets=False, shared_memory=False)
    assert not executor.options.unix_sockets and not executor.options.shared_memory
    with pytest.raises(TypeError, match="shared_memory"):
        MPIExecutor(shared_memory="yes")  # type: ignore[arg-type]


def test_other_launchers_are_refused_naming_both() -> None:
    with pytest.raises(ConfigurationError, match="SimpleLauncher.*LocalProvider has a SingleNodeLauncher"):
        MPIExecutor(provider=LocalProvider(launcher=SingleNodeLauncher()))


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="mpi_launcher must be one of"):
        MPIExecutor(mpi_launcher="jsrun")
    with pytest.raises(ValueError, match="max_workers_per_block must be >= 1"):
        MPIExecutor(max_workers_per_block=0)
    with pytest.raises(TypeError, match="max_workers_per_block"):
        MPIExecutor(max_workers_per_block="2")  # type: ignore[arg-type]


def test_options_may_change_before_start() -> None:
    executor = MPIExecutor(provider=LocalProvider(launcher=SimpleLauncher(), nodes_per_block=4))
    executor.mpi_launcher = "srun"
    executor.max_workers_per_block = 8
    options = executor._validated_options()
    assert options.launch_cmd is not None and "--mpi-launcher srun" in options.launch_cmd
    assert options.max_workers_per_node == 8
    assert executor.workers_per_node == 2.0  # 8 tasks at once over 4 nodes


# --------------------------------------------------------------------------- real MPI runs


@pytest.fixture(scope="session")
def mpi_tools() -> None:
    """Open MPI's mpiexec and mpicc, installed when root; skip or fail when they are missing."""
    if IS_ROOT:  # one script, one apt-get run: it installs openmpi-bin too
        script = SERVICES / "install-mpi-dev.sh"
        done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=100)
        if done.returncode != 0:
            pytest.fail(f"{script} failed: {done.stderr.strip()[-2000:]}")
    missing = [tool for tool in ("mpiexec", "mpicc") if shutil.which(tool) is None]
    if missing:
        message = f"{' and '.join(missing)} missing (tests/services/install-mpi-dev.sh installs them, as root)"
        if IN_CI or IS_ROOT:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def hello(mpi_tools: None, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The MPI hello-world, compiled."""
    binary = tmp_path_factory.mktemp("mpi") / "mpi_hello"
    done = subprocess.run(
        ["mpicc", "-o", str(binary), str(HERE / "mpi_hello.c")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return str(binary)


def mpi_config(
    tmp_path: pathlib.Path, nodes: str = "", nodes_per_block: int = 1, workers: int = 1, **options: Any
) -> Config:
    """One MPIExecutor labelled "mpi" on a local block; ``nodes`` overrides the block's node list."""
    worker_init = [
        f"export PYTHONPATH={REPO_ROOT}:{REPO_ROOT}/tests${{PYTHONPATH:+:$PYTHONPATH}}",  # the apps of this module
        "export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1",  # Open MPI refuses root without them
    ]
    if nodes:
        worker_init.append(f"export FLOWLIB_MPI_NODES={nodes}")
    executor = MPIExecutor(
        label="mpi",
        max_workers_per_block=workers,
        heartbeat_period=2,
        heartbeat_threshold=10,
        provider=LocalProvider(
            launcher=SimpleLauncher(), nodes_per_block=nodes_per_block, worker_init="\n".join(worker_init)
        ),
        **options,
    )
    return Config(executors=[executor], run_dir=str(tmp_path / "runinfo"))


@bash_app
def run_mpi(command: str, stdout: Any = None, stderr: Any = None, parsl_resource_specification: Any = None) -> str:
    return f"{command}"


@python_app
def mpi_variables(parsl_resource_specification: Any = None) -> dict[str, str | None]:
    import os

    names = ("MPI_PREFIX", "NUM_NODES", "RANKS_PER_NODE", "NUM_RANKS", "MPI_NODELIST")
    return {f"{twin}_{name}": os.environ.get(f"{twin}_{name}") for twin in ("PARSL", "FLOWLIB") for name in names}


def hello_lines(path: pathlib.Path) -> list[str]:
    return sorted(line.rsplit(" on ", 1)[0] for line in path.read_text().splitlines() if line.startswith("hello"))


def test_a_real_mpi_hello_world_on_two_ranks(tmp_path: pathlib.Path, hello: str) -> None:
    out = tmp_path / "hello.out"
    with flowlib.load(mpi_config(tmp_path)):
        spec = {"num_nodes": 1, "ranks_per_node": 2}
        assert run_mpi(f"$PARSL_MPI_PREFIX {hello}", stdout=str(out), parsl_resource_specification=spec).result() == 0
        seen = mpi_variables(parsl_resource_specification=spec).result()
        plain = mpi_variables().result()
    assert hello_lines(out) == ["hello from rank 0 of 2", "hello from rank 1 of 2"]
    for twin in ("PARSL", "FLOWLIB"):
        assert seen[f"{twin}_MPI_PREFIX"] == f"mpiexec -n 2 --host {HOST}:2"
        assert (seen[f"{twin}_NUM_NODES"], seen[f"{twin}_RANKS_PER_NODE"], seen[f"{twin}_NUM_RANKS"]) == ("1", "2", "2")
        assert seen[f"{twin}_MPI_NODELIST"] == HOST
        # A task without a specification gets one node and one rank.
        assert (plain[f"{twin}_NUM_NODES"], plain[f"{twin}_NUM_RANKS"]) == ("1", "1")
        assert plain[f"{twin}_MPI_PREFIX"] == f"mpiexec -n 1 --host {HOST}:1"


@pytest.mark.parametrize("loopback", ["::1", "127.0.0.1"])
def test_an_mpi_task_through_an_interchange_on_each_loopback(tmp_path: pathlib.Path, hello: str, loopback: str) -> None:
    out = tmp_path / "hello.out"
    config = mpi_config(tmp_path, loopback_address=loopback, unix_sockets=False)
    with flowlib.load(config) as dfk:
        spec = {"num_nodes": 1, "ranks_per_node": 2}
        assert run_mpi(f"$PARSL_MPI_PREFIX {hello}", stdout=str(out), parsl_resource_specification=spec).result() == 0
        port = dfk.executors["mpi"]._client.worker_port
    assert hello_lines(out) == ["hello from rank 0 of 2", "hello from rank 1 of 2"]
    logs = "".join(p.read_text() for p in tmp_path.glob("runinfo/**/manager.log"))
    bracketed = f"[{loopback}]" if ":" in loopback else loopback
    assert f"registered with the interchange at tcp://{bracketed}:{port}" in logs


def test_invalid_specifications_fail_their_tasks(tmp_path: pathlib.Path, hello: str) -> None:
    # The provider promises 2 nodes a block, but the block turns out to have 1.
    with flowlib.load(mpi_config(tmp_path, nodes=HOST, nodes_per_block=2)):
        inconsistent = mpi_variables(parsl_resource_specification={"num_nodes": 2, "ranks_per_node": 2, "num_ranks": 5})
        too_many = mpi_variables(parsl_resource_specification={"num_nodes": 3})
        unknown = mpi_variables(parsl_resource_specification={"num_nodes": 1, "gpus": 1})
        larger_than_block = mpi_variables(parsl_resource_specification={"num_nodes": 2})
        fine = mpi_variables(parsl_resource_specification={"num_nodes": 1})
        with pytest.raises(InvalidResourceSpecification, match="num_nodes=2, ranks_per_node=2, num_ranks=5") as info:
            inconsistent.result()
        assert info.value.invalid_keys == {"num_nodes", "ranks_per_node", "num_ranks"}
        with pytest.raises(InvalidResourceSpecification, match=r"num_nodes=3 is more than the 2 node\(s\) of a block"):
            too_many.result()
        with pytest.raises(InvalidResourceSpecification, match=r"unknown resource specification key\(s\) \['gpus'\]"):
            unknown.result()
        with pytest.raises(InvalidResourceSpecification, match=rf"more than the 1 node\(s\) of this block \({HOST}\)"):
            larger_than_block.result()
        assert fine.result()["PARSL_MPI_NODELIST"] == HOST


def _started(directory: pathlib.Path) -> list[int]:
    return [i for i in (0, 1) if (directory / f"started.{i}").exists()]


def _waiting_logged(run_dir: str) -> bool:
    for log in glob.glob(os.path.join(run_dir, "mpi", "block-*", "*", "worker_*.log")):
        with open(log) as f:
            if "run_mpi is waiting for nodes: 2 of 2 busy" in f.read():
                return True
    return False


def test_tasks_that_need_every_node_run_one_after_the_other(tmp_path: pathlib.Path, hello: str) -> None:
    # A block of two "nodes" (this host under two names) and room for two tasks at once:
    # each task needs both nodes, so the second waits for the first to finish.
    sync = tmp_path / "sync"
    sync.mkdir()
    spec = {"num_nodes": 2, "ranks_per_node": 1}

    def command(i: int) -> str:
        return (
            f"touch {sync}/started.{i}; for _ in $(seq 1200); do [ -e {sync}/release.{i} ] && break; sleep 0.05; done; "
            f'echo "$PARSL_MPI_NODELIST" > {sync}/nodes.{i}; $PARSL_MPI_PREFIX {hello}'
        )

    with flowlib.load(mpi_config(tmp_path, nodes=f"localhost,{HOST}", nodes_per_block=2, workers=2)) as dfk:
        futures = [
            run_mpi(command(i), stdout=str(tmp_path / f"hello.{i}"), parsl_resource_specification=spec) for i in (0, 1)
        ]
        (first,) = wait_for(lambda: _started(sync), timeout=60, message="no task started")
        second = 1 - first
        wait_for(lambda: _waiting_logged(dfk.run_dir), timeout=60, message="the second task never waited for nodes")
        assert _started(sync) == [first], "both tasks hold every node at once"
        (sync / f"release.{first}").touch()
        assert futures[first].result(timeout=60) == 0
        wait_for(lambda: _started(sync) == [0, 1], timeout=60, message="the second task did not start")
        (sync / f"release.{second}").touch()
        assert futures[second].result(timeout=60) == 0
    for i in (0, 1):
        assert (sync / f"nodes.{i}").read_text().strip() == f"localhost,{HOST}"
        assert hello_lines(tmp_path / f"hello.{i}") == ["hello from rank 0 of 2", "hello from rank 1 of 2"]
