"""The scale-by-simulation benchmark, run small: a real interchange and 8 simulated pools.

The full run (64 to 2,048 pools) is a benchmark, not a test; here the same code
runs for a few seconds and must complete and verify every task.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import zmq

from flowlib.benchmark.rawcopy import in_process_rate, measure_raw_copy
from flowlib.benchmark.scale import ScaleOptions, markdown_table, run_scale
from flowlib.benchmark.simulated_managers import raise_socket_limits

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[1]


def _check_point(point: dict[str, Any], managers: int, paths: tuple[str, ...], tasks: int, warmup: int) -> None:
    assert point["managers"] == managers
    assert point["workers"] == managers * 32
    assert point["registration_seconds"] > 0
    for path in paths:
        entry = point["paths"][path]
        assert entry["tasks_per_s"] > 0
        (run,) = entry["runs"]
        assert run["tasks"] == tasks and run["seconds"] > 0
        assert run["peak_rss"]["interchange"] > 0 and run["peak_rss"]["client"] > 0
    # every task submitted (warm-up and timed, on every path) was answered by a simulated pool
    assert point["simulator"]["answered"] == (tasks + warmup) * len(paths)
    assert point["simulator"]["registered"] == managers
    assert point["rss_registered"]["interchange"] > 0


def test_scale_benchmark_with_eight_simulated_pools() -> None:
    options = ScaleOptions(managers=(8,), tasks=2_000, warmup_tasks=100, timeout=60.0)
    lines: list[str] = []
    results = run_scale(options, progress=lines.append)
    (point,) = results["points"]
    _check_point(point, 8, ("executor", "kernel"), 2_000, 100)
    assert any("executor: 2000 tasks" in line for line in lines)
    table = markdown_table(results)
    assert table.splitlines()[0].startswith("| managers | workers |")
    assert "| 8 | 256 |" in table
    json.dumps(results)  # JSON-ready


def test_htex_scale_script_quick(tmp_path: Path) -> None:
    out, md = tmp_path / "scale.json", tmp_path / "scale.md"
    command = [sys.executable, str(REPO / "benchmarks" / "htex_scale.py"), "--quick", "--paths", "executor"]
    command += ["--json", str(out), "--markdown", str(md)]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=100, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())
    (point,) = results["points"]
    _check_point(point, 8, ("executor",), 2_000, 200)
    assert "htex_scale.py --quick" in md.read_text()


def test_scale_options_are_validated() -> None:
    with pytest.raises(ValueError):
        ScaleOptions(managers=())
    with pytest.raises(ValueError):
        ScaleOptions(managers=(0,))
    with pytest.raises(ValueError):
        ScaleOptions(paths=("nope",))
    with pytest.raises(ValueError):
        ScaleOptions(tasks=0)


def test_socket_limits_are_raised() -> None:
    context: zmq.Context[Any] = zmq.Context()
    soft_before = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        hard = soft_before[1]
        sockets = 1500 if hard == resource.RLIM_INFINITY or hard >= 5000 else max((hard - 256) // 3, 1)
        limit = raise_socket_limits(context, sockets)
        assert context.get(zmq.MAX_SOCKETS) >= sockets + 64
        assert limit >= 3 * sockets
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, soft_before)
        context.term()


def test_raw_copy_baselines_are_positive() -> None:
    assert in_process_rate(1024, 10) > 0
    raw = measure_raw_copy(64 * 1024, 20)
    assert set(raw) == {"in_process_per_s", "zmq_per_s", "zmq_curve_per_s"}
    assert all(rate > 0 for rate in raw.values())
