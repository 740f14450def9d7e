"""``flowlib-perf``: measure a Parsl-compatible library from the command line.

Usage::

    flowlib-perf                                   # every workload, 2-thread pool
    flowlib-perf --time 2 --iterate 2 --workloads throughput,latency
    flowlib-perf --config my_config.py --json results.json
    python -m flowlib.benchmark --lib parsl        # the same code, driving Parsl

Each measurement prints one line as it finishes; a summary of the headline
numbers follows, and ``--json FILE`` writes everything as JSON. The exit
status is 0 when every task result was verified, 1 when a workload failed
(wrong result, task error, timeout) and 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .configs import EXECUTORS, MONITORING_MODES, load_config_file, make_config
from .measure import parse_names, parse_sizes
from .report import format_value, headline_metrics
from .workloads import WORKLOADS, BenchmarkError, Options, run_workloads

__all__ = ["build_parser", "cli_run", "database_size", "main", "options_from_args"]


def build_parser(prog: str = "flowlib-perf") -> argparse.ArgumentParser:
    """Return the argument parser of ``flowlib-perf``."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Measure task throughput, latency, dependency handling, memory and import "
            "time of flowlib (or of Parsl: the same code drives both)."
        ),
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="Python file defining a module-level 'config' "
        "(default: ThreadPoolExecutor with 2 threads; see --executor)",
    )
    parser.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="threads",
        help="standard configuration to use when --config is not given (default: threads)",
    )
    parser.add_argument(
        "--lib",
        default="flowlib",
        help="library module to drive, 'flowlib' or 'parsl' (default: flowlib)",
    )
    parser.add_argument(
        "--time",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="target duration of each throughput iteration (default: 10)",
    )
    parser.add_argument(
        "--iterate",
        type=int,
        default=3,
        metavar="N",
        help="number of throughput iterations (default: 3)",
    )
    parser.add_argument(
        "--argsize",
        type=int,
        default=0,
        metavar="BYTES",
        help="payload size passed to each no-op task (default: 0)",
    )
    parser.add_argument(
        "--workloads",
        default="all",
        metavar="LIST",
        help=f"comma-separated workloads among {', '.join(WORKLOADS)} (default: all)",
    )
    parser.add_argument(
        "--tasks",
        default="10000,100000",
        metavar="LIST",
        help="batch sizes of the 'fixed' workload (default: 10000,100000)",
    )
    parser.add_argument(
        "--submit-tasks",
        type=int,
        default=10_000,
        metavar="N",
        help="tasks submitted by the 'submit' workload (default: 10000)",
    )
    parser.add_argument(
        "--latency-samples",
        type=int,
        default=200,
        metavar="N",
        help="round trips timed by the 'latency' workload (default: 200)",
    )
    parser.add_argument(
        "--chain-length",
        type=int,
        default=1_000,
        metavar="N",
        help="tasks in the 'chain' workload (default: 1000)",
    )
    parser.add_argument(
        "--fanin-width",
        type=int,
        default=1_000,
        metavar="N",
        help="independent tasks gathered by the 'fanin' workload (default: 1000)",
    )
    parser.add_argument(
        "--bigarg-size",
        type=int,
        default=1 << 20,
        metavar="BYTES",
        help="argument size of the 'bigargs' workload and result size of 'bigresults' (default: 1048576)",
    )
    parser.add_argument(
        "--bigarg-tasks",
        type=int,
        default=500,
        metavar="N",
        help="tasks of the 'bigargs' and 'bigresults' workloads and their raw-copy baselines (default: 500)",
    )
    parser.add_argument(
        "--memory-tasks",
        type=int,
        default=20_000,
        metavar="N",
        help="tasks held in flight by the 'memory' workload (default: 20000)",
    )
    parser.add_argument(
        "--import-samples",
        type=int,
        default=5,
        metavar="N",
        help="fresh interpreters timed by the 'import' workload (default: 5)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="longest wait for the tasks of one measurement (default: 600)",
    )
    parser.add_argument(
        "--monitoring",
        choices=MONITORING_MODES,
        default="off",
        help="add the library's MonitoringHub to the standard configuration: 'state' tracks task "
        "states only (resource_monitoring_enabled=False), 'resources' keeps the hub's defaults "
        "(resource sampling on), 'resources-fast' samples every 0.1 s; the database size per task "
        "is reported (default: off)",
    )
    parser.add_argument(
        "--monitoring-db",
        metavar="FILE",
        help="SQLite file the hub writes (default: a temporary file, removed afterwards)",
    )
    parser.add_argument("--json", metavar="FILE", help="write all results as JSON to FILE")
    parser.add_argument("--quiet", action="store_true", help="print only the summary, not each measurement")
    return parser


