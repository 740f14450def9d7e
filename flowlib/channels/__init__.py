"""Channels: run commands and move files where a provider's scheduler lives.

:class:`LocalChannel` is this machine; :class:`SSHChannel` and
:class:`SSHInteractiveLoginChannel` reach a login node over SSH (paramiko, the ``ssh``
extra); :class:`~flowlib.channels.tunnel.SSHTunnel` lets processes there reach local
ports through the same connection. The SSH classes are imported on first use, so
``import flowlib.channels`` does not import paramiko.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flowlib.channels.base import Channel
from flowlib.channels.errors import (
    AuthenticationError,
    ChannelClosedError,
    ChannelConnectError,
    ChannelError,
    ChannelTimeout,
    FileCopyError,
    HostKeyError,
)
from flowlib.channels.local import LocalChannel

if TYPE_CHECKING:
    from flowlib.channels.ssh import SSHChannel
    from flowlib.channels.ssh_interactive import SSHInteractiveLoginChannel
    from flowlib.channels.tunnel import SSHTunnel, open_tunnel

_LAZY = {
    "SSHChannel": "flowlib.channels.ssh",
    "SSHInteractiveLoginChannel": "flowlib.channels.ssh_interactive",
    "SSHTunnel": "flowlib.channels.tunnel",
    "open_tunnel": "flowlib.channels.tunnel",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AuthenticationError",
    "Channel",
    "ChannelClosedError",
    "ChannelConnectError",
    "ChannelError",
    "ChannelTimeout",
    "FileCopyError",
    "HostKeyError",
    "LocalChannel",
    "SSHChannel",
    "SSHInteractiveLoginChannel",
    "SSHTunnel",
    "open_tunnel",
]
