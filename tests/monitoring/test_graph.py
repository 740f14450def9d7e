"""The dependency-graph endpoint: a small run whole (exact nodes and edges), a big run bounded."""

from __future__ import annotations

import time

import httpx
import pytest

import flowlib
from flowlib.app.app import python_app
from flowlib.monitoring import schema as t
from flowlib.monitoring.dashboard import queries as q
from flowlib.monitoring.dashboard.app import create_app
from flowlib.monitoring.store import open_store

from .serve import serving


@python_app
def source(x):
    return x


@python_app
def combine(*xs):
    return sum(xs)


def test_small_dag_is_shipped_whole_with_exact_nodes_edges_and_layers(monitored, db_path):
    with flowlib.load(monitored()) as dfk:
        a, b = source(1), source(2)
        c = combine(a, b)
        d = combine(c, a)
        assert d.result(timeout=30) == 4
        run_id = dfk.run_id
    with serving(create_app(f"sqlite:///{db_path}")) as base, httpx.Client(base_url=base, timeout=10) as client:
        body = client.get(f"/api/runs/{run_id}/graph").json()
        assert client.get("/api/runs/nope/graph").status_code == 404
        assert client.get(f"/api/runs/{run_id}/graph", params={"depth": "x"}).status_code == 400
    assert body["mode"] == "full" and body["total"] == 4
    nodes = {n["id"]: (n["app"], n["state"], n["layer"]) for n in body["nodes"]}
    assert nodes == {
        a.tid: ("source", "exec_done", 0),
        b.tid: ("source", "exec_done", 0),
        c.tid: ("combine", "exec_done", 1),
        d.tid: ("combine", "exec_done", 2),
    }
    assert sorted(map(tuple, body["edges"])) == sorted([(a.tid, c.tid), (b.tid, c.tid), (c.tid, d.tid), (a.tid, d.tid)])


N = 20_000


def _fill_chains(url: str) -> None:
    """N tasks: "gen" i (i % 4 == 0) feeds "step" i+1 -> i+2 -> i+3 (chains of 4)."""
    engine = open_store(url)
    rows = []
    for i in range(N):
        rows.append({
            "task_id": i, "run_id": "big", "task_func_name": "gen" if i % 4 == 0 else "step", "task_memoize": False,
            "task_fail_count": 0, "task_fail_cost": 0.0, "task_status_name": "exec_done" if i % 4 != 3 else "pending",
            "task_depends": None if i % 4 == 0 else str(i - 1),
        })  # fmt: skip
    with engine.begin() as conn:
        conn.execute(t.workflow.insert(), {"run_id": "big", "time_began": time.time(), "tasks_failed_count": 0,
                                           "tasks_completed_count": 0})  # fmt: skip
        conn.execute(t.task.insert(), rows)
    engine.dispose()


@pytest.mark.timeout(120)
def test_big_run_is_aggregated_by_app_with_a_bounded_neighbourhood(tmp_path):
    url = f"sqlite:///{tmp_path / 'big.db'}"
    _fill_chains(url)
    with serving(create_app(url)) as base, httpx.Client(base_url=base, timeout=30) as client:
        agg = client.get("/api/runs/big/graph").json()
        hood = client.get("/api/runs/big/graph", params={"task": 401, "depth": 1}).json()
        deep = client.get("/api/runs/big/graph", params={"task": 400, "depth": 10}).json()
        cut = client.get("/api/runs/big/graph", params={"task": 400, "depth": 10, "limit": 2}).json()
    assert agg["mode"] == "aggregated" and agg["total"] == N and agg["nodes"] == [] and agg["task"] is None
    assert {n["app"]: (n["count"], n["states"]) for n in agg["apps"]["nodes"]} == {
        "gen": (N // 4, {"exec_done": N // 4}),
        "step": (3 * N // 4, {"exec_done": N // 2, "pending": N // 4}),
    }
    assert {(e["from"], e["to"]): e["count"] for e in agg["apps"]["edges"]} == {
        ("gen", "step"): N // 4,
        ("step", "step"): N // 2,
    }
    assert {n["id"]: n["distance"] for n in hood["nodes"]} == {400: -1, 401: 0, 402: 1}
    assert sorted(map(tuple, hood["edges"])) == [(400, 401), (401, 402)] and not hood["truncated"]
    assert sorted(n["id"] for n in deep["nodes"]) == [400, 401, 402, 403]
    assert [n["layer"] for n in sorted(deep["nodes"], key=lambda n: n["id"])] == [0, 1, 2, 3]
    assert len(cut["nodes"]) == 2 and cut["truncated"]


def test_neighbourhood_never_exceeds_the_node_bound(tmp_path):
    url = f"sqlite:///{tmp_path / 'fan.db'}"
    engine = open_store(url)
    rows = [{"task_id": i, "run_id": "fan", "task_func_name": "f", "task_memoize": False, "task_fail_count": 0,
             "task_fail_cost": 0.0, "task_status_name": "pending", "task_depends": None if i == 0 else "0"}
            for i in range(q.GRAPH_FULL * 3)]  # fmt: skip
    cache = q.GraphCache()
    with engine.begin() as conn:
        conn.execute(t.task.insert(), rows)
        body = q.graph(conn, "fan", 0, depth=3, limit=10_000, cache=cache)
        first = cache.structure(conn, "fan", len(rows))
        assert len(body["nodes"]) == q.GRAPH_FULL and body["truncated"]
        assert body["apps"]["edges"] == [{"from": "f", "to": "f", "count": len(rows) - 1}]
        # A task written after the first read is seen by the next one (the cached structure is refreshed).
        conn.execute(t.task.insert(), {**rows[1], "task_id": len(rows), "task_func_name": "g", "task_depends": "1"})
        again = q.graph(conn, "fan", 1, depth=1, cache=cache)
        assert cache.structure(conn, "fan", len(rows) + 1) is not first
    engine.dispose()
    assert {(e["from"], e["to"]): e["count"] for e in again["apps"]["edges"]} == {
        ("f", "f"): len(rows) - 1,
        ("f", "g"): 1,
    }
    assert {n["id"] for n in again["nodes"]} == {0, 1, len(rows)}
