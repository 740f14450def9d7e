"""Scale by simulation: one real interchange, thousands of simulated worker pools.

::

    this process                              interchange process          simulator process
    +-------------------------------+         (real, as in production)     (python -m flowlib.benchmark
    | DataFlowKernel (kernel path)  |                                        .simulated_managers)
    |   HighThroughputExecutor      |==ZMQ===> interchange ==ZMQ (CURVE)==> M DEALER sockets, each a
    |   (executor path: .submit)    |<======== (never unpickles) <========= "pool" of 32 workers that
    | RSS/CPU sampler thread        |                                        answers every task at once
    +-------------------------------+
             | psutil: RSS and CPU time of all three processes

For each number of managers ``M``: start a fresh executor whose provider starts
no blocks (``LocalProvider(init_blocks=0, max_blocks=0)``), connect ``M``
simulated pools to its worker port with the run's CurveZMQ keys (encryption
on, the default), wait until the executor has seen every registration, run a
warm-up, then time ``--tasks`` no-op tasks end to end (first submit to last
result) on each path:

- ``executor``: ``HighThroughputExecutor.submit`` directly (serialization,
  client I/O thread, interchange, pools, deserialization, futures);
- ``kernel``: a ``python_app`` through the DataFlowKernel (adds the kernel).

Every result is checked. Memory is the resident set size (psutil) of the
interchange and of this (client) process: empty, after registration, and the
peak while the tasks ran; CPU seconds of each process during the timed run show
which one is the bottleneck. Nothing runs a task, so this measures the
dispatch path alone; it is a benchmark, not a test (``--quick`` is the test's
size). Run it with ``python benchmarks/htex_scale.py`` or
``python -m flowlib.benchmark.scale``.
"""

from __future__ import annotations

import argparse
import builtins
import json
import os
import platform
import select
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .measure import median, parse_names, parse_sizes

__all__ = ["PATHS", "ScaleOptions", "main", "markdown_table", "run_scale"]

PATHS: tuple[str, ...] = ("executor", "kernel")
"""How tasks are submitted: straight to the executor, or as apps through the kernel."""

FULL_MANAGERS = (64, 128, 256, 512, 1024, 2048)
QUICK_MANAGERS = (8,)

Progress = Callable[[str], None]

_NOOP_SOURCE = '''
def noop(payload):
    """No-op task: return the size of its argument (never run: the pools answer 0)."""
    return len(payload)
'''


