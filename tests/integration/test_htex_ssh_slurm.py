"""The Slurm workflow driven through an SSHChannel to the loopback sshd, workers tunnelled.

The provider runs sbatch/squeue/scancel over SSH as root (root's Python is
readable; the flowtest user cannot read /root/.pyenv). The executor copies its
CurveZMQ keys over SFTP and opens an SSH remote port forward; the pools on the far
side connect to 127.0.0.1:<remote port>, which sshd serves and relays to the
interchange through the SSH connection. The tests check each of those steps with
the operating system's view (listening sockets, process command lines), not only
flowlib's own.
"""

from __future__ import annotations

import re
import stat
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from flowlib import python_app
from flowlib.channels.ssh import SSHChannel
from flowlib.executors.errors import BadStateException
from flowlib.launchers import SrunLauncher
from flowlib.providers import SlurmProvider

from .conftest import SLURM, SSHD_DIR, SSHD_PORT, WorkflowFactory, wait_until

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("slurm", "sshd")]

POOL_MODULE = "flowlib.executors.high_throughput.worker_pool"
LAUNCH_CMD = f"{sys.executable} -m {POOL_MODULE} {{options}}"


@python_app
def square_in_job(x: int, delay: float = 0.0, gate: str | None = None) -> tuple[int, str | None]:
    """x * x and the job it ran in, after ``delay`` s, or once the file ``gate`` exists (60 s at most)."""
    import os
    import time

    deadline = time.monotonic() + 60
    while gate is not None and not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(delay)
    return x * x, os.environ.get("SLURM_JOB_ID")


def ssh_slurm_provider(remote_dir: Path, **kwargs: Any) -> SlurmProvider:
    channel = SSHChannel(
        "127.0.0.1",
        port=SSHD_PORT,
        username="root",
        key_filename=str(SSHD_DIR / "id_ed25519"),
        host_keys_filename=str(SSHD_DIR / "known_hosts"),
        script_dir=str(remote_dir),
    )
    kwargs.setdefault("max_blocks", 2)
    provider = SlurmProvider(
        partition="debug",
        launcher=SrunLauncher(),
        init_blocks=0,
        min_blocks=0,
        nodes_per_block=1,
        cores_per_node=1,
        exclusive=False,
        walltime="00:05:00",
        channel=channel,
        **kwargs,
    )
    provider.retry_backoff = 0.1
    return provider


def listeners(port: int) -> list[tuple[str, str]]:
    """(address, process name) of every socket listening on TCP ``port``."""
    found = []
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port:
            try:
                name = psutil.Process(conn.pid).name() if conn.pid else "?"
            except psutil.NoSuchProcess:
                continue  # closed since net_connections() looked
            found.append((conn.laddr.ip, name))
    return found


def pool_peers(marker: str) -> dict[int, set[tuple[str, int]]]:
    """Pid of each running worker pool of this test -> the remote ends of its TCP connections."""
    peers = {}
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if cmdline[1:3] != ["-m", POOL_MODULE] or not any(marker in part for part in cmdline):
            continue  # not a pool itself (srun and bash -c name the module too)
        try:
            peers[proc.pid] = {(c.raddr.ip, c.raddr.port) for c in proc.net_connections("tcp") if c.raddr}
        except psutil.NoSuchProcess:
            continue
    return peers


def test_workers_reach_the_interchange_through_the_ssh_tunnel(workflow: WorkflowFactory, tmp_path: Path) -> None:
    remote_dir = tmp_path / "remote"
    wf = workflow(ssh_slurm_provider(remote_dir), SLURM, max_idletime=2, launch_cmd=LAUNCH_CMD)
    interchange_port = wf.executor._client.worker_port

    # The keys went over SFTP, owner-only, next to the run's remote files.
    keys = list(remote_dir.glob("htex/*/htex/keys/*"))
    assert keys, f"no keys under {remote_dir}"
    assert all(stat.S_IMODE(k.stat().st_mode) == 0o600 for k in keys), [oct(k.stat().st_mode) for k in keys]

    gate = tmp_path / "gate"
    futures = [square_in_job(i, gate=str(gate)) for i in range(8)]
    wait_until(lambda: len(wf.busy_blocks()) == 2, 90, lambda: f"not two busy blocks: {wf.describe()}")
    peers = pool_peers(str(tmp_path))
    gate.touch()
    results = [f.result(timeout=60) for f in futures]

    assert [value for value, _ in results] == [i * i for i in range(8)]
    jobs = wf.job_ids()
    assert len(jobs) == 2, wf.describe()
    assert {job for _, job in results} == set(jobs)

    # The submit scripts were written on the far side and start the pools against 127.0.0.1:<remote port> ...
    scripts = sorted(remote_dir.glob("*.submit"))
    assert len(scripts) == 2, sorted(p.name for p in remote_dir.iterdir())
    options = [re.search(r"--addresses (\S+) --port (\d+)", s.read_text()) for s in scripts]
    assert all(m is not None for m in options), [s.read_text() for s in scripts]
    addresses = {m.group(1) for m in options if m}
    ports = {int(m.group(2)) for m in options if m}
    assert addresses == {"127.0.0.1"}
    (remote_port,) = ports
    # ... a port that sshd (not the interchange) listens on, and to which the pools were connected.
    assert remote_port != interchange_port
    assert [name for _, name in listeners(remote_port)] == ["sshd"], listeners(remote_port)
    assert len(peers) == 2, peers
    for connections in peers.values():
        assert ("127.0.0.1", remote_port) in connections, peers
        assert ("127.0.0.1", interchange_port) not in connections, "a pool bypassed the tunnel"

    # The pools logged on the far side, and registered at the tunnel's end.
    manager_logs = list(remote_dir.glob("htex/*/htex/workers/*/*/manager.log"))
    assert len(manager_logs) == 2
    for log in manager_logs:
        assert f"registered with the interchange at tcp://127.0.0.1:{remote_port}" in log.read_text()

    wait_until(lambda: set(wf.states().values()) == {"SCALED_IN"}, 30, lambda: f"blocks not scaled in: {wf.describe()}")
    wait_until(lambda: not set(jobs) & SLURM.active_jobs(), 30, lambda: f"jobs still in squeue: {wf.describe()}")


def test_behind_a_tunnel_the_interchange_listens_on_loopback_only(workflow: WorkflowFactory, tmp_path: Path) -> None:
    wf = workflow(ssh_slurm_provider(tmp_path / "remote"), SLURM, launch_cmd=LAUNCH_CMD)
    port = wf.executor._client.worker_port

    # Every worker connects through the tunnel, so no port needs to be open on the network.
    assert {address for address, _ in listeners(port)} == {"127.0.0.1"}, listeners(port)


def test_a_job_that_fails_at_start_is_reported_over_ssh(workflow: WorkflowFactory, tmp_path: Path) -> None:
    provider = ssh_slurm_provider(tmp_path / "remote", max_blocks=1, worker_init="echo boom-marker >&2; exit 7")
    wf = workflow(provider, SLURM, launch_cmd=LAUNCH_CMD)
    future = square_in_job(3)

    error = future.exception(timeout=60)

    assert isinstance(error, BadStateException), repr(error)
    assert "boom-marker" in str(error), str(error)  # the job's stderr, read back over SSH
    assert wf.states() == {"0": "FAILED"}
    assert f"stderr file: {tmp_path / 'remote'}/" in str(error), "the job wrote its stderr on the far side"
