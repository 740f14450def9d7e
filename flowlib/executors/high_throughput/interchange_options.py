"""What the executor tells its interchange at start (a JSON object on the interchange's stdin)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["InterchangeOptions"]


@dataclass(frozen=True)
class InterchangeOptions:
    """What the executor tells the interchange at start."""

    client_address: str = "127.0.0.1"
    worker_address: str = "127.0.0.1"
    worker_port: int | None = None
    worker_port_range: tuple[int, int] = (54000, 55000)
    cert_dir: str | None = None
    heartbeat_period: float = 30.0
    heartbeat_threshold: float = 120.0
    poll_period_ms: int = 10
    logdir: str = "."
    debug: bool = False
    max_message_size: int = 1 << 30
    parent_pid: int | None = None
    adaptive_prefetch: bool = True
    unix_dir: str | None = None
    """An owner-only directory: when set, the client and local pools connect over Unix sockets in it."""
    arena_dir: str | None = None
    """The executor's shared-memory arena directory, removed when the interchange stops."""
    resource_interval: float | None = None
    """Seconds between resource samples that pools are asked for (monitoring); None: none."""
    log_format: str | None = None
    """A ``logging.Formatter`` format for interchange.log (the run log's, when one was given); None: our own."""
    result_socket: str | None = None
    """Where the executor takes results from this machine's pools directly (:mod:`.direct_results`); None: not."""
