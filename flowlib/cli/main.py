"""The ``flowlib`` command (also ``python -m flowlib``).

::

    flowlib dashboard [--db URL_OR_PATH] [--host HOST] [--port PORT] [--token TOKEN]

``dashboard`` serves the monitoring dashboard of a store. It binds 127.0.0.1 by
default; ``--host`` with any other address exposes it deliberately, and then every
request needs a token (``--token``, or one generated and printed at start-up),
because the dashboard shows task arguments and outputs.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import socket
import sys
from collections.abc import Sequence

DEFAULT_DB = os.path.join("runinfo", "monitoring.db")


def database_url(value: str) -> str:
    """A SQLAlchemy URL as given, or ``sqlite:///<absolute path>`` for a file path."""
    if "://" in value:
        return value
    return "sqlite:///" + os.path.abspath(value)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def choose_token(host: str, token: str | None) -> str | None:
    """The token to require: the one given, else a new one for a non-loopback ``host``, else None."""
    if token is not None:
        if not token:
            raise SystemExit("flowlib dashboard: --token must not be empty")
        return token
    return None if is_loopback(host) else secrets.token_urlsafe(24)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowlib", description="flowlib command-line tools")
    commands = parser.add_subparsers(dest="command", required=True)
    dash = commands.add_parser("dashboard", help="serve the monitoring dashboard of a store")
    dash.add_argument("--db", default=DEFAULT_DB, help=f"SQLAlchemy URL or SQLite file (default: {DEFAULT_DB})")
    dash.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others need a token)")
    dash.add_argument("--port", type=int, default=8050, help="port (default 8050; 0 picks a free one)")
    dash.add_argument("--token", default=None, help="the access token (default: none on loopback, else generated)")
    return parser


def dashboard(db: str, host: str, port: int, token: str | None) -> int:
    """Serve the dashboard until interrupted; return the exit status."""
    try:
        import uvicorn

        from flowlib.monitoring.dashboard.app import create_app
    except ImportError as e:
        print(
            f"flowlib dashboard needs the 'monitoring' extra: pip install 'flowlib[monitoring]' ({e})", file=sys.stderr
        )
        return 2
    from flowlib.monitoring.errors import MonitoringError

    token = choose_token(host, token)
    url = database_url(db)
    try:
        app = create_app(url, token=token)
    except MonitoringError as e:
        print(f"flowlib dashboard: {e}", file=sys.stderr)
        return 1
    try:
        sock = bind(host, port)
    except OSError as e:
        print(f"flowlib dashboard: cannot listen on {host}:{port}: {e}", file=sys.stderr)
        return 1
    shown_host = f"[{host}]" if ":" in host else host
    address = f"http://{shown_host}:{sock.getsockname()[1]}/"
    if token:
        address += f"?token={token}"
    print(f"flowlib dashboard of {app.state.url} at {address}", flush=True)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=3)
    )
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flowlib`` console script."""
    args = _parser().parse_args(argv)
    if args.command == "dashboard":
        return dashboard(args.db, args.host, args.port, args.token)
    return 2  # pragma: no cover - argparse refuses unknown commands


if __name__ == "__main__":
    sys.exit(main())
