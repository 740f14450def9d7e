"""The initial program of the Flux instance a FluxExecutor starts (run as a script by ``flux start``).

Usage: ``python instance.py PROTOCOL HOST PORT``. It connects to the executor,
sends the instance's URI and host name, and waits for the executor's reply,
which means "stop": returning ends ``flux start`` and so the block. Only the
standard library, pyzmq and the ``flux`` package that ``flux start`` provides are
imported, so this file also runs where flowlib is not importable.
"""

from __future__ import annotations

import json
import socket
import sys


def main(argv: list[str]) -> int:
    """Report this instance's address to the executor at ``argv`` and wait for its stop message."""
    if len(argv) != 3:
        print("usage: instance.py PROTOCOL HOST PORT", file=sys.stderr)
        return 2
    protocol, host, port = argv
    import flux
    import zmq

    uri = flux.Flux().attr_get("local-uri")
    context = zmq.Context()
    sock = context.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"{protocol}://{host}:{port}")
    sock.send_string(json.dumps({"uri": uri, "host": socket.gethostname()}))
    sock.recv()  # the executor answers only at shutdown
    sock.close()
    context.term()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
