"""HTEX behind an SSH tunnel to the real loopback sshd, on an IPv4 and an IPv6 loopback.

A LocalProvider reaches "the far side" (this machine, as root) through an SSHChannel;
the executor forwards a port of that sshd to the interchange's worker port. With
``loopback_address="::1"`` the interchange listens on ``[::1]`` only, sshd forwards to
it from its loopback, and the pool registers at ``tcp://[::1]:<remote port>``; with
``"127.0.0.1"`` everything is IPv4. The test checks the listening sockets (who listens
where, per psutil) and the pool's own log, not only that the tasks ran.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import psutil
import pytest

from flowlib import python_app
from flowlib.addresses import tcp_url
from flowlib.channels.ssh import SSHChannel
from flowlib.providers import LocalProvider

from .conftest import LOCAL, SSHD_DIR, SSHD_PORT, WorkflowFactory

pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("sshd")]

LAUNCH_CMD = f"{sys.executable} -m flowlib.executors.high_throughput.worker_pool {{options}}"


def ipv6_loopback_works() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@python_app
def triple(x: int) -> int:
    return 3 * x


def listeners(port: int) -> set[tuple[str, str]]:
    """(address, process name) of every socket listening on TCP ``port``, except the test's own.

    The test process may hold the same port number on the other address family (a
    socket of an earlier test), which says nothing about the interchange or the tunnel.
    """
    found = set()
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid != os.getpid():
            try:
                found.add((conn.laddr.ip, psutil.Process(conn.pid).name() if conn.pid else "?"))
            except psutil.NoSuchProcess:
                continue
    return found


@pytest.mark.parametrize("loopback", ["127.0.0.1", "::1"])
def test_tunnelled_htex_on_each_loopback(workflow: WorkflowFactory, tmp_path: Path, loopback: str) -> None:
    if loopback == "::1" and not ipv6_loopback_works():
        pytest.skip("no IPv6 loopback on this machine")
    channel = SSHChannel(
        "127.0.0.1",
        port=SSHD_PORT,
        username="root",
        key_filename=str(SSHD_DIR / "id_ed25519"),
        host_keys_filename=str(SSHD_DIR / "known_hosts"),
        script_dir=str(tmp_path / "remote"),
    )
    provider = LocalProvider(channel=channel, init_blocks=1, min_blocks=0, max_blocks=1)
    wf = workflow(provider, LOCAL, loopback_address=loopback, launch_cmd=LAUNCH_CMD, strategy="none")
    assert wf.executor._remote is not None, "the executor did not open a tunnel"
    remote_port = wf.executor._remote.port
    interchange_port = wf.executor._client.worker_port

    assert [triple(i).result(timeout=60) for i in range(5)] == [0, 3, 6, 9, 12]

    # The interchange listens on the chosen loopback only; sshd holds the tunnel's end on loopback.
    assert {address for address, _ in listeners(interchange_port)} == {loopback}
    tunnel_end = listeners(remote_port)
    assert {name for _, name in tunnel_end} == {"sshd"}, tunnel_end
    assert {address for address, _ in tunnel_end} <= {"127.0.0.1", "::1"}, tunnel_end
    # The pool was told the loopback of the far side and registered there, through sshd.
    logs = "".join(p.read_text() for p in tmp_path.glob("remote/**/manager.log"))
    logs += "".join(p.read_text() for p in wf.run_dir.glob("**/manager.log"))
    assert f"registered with the interchange at {tcp_url(loopback, remote_port)}" in logs, logs[-2000:]
