"""Turn benchmark results into headline metrics, comparisons and tables.

:func:`headline_metrics` flattens the JSON produced by
:func:`~flowlib.benchmark.workloads.run_workloads` into named numbers; the CLI
prints them and ``benchmarks/side_by_side.py`` takes their medians over rounds
and compares two libraries with :func:`compare`. All of it is pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .measure import median

__all__ = [
    "Comparison",
    "Metric",
    "compare",
    "format_value",
    "headline_metrics",
    "markdown_table",
    "median_metrics",
    "text_table",
]

Kind = Literal["rate", "time", "size"]
"""``rate``: higher is better; ``time`` and ``size``: lower is better."""


@dataclass(frozen=True)
class Metric:
    """One headline number of a benchmark run."""

    key: str
    """Stable identifier, e.g. ``"latency.median_ms"``."""
    label: str
    """Human-readable name, e.g. ``"latency, median"``."""
    unit: str
    """Unit of :attr:`value`: ``tasks/s``, ``per s``, ``ms``, ``s``, ``B`` or ``x`` (a ratio)."""
    kind: Kind
    """Whether higher (``rate``) or lower (``time``, ``size``) is better."""
    value: float
    """The measurement."""


@dataclass(frozen=True)
class Comparison:
    """One metric of two libraries side by side."""

    label: str
    """Human-readable metric name."""
    unit: str
    """Unit of both values."""
    kind: Kind
    """Whether higher or lower is better."""
    baseline: float | None
    """The baseline library's value (Parsl), or None if it was not measured."""
    candidate: float | None
    """The candidate library's value (flowlib), or None if it was not measured."""
    ratio: float | None
    """``candidate / baseline``; None when either is missing or not positive, or,
    for sizes, under one byte."""
    speedup: float | None
    """How many times faster the candidate is: ``candidate / baseline`` for rates,
    ``baseline / candidate`` for times, None for sizes."""


def headline_metrics(results: Mapping[str, Any]) -> list[Metric]:
    """Flatten one run's results into its headline metrics, in workload order."""
    workloads: Mapping[str, Any] = results.get("workloads", {})
    metrics: list[Metric] = []

    def add(key: str, label: str, unit: str, kind: Kind, value: Any) -> None:
        metrics.append(Metric(key, label, unit, kind, float(value)))

    if "startup" in workloads:
        add("startup", "load to first result", "s", "time", workloads["startup"]["seconds"])
    if "throughput" in workloads:
        add("throughput", "throughput", "tasks/s", "rate", workloads["throughput"]["tasks_per_s"])
    if "submit" in workloads:
        add("submit", "submit rate", "tasks/s", "rate", workloads["submit"]["tasks_per_s"])
    if "latency" in workloads:
        latency = workloads["latency"]
        add("latency.median_ms", "latency, median", "ms", "time", latency["median_ms"])
        add("latency.p95_ms", "latency, p95", "ms", "time", latency["p95_ms"])
    if "chain" in workloads:
        chain = workloads["chain"]
        add("chain", f"chain of {chain['tasks']:,} tasks", "s", "time", chain["seconds"])
    if "fanin" in workloads:
        fanin = workloads["fanin"]
        label = f"fan-in of {fanin['tasks'] - 1:,} tasks"
        add("fanin", label, "s", "time", fanin["seconds"])
    if "fixed" in workloads:
        for size in workloads["fixed"]["sizes"]:
            tasks = size["tasks"]
            label = f"throughput, {tasks:,} tasks"
            add(f"fixed.{tasks}", label, "tasks/s", "rate", size["tasks_per_s"])
    if "bigargs" in workloads:
        big = workloads["bigargs"]
        size = f"{big['bytes'] / 2**20:g} MiB" if big["bytes"] % 2**10 == 0 else f"{big['bytes']:,} B"
        add("bigargs", f"throughput, {size} arguments", "tasks/s", "rate", big["tasks_per_s"])
        if "zmq_per_s" in big["raw_copy_per_s"]:  # measured when pyzmq is installed
            raw = big["raw_copy_per_s"]["zmq_per_s"]
            add("bigargs.raw", f"raw copy, {size} over one ZeroMQ hop", "per s", "rate", raw)
            add("bigargs.ratio", f"{size} throughput / raw copy", "x", "rate", big["ratio_to_zmq_hop"])
    if "bigresults" in workloads:
        big = workloads["bigresults"]
        size = f"{big['bytes'] / 2**20:g} MiB" if big["bytes"] % 2**10 == 0 else f"{big['bytes']:,} B"
        add("bigresults", f"throughput, {size} results", "tasks/s", "rate", big["tasks_per_s"])
        if "zmq_per_s" in big["raw_copy_per_s"]:
            add("bigresults.ratio", f"{size} results / raw copy", "x", "rate", big["ratio_to_zmq_hop"])
    if "memory" in workloads:
        memory = workloads["memory"]
        inflight, retained = memory["inflight_bytes_per_task"], memory["retained_bytes_per_task"]
        add("memory.inflight", "memory per in-flight task", "B", "size", inflight)
        add("memory.retained", "memory retained per done task", "B", "size", retained)
    if "import" in workloads:
        imported = workloads["import"]
        add("import", "import time", "ms", "time", imported["median_ms"])
    monitoring: Mapping[str, Any] = results.get("monitoring") or {}
    if monitoring.get("bytes_per_task") is not None:
        add("monitoring.bytes_per_task", "monitoring database per task", "B", "size", monitoring["bytes_per_task"])
    return metrics


