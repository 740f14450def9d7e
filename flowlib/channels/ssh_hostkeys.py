"""Host-key verification for SSH channels: known_hosts files and the unknown-host policy.

The server's key is compared with ``~/.ssh/known_hosts`` and the channel's
``host_keys_filename`` (OpenSSH's format, hashed entries included; ``[host]:port`` for a
port other than 22), re-read on every connection. A matching entry: go on. An entry with
another key: the key CHANGED, refused whatever the policy. No entry: the policy decides.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType
from typing import Any

from flowlib.channels.errors import ChannelError, HostKeyError
from flowlib.channels.ssh_util import key_fingerprint

logger = logging.getLogger("flowlib.channels.ssh")

KNOWN_HOSTS_POLICIES = ("reject", "warn", "auto-add")
"""``reject``: refuse hosts not in known_hosts (the default, like ``StrictHostKeyChecking=yes``).
``warn``: log a warning and connect (the key is trusted for the channel's lifetime only).
``auto-add``: trust and remember the key: in ``host_keys_filename`` if given, else in memory
(like ``StrictHostKeyChecking=accept-new``). No policy accepts a CHANGED key."""

USER_KNOWN_HOSTS = "~/.ssh/known_hosts"

KnownHosts = list[tuple[str, Any]]
"""``[(where, paramiko.HostKeys)]``: each source of known keys, named for error messages."""


class HostKeyVerifier:
    """Decides whether to trust the key a server presents; remembers keys it was told to accept."""

    def __init__(self, hostname: str, port: int, policy: str, host_keys_filename: str | None) -> None:
        if policy not in KNOWN_HOSTS_POLICIES:
            raise ValueError(f"known_hosts_policy must be one of {KNOWN_HOSTS_POLICIES}, not {policy!r}")
        self.hostname = hostname
        self.port = port
        self.policy = policy
        self.host_keys_filename = host_keys_filename
        self.entry_name = hostname if port == 22 else f"[{hostname}]:{port}"
        self._accepted: Any = None  # paramiko.HostKeys trusted under 'warn' / 'auto-add'

    def load(self, paramiko: ModuleType) -> KnownHosts:
        """The known keys, from ~/.ssh/known_hosts, host_keys_filename and earlier acceptances."""
        found: KnownHosts = []
        candidates = [(os.path.expanduser(USER_KNOWN_HOSTS), False)]
        if self.host_keys_filename:
            candidates.append((os.path.expanduser(self.host_keys_filename), True))
        for path, explicit in candidates:
            if not os.path.exists(path):
                if explicit and self.policy != "auto-add":
                    logger.warning("host_keys_filename %s does not exist", path)
                continue
            keys = paramiko.HostKeys()
            try:
                keys.load(path)
            except (OSError, paramiko.SSHException, ValueError) as e:
                if explicit:
                    raise ChannelError(f"cannot read known_hosts file {path}: {e}", self.hostname) from e
                logger.warning("ignoring unreadable known_hosts file %s: %s", path, e)
                continue
            found.append((path, keys))
        if self._accepted is not None:
            found.append(("(keys accepted earlier by this channel)", self._accepted))
        return found

    def prefer_known_key_types(self, transport: Any, known: KnownHosts) -> None:
        """Ask the server for a host key of a type we already know, so that a known host verifies."""
        types: set[str] = set()
        for _, keys in known:
            entry = keys.lookup(self.entry_name)
            if entry:
                types.update(entry.keys())
        if not types:
            return
        if "ssh-rsa" in types:  # one RSA key, several signature algorithms
            types.update(("rsa-sha2-512", "rsa-sha2-256"))
        options = transport.get_security_options()
        current = list(options.key_types)
        options.key_types = [k for k in current if k in types] + [k for k in current if k not in types]

    def check(self, paramiko: ModuleType, transport: Any, known: KnownHosts) -> None:
        """Accept the server's key or raise HostKeyError (unknown under 'reject', or changed)."""
        key = transport.get_remote_server_key()
        key_type = key.get_name()
        name = self.entry_name
        fingerprint = key_fingerprint(key)
        other: tuple[str, Any] | None = None  # (where, a known key that does not match)
        for where, keys in known:
            entry = keys.lookup(name)
            if not entry:
                continue
            if key_type in entry and entry[key_type].asbytes() == key.asbytes():
                logger.debug("host key of %s (%s %s) found in %s", name, key_type, fingerprint, where)
                return
            if other is None:
                other = (where, entry[key_type] if key_type in entry else next(iter(entry.values())))
        if other is not None:
            where, known_key = other
            expected = f"{known_key.get_name()} {key_fingerprint(known_key)}"
            raise HostKeyError(self.hostname, self.port, key_type, fingerprint, "changed", [where], expected)
        if self.policy == "reject":
            sources = [where for where, _ in known]
            raise HostKeyError(self.hostname, self.port, key_type, fingerprint, "unknown", sources)
        if self._accepted is None:
            self._accepted = paramiko.HostKeys()
        self._accepted.add(name, key_type, key)
        if self.policy == "warn":
            logger.warning(
                "connecting to %s although its host key is unknown (%s %s); known_hosts_policy='warn'",
                name,
                key_type,
                fingerprint,
            )
            return
        logger.warning("adding the host key of %s to the trusted keys: %s %s", name, key_type, fingerprint)
        if self.host_keys_filename:
            self._record(os.path.expanduser(self.host_keys_filename), f"{name} {key_type} {key.get_base64()}\n")

    def _record(self, path: str, line: str) -> None:
        try:
            os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a") as f:
                f.write(line)
        except OSError as e:
            logger.warning("cannot record the host key of %s in %s: %s", self.entry_name, path, e)
