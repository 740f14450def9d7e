"""Authentication for SSH channels: try methods in turn and remember what each one gave.

A :class:`Login` wraps one connection being authenticated. Each ``try_*`` method makes
one or more attempts and records them; :meth:`Login.failure` turns the record into an
:class:`~flowlib.channels.errors.AuthenticationError` that names every method tried and
what the server said it accepts. Only a broken connection raises from an attempt.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from flowlib.channels.errors import AuthenticationError, ChannelConnectError
from flowlib.channels.ssh_util import describe_os_error, key_fingerprint

logger = logging.getLogger("flowlib.channels.ssh")

DEFAULT_KEY_FILES = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")


class Login:
    """The authentication of ``transport`` as ``username`` to ``hostname:port``."""

    def __init__(self, paramiko: ModuleType, transport: Any, username: str, hostname: str, port: int) -> None:
        self.paramiko = paramiko
        self.transport = transport
        self.username = username
        self.hostname = hostname
        self.port = port
        self.tried: list[str] = []
        """What was offered, each with its outcome, for the error message."""
        self.allowed: set[str] = set()
        """The methods the server said it accepts."""

    @property
    def done(self) -> bool:
        return bool(self.transport.is_authenticated())

    def failure(self, detail: str = "") -> AuthenticationError:
        return AuthenticationError(self.username, self.hostname, self.port, self.tried, sorted(self.allowed), detail)

    def attempt(self, label: str, call: Callable[[], Any]) -> None:
        """Make one attempt; record it; raise only if the connection broke."""
        p, t = self.paramiko, self.transport
        try:
            remaining = call()
        except p.BadAuthenticationType as e:
            self.allowed.update(e.allowed_types)
            self.tried.append(f"{label} (not offered by the server)")
            return
        except p.AuthenticationException as e:
            self.tried.append(f"{label} (refused)" if str(e) in ("", "Authentication failed.") else f"{label} ({e})")
        except (p.SSHException, EOFError, OSError) as e:
            if not t.is_active():
                raise ChannelConnectError(
                    self.hostname, self.port, f"connection lost during authentication: {describe_os_error(e)}"
                ) from e
            self.tried.append(f"{label} (failed: {describe_os_error(e)})")
            return
        else:
            if t.is_authenticated():
                self.tried.append(label)
                logger.debug("authenticated to %s with %s", self.hostname, label)
            else:  # partial success: the server wants another method too (two-factor)
                self.tried.append(f"{label} (accepted; the server requires more: {', '.join(remaining or [])})")
                self.allowed.update(remaining or [])
        if not t.is_active():
            raise ChannelConnectError(self.hostname, self.port, f"the server closed the connection after {label}")

    def try_none(self) -> None:
        self.attempt("none", lambda: self.transport.auth_none(self.username))

    def try_gssapi(self) -> None:
        self.attempt("gssapi-with-mic", lambda: self.transport.auth_gssapi_with_mic(self.username, self.hostname, True))

    def try_password(self, password: str) -> None:
        # paramiko falls back to keyboard-interactive with the password if that is all the server offers
        self.attempt("password", lambda: self.transport.auth_password(self.username, password))

    def try_key_files(self, files: Sequence[str], passphrase: str | None, explicit: bool) -> None:
        """Offer each key file; ``explicit`` files that cannot be loaded are reported, defaults skipped."""
        p = self.paramiko
        for path in files:
            if self.done:
                return
            label = f"publickey (key file {path})"
            try:
                key = p.PKey.from_path(path, passphrase)
            except p.PasswordRequiredException:
                self.tried.append(f"{label}: encrypted; pass its passphrase as password=, or load it into ssh-agent")
                continue
            except (OSError, p.SSHException, ValueError) as e:
                if explicit:
                    self.tried.append(f"{label}: cannot load it: {e}")
                else:
                    logger.debug("skipping default key %s: %s", path, e)
                continue
            self.attempt(label, functools.partial(self.transport.auth_publickey, self.username, key))

    def try_default_key_files(self, passphrase: str | None) -> None:
        found = [p for p in (os.path.expanduser(f) for f in DEFAULT_KEY_FILES) if os.path.exists(p)]
        self.try_key_files(found, passphrase, explicit=False)

    def try_agent(self) -> None:
        """Offer each key of the ssh-agent at ``SSH_AUTH_SOCK`` (nothing if there is none)."""
        p = self.paramiko
        if not os.environ.get("SSH_AUTH_SOCK"):
            return
        try:
            agent = p.Agent()
        except (p.SSHException, OSError) as e:
            logger.debug("ssh-agent not usable: %s", e)
            return
        try:
            keys = agent.get_keys()
            for number, key in enumerate(keys, 1):
                if self.done:
                    return
                label = f"publickey (ssh-agent key {number} of {len(keys)}: {key_fingerprint(key)})"
                self.attempt(label, functools.partial(self.transport.auth_publickey, self.username, key))
        finally:
            agent.close()
