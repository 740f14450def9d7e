"""The worker pool: one manager process per node, running tasks on its worker processes.

::

    interchange (ROUTER, tcp)                     one node
    -------------------------     +---------------------------------------------------+
                                  | manager: this module (entry point                 |
     TASKS, CANCEL, HEARTBEAT,    |          flowlib-worker-pool), one DEALER socket  |
     DRAIN, SHUTDOWN  ----------> |                                                   |
                                  |   local queue --dispatch--> idle worker           |
     <---------- REGISTER,        |   ResultBatch <--collect--- worker Pipes          |
     RESULTS, FAILURES,           |        | Pipe (duplex)   | Pipe          sentinels |
     HEARTBEAT, DRAIN, RESOURCES  |   +----v-----+      +----v-----+   (fd readable   |
                                  |   | worker 0 |      | worker 1 | ... on exit)     |
                                  |   +----------+      +----------+                  |
                                  |   forked by the multiprocessing forkserver,       |
                                  |   code in worker.py, one task at a time each      |
                                  +---------------------------------------------------+

Start-up: parse and check the options (:mod:`.pool_options`), size the pool,
start the workers (:mod:`.pool_workers`, code in :mod:`.worker`), then
register with the first interchange address that answers
(:mod:`.pool_register`). The main loop is
:meth:`~.pool_manager.Manager.run`: a list of named steps over one
``zmq.Poller`` that watches the interchange socket, every worker's Pipe and
every worker's sentinel. CPU and accelerator placement: :mod:`.affinity`.
A pool registered over the interchange's Unix socket sends its RESULTS to
the executor directly and RELEASED to the interchange (:mod:`.direct_results`).
Resource sampling for monitoring, when the interchange asks for it:
:mod:`.pool_resources` (one thread per pool).

Exit codes (also on stderr, one line, when not 0): see ``EXIT_*`` in
:mod:`.pool_options`: 0 drained, shut down or stopped by a signal handled as
asked (128 + signal number for SIGTERM/SIGINT), 1 internal error, 2 rejected,
3 no interchange answered, 4 bad options or no worker fits, 5 interchange lost.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowlib.executors.high_throughput.direct_results import ResultSender
    from flowlib.executors.high_throughput.pool_options import PoolOptions

# Only the standard library at module level: multiprocessing re-imports the main
# module (this one, under ``python -m``) in every worker it starts, so anything
# imported here would slow every worker's start. main() imports the rest.

logger = logging.getLogger("flowlib.executors.high_throughput.worker_pool")


def _setup_logging(options: PoolOptions) -> None:
    """Send the ``flowlib`` logger to logdir/manager.log."""
    os.makedirs(options.logdir, exist_ok=True)
    handler = logging.FileHandler(os.path.join(options.logdir, "manager.log"))
    handler.setFormatter(
        logging.Formatter(
            options.log_format or "%(asctime)s.%(msecs)03d %(levelname)s manager pid %(process)d: %(message)s",
            datefmt="%Y-%m-%d %H:%M:%S",
        )
    )
    root = logging.getLogger("flowlib")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if options.debug else logging.INFO)
    root.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run one worker pool; return its exit code (the ``flowlib-worker-pool`` entry point)."""
    import platform
    import signal
    import socket as _socket

    import zmq

    from flowlib.executors.high_throughput import protocol
    from flowlib.executors.high_throughput.links import UnixLink, ZmqLink
    from flowlib.executors.high_throughput.pool_manager import (
        DRAIN_LINGER_MS,
        MAX_MESSAGES_PER_PASS,
        FatalReporter,
        Manager,
        StopFlag,
    )
    from flowlib.executors.high_throughput.pool_options import (
        EXIT_BAD_OPTIONS,
        EXIT_INTERNAL,
        EXIT_OK,
        EXIT_REJECTED,
        EXIT_UNREACHABLE,
        PoolSizeError,
        detect_node,
        parse_args,
        size_pool,
    )
    from flowlib.executors.high_throughput.pool_register import (
        RegistrationInterrupted,
        RegistrationProbe,
        RegistrationRejected,
        RegistrationTimeout,
        register_over_unix,
        registered_options,
    )
    from flowlib.executors.high_throughput.pool_resources import node_figures
    from flowlib.executors.high_throughput.pool_workers import WorkerFactory, WorkerSlot, stop_all

    options = parse_args(argv)
    hostname = _socket.gethostname()
    fatal = FatalReporter(f"flowlib-worker-pool {options.pool_id} (block {options.block_id}) on {hostname}")
    try:
        _setup_logging(options)
    except OSError as e:
        return fatal(f"cannot write logs in {options.logdir}: {e}", EXIT_BAD_OPTIONS)
    node = detect_node()
    try:
        count = size_pool(options, node)
    except PoolSizeError as e:
        return fatal(str(e), EXIT_BAD_OPTIONS)
    keys = None
    if options.cert_dir is not None:
        from flowlib.executors.high_throughput.security import client_keys

        try:
            keys = client_keys(options.cert_dir)
        except FileNotFoundError as e:
            return fatal(str(e), EXIT_BAD_OPTIONS)
    logger.info(
        "pool %s of block %s on %s (pid %d): %d workers (%g usable cores, %.0f MB available memory, CPUs %s), "
        "options %s",
        options.pool_id,
        options.block_id,
        hostname,
        os.getpid(),
        count,
        node.cores,
        node.memory_bytes / 2**20,
        list(node.cpus),
        options,
    )
    stop = StopFlag().install()
    factory = WorkerFactory(options, node, count)
    slots: list[WorkerSlot] = []
    context: zmq.Context[Any] | None = None
    link: UnixLink | ZmqLink | None = None
    code = EXIT_INTERNAL
    manager: Manager | None = None
    direct: ResultSender | None = None
    try:
        factory.start_forkserver()  # before the ZeroMQ context exists; returns before it is ready
        context = zmq.Context()
        registration = protocol.Registration(
            protocol_version=protocol.PROTOCOL_VERSION,
            flowlib_version=_flowlib_version(),
            python_version=platform.python_version(),
            hostname=hostname,
            block_id=options.block_id,
            pool_id=options.pool_id,
            worker_count=count,
            prefetch_capacity=options.prefetch_capacity,
            cores=node.cores,
            memory_mb=node.memory_bytes / 2**20,
            accelerators=list(options.accelerators[:count]),
            pid=os.getpid(),
            **node_figures(),
        )
        early: list[list[Any]] = []
        body: list[Any] = []
        if options.unix_socket:
            registered = register_over_unix(
                options.unix_socket, registration, options.address_probe_timeout, stop.is_set
            )
            if registered is not None:
                link, early, body = registered
                # the Unix socket proves the executor's machine: its arena directory is ours to write results to
                if options.result_dir and os.path.isdir(options.result_dir):
                    factory.result_dir = options.result_dir
            url = f"unix://{options.unix_socket}"
        if link is None:
            probe = RegistrationProbe(context, options.addresses, options.port, keys, registration)
            probe.send()
        for rank in range(count):  # while the answer travels
            slots.append(factory.start(rank))
        if link is None:
            socket, url, body = probe.wait(options.address_probe_timeout, stop.is_set)
            link = ZmqLink(socket, copy=False, max_messages=MAX_MESSAGES_PER_PASS)
        answer = registered_options(body)
        result_socket = answer.get("result_socket")
        if isinstance(result_socket, str) and isinstance(link, UnixLink):  # this machine: see direct_results
            from flowlib.executors.high_throughput.direct_results import connect_sender

            slack = answer.get("release_slack")
            direct = connect_sender(result_socket, options.pool_id, slack if type(slack) is int and slack > 0 else 0)
        manager = Manager(options, link, url, factory, slots, stop, fatal, direct=direct)
        code = manager.run(early, resource_interval=answer.get("resource_interval"))
    except RegistrationRejected as e:
        code = fatal(str(e), EXIT_REJECTED)
    except RegistrationTimeout as e:
        code = fatal(str(e), EXIT_UNREACHABLE)
    except RegistrationInterrupted:
        assert stop.signum is not None
        logger.info("received %s while registering; exiting", signal.Signals(stop.signum).name)
        code = 128 + stop.signum
    except Exception as e:
        logger.exception("internal error")
        log = os.path.join(options.logdir, "manager.log")
        code = fatal(f"internal error: {type(e).__name__}: {e} (traceback in {log})", EXIT_INTERNAL)
    finally:
        stop_all(slots, graceful=1.0 if manager is not None and manager.drained else 0.0)
        if manager is not None and manager.direct is not None:
            manager.direct.link.close(linger=DRAIN_LINGER_MS / 1000 if code == EXIT_OK else 0)
        if link is not None:
            link.close(linger=DRAIN_LINGER_MS / 1000 if code == EXIT_OK else 0)
        if context is not None:
            context.term()
    logger.info("exiting with code %d", code)
    logging.shutdown()
    return code


def _flowlib_version() -> str:
    from flowlib.version import VERSION

    return VERSION


if __name__ == "__main__":
    sys.exit(main())
