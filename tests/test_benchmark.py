"""Tests of the benchmark tooling: ``flowlib-perf`` and ``benchmarks/side_by_side.py``.

The measuring code is exercised three ways: pure helpers directly; the
workloads against a tiny stand-in library (written below, just enough of the
Parsl API to run them) so that result checking can be tested with a library
that returns wrong answers; and the real CLI against flowlib itself.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from flowlib.benchmark import WORKLOADS, BenchmarkError, Options, run_workloads
from flowlib.benchmark.measure import (
    median,
    next_batch_size,
    parse_names,
    parse_sizes,
    percentile,
)
from flowlib.benchmark.perf import main
from flowlib.benchmark.report import (
    Metric,
    compare,
    format_value,
    headline_metrics,
    markdown_table,
    median_metrics,
    text_table,
)

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[1]

# A stand-in library with the Parsl-compatible surface the workloads use:
# python_app (futures as arguments and in inputs=), load (a context manager)
# and clear. CORRUPT_EVERY > 0 makes every n-th task return a wrong result.
STANDIN_SOURCE = textwrap.dedent(
    '''
    """A minimal dataflow library for testing the benchmark."""
    import concurrent.futures as cf
    import threading

    __version__ = "0.0-test"
    CORRUPT_EVERY = 0
    _kernel = None
    _count = [0]


    class Kernel:
        def __init__(self, config):
            self.config = config
            self.pool = cf.ThreadPoolExecutor(max_workers=2)

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            self.cleanup()

        def cleanup(self):
            self.pool.shutdown(wait=True)


    def load(config):
        global _kernel
        _kernel = Kernel(config)
        return _kernel


    def clear():
        global _kernel
        _kernel = None


    def _value(item):
        return item.result() if isinstance(item, cf.Future) else item


    def python_app(func):
        def submit(*args, **kwargs):
            kernel, out = _kernel, cf.Future()
            deps = [a for a in args if isinstance(a, cf.Future)]
            deps += [a for a in kwargs.get("inputs", ()) if isinstance(a, cf.Future)]
            waiting = [len(deps)]
            lock = threading.Lock()

            def finish(inner):
                if inner.exception() is not None:
                    out.set_exception(inner.exception())
                    return
                _count[0] += 1
                wrong = CORRUPT_EVERY and _count[0] % CORRUPT_EVERY == 0
                out.set_result("wrong" if wrong else inner.result())

            def launch():
                real_kwargs = dict(kwargs)
                if "inputs" in kwargs:
                    real_kwargs["inputs"] = [_value(x) for x in kwargs["inputs"]]
                real_args = [_value(a) for a in args]
                kernel.pool.submit(func, *real_args, **real_kwargs).add_done_callback(finish)

            def one_done(_):
                with lock:
                    waiting[0] -= 1
                    ready = waiting[0] == 0
                if ready:
                    launch()

            if not deps:
                launch()
            for dep in deps:
                dep.add_done_callback(one_done)
            return out

        return submit
    '''
)

STANDIN_CONFIG = textwrap.dedent(
    """
    class Executor:
        label = "standin"

    class Config:
        executors = [Executor()]

    config = Config()
    """
)

SMALL = Options(
    workloads=("throughput", "submit", "latency", "chain", "fanin", "fixed", "memory"),
    target_time=0.05,
    iterations=2,
    argsize=16,
    submit_tasks=50,
    latency_samples=5,
    chain_length=20,
    fanin_width=20,
    fixed_sizes=(10, 30),
    memory_tasks=50,
    timeout=30.0,
)


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The stand-in library, importable as ``standin_flow`` (also by subprocesses)."""
    (tmp_path / "standin_flow.py").write_text(STANDIN_SOURCE)
    (tmp_path / "standin_config.py").write_text(STANDIN_CONFIG)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    sys.modules.pop("standin_flow", None)
    yield importlib.import_module("standin_flow")
    sys.modules.pop("standin_flow", None)


def _config_of(tmp_path: Path) -> object:
    from flowlib.benchmark import load_config_file

    return load_config_file(tmp_path / "standin_config.py")


# --- pure helpers ----------------------------------------------------------


