"""Host names that resolve to IPv6, or to both families, with a private /etc/hosts.

This machine's /etc/hosts may have no IPv6 names, and tests must not change it. Each
workflow here runs in its own mount namespace (``unshare -m``, root only) where a
temporary file is bind-mounted over /etc/hosts; the interchange and the pools are its
children and see the same names. Nothing outside the namespace changes.

- ``ip6-localhost``: ``::1`` only.
- ``dualhost``: ``::1`` and ``127.0.0.1`` (the resolver lists ``::1`` first).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

HOSTS = "127.0.0.1 localhost\n::1 ip6-localhost\n::1 dualhost\n127.0.0.1 dualhost\n127.0.0.1 v4host\n"
POOL = f"{sys.executable} -m flowlib.executors.high_throughput.worker_pool"

SCRIPT = textwrap.dedent(
    """
    import socket, sys
    import flowlib
    from flowlib.config import Config
    from flowlib.executors import HighThroughputExecutor
    from flowlib.providers import LocalProvider

    loopback, launch_cmd, run_dir = sys.argv[1:4]
    print("resolver:", [a[4][0] for a in socket.getaddrinfo("dualhost", None, 0, socket.SOCK_STREAM)])

    @flowlib.python_app
    def square(x):
        return x * x

    executor = HighThroughputExecutor(
        label="htex", loopback_address=loopback, unix_sockets=False, max_workers_per_node=1,
        launch_cmd=launch_cmd or None, provider=LocalProvider(init_blocks=1),
    )
    with flowlib.load(Config(executors=[executor], run_dir=run_dir)):
        print("sum:", sum(square(i).result(timeout=30) for i in range(5)))
        print("port:", executor._client.worker_port)
    """
)


@pytest.fixture(scope="module")
def private_hosts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A hosts file, after checking that a mount namespace can put it over /etc/hosts."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) to give a test its own /etc/hosts")
    hosts = tmp_path_factory.mktemp("hosts") / "hosts"
    hosts.write_text(HOSTS)
    probe = in_namespace(hosts, [sys.executable, "-c", "import socket; print(socket.gethostbyname('v4host'))"])
    if probe.returncode != 0 or probe.stdout.strip() != "127.0.0.1":
        pytest.skip(f"cannot bind-mount over /etc/hosts in a mount namespace here: {probe.stderr.strip()}")
    return hosts


def in_namespace(hosts: Path, command: list[str], timeout: float = 50) -> subprocess.CompletedProcess[str]:
    shell = 'mount --bind "$0" /etc/hosts && exec "$@"'
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", shell, str(hosts), *command],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run(hosts: Path, tmp_path: Path, loopback: str, pool_addresses: str = "") -> tuple[int, str]:
    """Run the workflow; return the interchange's worker port and the pools' manager logs."""
    script = tmp_path / "workflow.py"
    script.write_text(SCRIPT)
    launch = f"{POOL} {{options}} --addresses {pool_addresses}" if pool_addresses else ""
    done = in_namespace(hosts, [sys.executable, str(script), loopback, launch, str(tmp_path / "run")])
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    assert "sum: 30" in done.stdout, done.stdout
    port = int(done.stdout.split("port:")[1].split()[0])
    logs = "".join(p.read_text() for p in (tmp_path / "run").glob("**/manager.log"))
    return port, logs


def test_a_name_that_resolves_to_ipv6_only(private_hosts: Path, tmp_path: Path) -> None:
    port, logs = run(private_hosts, tmp_path, "ip6-localhost")
    assert f"registered with the interchange at tcp://[::1]:{port}" in logs


def test_a_name_with_both_families_as_the_loopback(private_hosts: Path, tmp_path: Path) -> None:
    port, logs = run(private_hosts, tmp_path, "dualhost")
    assert f"registering with tcp://[::1]:{port}, tcp://127.0.0.1:{port}" in logs
    assert "registered with the interchange at tcp://" in logs


def test_a_pool_tries_both_families_of_a_name_when_the_first_is_not_listening(
    private_hosts: Path, tmp_path: Path
) -> None:
    # The interchange listens on 127.0.0.1 only; the pool is given "dualhost", whose first
    # address (::1) refuses. ZeroMQ alone would try only that one; the pool tries both.
    port, logs = run(private_hosts, tmp_path, "127.0.0.1", pool_addresses="dualhost")
    assert f"registering with tcp://[::1]:{port}, tcp://127.0.0.1:{port}" in logs
    assert f"registered with the interchange at tcp://127.0.0.1:{port}" in logs


def test_a_mixed_list_of_names_reaches_an_ipv6_interchange(private_hosts: Path, tmp_path: Path) -> None:
    port, logs = run(private_hosts, tmp_path, "::1", pool_addresses="v4host,127.0.0.2,dualhost")
    assert f"registered with the interchange at tcp://[::1]:{port}" in logs
