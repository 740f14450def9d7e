"""The benchmark workloads, written once against the Parsl-compatible API.

``run_workloads(lib_name, config, options)`` imports the library by name
(``"flowlib"`` or ``"parsl"``), loads *config*, defines the apps after the
load (Parsl's ``python_app`` finds the loaded DataFlowKernel when an app is
called) and runs the selected workloads. The same code therefore measures
both libraries::

    run_workloads("parsl", parsl_config, options)    run_workloads("flowlib", ...)
            |                                                  |
            v                                                  v
      import parsl                                       import flowlib
      parsl.load(config)  ---- same apps, same loops ----  flowlib.load(config)
      python_app(noop) ...                                 python_app(noop) ...

Measuring rules: wall time comes from ``time.perf_counter``; one warm-up pass
runs every app before anything is measured; verification of task results
happens after the clock stops, and every result is checked, never assumed, so
a library that drops or corrupts results fails with :class:`BenchmarkError`
instead of looking fast.
"""

from __future__ import annotations

import builtins
import concurrent.futures as cf
import gc
import importlib
import importlib.metadata
import platform
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from flowlib.benchmark.describe import describe_executors as _describe_executors
from flowlib.benchmark.describe import library_version as _version
from flowlib.benchmark.import_time import measure_import_time

from .measure import median, next_batch_size, percentile

__all__ = [
    "WORKLOADS",
    "BenchmarkError",
    "Options",
    "run_workloads",
]

#: Every workload, in the order they run (``startup`` must come first: it times ``load``).
WORKLOADS: tuple[str, ...] = (
    "startup",
    "throughput",
    "submit",
    "latency",
    "chain",
    "fanin",
    "fixed",
    "bigargs",
    "bigresults",
    "memory",
    "import",
)

Progress = Callable[[str], None]


class BenchmarkError(RuntimeError):
    """Raised by :func:`run_workloads` when a workload cannot be measured honestly.

    The causes are a task result that differs from the expected value, a task
    that raised, or a wait that exceeded :attr:`Options.timeout`. The message
    names the workload; the original exception, if any, is ``__cause__``.
    """


@dataclass(frozen=True)
class Options:
    """What to run and how big; validated once, at construction."""

    workloads: tuple[str, ...] = WORKLOADS
    """Names from :data:`WORKLOADS` to run."""
    target_time: float = 10.0
    """Seconds each throughput iteration aims to take."""
    iterations: int = 3
    """Number of measured throughput iterations."""
    argsize: int = 0
    """Size in bytes of the payload given to every no-op task."""
    start_tasks: int = 100
    """Batch size of the first throughput iteration."""
    submit_tasks: int = 10_000
    """Tasks submitted by the ``submit`` workload."""
    latency_samples: int = 200
    """Round trips timed by the ``latency`` workload."""
    chain_length: int = 1_000
    """Tasks in the ``chain`` workload's dependency chain."""
    fanin_width: int = 1_000
    """Independent tasks gathered by the ``fanin`` workload."""
    fixed_sizes: tuple[int, ...] = (10_000, 100_000)
    """Batch sizes of the ``fixed`` workload."""
    bigarg_size: int = 1 << 20
    """Bytes of the argument of every task of the ``bigargs`` workload (1 MiB)."""
    bigarg_tasks: int = 500
    """Tasks of the ``bigargs`` workload, and arguments moved by its raw-copy baselines."""
    memory_tasks: int = 20_000
    """Tasks held in flight by the ``memory`` workload."""
    import_samples: int = 5
    """Fresh interpreters started by the ``import`` workload."""
    timeout: float = 600.0
    """Longest wait, in seconds, for the tasks of one measurement."""
    python: str = field(default_factory=lambda: sys.executable)
    """Interpreter used by the ``import`` workload."""

    def __post_init__(self) -> None:
        unknown = [name for name in self.workloads if name not in WORKLOADS]
        if unknown or not self.workloads:
            raise ValueError(f"workloads must be chosen from {WORKLOADS}, got {self.workloads}")
        if self.target_time <= 0 or self.timeout <= 0:
            raise ValueError("target_time and timeout must be positive")
        if self.argsize < 0:
            raise ValueError(f"argsize must not be negative, got {self.argsize}")
        counts = {
            "iterations": self.iterations,
            "start_tasks": self.start_tasks,
            "submit_tasks": self.submit_tasks,
            "latency_samples": self.latency_samples,
            "chain_length": self.chain_length,
            "fanin_width": self.fanin_width,
            "memory_tasks": self.memory_tasks,
            "bigarg_size": self.bigarg_size,
            "bigarg_tasks": self.bigarg_tasks,
            "import_samples": self.import_samples,
        }
        for name, value in counts.items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if not self.fixed_sizes or min(self.fixed_sizes) < 1:
            raise ValueError(f"fixed_sizes must be positive counts, got {self.fixed_sizes}")