def test_next_batch_size_aims_at_the_target() -> None:
    assert next_batch_size(100, 0.5, 10.0) == 2000
    assert next_batch_size(1000, 20.0, 10.0) == 500


def test_next_batch_size_is_bounded_both_ways() -> None:
    assert next_batch_size(100, 0.0, 10.0) == 10_000
    assert next_batch_size(100, 1e-9, 10.0, max_growth=10) == 1000
    assert next_batch_size(100, 1e9, 10.0, max_growth=10) == 10
    assert next_batch_size(1, 1e9, 10.0) == 1


@pytest.mark.parametrize(("tasks", "elapsed", "target"), [(0, 1.0, 1.0), (10, 1.0, 0.0), (10, 1.0, -1.0)])
def test_next_batch_size_rejects_nonsense(tasks: int, elapsed: float, target: float) -> None:
    with pytest.raises(ValueError):
        next_batch_size(tasks, elapsed, target)


def test_percentile_and_median() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert median(values) == 3.0
    assert median([1.0, 2.0, 3.0, 4.0]) == 2.5
    assert percentile(values, 0.0) == 1.0
    assert percentile(values, 1.0) == 5.0
    assert percentile(list(range(101)), 0.95) == pytest.approx(95.0)
    with pytest.raises(ValueError):
        percentile([], 0.5)
    with pytest.raises(ValueError):
        percentile(values, 1.5)


def test_parse_sizes() -> None:
    assert parse_sizes("10000,100000") == (10_000, 100_000)
    assert parse_sizes(" 10_000 , 100k ") == (10_000, 100_000)
    for bad in ("", "ten", "0", "-5"):
        with pytest.raises(ValueError):
            parse_sizes(bad)


def test_parse_names() -> None:
    allowed = ("a", "b", "c")
    assert parse_names("b,a,b", allowed) == ("b", "a")
    assert parse_names("all", allowed) == allowed
    assert parse_names("c,all", allowed) == ("c", "a", "b")
    with pytest.raises(ValueError, match="unknown"):
        parse_names("a,z", allowed)


def test_options_are_validated() -> None:
    with pytest.raises(ValueError):
        Options(workloads=("nope",))
    with pytest.raises(ValueError):
        Options(iterations=0)
    with pytest.raises(ValueError):
        Options(fixed_sizes=())
    with pytest.raises(ValueError):
        Options(argsize=-1)


def _results(rate: float, chain_s: float) -> dict[str, object]:
    return {
        "workloads": {
            "throughput": {"tasks_per_s": rate},
            "chain": {"tasks": 1000, "seconds": chain_s},
            "memory": {"inflight_bytes_per_task": 2000.0, "retained_bytes_per_task": 0.0},
        }
    }


def test_headline_metrics_and_comparison() -> None:
    parsl = median_metrics(headline_metrics(_results(r, 2.0)) for r in (900.0, 1000.0, 5000.0))
    flow = median_metrics([headline_metrics(_results(4000.0, 0.5))])
    assert [m.key for m in parsl] == ["throughput", "chain", "memory.inflight", "memory.retained"]
    assert parsl[0].value == 1000.0  # the median, not the mean
    rows = {row.label: row for row in compare(parsl, flow)}
    assert rows["throughput"].speedup == pytest.approx(4.0)
    assert rows["chain of 1,000 tasks"].ratio == pytest.approx(0.25)
    assert rows["chain of 1,000 tasks"].speedup == pytest.approx(4.0)
    assert rows["memory per in-flight task"].speedup is None
    assert rows["memory retained per done task"].ratio is None  # 0 B: no ratio
    markdown = markdown_table(list(rows.values()), "parsl 1", "flowlib 2")
    assert markdown.splitlines()[0].startswith("| metric | unit | parsl 1 | flowlib 2 |")
    assert "| throughput | tasks/s | 1,000 | 4,000 | 4.00x | 4.00x |" in markdown
    assert "flowlib/parsl" in text_table(list(rows.values()), "parsl 1", "flowlib 2")


def test_compare_keeps_metrics_only_one_side_has() -> None:
    only = [Metric("import", "import time", "ms", "time", 100.0)]
    (row,) = compare(only, [])
    assert row.baseline == 100.0 and row.candidate is None and row.ratio is None


