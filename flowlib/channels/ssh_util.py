"""Small helpers shared by the SSH channel modules: the lazy paramiko import, and deadlines."""

from __future__ import annotations

import base64
import hashlib
import logging
import socket
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from flowlib.errors import OptionalModuleMissing

logger = logging.getLogger("flowlib.channels.ssh")


def import_paramiko() -> ModuleType:
    """paramiko, or OptionalModuleMissing naming the ``ssh`` extra."""
    try:
        import paramiko
    except ImportError as e:
        raise OptionalModuleMissing(
            ["paramiko"], "SSH channels need paramiko; install it with: pip install 'flowlib[ssh]'"
        ) from e
    return paramiko


def key_fingerprint(key: Any) -> str:
    """OpenSSH's fingerprint of a paramiko key: ``SHA256:`` + unpadded base64 of the digest."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def describe_os_error(e: BaseException) -> str:
    """``[Errno 111] Connection refused`` style text, including the timeout case."""
    if isinstance(e, socket.timeout):
        return f"timed out ({e})" if str(e) else "timed out"
    return str(e) or type(e).__name__


class Deadline:
    """Run ``on_expiry`` (from a timer thread) if the ``with`` block outlasts ``seconds``.

    For paramiko calls that wait without a timeout of their own (a channel request, a
    global request): ``on_expiry`` closes the channel or the connection, which wakes them.
    """

    def __init__(self, seconds: float, on_expiry: Callable[[], object]) -> None:
        self.seconds = seconds
        self.on_expiry = on_expiry
        self.expired = False
        self._timer: threading.Timer | None = None

    def _fire(self) -> None:
        self.expired = True
        try:
            self.on_expiry()
        except Exception:  # the caller sees .expired; this is only clean-up
            logger.debug("clean-up after a deadline failed", exc_info=True)

    def __enter__(self) -> Deadline:
        self._timer = threading.Timer(self.seconds, self._fire)
        self._timer.name = "flowlib-ssh-deadline"
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._timer is not None
        self._timer.cancel()
        self._timer.join()
