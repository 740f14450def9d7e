"""IPv4 and IPv6 everywhere an address goes: URLs, the address helpers, pools and whole executors.

The executor tests run real interchanges and pools on ``::1`` and ``127.0.0.1`` with
``unix_sockets=False`` (every link on TCP), and check with the operating system's view
(listening sockets) and the pool's own log which address family was used.
"""

from __future__ import annotations

import pathlib
import socket
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

import flowlib
from flowlib import addresses
from flowlib.config import Config
from flowlib.executors import HighThroughputExecutor
from flowlib.executors.high_throughput.pool_register import candidate_urls
from flowlib.providers import LocalProvider

from . import pool_tasks as tasks
from .conftest import FakeInterchange

pytestmark = pytest.mark.timeout(60)

LOOPBACKS = ["127.0.0.1", "::1"]


def ipv6_loopback_works() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not ipv6_loopback_works(), reason="this machine has no IPv6 loopback")


# ------------------------------------------------------------------ URLs and helpers


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("127.0.0.1", 5, "tcp://127.0.0.1:5"),
        ("::1", 5, "tcp://[::1]:5"),
        ("[::1]", 5, "tcp://[::1]:5"),
        ("fd00::2", None, "tcp://[fd00::2]"),
        ("fe80::1%eth0", 7, "tcp://[fe80::1%eth0]:7"),
        ("localhost", 9, "tcp://localhost:9"),
        ("*", None, "tcp://*"),
        ("eth0", 1, "tcp://eth0:1"),
    ],
)
def test_tcp_urls_bracket_ipv6_literals_only(host: str, port: int | None, url: str) -> None:
    assert addresses.tcp_url(host, port) == url


def test_literals_resolve_to_themselves_and_names_to_every_family(monkeypatch: pytest.MonkeyPatch) -> None:
    assert addresses.resolve_all("::1") == ["::1"]
    assert addresses.resolve_all("[::1]") == ["::1"]
    assert addresses.resolve_all("127.0.0.1") == ["127.0.0.1"]
    assert "127.0.0.1" in addresses.resolve_all("localhost")
    with pytest.raises(socket.gaierror):
        addresses.resolve_all("no-such-host.invalid")

    def both(host: str, *args: Any) -> list[Any]:
        assert host == "dual.example"
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("fd00::7", 0, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 0)),
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("fd00::7", 0, 0, 0)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", both)
    assert addresses.resolve_all("dual.example") == ["fd00::7", "10.0.0.7"]
    # A pool tries both: a name stands for all of its addresses, in the given order, without repeats.
    assert candidate_urls(["127.0.0.2", "dual.example", "::1", "10.0.0.7"], 80) == [
        "tcp://127.0.0.2:80",
        "tcp://[fd00::7]:80",
        "tcp://10.0.0.7:80",
        "tcp://[::1]:80",
    ]


def test_a_name_that_does_not_resolve_stays_a_candidate() -> None:
    assert candidate_urls(["no-such-host.invalid", "::1"], 1) == ["tcp://no-such-host.invalid:1", "tcp://[::1]:1"]


def test_this_machines_addresses_have_both_families() -> None:
    found = addresses.get_all_addresses()
    interfaces = psutil.net_if_addrs()
    want = {str(a.address) for addrs in interfaces.values() for a in addrs if a.family == socket.AF_INET}
    assert want <= found
    assert "127.0.0.1" in found
    if ipv6_loopback_works():
        assert "::1" in found
    assert not any(a.lower().startswith("fe80:") for a in found), "link-local addresses need a scope"
    order = addresses.ordered(found)
    families = [addresses.is_ipv6(a) for a in order]
    assert families == sorted(families), f"IPv4 first: {order}"


