"""CurveZMQ keys for one executor run, and applying them to sockets.

``create_keys(dir)`` makes two key pairs in ``dir`` (owner-only permissions):
``server`` (the interchange) and ``client`` (the executor and every worker pool).
The interchange accepts only the client public key; peers need the server
public key to connect. Pass the directory to worker pools with ``--cert-dir``.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CurveKeys:
    """The keys one side of a connection needs."""

    public: bytes
    secret: bytes
    server_public: bytes


def create_keys(directory: str) -> str:
    """Create the server and client key pairs in ``directory`` (mode 0700); return it."""
    import zmq

    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    for name in ("server", "client"):
        public, secret = zmq.curve_keypair()
        _write(os.path.join(directory, f"{name}.public"), public)
        _write(os.path.join(directory, f"{name}.secret"), secret)
    return directory


def _write(path: str, key: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read().strip()
    except OSError as e:
        raise FileNotFoundError(f"cannot read CurveZMQ key {path}: {e.strerror}") from e


def client_keys(directory: str) -> CurveKeys:
    """The keys of a connecting peer (executor client, worker pool)."""
    return CurveKeys(
        public=_read(os.path.join(directory, "client.public")),
        secret=_read(os.path.join(directory, "client.secret")),
        server_public=_read(os.path.join(directory, "server.public")),
    )


def server_keys(directory: str) -> CurveKeys:
    """The interchange's own keys."""
    public = _read(os.path.join(directory, "server.public"))
    return CurveKeys(public=public, secret=_read(os.path.join(directory, "server.secret")), server_public=public)


def allowed_client_key(directory: str) -> bytes:
    """The one client public key the interchange accepts."""
    return _read(os.path.join(directory, "client.public"))


def apply_client(socket: Any, keys: CurveKeys) -> None:
    """Make ``socket`` a CurveZMQ client of the server whose public key is in ``keys``."""
    socket.curve_secretkey = keys.secret
    socket.curve_publickey = keys.public
    socket.curve_serverkey = keys.server_public


def apply_server(socket: Any, keys: CurveKeys) -> None:
    """Make ``socket`` a CurveZMQ server (must be called before bind)."""
    socket.curve_secretkey = keys.secret
    socket.curve_publickey = keys.public
    socket.curve_server = True


class KeyChecker:
    """ZAP callback: accept only the executor's client key; count refusals."""

    def __init__(self, allowed: bytes) -> None:
        self.allowed = allowed
        self.refused = 0
        self._lock = threading.Lock()

    def callback(self, domain: str, key: bytes) -> bool:
        # pyzmq hands the client's public key over Z85-encoded, as the key files store it
        ok = key == self.allowed
        if not ok:
            with self._lock:
                self.refused += 1
        return ok
