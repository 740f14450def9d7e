"""The raw cost of moving a task's argument, to compare big-argument throughput with.

A task whose argument is 1 MiB cannot run faster than that MiB can be
serialized, moved to another process and deserialized. Three baselines, each
reported as "arguments per second" so it reads like a task rate::

    in-process   pickle.dumps -> bytearray copy -> pickle.loads          (memory bandwidth)
    zmq          pickle.dumps -> PUSH ==tcp://127.0.0.1==> PULL -> loads  (one process hop)
    zmq+curve    the same hop with CurveZMQ encryption                    (flowlib's default)

The ZeroMQ hops are streamed (the sender does not wait for each message), into
a receiver subprocess of the same interpreter, and timed from the first send
to the receiver's report that it has unpickled the last one. pyzmq is
imported only inside the functions that need it: both libraries measured here
depend on it, and this package otherwise imports only the standard library.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import time
from typing import Any

from flowlib.addresses import tcp_url

__all__ = ["in_process_rate", "measure_raw_copy", "zmq_hop_rate"]

_RECEIVER = """
import pickle, sys, zmq
count = int(sys.argv[1])
context = zmq.Context()
sock = context.socket(zmq.PULL)
if len(sys.argv) > 2:
    sock.curve_server = True
    sock.curve_publickey = sys.argv[2].encode()
    sock.curve_secretkey = sys.argv[3].encode()
port = sock.bind_to_random_port("tcp://127.0.0.1")
print(port, flush=True)
total = 0
for _ in range(count):
    total += len(pickle.loads(sock.recv(copy=False).buffer))
print(total, flush=True)
sock.close(linger=0)
context.term()
"""


def in_process_rate(size: int, count: int) -> float:
    """Arguments of *size* bytes per second through pickle, a copy and unpickle, in this process."""
    payload = b"x" * size
    start = time.perf_counter()
    for _ in range(count):
        copied = bytearray(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
        if len(pickle.loads(copied)) != size:
            raise RuntimeError("the in-process copy lost bytes")
    return count / (time.perf_counter() - start)


def zmq_hop_rate(size: int, count: int, *, curve: bool = False, python: str | None = None) -> float:
    """Arguments of *size* bytes per second, pickled and streamed over one ZeroMQ loopback hop."""
    import zmq

    args = [python or sys.executable, "-c", _RECEIVER, str(count)]
    context: zmq.Context[Any] = zmq.Context()
    sock = context.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 0)
    if curve:
        server_public, server_secret = zmq.curve_keypair()
        client_public, client_secret = zmq.curve_keypair()
        args += [server_public.decode(), server_secret.decode()]
        sock.curve_serverkey = server_public
        sock.curve_publickey = client_public
        sock.curve_secretkey = client_secret
    receiver = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout is not None
        port = int(receiver.stdout.readline())
        sock.connect(tcp_url("127.0.0.1", port))
        payload = b"x" * size
        start = time.perf_counter()
        for _ in range(count):
            sock.send(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL), copy=False)
        received = int(receiver.stdout.readline())
        elapsed = time.perf_counter() - start
        if received != size * count:
            raise RuntimeError(f"the receiver got {received} bytes, expected {size * count}")
        receiver.wait(30)
        return count / elapsed
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()
        if receiver.stdout is not None:
            receiver.stdout.close()
        sock.close(linger=0)
        context.term()


def measure_raw_copy(size: int, count: int, python: str | None = None) -> dict[str, float]:
    """The baselines for *count* arguments of *size* bytes, in arguments per second.

    Without pyzmq only ``in_process_per_s`` is measured.
    """
    rates = {"in_process_per_s": in_process_rate(size, count)}
    try:
        import zmq  # noqa: F401  (only to know whether the hops can be measured)
    except ImportError:
        return rates
    rates["zmq_per_s"] = zmq_hop_rate(size, count, python=python)
    rates["zmq_curve_per_s"] = zmq_hop_rate(size, count, curve=True, python=python)
    return rates