# The task bodies are compiled into a namespace of their own, with only the
# builtins module as globals. Serializers (dill, cloudpickle) then ship them by
# value, so a remote worker needs neither this package nor flowlib importable,
# and the same functions work for Parsl's and flowlib's executors.
_TASK_SOURCE = '''
def noop(payload):
    """No-op task: return the size of its argument."""
    return len(payload)


def blob(size):
    """A task with a large result: ``size`` bytes."""
    return b"r" * size


def step(previous):
    """One link of a dependency chain."""
    return previous + 1


def tag(index):
    """A fan-in leaf: return its index."""
    return index


def gather(inputs=()):
    """The fan-in root: sum the results of every input future."""
    return sum(inputs)


def after(gate_value):
    """A task held back by a gate future: return the gate's value."""
    return gate_value
'''


@dataclass(frozen=True)
class _Apps:
    """The benchmark's apps, decorated by the library under test."""

    noop: Any
    blob: Any
    step: Any
    tag: Any
    gather: Any
    after: Any


def _make_apps(lib: Any) -> _Apps:
    namespace: dict[str, Any] = {"__name__": "flowlib_benchmark_tasks", "__builtins__": builtins}
    exec(compile(_TASK_SOURCE, "<flowlib-benchmark-tasks>", "exec"), namespace)
    names = [item.name for item in fields(_Apps)]
    return _Apps(**{name: lib.python_app(namespace[name]) for name in names})


@dataclass
class _Context:
    """What every workload needs: the apps, the options and a progress sink."""

    apps: _Apps
    options: Options
    payload: bytes
    progress: Progress


