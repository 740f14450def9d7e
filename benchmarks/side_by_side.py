#!/usr/bin/env python3
"""Compare flowlib with Parsl on the same workloads, the same machine, the same interpreter.

Usage (after ``bash benchmarks/setup_parsl_venv.sh``)::

    python benchmarks/side_by_side.py --quick
    python benchmarks/side_by_side.py --executor htex --rounds 5
    python benchmarks/side_by_side.py --executor htex --monitoring off,state,resources

How it runs::

    side_by_side.py (this process: imports neither library)
      |  round 1: parsl, flowlib     round 2: flowlib, parsl     round 3: ...
      |
      +-- fresh subprocess per library per round, own temporary working dir
      |     <venv python> side_by_side.py _worker --lib parsl ...
      |       loads flowlib/benchmark/ by file path (flowlib/__init__.py not run)
      |       run_workloads("parsl", config, options) -> JSON file
      |
      +-- median of every metric over the rounds, then a table of both values,
          flowlib/parsl, and the speedup; JSON and Markdown go to
          benchmarks/results/ (git-ignored)

With ``--monitoring MODES`` every round runs each library once per mode
(``off``, ``state``: state tracking only, ``resources``: the hub's defaults with
resource sampling), by default on 10,000 no-op tasks; the table shows each
mode's throughput against the same library's ``off`` figure, and the size of
the monitoring database per task.

Alternating the order every round spreads machine noise (other load, thermal
state, caches) over both libraries. Both libraries get the same workload code,
the same options and the same interpreter (``benchmarks/.parsl-venv`` by
default, which has both installed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BENCHMARK_PACKAGE = REPO / "flowlib" / "benchmark"
DEFAULT_VENV_PYTHON = HERE / ".parsl-venv" / "bin" / "python"
RESULTS_DIR = HERE / "results"
STANDALONE_NAME = "flowlib_benchmark_standalone"

BASELINE, CANDIDATE = "parsl", "flowlib"

#: ``flowlib-perf`` arguments of a full run and of a ``--quick`` run.
FULL_ARGS = ["--time", "10", "--iterate", "3", "--tasks", "10000,100000"]
QUICK_ARGS = [
    "--time",
    "1",
    "--iterate",
    "2",
    "--tasks",
    "10000",
    "--submit-tasks",
    "5000",
    "--latency-samples",
    "100",
    "--memory-tasks",
    "5000",
    "--bigarg-tasks",
    "100",
]

#: Workloads run by default for each executor: the thread pool gets every
#: in-process measurement; the high-throughput executor gets the ones its speed
#: targets name (throughput, latency, chain, start-up, big arguments).
DEFAULT_WORKLOADS = {
    "threads": "throughput,submit,latency,chain,fanin,fixed,memory,import",
    "htex": "startup,latency,chain,fanin,fixed,bigargs",
}

#: Workloads and batch size of a ``--monitoring`` comparison (issue 9's speed case).
MONITORING_WORKLOADS = "fixed"
MONITORING_TASKS = "10000"
MONITORING_MODES = ("off", "state", "resources")

#: What each library must offer before it is benchmarked.
IMPORT_CHECK = "import {lib}; {lib}.python_app; {lib}.load; {lib}.clear"


def load_benchmark_package() -> ModuleType:
    """Import ``flowlib/benchmark/`` by path, under a name of its own.

    The package uses only the standard library and relative imports, so this
    runs none of ``flowlib/__init__.py``: a Parsl run imports nothing of
    flowlib, and the harness works even while flowlib itself does not import.
    """
    if STANDALONE_NAME in sys.modules:
        return sys.modules[STANDALONE_NAME]
    spec = importlib.util.spec_from_file_location(
        STANDALONE_NAME,
        BENCHMARK_PACKAGE / "__init__.py",
        submodule_search_locations=[str(BENCHMARK_PACKAGE)],
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the benchmark package from {BENCHMARK_PACKAGE}")
    package = importlib.util.module_from_spec(spec)
    sys.modules[STANDALONE_NAME] = package
    spec.loader.exec_module(package)
    return package


def worker(argv: list[str]) -> int:
    """Run one library's benchmark in this process (the ``_worker`` subcommand)."""
    load_benchmark_package()
    perf = importlib.import_module(f"{STANDALONE_NAME}.perf")
    status: int = perf.main(argv, prog="side_by_side worker")
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Run the same workloads on Parsl and flowlib, alternating, and compare.",
        epilog="Arguments after '--' go to every flowlib-perf run unchanged.",
    )
    parser.add_argument("--executor", choices=("threads", "htex"), default="threads")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per library (default: 3)")
    parser.add_argument("--quick", action="store_true", help="short workloads, for a quick look")
    parser.add_argument(
        "--python",
        default=str(DEFAULT_VENV_PYTHON),
        help="interpreter that imports both libraries (default: benchmarks/.parsl-venv)",
    )
    parser.add_argument(
        "--libs",
        default=f"{BASELINE},{CANDIDATE}",
        help="libraries to run (default: parsl,flowlib; one alone gives no comparison)",
    )
    parser.add_argument(
        "--workloads",
        default=None,
        help="workloads to run (see flowlib-perf; default: "
        + "; ".join(f"{name}: {names}" for name, names in DEFAULT_WORKLOADS.items())
        + ")",
    )
    parser.add_argument(
        "--monitoring",
        default=None,
        metavar="MODES",
        help="compare monitoring modes among off,state,resources (e.g. off,state,resources); "
        f"default workloads then: {MONITORING_WORKLOADS} with --tasks {MONITORING_TASKS}",
    )
    parser.add_argument("--out", default=str(RESULTS_DIR), help="results directory (default: benchmarks/results)")
    parser.add_argument(
        "--run-timeout",
        type=float,
        default=3600.0,
        help="seconds one library's run may take (default: 3600)",
    )
    return parser


