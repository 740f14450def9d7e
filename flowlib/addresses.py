"""Finding addresses of this machine that workers can use to reach the interchange.

None of these contact any outside service: they read the machine's own interfaces,
routing table and name resolution.
"""

from __future__ import annotations

import socket
import subprocess


def address_by_hostname() -> str:
    """The address this machine's hostname resolves to."""
    return socket.gethostbyname(socket.gethostname())


def address_by_interface(ifname: str) -> str:
    """The IPv4 address of network interface ``ifname`` (e.g. ``"eth0"``, ``"ib0"``)."""
    import psutil

    for addr in psutil.net_if_addrs().get(ifname, []):
        if addr.family == socket.AF_INET:
            return str(addr.address)
    raise ValueError(f"interface {ifname!r} has no IPv4 address (known: {sorted(psutil.net_if_addrs())})")


def address_by_route() -> str:
    """The source address of this machine's default route, read from the routing table."""
    out = subprocess.run(["ip", "-4", "route", "show", "default"], capture_output=True, text=True, timeout=5).stdout
    parts = out.split()
    if "dev" in parts:
        return address_by_interface(parts[parts.index("dev") + 1])
    raise ValueError("no default IPv4 route found")


def get_all_addresses() -> set[str]:
    """Every IPv4 address of this machine, loopback included."""
    import psutil

    found = {str(a.address) for addrs in psutil.net_if_addrs().values() for a in addrs if a.family == socket.AF_INET}
    return found or {"127.0.0.1"}