def test_interface_hostname_and_route_addresses() -> None:
    assert addresses.address_by_interface("lo") == "127.0.0.1"
    with pytest.raises(ValueError, match="interface 'no-such-if0' has no IPv4 or IPv6 address"):
        addresses.address_by_interface("no-such-if0")
    assert addresses.address_by_hostname() in set(addresses.resolve_all(socket.gethostname()))
    try:
        route = addresses.address_by_route()
    except ValueError:
        pytest.skip("no default route on this machine")
    assert route in addresses.get_all_addresses()


def test_an_interface_with_only_ipv6_gives_its_ipv6_address(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    only6 = {
        "v6only": [
            SimpleNamespace(family=socket.AF_INET6, address="fe80::1%v6only"),
            SimpleNamespace(family=socket.AF_INET6, address="fd00::9"),
        ]
    }
    monkeypatch.setattr(psutil, "net_if_addrs", lambda: only6)
    assert addresses.address_by_interface("v6only") == "fd00::9"
    assert addresses.get_all_addresses() == {"fd00::9"}


# ------------------------------------------------------------------ a real pool, mixed candidates


@pytest.fixture(params=LOOPBACKS)
def interchange_on(request: pytest.FixtureRequest, cert_dir: str) -> Iterator[FakeInterchange]:
    if request.param == "::1" and not ipv6_loopback_works():
        pytest.skip("no IPv6 loopback")
    fake = FakeInterchange(cert_dir, address=request.param)
    fake.address = request.param  # type: ignore[attr-defined]
    try:
        yield fake
    finally:
        fake.close()


def test_a_mixed_candidate_list_whose_first_entries_are_unreachable_still_connects(
    start_pool: Any, cert_dir: str, interchange_on: FakeInterchange
) -> None:
    # Before the right address: 127.0.0.2 and ::ffff:127.0.0.2 (an IPv6 literal) refuse, the other
    # loopback family has nothing on that port, and a name does not resolve. All stay on this machine.
    right = interchange_on.address  # type: ignore[attr-defined]
    other = "127.0.0.1" if right == "::1" else "::1"
    candidates = f"127.0.0.2,::ffff:127.0.0.2,{other},no-such-host.invalid,{right}"
    pool = start_pool(interchange_on, "--address-probe-timeout", "20", cert_dir=cert_dir, addresses=candidates)
    identity, _ = interchange_on.register()
    assert interchange_on.run(identity, tasks.add, 20, 22, tid=1) == 42
    log = next(pathlib.Path(pool.stdout_path).parent.glob("logs/**/manager.log")).read_text()
    assert f"registered with the interchange at {addresses.tcp_url(right, interchange_on.port)}" in log


@needs_ipv6
def test_when_nothing_answers_each_family_is_reported(start_pool: Any) -> None:
    from flowlib.executors.high_throughput.pool_options import EXIT_UNREACHABLE

    # The pool reports at the timeout; 4 s lets each probe see its refusal on a loaded machine.
    pool = start_pool(None, "--address-probe-timeout", "4", addresses="127.0.0.2,::1")
    assert pool.wait() == EXIT_UNREACHABLE
    assert "tcp://127.0.0.2:1: connection refused" in pool.stderr
    assert "tcp://[::1]:1: connection refused" in pool.stderr


def test_a_host_name_reaches_an_ipv4_interchange(start_pool: Any, cert_dir: str, interchange: FakeInterchange) -> None:
    start_pool(interchange, cert_dir=cert_dir, addresses="::1,localhost")
    identity, _ = interchange.register()
    assert interchange.run(identity, tasks.add, 1, 2, tid=1) == 3


# ------------------------------------------------------------------ whole executors


def listening_on(port: int, unmap: bool = False) -> set[str]:
    """The addresses a socket listens on at ``port``; ``unmap``: ``::ffff:a.b.c.d`` counted as ``a.b.c.d``.

    A ZeroMQ socket given a host name has its IPv6 option on, so an IPv4 address it
    binds is listed in its IPv4-mapped form.
    """
    found = {
        c.laddr.ip for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }
    return {a.removeprefix("::ffff:") for a in found} if unmap else found


@flowlib.python_app
def double(x: int) -> int:
    return x * 2


def htex_config(tmp_path: pathlib.Path, loopback: str, **options: Any) -> Config:
    executor = HighThroughputExecutor(
        label="htex",
        loopback_address=loopback,
        max_workers_per_node=1,
        heartbeat_period=1,
        heartbeat_threshold=10,
        provider=LocalProvider(init_blocks=1),
        **options,
    )
    return Config(executors=[executor], run_dir=str(tmp_path / "run"))


def manager_logs(tmp_path: pathlib.Path) -> str:
    return "".join(p.read_text() for p in (tmp_path / "run").glob("**/manager.log"))


@pytest.mark.parametrize("loopback", [pytest.param("::1", marks=needs_ipv6), "127.0.0.1", "localhost"])
def test_htex_round_trip_on_each_loopback_over_tcp(tmp_path: pathlib.Path, loopback: str) -> None:
    with flowlib.load(htex_config(tmp_path, loopback, unix_sockets=False)) as dfk:
        assert [double(i).result(timeout=30) for i in range(4)] == [0, 2, 4, 6]
        client = dfk.executors["htex"]._client
        worker_port, client_port = client.worker_port, client.client_port
        expected = {"::1"} if loopback == "::1" else {"127.0.0.1"}
        assert listening_on(worker_port, unmap=loopback == "localhost") == expected
        assert listening_on(client_port, unmap=loopback == "localhost") == expected
    url = addresses.tcp_url(expected.pop(), worker_port)
    assert f"registered with the interchange at {url}" in manager_logs(tmp_path)


@needs_ipv6
def test_htex_on_ipv6_loopback_with_the_local_fast_paths(tmp_path: pathlib.Path) -> None:
    # Parsl's local configuration: only the worker port is on TCP, the rest on Unix sockets.
    with flowlib.load(htex_config(tmp_path, "::1")) as dfk:
        assert sum(double(i).result(timeout=30) for i in range(10)) == 90
        assert listening_on(dfk.executors["htex"]._client.worker_port) == {"::1"}


@needs_ipv6
def test_non_local_pools_are_offered_both_families_and_the_port_takes_both(tmp_path: pathlib.Path) -> None:
    ex = HighThroughputExecutor(label="htex", provider=LocalProvider(init_blocks=0))
    ex.provider.workers_on_this_machine = False  # as a batch provider: pools on other nodes
    options = ex._validated_options()
    assert options.bind_address(ex.provider) == "*"
    offered = options.worker_addresses(ex.provider).split(",")
    assert "127.0.0.1" in offered and "::1" in offered
    assert offered.index("127.0.0.1") < offered.index("::1")


def free_port(host: str) -> int:
    family = socket.AF_INET6 if addresses.is_ipv6(host) else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("loopback", [pytest.param("::1", marks=needs_ipv6), "127.0.0.1"])
@pytest.mark.parametrize("how", ["address", "worker_port_range", "worker_ports"])
def test_every_address_option_takes_either_family(tmp_path: pathlib.Path, loopback: str, how: str) -> None:
    options: dict[str, Any] = {"unix_sockets": False}
    if how == "address":
        options["address"] = loopback
    elif how == "worker_port_range":
        options["worker_port_range"] = (56100, 56400)
    else:
        port = free_port(loopback)
        options["worker_ports"] = (port, port)
    with flowlib.load(htex_config(tmp_path, "127.0.0.1" if how == "address" else loopback, **options)) as dfk:
        assert double(21).result(timeout=30) == 42
        worker_port = dfk.executors["htex"]._client.worker_port
        assert listening_on(worker_port) == {loopback}
    if how == "worker_port_range":
        assert 56100 <= worker_port < 56400
    elif how == "worker_ports":
        assert worker_port == options["worker_ports"][0]
    assert f"registered with the interchange at {addresses.tcp_url(loopback, worker_port)}" in manager_logs(tmp_path)