def run_workloads(
    lib_name: str,
    config: Any,
    options: Options,
    *,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the selected workloads on library *lib_name* loaded with *config*.

    Returns a JSON-ready dict: the library and its version, the options, and
    one entry per workload under ``"workloads"``. ``"verified"`` is true only
    when every task result was checked; otherwise :class:`BenchmarkError` is
    raised and nothing is returned. *progress* receives one human-readable
    line per measurement.
    """
    say: Progress = progress if progress is not None else _quiet
    lib = importlib.import_module(lib_name)
    results: dict[str, Any] = {
        "library": lib_name,
        "version": _version(lib_name, lib),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "executors": _describe_executors(config),
        "options": _jsonable_options(options),
        "workloads": {},
        "verified": False,
    }
    in_kernel = [name for name in options.workloads if name not in ("import", "startup")]
    if in_kernel or "startup" in options.workloads:
        try:
            start = time.perf_counter()
            with lib.load(config):
                context = _Context(_make_apps(lib), options, b"x" * options.argsize, say)
                if "startup" in options.workloads:
                    results["workloads"]["startup"] = _guarded("startup", _first_result, context, start)
                _guarded("warm-up", _warm_up, context)
                for name in in_kernel:
                    results["workloads"][name] = _guarded(name, _IN_KERNEL[name], context)
        finally:
            lib.clear()
    if "import" in options.workloads:
        results["workloads"]["import"] = _guarded("import", _import_time, lib_name, options, say)
    results["verified"] = all(entry["verified"] for entry in results["workloads"].values())
    return results


def _guarded(name: str, workload: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        result = workload(*args)
        result["workload_seconds"] = time.perf_counter() - start
        return result
    except BenchmarkError as exc:
        raise BenchmarkError(f"{name}: {exc}") from exc.__cause__
    except Exception as exc:
        raise BenchmarkError(f"{name}: {type(exc).__name__}: {exc}") from exc


def _quiet(line: str) -> None:
    """A progress sink that drops every line."""


# --- collecting and checking results --------------------------------------


def _collect(futures: Iterable[cf.Future[Any]], deadline: float) -> list[Any]:
    """Wait for *futures* in order and return their results; fail at *deadline*."""
    values: list[Any] = []
    for index, future in enumerate(futures):
        remaining = max(deadline - time.perf_counter(), 0.0)
        try:
            values.append(future.result(timeout=remaining))
        except cf.TimeoutError:
            raise BenchmarkError(f"task {index} not done before the timeout") from None
        except Exception as exc:
            raise BenchmarkError(f"task {index} failed: {type(exc).__name__}: {exc}") from exc
    return values


def _verify(values: Sequence[Any], expected: Callable[[int], Any], what: str) -> None:
    """Check every ``values[i] == expected(i)``; raise on the first difference."""
    for index, value in enumerate(values):
        want = expected(index)
        if value != want:
            raise BenchmarkError(f"{what}: task {index} returned {value!r}, expected {want!r}")


def _deadline(context: _Context) -> float:
    return time.perf_counter() + context.options.timeout


def _batch(context: _Context, tasks: int) -> tuple[float, float]:
    """Submit *tasks* no-op tasks and wait for all; return (submit s, total s)."""
    noop, payload = context.apps.noop, context.payload
    deadline = _deadline(context)
    start = time.perf_counter()
    futures = [noop(payload) for _ in range(tasks)]
    submitted = time.perf_counter()
    values = _collect(futures, deadline)
    finished = time.perf_counter()
    _verify(values, lambda _: len(payload), "no-op batch")
    return submitted - start, finished - start


def _warm_up(context: _Context) -> dict[str, Any]:
    """Run every app once (and a small batch) so no measurement pays first-use costs."""
    apps = context.apps
    _batch(context, 10)
    chain = apps.step(apps.step(0))
    fan = apps.gather(inputs=[apps.tag(i) for i in range(3)])
    gate: cf.Future[int] = cf.Future()
    held = apps.after(gate)
    gate.set_result(7)
    values = _collect([chain, fan, held], _deadline(context))
    if values != [2, 3, 7]:
        raise BenchmarkError(f"got {values}, expected [2, 3, 7]")
    return {"verified": True}


# --- the workloads ---------------------------------------------------------


def _first_result(context: _Context, loading_started: float) -> dict[str, Any]:
    """Seconds from the start of ``load(config)`` to the result of the first task.

    Runs before anything else in the kernel, so it includes starting the
    executor (for a high-throughput executor: the interchange, the first block
    and its workers connecting).
    """
    (value,) = _collect([context.apps.noop(context.payload)], _deadline(context))
    elapsed = time.perf_counter() - loading_started
    _verify([value], lambda _: len(context.payload), "first task")
    context.progress(f"startup: first result {elapsed:.3f} s after load(config) started")
    return {"seconds": elapsed, "verified": True}


def _throughput(context: _Context) -> dict[str, Any]:
    options = context.options
    tasks = options.start_tasks
    iterations = []
    for number in range(1, options.iterations + 1):
        _, elapsed = _batch(context, tasks)
        rate = tasks / elapsed
        iterations.append({"tasks": tasks, "seconds": elapsed, "tasks_per_s": rate})
        context.progress(
            f"throughput: iteration {number}/{options.iterations}: "
            f"{tasks} tasks in {elapsed:.3f} s = {rate:,.0f} tasks/s"
        )
        tasks = next_batch_size(tasks, elapsed, options.target_time)
    return {
        "iterations": iterations,
        "tasks_per_s": iterations[-1]["tasks_per_s"],
        "best_tasks_per_s": max(item["tasks_per_s"] for item in iterations),
        "verified": True,
    }


def _submit(context: _Context) -> dict[str, Any]:
    tasks = context.options.submit_tasks
    submit_s, total_s = _batch(context, tasks)
    rate = tasks / submit_s
    context.progress(
        f"submit: {tasks} submissions in {submit_s:.3f} s = {rate:,.0f} tasks/s (all done after {total_s:.3f} s)"
    )
    return {
        "tasks": tasks,
        "seconds": submit_s,
        "tasks_per_s": rate,
        "total_seconds": total_s,
        "verified": True,
    }


def _latency(context: _Context) -> dict[str, Any]:
    noop, payload = context.apps.noop, context.payload
    samples = context.options.latency_samples
    seconds: list[float] = []
    values: list[Any] = []
    deadline = _deadline(context)
    for _ in range(samples):
        start = time.perf_counter()
        future = noop(payload)
        values.extend(_collect([future], deadline))
        seconds.append(time.perf_counter() - start)
    _verify(values, lambda _: len(payload), "latency")
    millis = [value * 1000.0 for value in seconds]
    result = {
        "samples": samples,
        "median_ms": median(millis),
        "p95_ms": percentile(millis, 0.95),
        "min_ms": min(millis),
        "max_ms": max(millis),
        "verified": True,
    }
    context.progress(
        f"latency: {samples} round trips, median {result['median_ms']:.3f} ms, p95 {result['p95_ms']:.3f} ms"
    )
    return result


def _chain(context: _Context) -> dict[str, Any]:
    step = context.apps.step
    length = context.options.chain_length
    deadline = _deadline(context)
    start = time.perf_counter()
    future = step(0)
    for _ in range(length - 1):
        future = step(future)
    (value,) = _collect([future], deadline)
    elapsed = time.perf_counter() - start
    _verify([value], lambda _: length, "chain end")
    context.progress(f"chain: {length} dependent tasks in {elapsed:.3f} s")
    return {"tasks": length, "seconds": elapsed, "verified": True}


def _fanin(context: _Context) -> dict[str, Any]:
    tag, gather = context.apps.tag, context.apps.gather
    width = context.options.fanin_width
    deadline = _deadline(context)
    start = time.perf_counter()
    leaves = [tag(index) for index in range(width)]
    root = gather(inputs=leaves)
    (total,) = _collect([root], deadline)
    elapsed = time.perf_counter() - start
    _verify(_collect(leaves, deadline), lambda index: index, "fan-in leaf")
    _verify([total], lambda _: width * (width - 1) // 2, "fan-in root")
    context.progress(f"fanin: {width} tasks into one in {elapsed:.3f} s")
    return {"tasks": width + 1, "seconds": elapsed, "verified": True}


def _fixed(context: _Context) -> dict[str, Any]:
    sizes = []
    for tasks in context.options.fixed_sizes:
        _, elapsed = _batch(context, tasks)
        rate = tasks / elapsed
        sizes.append({"tasks": tasks, "seconds": elapsed, "tasks_per_s": rate})
        context.progress(f"fixed: {tasks} tasks in {elapsed:.3f} s = {rate:,.0f} tasks/s")
    return {"sizes": sizes, "verified": True}


def _against_raw_copy(
    context: _Context, name: str, what: str, run: Callable[[int], cf.Future[Any]], size_of: Callable[[Any], Any]
) -> dict[str, Any]:
    """Time ``--bigarg-tasks`` tasks ``run(size)`` that move ``--bigarg-size`` bytes each; compare with the raw copy.

    The baselines come from :mod:`.rawcopy` and are measured in this process
    after the tasks, with the same size and count. ``what`` says what the
    bytes are in the progress line ("tasks of 1,048,576 B", "tasks with results
    of ..."); ``size_of`` turns a task's value into the size it must report.
    """
    from .rawcopy import measure_raw_copy

    options = context.options
    size, tasks = options.bigarg_size, options.bigarg_tasks
    deadline = _deadline(context)
    start = time.perf_counter()
    futures = [run(size) for _ in range(tasks)]
    values = _collect(futures, deadline)
    elapsed = time.perf_counter() - start
    _verify([size_of(value) for value in values], lambda _: size, f"{name} task")
    del futures, values
    rate = tasks / elapsed
    raw = measure_raw_copy(size, tasks, python=options.python)
    result: dict[str, Any] = {
        "bytes": size,
        "tasks": tasks,
        "seconds": elapsed,
        "tasks_per_s": rate,
        "raw_copy_per_s": raw,
        "verified": True,
    }
    for label, key in (
        ("zmq_hop", "zmq_per_s"),
        ("zmq_curve_hop", "zmq_curve_per_s"),
        ("in_process", "in_process_per_s"),
    ):
        if key in raw:
            result[f"ratio_to_{label}"] = rate / raw[key]
    line = f"{name}: {tasks} tasks {what} {size:,} B in {elapsed:.3f} s = {rate:,.0f} tasks/s"
    if "zmq_per_s" in raw:
        line += (
            f"; raw copy: {raw['zmq_per_s']:,.0f}/s over one ZeroMQ hop ({raw['zmq_curve_per_s']:,.0f}/s "
            f"encrypted, {raw['in_process_per_s']:,.0f}/s in process); ratio {result['ratio_to_zmq_hop']:.2f}"
        )
    context.progress(line)
    return result


def _bigargs(context: _Context) -> dict[str, Any]:
    """Throughput of no-op tasks with a big argument, against the raw cost of moving it."""
    payload = b"x" * context.options.bigarg_size
    noop = context.apps.noop
    return _against_raw_copy(context, "bigargs", "of", lambda _: noop(payload), lambda value: value)


def _bigresults(context: _Context) -> dict[str, Any]:
    """Throughput of tasks with a big result (``--bigarg-size`` bytes), against the raw cost of moving it.

    The mirror image of ``bigargs``: a tiny argument, a result of the same size
    that ``bigargs`` sends as an argument, and the same baselines.
    """
    return _against_raw_copy(
        context, "bigresults", "with results of", context.apps.blob, lambda v: len(v) if isinstance(v, bytes) else v
    )


def _memory(context: _Context) -> dict[str, Any]:
    """Traced bytes per in-flight task, then per completed task after the futures go.

    Every task depends on one plain ``concurrent.futures.Future`` (the gate)
    that is completed only after the measurement, so all of them are in flight
    at once. A traced pass of the same size runs first and only the second is
    measured: tables sized by the most tasks ever in flight (a ``dict`` of
    tasks keeps its size after its entries go) are then the same whichever
    workloads ran before, and their reallocation during the measured pass
    frees a traced block for the one it allocates. (A block allocated before
    tracing started and freed afterwards would not be subtracted, and would
    show up as memory retained by each task.)
    """
    tasks = context.options.memory_tasks
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        _gated_pass(context, tasks)
        baseline = _settled_traced_memory(tolerance=max(tasks, 1024))
        tracemalloc.reset_peak()
        submit_s, in_flight, peak = _gated_pass(context, tasks)
        gc.collect()
        immediately = tracemalloc.get_traced_memory()[0]
        retained = _settled_traced_memory(tolerance=max(tasks, 1024))
    finally:
        if not was_tracing:
            tracemalloc.stop()
    result = {
        "tasks": tasks,
        "submit_seconds": submit_s,
        "inflight_bytes_per_task": (in_flight - baseline) / tasks,
        "peak_bytes_per_task": (peak - baseline) / tasks,
        "retained_bytes_per_task": (retained - baseline) / tasks,
        "retained_immediately_bytes_per_task": (immediately - baseline) / tasks,
        "verified": True,
    }
    context.progress(
        f"memory: {result['inflight_bytes_per_task']:,.0f} B per in-flight task "
        f"({tasks} tasks), {result['retained_bytes_per_task']:,.1f} B retained per done task"
    )
    return result


def _gated_pass(context: _Context, tasks: int) -> tuple[float, int, int]:
    """Hold *tasks* tasks behind one gate, then release them and check their results.

    Returns the submission time and the traced (current, peak) bytes while all
    tasks were in flight (zeros when tracemalloc is off). Nothing of the pass
    is referenced once it returns.
    """
    after = context.apps.after
    gate: cf.Future[int] = cf.Future()
    start = time.perf_counter()
    futures = [after(gate) for _ in range(tasks)]
    submit_s = time.perf_counter() - start
    in_flight, peak = tracemalloc.get_traced_memory()
    gate.set_result(tasks)
    values = _collect(futures, _deadline(context))
    _verify(values, lambda _: tasks, "gated task")
    return submit_s, in_flight, peak


def _settled_traced_memory(*, tolerance: int, poll: float = 0.05, quiet_polls: int = 3, limit: float = 5.0) -> int:
    """Traced bytes once the library's threads have let go of finished tasks.

    A library may still hold the last finished task for a moment (a worker's
    frame, a callback on its way out), and through a shared dependency that
    can keep every task alive. So poll: collect garbage and read the traced
    size until it has not fallen by more than *tolerance* bytes for
    *quiet_polls* polls in a row, or *limit* seconds have passed.
    """
    deadline = time.perf_counter() + limit
    gc.collect()
    best = tracemalloc.get_traced_memory()[0]
    quiet = 0
    while quiet < quiet_polls and time.perf_counter() < deadline:
        time.sleep(poll)
        gc.collect()
        current = tracemalloc.get_traced_memory()[0]
        quiet = quiet + 1 if current > best - tolerance else 0
        best = min(best, current)
    return best


def _import_time(lib_name: str, options: Options, say: Progress) -> dict[str, Any]:
    """Median wall time of ``import <lib_name>`` in fresh interpreters."""
    return measure_import_time(
        lib_name, python=options.python, samples=options.import_samples, timeout=options.timeout, say=say
    )


_IN_KERNEL: dict[str, Callable[[_Context], dict[str, Any]]] = {
    "throughput": _throughput,
    "submit": _submit,
    "latency": _latency,
    "chain": _chain,
    "fanin": _fanin,
    "fixed": _fixed,
    "bigargs": _bigargs,
    "bigresults": _bigresults,
    "memory": _memory,
}


def _jsonable_options(options: Options) -> dict[str, Any]:
    data = asdict(options)
    data["workloads"] = list(options.workloads)
    data["fixed_sizes"] = list(options.fixed_sizes)
    return data
