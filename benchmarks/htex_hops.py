"""Where an htex round trip goes: a timestamp at each hop, in every process, for sequential python_app calls.

Usage (from a directory that holds no flowlib checkout, with the venv of the checkout to measure)::

    cd /tmp && /work/wt/mine/.venv/bin/python /work/wt/mine/benchmarks/htex_hops.py 2000

It runs a child interpreter with a ``sitecustomize`` (written to a temporary
directory put first on ``PYTHONPATH``) that wraps a few functions of the
executor, the interchange's Unix links, the worker pool and the worker, so
that each appends ``<tag> <time.perf_counter_ns()>`` to a file of its process
(CLOCK_MONOTONIC: one clock for every process). A mark costs about 2 to 3 µs,
so the total is somewhat above the uninstrumented round trip. Then it prints
the median time between consecutive hops::

    u_submit   app() called                   (user thread)
    c_send     the executor sends the task    (_send_now, before encoding)
    i_recv     the interchange's loop reads   (LocalLinks.serve)
    i_sent     it sends to the pool           (before LocalLinks.send_to_pool)
    p_recv     the pool handles the message   (Manager.handle_message)
    p_disp     it writes to a worker          (before write_message)
    w_start    the worker runs it             (execute, entry)
    w_end      and has its result             (execute, exit)
    p_res      the pool reads the result      (Manager._take_result)
    p_sent     it sends it to the executor    (before ResultSender.send)
    c_recv     the I/O thread handles it      (InterchangeClient._handle)
    c_onres    the executor's result handler  (HighThroughputExecutor._on_results)
    c_appset   the app future is completed    (AppFuture.set_result)
    c_done     the I/O thread is done         (after _handle)
    u_wake     result() returned              (user thread)

Round trips in which some hop is missing or out of order (a wake-up that
preempted the sender before its mark) are left out and counted.
"""

from __future__ import annotations

import glob
import os
import statistics
import subprocess
import sys
import tempfile

ORDER = [
    "u_submit", "c_send", "i_recv", "i_sent", "p_recv", "p_disp", "w_start", "w_end",
    "p_res", "p_sent", "c_recv", "c_onres", "c_appset", "c_done", "u_wake",
]  # fmt: skip

SITECUSTOMIZE = """
import os
_dir = os.environ.get("FLOWLIB_HOPS_DIR")
if _dir:
    import builtins, time
    _state = {}
    _now = time.perf_counter_ns

    def mark(tag):
        pid = os.getpid()
        fd = _state.get(pid)
        if fd is None:
            fd = _state[pid] = os.open(os.path.join(_dir, "%d.txt" % pid), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.write(fd, b"%s %d\\n" % (tag, _now()))

    builtins._flowlib_hop = mark

    def before(owner, name, tag):
        inner = getattr(owner, name)
        def wrapper(*args, **kwargs):
            mark(tag)
            return inner(*args, **kwargs)
        setattr(owner, name, wrapper)

    def after(owner, name, tag):
        inner = getattr(owner, name)
        def wrapper(*args, **kwargs):
            value = inner(*args, **kwargs)
            mark(tag)
            return value
        setattr(owner, name, wrapper)

    from flowlib.dataflow import futures
    from flowlib.executors.high_throughput import client, direct_results, executor, local_links, pool_manager, worker
    before(client.InterchangeClient, "_send_now", b"c_send")
    before(client.InterchangeClient, "_handle", b"c_recv")
    after(client.InterchangeClient, "_handle", b"c_done")
    before(executor.HighThroughputExecutor, "_on_results", b"c_onres")
    before(futures.AppFuture, "set_result", b"c_appset")
    before(local_links.LocalLinks, "serve", b"i_recv")
    before(local_links.LocalLinks, "send_to_pool", b"i_sent")
    before(pool_manager.Manager, "handle_message", b"p_recv")
    before(pool_manager, "write_message", b"p_disp")
    before(pool_manager.Manager, "_take_result", b"p_res")
    before(direct_results.ResultSender, "send", b"p_sent")
    before(worker, "execute", b"w_start")
    after(worker, "execute", b"w_end")
"""

CHILD = """
import builtins, sys, tempfile
import flowlib
from flowlib.config import Config
from flowlib.executors import HighThroughputExecutor
from flowlib.providers import LocalProvider


def noop(x=None):
    return x


executor = HighThroughputExecutor(label="htex", address="127.0.0.1", max_workers_per_node=2,
                                  provider=LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1))
mark = builtins._flowlib_hop
with tempfile.TemporaryDirectory() as run_dir, flowlib.load(Config(executors=[executor], run_dir=run_dir)):
    app = flowlib.python_app(noop)
    for _ in range(200):
        app().result()
    for _ in range(int(sys.argv[1])):
        mark(b"u_submit")
        app().result()
        mark(b"u_wake")
    mark(b"u_submit")
"""


def analyse(directory: str) -> str:
    """The table of median times between hops, from the files the processes wrote."""
    events: list[tuple[int, str]] = []
    for path in glob.glob(os.path.join(directory, "*.txt")):
        with open(path) as f:
            for line in f:
                tag, ns = line.split()
                events.append((int(ns), tag))
    events.sort()
    starts = [i for i, (_, tag) in enumerate(events) if tag == "u_submit"]
    gaps: dict[str, list[int]] = {tag: [] for tag in ORDER[1:]}
    totals: list[int] = []
    skipped = 0
    for a, b in zip(starts, starts[1:], strict=False):
        first: dict[str, int] = {}
        for ns, tag in events[a:b]:
            first.setdefault(tag, ns)
        stamps = [first.get(tag) for tag in ORDER]
        if None in stamps or stamps != sorted(stamps):  # type: ignore[type-var]
            skipped += 1
            continue
        for tag, earlier, later in zip(ORDER[1:], stamps, stamps[1:], strict=False):
            gaps[tag].append(later - earlier)  # type: ignore[operator]
        totals.append(stamps[-1] - stamps[0])  # type: ignore[operator]
    if not totals:
        return f"no complete round trip among {skipped}"
    lines = [f"{len(totals)} round trips ({skipped} left out), median {statistics.median(totals) / 1000:.1f} us"]
    for earlier, later in zip(ORDER, ORDER[1:], strict=False):
        lines.append(f"  {earlier:>8} -> {later:<8} {statistics.median(gaps[later]) / 1000:7.1f} us")
    return "\n".join(lines)


def main() -> None:
    count = sys.argv[1] if len(sys.argv) > 1 else "2000"
    with tempfile.TemporaryDirectory() as site, tempfile.TemporaryDirectory() as marks:
        with open(os.path.join(site, "sitecustomize.py"), "w") as f:
            f.write(SITECUSTOMIZE)
        env = {**os.environ, "FLOWLIB_HOPS_DIR": marks}
        env["PYTHONPATH"] = site + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        subprocess.run([sys.executable, "-c", CHILD, count], env=env, check=True)
        print(analyse(marks))


if __name__ == "__main__":
    main()
