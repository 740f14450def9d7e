"""A block that cannot start, or workers that never connect, fail the workflow with a clear error.

No hang: once no block can start, every outstanding task fails with an error that
says what went wrong (the scheduler's answer, the missing command, or what the
worker pools reported on their stderr). The unknown partition needs the real
Slurm; the other cases need no service.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from flowlib import python_app
from flowlib.channels.local import LocalChannel
from flowlib.executors.errors import BadStateException
from flowlib.executors.high_throughput.security import create_keys
from flowlib.launchers import SrunLauncher
from flowlib.providers import LocalProvider, SlurmProvider

from .conftest import LOCAL, SLURM, WorkflowFactory

pytestmark = pytest.mark.timeout(120)

POOL = "{python} -m flowlib.executors.high_throughput.worker_pool {options}"
"""The executor's default pool command; the tests append options that override its own (argparse: last wins)."""


@python_app
def double(x: int) -> int:
    return 2 * x


def unused_port() -> int:
    """A loopback TCP port that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def slurm_provider(**kwargs: object) -> SlurmProvider:
    return SlurmProvider(
        launcher=SrunLauncher(),
        min_blocks=0,
        max_blocks=1,
        cores_per_node=1,
        exclusive=False,
        walltime="00:02:00",
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.usefixtures("slurm")
def test_an_unknown_partition_fails_the_tasks_with_sbatchs_answer(workflow: WorkflowFactory) -> None:
    wf = workflow(slurm_provider(partition="no-such-partition", init_blocks=0), SLURM)
    futures = [double(i) for i in range(3)]

    errors = [f.exception(timeout=30) for f in futures]

    for error in errors:
        assert isinstance(error, BadStateException), repr(error)
        text = str(error)
        assert "no-such-partition" in text, text
        assert "invalid partition specified" in text, text  # sbatch's own words
    assert wf.states() == {"0": "MISSING"}  # a block whose submit failed has no job: Parsl's MISSING
    assert wf.job_ids() == []
    later = double(5).exception(timeout=10)  # the executor stays failed: new tasks fail at once
    assert isinstance(later, BadStateException) and "no-such-partition" in str(later), repr(later)


def test_a_scheduler_command_missing_from_path_is_named(workflow: WorkflowFactory, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    channel = LocalChannel(envs={"PATH": str(empty)})
    wf = workflow(slurm_provider(partition="debug", init_blocks=1, channel=channel), SLURM)
    future = double(1)

    error = future.exception(timeout=30)

    assert isinstance(error, BadStateException), repr(error)
    assert "sbatch was not found on the PATH" in str(error), str(error)
    assert wf.states() == {"0": "MISSING"}  # the submit failed: no job


def local_provider() -> LocalProvider:
    return LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1)


def test_workers_that_never_connect_fail_the_tasks_with_what_they_reported(workflow: WorkflowFactory) -> None:
    dead_port = unused_port()
    launch_cmd = f"{POOL} --port {dead_port} --address-probe-timeout 3"
    # unix_sockets=False: a pool on this machine would otherwise register over the Unix socket
    wf = workflow(local_provider(), LOCAL, launch_cmd=launch_cmd, unix_sockets=False)
    futures = [double(i) for i in range(3)]

    errors = [f.exception(timeout=30) for f in futures]

    for error in errors:
        assert isinstance(error, BadStateException), repr(error)
        text = str(error)
        assert "could not register with the interchange" in text, text
        assert f"tcp://127.0.0.1:{dead_port}" in text, text
        assert "connection refused" in text, text
    assert wf.states() == {"0": "FAILED"}
    assert wf.executor.connected_workers == 0


def test_a_worker_side_python_without_flowlib_is_reported(workflow: WorkflowFactory) -> None:
    # -I -S: this interpreter sees neither the current directory nor the venv's site-packages.
    launch_cmd = "{python} -I -S -m flowlib.executors.high_throughput.worker_pool {options}"
    wf = workflow(local_provider(), LOCAL, launch_cmd=launch_cmd)
    future = double(1)

    error = future.exception(timeout=30)

    assert isinstance(error, BadStateException), repr(error)
    assert "No module named 'flowlib'" in str(error), str(error)
    assert wf.states() == {"0": "FAILED"}


@pytest.mark.parametrize(
    "which, pool_says",
    [
        # Every key from another run: the pool does not even know this interchange's public key.
        ("all keys from another run", "the CurveZMQ handshake failed (mismatched keys?)"),
        # The interchange's public key is right, the pool's own key pair is not: the interchange refuses it.
        ("a client key from another run", "the interchange refused our CurveZMQ key"),
    ],
    ids=["other-run", "wrong-client-key"],
)
def test_workers_with_the_wrong_keys_fail_the_tasks_with_a_key_error(
    workflow: WorkflowFactory, tmp_path: Path, which: str, pool_says: str
) -> None:
    wrong = Path(create_keys(str(tmp_path / "other-run-keys")))
    launch_cmd = f"{POOL} --cert-dir {wrong} --address-probe-timeout 3"
    # No block until there is a task, so that the keys can be mixed before the pool starts.
    provider = LocalProvider(init_blocks=0, min_blocks=0, max_blocks=1)
    # unix_sockets=False: the keys matter on TCP; a pool on this machine would use the Unix socket
    wf = workflow(provider, LOCAL, launch_cmd=launch_cmd, unix_sockets=False)
    assert wf.executor.cert_dir is not None
    if which == "a client key from another run":
        shutil.copy(Path(wf.executor.cert_dir) / "server.public", wrong / "server.public")
    future = double(1)

    error = future.exception(timeout=30)

    assert isinstance(error, BadStateException), repr(error)
    assert "could not register with the interchange" in str(error), str(error)
    assert pool_says in str(error), str(error)
    assert wf.states() == {"0": "FAILED"}
    if which == "a client key from another run":
        log = next(wf.run_dir.glob("*/htex/interchange.log")).read_text()
        assert "refused: unknown CurveZMQ key" in log, log
