"""Finding addresses of this machine that workers can use to reach the interchange.

Every helper handles IPv4 and IPv6. None of them contacts any outside service: they
read the machine's own interfaces, routing table and name resolution.
:func:`tcp_url` writes the ``tcp://host:port`` URLs that ZeroMQ takes, with IPv6
literals in brackets; every part of flowlib that builds such a URL goes through it.
"""

from __future__ import annotations

import ipaddress
import socket
import subprocess
from collections.abc import Iterable

__all__ = [
    "address_by_hostname",
    "address_by_interface",
    "address_by_route",
    "get_all_addresses",
    "is_ipv4",
    "is_ipv6",
    "ordered",
    "resolve_all",
    "tcp_url",
    "zmq_ipv6",
]


def is_ipv6(host: str) -> bool:
    """True when ``host`` is an IPv6 literal (``"::1"``, ``"[fd00::2]"``, ``"fe80::1%eth0"``)."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.IPv6Address(bare)
    except ValueError:
        return False
    return True


def is_ipv4(host: str) -> bool:
    """True when ``host`` is an IPv4 literal such as ``"127.0.0.1"``."""
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def zmq_ipv6(host: str) -> bool:
    """The value for a ZeroMQ socket's ``IPV6`` option when it binds or connects to ``host``.

    On for everything but an IPv4 literal: IPv6 literals, host names (which may resolve to
    either family) and ``*`` (every interface of both families). Off for an IPv4 literal,
    so that the socket is a plain IPv4 one (not an IPv6 socket bound to ``::ffff:a.b.c.d``).
    """
    return not is_ipv4(host)


def tcp_url(host: str, port: int | None = None) -> str:
    """``tcp://host:port`` (or ``tcp://host`` with no port), brackets around an IPv6 literal.

    ``host`` may be an IPv4 or IPv6 literal, a host name, an interface name or ``*``.
    ZeroMQ sockets given such a URL need their ``IPV6`` option on to reach IPv6 hosts.
    """
    if is_ipv6(host) and not host.startswith("["):
        host = f"[{host}]"
    return f"tcp://{host}" if port is None else f"tcp://{host}:{port}"


def resolve_all(host: str) -> list[str]:
    """Every address ``host`` resolves to, IPv4 and IPv6, in resolver order, without repeats.

    A literal is returned as it is; raises ``socket.gaierror`` for a name that does not resolve.
    """
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(bare.split("%", 1)[0])
        return [bare]
    except ValueError:
        pass
    found = socket.getaddrinfo(bare, None, socket.AF_UNSPEC, socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in found if info[0] in (socket.AF_INET, socket.AF_INET6)))


def address_by_hostname() -> str:
    """The address this machine's hostname resolves to (IPv4 first when it has both)."""
    addresses = resolve_all(socket.gethostname())
    if not addresses:
        raise ValueError(f"the hostname {socket.gethostname()!r} resolves to no IPv4 or IPv6 address")
    return sorted(addresses, key=is_ipv6)[0]


def _usable(family: int, address: str) -> bool:
    if family == socket.AF_INET:
        return True
    if family == socket.AF_INET6:
        return not ipaddress.IPv6Address(address.split("%", 1)[0]).is_link_local  # needs a scope: not portable
    return False


def address_by_interface(ifname: str) -> str:
    """The address of network interface ``ifname`` (e.g. ``"eth0"``, ``"ib0"``).

    Its IPv4 address when it has one, otherwise its first IPv6 address that is not
    link-local.
    """
    import psutil

    interfaces = psutil.net_if_addrs()
    usable = [(a.family, str(a.address)) for a in interfaces.get(ifname, []) if _usable(a.family, str(a.address))]
    for family in (socket.AF_INET, socket.AF_INET6):
        for found, address in usable:
            if found == family:
                return address
    raise ValueError(f"interface {ifname!r} has no IPv4 or IPv6 address (known: {sorted(interfaces)})")


def address_by_route() -> str:
    """The address of the interface of this machine's default route (IPv4's, else IPv6's)."""
    for flag in ("-4", "-6"):
        try:
            out = subprocess.run(
                ["ip", flag, "route", "show", "default"], capture_output=True, text=True, timeout=5
            ).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        parts = out.split()
        if "dev" in parts:
            return address_by_interface(parts[parts.index("dev") + 1])
    raise ValueError("no default IPv4 or IPv6 route found ('ip route show default' shows none)")


def get_all_addresses() -> set[str]:
    """Every IPv4 and IPv6 address of this machine, loopback included.

    Link-local IPv6 addresses (``fe80::``) are left out: they only work with a scope.
    :func:`ordered` sorts them IPv4 first.
    """
    import psutil

    found = {
        str(a.address) for addrs in psutil.net_if_addrs().values() for a in addrs if _usable(a.family, str(a.address))
    }
    return found or {"127.0.0.1"}


def ordered(addresses: Iterable[str]) -> list[str]:
    """``addresses`` without repeats, IPv4 literals and host names first, then IPv6, each sorted."""
    return sorted(set(addresses), key=lambda a: (is_ipv6(a), a))