def check_importable(python: str, lib: str) -> str | None:
    """Return None if *lib* imports in *python* with the needed API, else the error."""
    done = subprocess.run(
        [python, "-c", IMPORT_CHECK.format(lib=lib)],
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode == 0:
        return None
    lines = done.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit status {done.returncode}"


def run_one(python: str, lib: str, perf_args: list[str], executor: str, timeout: float) -> dict[str, Any]:
    """Run one library's benchmark in a fresh subprocess and return its results."""
    with tempfile.TemporaryDirectory(prefix=f"side-by-side-{lib}-") as workdir:
        out = Path(workdir) / "results.json"
        command = [
            python,
            str(Path(__file__).resolve()),
            "_worker",
            "--lib",
            lib,
            "--executor",
            executor,
            "--json",
            str(out),
            *perf_args,
        ]
        env = dict(os.environ)
        # The executors' helper scripts (e.g. Parsl's interchange.py) live beside
        # the interpreter; put them on PATH as an activated venv would.
        bin_dir = str(Path(python).absolute().parent)
        env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
        print(f"$ {shlex.join(command)}", flush=True)
        done = subprocess.run(command, cwd=workdir, env=env, timeout=timeout, check=False)
        if done.returncode != 0:
            raise SystemExit(f"side_by_side: the {lib} run failed (exit {done.returncode})")
        results: dict[str, Any] = json.loads(out.read_text())
    if not results.get("verified"):
        raise SystemExit(f"side_by_side: the {lib} run did not verify its results")
    return results


def round_order(libs: list[str], round_index: int) -> list[str]:
    """Libraries in the order of round *round_index*: reversed on every other round."""
    return list(libs) if round_index % 2 == 0 else list(reversed(libs))


def main(argv: list[str]) -> int:
    if argv and argv[0] == "_worker":
        return worker(argv[1:])
    own, passthrough = _split_passthrough(argv)
    args = build_parser().parse_args(own)
    libs = [name.strip() for name in args.libs.split(",") if name.strip()]
    if args.rounds < 1 or not libs:
        raise SystemExit("side_by_side: need at least one round and one library")
    python = args.python
    if not Path(python).exists():
        raise SystemExit(f"side_by_side: no interpreter at {python}; run bash benchmarks/setup_parsl_venv.sh")
    for lib in libs:
        problem = check_importable(python, lib)
        if problem is not None:
            raise SystemExit(f"side_by_side: {lib} is not usable in {python}: {problem}")

    load_benchmark_package()
    report = importlib.import_module(f"{STANDALONE_NAME}.report")
    if args.monitoring is not None:
        return monitoring_main(args, libs, python, passthrough, report)
    workloads = args.workloads or DEFAULT_WORKLOADS[args.executor]
    perf_args = [*(QUICK_ARGS if args.quick else FULL_ARGS), "--workloads", workloads]
    perf_args += passthrough
    command = shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    started = dt.datetime.now(dt.timezone.utc)

    runs: dict[str, list[dict[str, Any]]] = {lib: [] for lib in libs}
    for index in range(args.rounds):
        for lib in round_order(libs, index):
            print(f"\n=== round {index + 1}/{args.rounds}: {lib} ===", flush=True)
            runs[lib].append(run_one(python, lib, perf_args, args.executor, args.run_timeout))

    medians = {
        lib: report.median_metrics([report.headline_metrics(r) for r in results]) for lib, results in runs.items()
    }
    names = {lib: f"{lib} {runs[lib][0]['version']}" for lib in libs}
    baseline = BASELINE if BASELINE in libs else libs[0]
    candidate = CANDIDATE if CANDIDATE in libs else libs[-1]
    if candidate == baseline:  # one library alone: show its numbers, compare nothing
        candidate = CANDIDATE if baseline != CANDIDATE else BASELINE
        names[candidate] = f"{candidate} (not run)"
    rows = report.compare(medians[baseline], medians.get(candidate, []))

    title = f"{args.executor} executor, median of {args.rounds} round(s){' (quick)' if args.quick else ''}"
    print(f"\n{title}\n")
    print(report.text_table(rows, names[baseline], names[candidate]))

    summary = {
        "command": command,
        "started": started.isoformat(timespec="seconds"),
        "executor": args.executor,
        "rounds": args.rounds,
        "quick": args.quick,
        "python": python,
        "perf_args": perf_args,
        "machine": _machine(),
        "baseline": baseline,
        "candidate": candidate,
        "medians": {lib: [vars(m) for m in metrics] for lib, metrics in medians.items()},
        "comparison": [vars(row) for row in rows],
        "runs": runs,
    }
    stem = f"side_by_side-{args.executor}-{started.strftime('%Y%m%dT%H%M%SZ')}"
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{stem}.json"
    md_path = out_dir / f"{stem}.md"
    json_path.write_text(json.dumps(summary, indent=2) + "\n")
    md_path.write_text(_markdown(summary, title, report.markdown_table(rows, names[baseline], names[candidate])))
    print(f"\nresults: {json_path}\nmarkdown: {md_path}")
    return 0


def monitoring_main(
    args: argparse.Namespace, libs: list[str], python: str, passthrough: list[str], report: ModuleType
) -> int:
    """Run every library in every monitoring mode, alternating, and tabulate the cost of monitoring."""
    modes = [mode.strip() for mode in args.monitoring.split(",") if mode.strip()]
    unknown = [mode for mode in modes if mode not in MONITORING_MODES]
    if unknown or not modes:
        raise SystemExit(f"side_by_side: monitoring modes must come from {','.join(MONITORING_MODES)}, got {modes}")
    base_args = ["--time", "1", "--iterate", "1"] if args.quick else []
    perf_args = [*base_args, "--tasks", MONITORING_TASKS, "--workloads", args.workloads or MONITORING_WORKLOADS]
    perf_args += passthrough
    command = shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    started = dt.datetime.now(dt.timezone.utc)
    runs: dict[str, list[dict[str, Any]]] = {f"{lib}/{mode}": [] for lib in libs for mode in modes}
    for index in range(args.rounds):
        for lib in round_order(libs, index):
            for mode in round_order(modes, index):
                print(f"\n=== round {index + 1}/{args.rounds}: {lib}, monitoring {mode} ===", flush=True)
                result = run_one(python, lib, [*perf_args, "--monitoring", mode], args.executor, args.run_timeout)
                runs[f"{lib}/{mode}"].append(result)
    medians = {
        key: {m.key: m for m in report.median_metrics([report.headline_metrics(r) for r in results])}
        for key, results in runs.items()
    }
    versions = {lib: runs[f"{lib}/{modes[0]}"][0]["version"] for lib in libs}
    rate_keys = [key for key in medians[f"{libs[0]}/{modes[0]}"] if key.startswith("fixed.")]
    rows = []
    for lib in libs:
        for mode in modes:
            metrics = medians[f"{lib}/{mode}"]
            for rate_key in rate_keys:
                rate = metrics[rate_key].value
                own_off = medians.get(f"{lib}/off", {}).get(rate_key)
                size = metrics.get("monitoring.bytes_per_task")
                rows.append(
                    {
                        "library": f"{lib} {versions[lib]}",
                        "monitoring": mode,
                        "metric": metrics[rate_key].label,
                        "tasks_per_s": rate,
                        "ratio_to_off": None if own_off is None else rate / own_off.value,
                        "db_bytes_per_task": None if size is None else size.value,
                    }
                )
    header = ["library", "monitoring", "metric", "tasks/s", "vs own off", "loss", "DB B/task"]
    cells = [
        [
            row["library"],
            row["monitoring"],
            row["metric"],
            report.format_value(row["tasks_per_s"]),
            "n/a" if row["ratio_to_off"] is None else f"{row['ratio_to_off']:.3f}x",
            "n/a" if row["ratio_to_off"] is None else f"{(1 - row['ratio_to_off']) * 100:.1f}%",
            "" if row["db_bytes_per_task"] is None else report.format_value(row["db_bytes_per_task"]),
        ]
        for row in rows
    ]
    title = f"{args.executor} executor, monitoring {','.join(modes)}, median of {args.rounds} round(s)"
    markdown = "\n".join(
        [
            "| " + " | ".join(header) + " |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: |",
            *("| " + " | ".join(line) + " |" for line in cells),
        ]
    )
    print(f"\n{title}\n\n{markdown}")
    summary = {
        "command": command,
        "started": started.isoformat(timespec="seconds"),
        "executor": args.executor,
        "rounds": args.rounds,
        "modes": modes,
        "python": python,
        "perf_args": perf_args,
        "machine": _machine(),
        "rows": rows,
        "runs": runs,
    }
    stem = f"side_by_side-{args.executor}-monitoring-{started.strftime('%Y%m%dT%H%M%SZ')}"
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{stem}.json"
    md_path = out_dir / f"{stem}.md"
    json_path.write_text(json.dumps(summary, indent=2) + "\n")
    machine = summary["machine"]
    md_path.write_text(
        f"```\n{command}\n```\n\n{title}; {machine['cpus']} CPUs, {machine['platform']}, "
        f"Python {machine['python']}, {summary['started']}.\n\n{markdown}\n\n"
        "'vs own off' is the mode's throughput over the same library's monitoring-off throughput.\n"
    )
    print(f"\nresults: {json_path}\nmarkdown: {md_path}")
    return 0


def _split_passthrough(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1 :]
    return argv, []


def _machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def _markdown(summary: dict[str, Any], title: str, table: str) -> str:
    machine = summary["machine"]
    lines = [
        "```",
        summary["command"],
        "```",
        "",
        f"{title}; {machine['cpus']} CPUs, {machine['platform']}, Python {machine['python']}, {summary['started']}.",
        "",
        table,
        "",
        "flowlib/parsl is the ratio of the medians; speedup is how many times faster flowlib is (higher is better).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