def options_from_args(args: argparse.Namespace) -> Options:
    """Build validated :class:`Options` from parsed arguments (ValueError if invalid)."""
    return Options(
        workloads=parse_names(args.workloads, WORKLOADS),
        target_time=args.time,
        iterations=args.iterate,
        argsize=args.argsize,
        submit_tasks=args.submit_tasks,
        latency_samples=args.latency_samples,
        chain_length=args.chain_length,
        fanin_width=args.fanin_width,
        fixed_sizes=parse_sizes(args.tasks),
        bigarg_size=args.bigarg_size,
        bigarg_tasks=args.bigarg_tasks,
        memory_tasks=args.memory_tasks,
        import_samples=args.import_samples,
        timeout=args.timeout,
    )


def _load_config(args: argparse.Namespace, monitoring_db: Path | None) -> Any:
    if args.config:
        if args.monitoring != "off":
            raise ValueError("--monitoring applies to the standard configurations, not to --config")
        return load_config_file(args.config)
    return make_config(args.lib, args.executor, monitoring=args.monitoring, monitoring_db=monitoring_db)


def database_size(path: Path) -> dict[str, Any]:
    """Bytes on disk of the SQLite database at *path* (with its WAL), and rows per table.

    Read after the kernel's cleanup, when both libraries have written the
    store. A write-ahead log is checkpointed into the database first (a WAL
    file holds pages twice until then, and a library may still hold its
    connection), so the figure is what the data takes once written.
    ``bytes_per_task`` divides the bytes by the rows of the ``task`` table.
    """
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    files = [path, path.with_name(path.name + "-wal")]
    size = sum(item.stat().st_size for item in files if item.exists())
    rows: dict[str, int] = {}
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            (rows[table],) = connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()
    finally:
        connection.close()
    tasks = rows.get("task", 0)
    return {
        "bytes": size,
        "rows": rows,
        "tasks": tasks,
        "bytes_per_task": size / tasks if tasks else None,
    }


def main(argv: Sequence[str] | None = None, *, prog: str = "flowlib-perf") -> int:
    """Run the CLI with *argv* (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        options = options_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    scratch: str | None = None
    monitoring_db: Path | None = None
    if args.monitoring != "off":
        if args.monitoring_db:
            monitoring_db = Path(args.monitoring_db).absolute()
            if monitoring_db.exists():
                print(f"{prog}: {monitoring_db} exists; give a new file to --monitoring-db", file=sys.stderr)
                return 2
        else:
            scratch = tempfile.mkdtemp(prefix="flowlib-perf-monitoring-")
            monitoring_db = Path(scratch) / "monitoring.db"
    try:
        return _run(args, options, prog, argv, monitoring_db)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _run(
    args: argparse.Namespace, options: Any, prog: str, argv: Sequence[str] | None, monitoring_db: Path | None
) -> int:
    try:
        config = _load_config(args, monitoring_db)
    except (OSError, ImportError, AttributeError, ValueError) as exc:
        print(f"{prog}: cannot build the configuration: {exc}", file=sys.stderr)
        return 2
    progress = None if args.quiet else _print_flush
    command = [prog, *(sys.argv[1:] if argv is None else argv)]
    print(
        f"{prog}: library {args.lib}, workloads {','.join(options.workloads)}, monitoring {args.monitoring}",
        flush=True,
    )
    try:
        results = run_workloads(args.lib, config, options, progress=progress)
    except BenchmarkError as exc:
        print(f"{prog}: FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    results["command"] = shlex.join(command)
    results["monitoring"] = {"mode": args.monitoring}
    if monitoring_db is not None:
        if not monitoring_db.exists():
            print(f"{prog}: FAILED: monitoring wrote no database at {monitoring_db}", file=sys.stderr)
            return 1
        results["monitoring"].update(database_size(monitoring_db))
    _print_summary(results)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2) + "\n")
        print(f"results written to {path}")
    return 0


def _print_flush(line: str) -> None:
    print(line, flush=True)


def _print_summary(results: dict[str, Any]) -> None:
    executors = ", ".join(results["executors"]) or "no executor"
    print(f"summary: {results['library']} {results['version']} on {executors}")
    metrics = headline_metrics(results)
    width = max((len(metric.label) for metric in metrics), default=0)
    for metric in metrics:
        print(f"  {metric.label.ljust(width)}  {format_value(metric.value):>10} {metric.unit}")
    state = "all task results verified" if results["verified"] else "NOT VERIFIED"
    print(f"  ({state})", flush=True)


def cli_run() -> None:
    """Entry point of the ``flowlib-perf`` console script."""
    sys.exit(main())