def test_format_value() -> None:
    assert format_value(123456.7) == "123,457"
    assert format_value(123.45) == "123.5"
    assert format_value(1.234) == "1.23"
    assert format_value(0.01234) == "0.012"
    assert format_value(None) == "n/a"


def _side_by_side_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("side_by_side_under_test", REPO / "benchmarks" / "side_by_side.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_side_by_side_alternates_the_order() -> None:
    module = _side_by_side_module()
    libs = ["parsl", "flowlib"]
    orders = [module.round_order(libs, index) for index in range(3)]
    assert orders == [["parsl", "flowlib"], ["flowlib", "parsl"], ["parsl", "flowlib"]]


# --- the workloads, against the stand-in library ---------------------------


def test_workloads_measure_and_verify(standin: ModuleType, tmp_path: Path) -> None:
    lines: list[str] = []
    results = run_workloads("standin_flow", _config_of(tmp_path), SMALL, progress=lines.append)
    assert results["verified"] is True
    assert results["version"] == "0.0-test"
    assert results["executors"] == ["Executor(standin)"]
    work = results["workloads"]
    assert set(work) == set(SMALL.workloads)
    assert all(entry["verified"] for entry in work.values())
    iterations = work["throughput"]["iterations"]
    assert [item["tasks"] for item in iterations][0] == SMALL.start_tasks
    assert len(iterations) == SMALL.iterations
    assert all(item["tasks_per_s"] > 0 for item in iterations)
    assert work["latency"]["samples"] == 5 and work["latency"]["p95_ms"] > 0
    assert work["chain"]["seconds"] > 0 and work["fanin"]["tasks"] == 21
    assert [size["tasks"] for size in work["fixed"]["sizes"]] == [10, 30]
    assert work["memory"]["inflight_bytes_per_task"] > 0
    assert any(line.startswith("latency:") for line in lines)
    json.dumps(results)  # JSON-ready


def test_startup_and_big_arguments(standin: ModuleType, tmp_path: Path) -> None:
    options = Options(workloads=("startup", "bigargs"), bigarg_size=4096, bigarg_tasks=8, timeout=30.0)
    lines: list[str] = []
    results = run_workloads("standin_flow", _config_of(tmp_path), options, progress=lines.append)
    work = results["workloads"]
    assert list(work) == ["startup", "bigargs"]
    assert work["startup"]["seconds"] > 0
    big = work["bigargs"]
    assert big["bytes"] == 4096 and big["tasks"] == 8 and big["tasks_per_s"] > 0
    assert set(big["raw_copy_per_s"]) == {"in_process_per_s", "zmq_per_s", "zmq_curve_per_s"}
    assert big["ratio_to_zmq_hop"] == pytest.approx(big["tasks_per_s"] / big["raw_copy_per_s"]["zmq_per_s"])
    keys = [metric.key for metric in headline_metrics(results)]
    assert keys == ["startup", "bigargs", "bigargs.raw", "bigargs.ratio"]
    assert any(line.startswith("bigargs:") for line in lines)


def test_big_results(standin: ModuleType, tmp_path: Path) -> None:
    options = Options(workloads=("bigresults",), bigarg_size=4096, bigarg_tasks=8, timeout=30.0)
    lines: list[str] = []
    results = run_workloads("standin_flow", _config_of(tmp_path), options, progress=lines.append)
    big = results["workloads"]["bigresults"]
    assert big["bytes"] == 4096 and big["tasks"] == 8 and big["tasks_per_s"] > 0 and big["verified"]
    assert big["ratio_to_zmq_hop"] == pytest.approx(big["tasks_per_s"] / big["raw_copy_per_s"]["zmq_per_s"])
    keys = [metric.key for metric in headline_metrics(results)]
    assert keys == ["bigresults", "bigresults.ratio"]
    labels = [metric.label for metric in headline_metrics(results)]
    assert labels == ["throughput, 0.00390625 MiB results", "0.00390625 MiB results / raw copy"]
    assert any(line.startswith("bigresults: 8 tasks with results of 4,096 B") for line in lines)


def test_big_argument_labels_name_the_size() -> None:
    raw = {"in_process_per_s": 1.0, "zmq_per_s": 100.0, "zmq_curve_per_s": 50.0}
    big = {"bytes": 1 << 20, "tasks_per_s": 50.0, "raw_copy_per_s": raw, "ratio_to_zmq_hop": 0.5}
    labels = [metric.label for metric in headline_metrics({"workloads": {"bigargs": big}})]
    assert labels == [
        "throughput, 1 MiB arguments",
        "raw copy, 1 MiB over one ZeroMQ hop",
        "1 MiB throughput / raw copy",
    ]


def test_side_by_side_picks_workloads_per_executor() -> None:
    module = _side_by_side_module()
    assert "startup" in module.DEFAULT_WORKLOADS["htex"] and "bigargs" in module.DEFAULT_WORKLOADS["htex"]
    assert "memory" in module.DEFAULT_WORKLOADS["threads"] and "import" in module.DEFAULT_WORKLOADS["threads"]
    for names in module.DEFAULT_WORKLOADS.values():
        parse_names(names, WORKLOADS)  # every default is a known workload


def test_wrong_results_fail_loudly(standin: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(standin, "CORRUPT_EVERY", 7)
    options = Options(workloads=("fixed",), fixed_sizes=(50,), timeout=30.0)
    with pytest.raises(BenchmarkError, match="returned 'wrong'"):
        run_workloads("standin_flow", _config_of(tmp_path), options)


def test_import_time_runs_fresh_interpreters(standin: ModuleType, tmp_path: Path) -> None:
    options = Options(workloads=("import",), import_samples=2)
    results = run_workloads("standin_flow", None, options)
    imported = results["workloads"]["import"]
    assert len(imported["samples_ms"]) == 2 and imported["median_ms"] > 0


def test_cli_with_a_config_file(standin: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.json"
    argv = ["--lib", "standin_flow", "--config", str(tmp_path / "standin_config.py")]
    argv += ["--workloads", "latency,chain", "--chain-length", "10", "--latency-samples", "3"]
    assert main([*argv, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "chain of 10 tasks" in printed and "all task results verified" in printed
    assert json.loads(out.read_text())["verified"] is True


def test_cli_reports_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--workloads", "nope"])
    assert stopped.value.code == 2
    assert main(["--config", "/nonexistent/config.py"]) == 2


# --- the real thing --------------------------------------------------------


def test_flowlib_perf_runs_against_flowlib(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    command = [sys.executable, "-m", "flowlib.benchmark", "--time", "0.5", "--iterate", "1"]
    command += ["--workloads", "throughput,latency,chain,fanin", "--json", str(out)]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=100, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())
    assert results["library"] == "flowlib" and results["verified"] is True
    work = results["workloads"]
    assert work["throughput"]["tasks_per_s"] > 0
    assert work["latency"]["median_ms"] > 0 and work["latency"]["p95_ms"] > 0
    assert work["chain"]["seconds"] > 0 and work["fanin"]["seconds"] > 0
    assert all(entry["verified"] for entry in work.values())


def test_flowlib_perf_monitoring_case_reports_database_size(tmp_path: Path) -> None:
    out, db = tmp_path / "out.json", tmp_path / "bench.db"
    command = [sys.executable, "-m", "flowlib.benchmark", "--workloads", "fixed", "--tasks", "200"]
    command += ["--monitoring", "state", "--monitoring-db", str(db), "--json", str(out)]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=100, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())
    monitoring = results["monitoring"]
    # Warm-up (10 + 2 + 4 + 1 tasks) and the batch of 200: every task is in the task table.
    assert monitoring["mode"] == "state" and monitoring["tasks"] == 217
    assert monitoring["rows"]["status"] >= 217 * 3
    files = [tmp_path / "bench.db", tmp_path / "bench.db-wal"]
    assert monitoring["bytes"] == sum(p.stat().st_size for p in files if p.exists())
    assert monitoring["bytes_per_task"] == monitoring["bytes"] / 217
    assert "monitoring database per task" in done.stdout


def test_flowlib_perf_monitoring_refuses_an_existing_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "old.db"
    db.write_bytes(b"")
    assert main(["--monitoring", "state", "--monitoring-db", str(db)]) == 2
    assert "exists" in capsys.readouterr().err