def median_metrics(runs: Iterable[Sequence[Metric]]) -> list[Metric]:
    """Combine several runs' metrics into one metric per key holding the median.

    Keys keep the order of their first appearance.
    """
    first: dict[str, Metric] = {}
    values: dict[str, list[float]] = {}
    for run in runs:
        for metric in run:
            first.setdefault(metric.key, metric)
            values.setdefault(metric.key, []).append(metric.value)
    return [Metric(key, metric.label, metric.unit, metric.kind, median(values[key])) for key, metric in first.items()]


def compare(baseline: Sequence[Metric], candidate: Sequence[Metric]) -> list[Comparison]:
    """Pair up the metrics of two libraries by key (baseline order, then the rest)."""
    base = {metric.key: metric for metric in baseline}
    cand = {metric.key: metric for metric in candidate}
    keys = list(base) + [key for key in cand if key not in base]
    rows = []
    for key in keys:
        shown = base.get(key) or cand[key]
        b = base[key].value if key in base else None
        c = cand[key].value if key in cand else None
        # Under a byte per task, a ratio of memory sizes is noise over noise.
        floor = 1.0 if shown.kind == "size" else 0.0
        ratio = c / b if b is not None and c is not None and min(b, c) > floor else None
        speedup = None
        if ratio is not None and shown.kind == "rate":
            speedup = ratio
        elif ratio is not None and shown.kind == "time":
            speedup = 1.0 / ratio
        rows.append(Comparison(shown.label, shown.unit, shown.kind, b, c, ratio, speedup))
    return rows


def format_value(value: float | None) -> str:
    """Format a measurement with about four significant digits; None as ``n/a``."""
    if value is None:
        return "n/a"
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 100:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _factor(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _cells(rows: Sequence[Comparison]) -> list[list[str]]:
    return [
        [
            row.label,
            row.unit,
            format_value(row.baseline),
            format_value(row.candidate),
            _factor(row.ratio),
            "" if row.kind == "size" else _factor(row.speedup),
        ]
        for row in rows
    ]


def _header(baseline_name: str, candidate_name: str) -> list[str]:
    return [
        "metric",
        "unit",
        baseline_name,
        candidate_name,
        f"{candidate_name.split()[0]}/{baseline_name.split()[0]}",
        "speedup",
    ]


def text_table(rows: Sequence[Comparison], baseline_name: str, candidate_name: str) -> str:
    """Render *rows* as an aligned plain-text table."""
    table = [_header(baseline_name, candidate_name), *_cells(rows)]
    widths = [max(len(line[col]) for line in table) for col in range(len(table[0]))]
    lines = []
    for number, line in enumerate(table):
        left = [line[0].ljust(widths[0]), line[1].ljust(widths[1])]
        right = [cell.rjust(width) for cell, width in zip(line[2:], widths[2:], strict=True)]
        lines.append("  ".join(left + right).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown_table(rows: Sequence[Comparison], baseline_name: str, candidate_name: str) -> str:
    """Render *rows* as a GitHub-flavoured Markdown table."""
    lines = [
        "| " + " | ".join(_header(baseline_name, candidate_name)) + " |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    lines.extend("| " + " | ".join(cells) + " |" for cells in _cells(rows))
    return "\n".join(lines)