@dataclass(frozen=True)
class ScaleOptions:
    """What to measure; validated at construction."""

    managers: tuple[int, ...] = FULL_MANAGERS
    """Numbers of simulated managers (pools) to connect, one measurement each."""
    workers_per_manager: int = 32
    """Workers each simulated pool announces."""
    tasks: int = 100_000
    """No-op tasks timed per path and number of managers."""
    warmup_tasks: int = 2_000
    """Tasks run on each path before timing."""
    paths: tuple[str, ...] = PATHS
    """Submission paths to time, from :data:`PATHS`."""
    rounds: int = 1
    """Timed runs per path and number of managers; the median is reported."""
    encrypted: bool = True
    """CurveZMQ on the interchange's sockets (the executor's default)."""
    timeout: float = 600.0
    """Longest wait, in seconds, for registration or for one timed run."""
    sample_period: float = 0.02
    """Seconds between RSS samples."""
    python: str = field(default_factory=lambda: sys.executable)
    """Interpreter of the simulator process."""

    def __post_init__(self) -> None:
        if not self.managers or min(self.managers) < 1:
            raise ValueError(f"managers must be positive counts, got {self.managers}")
        for name in ("workers_per_manager", "tasks", "rounds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.warmup_tasks < 0:
            raise ValueError(f"warmup_tasks must not be negative, got {self.warmup_tasks}")
        if not self.paths or any(path not in PATHS for path in self.paths):
            raise ValueError(f"paths must be chosen from {PATHS}, got {self.paths}")
        if self.timeout <= 0 or self.sample_period <= 0:
            raise ValueError("timeout and sample_period must be positive")


class ScaleError(RuntimeError):
    """A measurement could not be made honestly: a wrong result, a task error, a timeout."""


# --- watching processes ------------------------------------------------------


class _Watch:
    """Samples the RSS of some processes on a thread, keeping each one's peak."""

    def __init__(self, processes: dict[str, Any], period: float) -> None:
        self.processes = processes
        self.period = period
        self.peak = {name: self._rss(proc) for name, proc in processes.items()}
        self.cpu_start = {name: self._cpu(proc) for name, proc in processes.items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scale-benchmark-rss", daemon=True)

    @staticmethod
    def _rss(proc: Any) -> int:
        try:
            return int(proc.memory_info().rss)
        except Exception:  # the process is gone: nothing to sample
            return 0

    @staticmethod
    def _cpu(proc: Any) -> tuple[float, float]:
        """CPU seconds of the main thread and of all other threads (ZeroMQ's I/O threads among them)."""
        try:
            threads = proc.threads()
        except Exception:
            return 0.0, 0.0
        main = sum(t.user_time + t.system_time for t in threads if t.id == proc.pid)
        rest = sum(t.user_time + t.system_time for t in threads if t.id != proc.pid)
        return float(main), float(rest)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            for name, proc in self.processes.items():
                self.peak[name] = max(self.peak[name], self._rss(proc))

    def __enter__(self) -> _Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for name, proc in self.processes.items():
            self.peak[name] = max(self.peak[name], self._rss(proc))
        self.cpu: dict[str, float] = {}
        self.cpu_threads: dict[str, dict[str, float]] = {}
        for name, proc in self.processes.items():
            main, rest = self._cpu(proc)
            main0, rest0 = self.cpu_start[name]
            self.cpu[name] = (main - main0) + (rest - rest0)
            self.cpu_threads[name] = {"main": main - main0, "other_threads": rest - rest0}


def _rss_now(processes: dict[str, Any]) -> dict[str, int]:
    return {name: _Watch._rss(proc) for name, proc in processes.items()}


# --- the simulator process ---------------------------------------------------


class _Simulator:
    """The simulated pools, in a child process driven over stdin/stdout."""

    def __init__(self, options: ScaleOptions, port: int, cert_dir: str | None, pools: int, payload: bytes) -> None:
        command = [
            options.python,
            "-m",
            "flowlib.benchmark.simulated_managers",
            "--address",
            "127.0.0.1",
            "--port",
            str(port),
            "--pools",
            str(pools),
            "--workers-per-pool",
            str(options.workers_per_manager),
            "--result-hex",
            payload.hex(),
            "--register-timeout",
            str(options.timeout),
        ]
        if cert_dir:
            command += ["--cert-dir", cert_dir]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def read_event(self, expected: str, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            code = self.process.poll()
            raise ScaleError(f"the simulator sent no {expected!r} line (exit status {code})")
        event: dict[str, Any] = json.loads(line)
        if event.get("event") != expected:
            raise ScaleError(f"the simulator said {event}, expected {expected!r}")
        return event

    def stop(self, timeout: float = 60.0) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write("stop\n")
        self.process.stdin.flush()
        try:
            return self.read_event("done", timeout)
        finally:
            self.close()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


# --- one number of managers --------------------------------------------------


def _noop() -> Callable[[bytes], int]:
    namespace: dict[str, Any] = {"__name__": "flowlib_scale_tasks", "__builtins__": builtins}
    exec(compile(_NOOP_SOURCE, "<flowlib-scale-tasks>", "exec"), namespace)
    noop: Callable[[bytes], int] = namespace["noop"]
    return noop


def _registered_managers(client: Any, deadline: float) -> int:
    """Managers the interchange has registered, once the count stops changing."""
    last = -1
    while True:
        count = len(client.command("managers", timeout=max(deadline - time.perf_counter(), 1.0)))
        if count == last or time.perf_counter() > deadline:
            return count
        last = count
        time.sleep(0.05)


def _wait_all(futures: Sequence[Any], deadline: float) -> None:
    for index, future in enumerate(futures):
        try:
            value = future.result(timeout=max(deadline - time.perf_counter(), 0.0))
        except Exception as exc:
            raise ScaleError(f"task {index} failed: {type(exc).__name__}: {exc}") from exc
        if value != 0:
            raise ScaleError(f"task {index} returned {value!r}, expected 0")


def _timed(submit: Callable[[], Any], tasks: int, timeout: float) -> tuple[float, float]:
    """Submit *tasks* tasks with *submit*, wait for all; return (submit seconds, total seconds)."""
    start = time.perf_counter()
    futures = [submit() for _ in range(tasks)]
    submitted = time.perf_counter()
    _wait_all(futures, start + timeout)
    return submitted - start, time.perf_counter() - start


def _measure_managers(managers: int, options: ScaleOptions, say: Progress, run_dir: str) -> dict[str, Any]:
    import psutil

    import flowlib
    from flowlib.config import Config
    from flowlib.executors.high_throughput.executor import HighThroughputExecutor
    from flowlib.providers import LocalProvider
    from flowlib.serialize import serialize

    executor = HighThroughputExecutor(
        label="scale",
        address="127.0.0.1",
        encrypted=options.encrypted,
        max_workers_per_node=options.workers_per_manager,
        provider=LocalProvider(init_blocks=0, min_blocks=0, max_blocks=0),
    )
    config = Config(executors=[executor], run_dir=run_dir, strategy="none")
    point: dict[str, Any] = {"managers": managers, "workers": managers * options.workers_per_manager}
    dfk = flowlib.load(config)
    simulator: _Simulator | None = None
    try:
        client = executor._client
        processes = {"interchange": psutil.Process(client.process.pid), "client": psutil.Process()}
        # The interchange learns where the client is from its first message:
        # say hello before the pools connect, so their events come at once.
        client.command("ping", timeout=options.timeout)
        point["rss_empty"] = _rss_now(processes)
        started = time.perf_counter()
        simulator = _Simulator(options, client.worker_port, executor.cert_dir, managers, serialize(0))
        ready = simulator.read_event("registered", options.timeout)
        point["registration_seconds"] = time.perf_counter() - started
        # Ask the interchange itself: the executor's count comes from events,
        # which the interchange may drop under a burst (see docs/performance.md).
        registered = _registered_managers(client, started + options.timeout)
        if registered < managers:
            raise ScaleError(f"only {registered} of {managers} managers registered")
        point["events_seen_workers"] = executor.connected_workers
        point["simulator_fd_limit"] = ready["fd_limit"]
        processes["simulator"] = psutil.Process(simulator.process.pid)
        point["rss_registered"] = _rss_now(processes)
        say(
            f"scale: {managers} managers ({point['workers']} workers) registered in "
            f"{point['registration_seconds']:.2f} s; interchange RSS "
            f"{point['rss_registered']['interchange'] / 2**20:.1f} MiB"
        )
        noop = _noop()
        app = flowlib.python_app(noop, executors=["scale"])
        submitters: dict[str, Callable[[], Any]] = {
            "executor": lambda: executor.submit(noop, {}, b""),
            "kernel": lambda: app(b""),
        }
        point["paths"] = {}
        for path in options.paths:
            submit = submitters[path]
            if options.warmup_tasks:
                _timed(submit, options.warmup_tasks, options.timeout)
            runs: list[dict[str, Any]] = []
            for _ in range(options.rounds):
                with _Watch(processes, options.sample_period) as watch:
                    submit_s, total_s = _timed(submit, options.tasks, options.timeout)
                runs.append(
                    {
                        "tasks": options.tasks,
                        "submit_seconds": submit_s,
                        "seconds": total_s,
                        "tasks_per_s": options.tasks / total_s,
                        "peak_rss": dict(watch.peak),
                        "cpu_seconds": dict(watch.cpu),
                        "cpu_seconds_by_thread": dict(watch.cpu_threads),
                    }
                )
                say(
                    f"scale: {managers} managers, {path}: {options.tasks} tasks in {total_s:.3f} s = "
                    f"{options.tasks / total_s:,.0f} tasks/s (CPU s: "
                    + ", ".join(f"{name} {seconds:.2f}" for name, seconds in watch.cpu.items())
                    + ")"
                )
            point["paths"][path] = {
                "runs": runs,
                "tasks_per_s": median([run["tasks_per_s"] for run in runs]),
                "peak_rss": {name: max(run["peak_rss"][name] for run in runs) for name in processes},
            }
        point["events_seen_workers_end"] = executor.connected_workers
        point["simulator"] = simulator.stop(options.timeout)
        simulator = None
    finally:
        if simulator is not None:
            simulator.process.kill()
            simulator.close()
        dfk.cleanup()
        flowlib.clear()
    return point


def run_scale(options: ScaleOptions, *, progress: Progress | None = None) -> dict[str, Any]:
    """Measure every number of managers in *options*; return JSON-ready results."""
    say: Progress = progress if progress is not None else _quiet
    results: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "options": {**asdict(options), "managers": list(options.managers), "paths": list(options.paths)},
        "points": [],
    }
    with tempfile.TemporaryDirectory(prefix="flowlib-scale-") as run_dir:
        for managers in options.managers:
            results["points"].append(_measure_managers(managers, options, say, run_dir))
    return results


def _quiet(line: str) -> None:
    """A progress sink that drops every line."""


# --- reporting ---------------------------------------------------------------


def _mib(value: float) -> str:
    return f"{value / 2**20:.1f}"


def markdown_table(results: dict[str, Any]) -> str:
    """The results as a Markdown table: one row per number of managers."""
    paths = list(results["options"]["paths"])
    header = ["managers", "workers", "registration s"]
    header += [f"{path} tasks/s" for path in paths]
    header += ["interchange RSS MiB (empty / registered / peak)", "client RSS MiB (peak)", "tasks per TASKS message"]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---:"] * len(header)) + " |"]
    for point in results["points"]:
        runs = point["paths"]
        peak_ic = max(runs[path]["peak_rss"]["interchange"] for path in paths)
        peak_client = max(runs[path]["peak_rss"]["client"] for path in paths)
        cells = [f"{point['managers']:,}", f"{point['workers']:,}", f"{point['registration_seconds']:.2f}"]
        cells += [f"{runs[path]['tasks_per_s']:,.0f}" for path in paths]
        cells.append(
            f"{_mib(point['rss_empty']['interchange'])} / {_mib(point['rss_registered']['interchange'])} / "
            f"{_mib(peak_ic)}"
        )
        cells.append(_mib(peak_client))
        cells.append(f"{point['simulator'].get('tasks_per_message', 0):.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def build_parser(prog: str = "htex_scale") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Connect many simulated worker pools to one real interchange and measure "
        "dispatch throughput and memory.",
    )
    parser.add_argument(
        "--managers",
        default=",".join(str(m) for m in FULL_MANAGERS),
        help="comma-separated numbers of simulated managers (default: 64,...,2048)",
    )
    parser.add_argument("--workers-per-manager", type=int, default=32, help="workers per simulated pool (32)")
    parser.add_argument("--tasks", type=int, default=100_000, help="timed tasks per path and M (100000)")
    parser.add_argument("--warmup-tasks", type=int, default=2_000, help="untimed tasks first (2000)")
    parser.add_argument("--paths", default=",".join(PATHS), help="executor,kernel (default: both)")
    parser.add_argument("--rounds", type=int, default=1, help="timed runs per path and M; median (1)")
    parser.add_argument("--no-encryption", action="store_true", help="turn CurveZMQ off (default: on)")
    parser.add_argument("--timeout", type=float, default=600.0, help="longest wait for one step (600 s)")
    parser.add_argument("--quick", action="store_true", help="8 managers, 2,000 tasks: a smoke test")
    parser.add_argument("--json", metavar="FILE", help="write all results as JSON to FILE")
    parser.add_argument("--markdown", metavar="FILE", help="write the table and the command as Markdown to FILE")
    return parser


def options_from_args(args: argparse.Namespace) -> ScaleOptions:
    """Build :class:`ScaleOptions` from parsed arguments (ValueError if invalid)."""
    if args.quick:
        return ScaleOptions(
            managers=QUICK_MANAGERS,
            workers_per_manager=args.workers_per_manager,
            tasks=2_000,
            warmup_tasks=200,
            paths=parse_names(args.paths, PATHS),
            encrypted=not args.no_encryption,
            timeout=min(args.timeout, 60.0),
        )
    return ScaleOptions(
        managers=parse_sizes(args.managers),
        workers_per_manager=args.workers_per_manager,
        tasks=args.tasks,
        warmup_tasks=args.warmup_tasks,
        paths=parse_names(args.paths, PATHS),
        rounds=args.rounds,
        encrypted=not args.no_encryption,
        timeout=args.timeout,
    )


def main(argv: Sequence[str] | None = None, *, prog: str = "htex_scale") -> int:
    """Run the scale benchmark from the command line; return the exit status."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        options = options_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    command = shlex.join([*shlex.split(prog), *(sys.argv[1:] if argv is None else argv)])
    try:
        results = run_scale(options, progress=lambda line: print(line, flush=True))
    except ScaleError as exc:
        print(f"{prog}: FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    results["command"] = command
    table = markdown_table(results)
    print()
    print(table)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2) + "\n")
        print(f"results written to {path}")
    if args.markdown:
        path = Path(args.markdown)
        path.parent.mkdir(parents=True, exist_ok=True)
        machine = f"{results['cpus']} CPUs, {results['platform']}, Python {results['python']}"
        path.write_text(f"```\n{command}\n```\n\n{machine}.\n\n{table}\n")
        print(f"table written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m flowlib.benchmark.scale"))
