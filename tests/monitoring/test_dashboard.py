"""The dashboard's API over a store written by a real run; live feed through a real server; the token."""

from __future__ import annotations

import json
import os
import time

import httpx
import pytest

import flowlib
from flowlib.app.app import bash_app, python_app
from flowlib.monitoring import MonitoringHub
from flowlib.monitoring.dashboard.app import create_app
from flowlib.monitoring.errors import MonitoringError

from .serve import serving


@python_app
def work(x):
    return x


@python_app
def crash(x):
    raise RuntimeError(f"crash number {x}")


@bash_app
def talk(stdout=None):
    return "echo hello from the task; exit 2"


@pytest.fixture
def store(monitored, db_path, tmp_path):
    """A finished run: 30 work tasks, 2 crashes, a bash task with stdout. Returns (url, run_id, futures)."""
    with flowlib.load(monitored()) as dfk:
        ok = [work(i) for i in range(30)]
        bad = [crash(i) for i in range(2)]
        sh = talk(stdout=str(tmp_path / "talk.out"))
        for f in [*ok, *bad, sh]:
            f.exception()
        run_id = dfk.run_id
    return f"sqlite:///{db_path}", run_id, {"ok": ok, "bad": bad, "sh": sh}


@pytest.fixture
def client(store):
    url, run_id, futures = store
    with serving(create_app(url)) as base, httpx.Client(base_url=base, timeout=10) as c:
        yield c, run_id, futures


def test_runs_and_summary(client):
    c, run_id, _ = client
    runs = c.get("/api/runs").json()["runs"]
    assert [r["run_id"] for r in runs] == [run_id]
    body = c.get(f"/api/runs/{run_id}").json()
    assert body["summary"]["by_state"] == {"exec_done": 30, "failed": 3}
    assert body["summary"]["by_app"]["crash"] == {"failed": 2}
    assert sum(v for _, v in body["summary"]["throughput"]) > 0
    assert body["facets"]["apps"] == ["crash", "talk", "work"]
    assert c.get("/api/runs/nope").status_code == 404


def test_task_table_filters_and_keyset_pages(client):
    c, run_id, futures = client
    base = f"/api/runs/{run_id}/tasks"
    failed = c.get(base, params={"state": "failed"}).json()
    assert failed["total"] == 3 and {t["task_func_name"] for t in failed["tasks"]} == {"crash", "talk"}
    assert c.get(base, params={"app": "crash"}).json()["total"] == 2
    assert c.get(base, params={"executor": "threads"}).json()["total"] == 33
    assert c.get(base, params={"executor": "other"}).json()["total"] == 0
    assert c.get(base, params={"q": "cras"}).json()["total"] == 2
    tid = futures["ok"][7].tid
    assert [t["task_id"] for t in c.get(base, params={"q": str(tid)}).json()["tasks"]] == [tid]
    assert c.get(base, params={"since": time.time() + 60}).json()["total"] == 0
    assert c.get(base, params={"until": time.time() + 60}).json()["total"] == 33
    seen, after = [], None
    while True:
        page = c.get(base, params={"limit": 10, **({"after": after} if after is not None else {})}).json()
        seen += [t["task_id"] for t in page["tasks"]]
        after = page["next"]
        if after is None:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 33


@pytest.mark.parametrize("params", [{"limit": "ten"}, {"after": "x"}, {"since": "yesterday"}])
def test_bad_parameters_are_400_naming_them(client, params):
    c, run_id, _ = client
    r = c.get(f"/api/runs/{run_id}/tasks", params=params)
    assert r.status_code == 400 and next(iter(params)) in r.json()["error"]


def test_task_detail_has_tries_traceback_states_and_stdout(client):
    c, run_id, futures = client
    d = c.get(f"/api/runs/{run_id}/tasks/{futures['bad'][1].tid}").json()
    (attempt,) = d["tries"]
    assert attempt["task_exception_type"] == "builtins.RuntimeError"
    assert attempt["task_exception_message"] == "crash number 1"
    assert 'raise RuntimeError(f"crash number {x}")' in attempt["task_traceback"]
    assert [s["task_status_name"] for s in d["states"]] == ["pending", "launched", "failed"]
    sh = c.get(f"/api/runs/{run_id}/tasks/{futures['sh'].tid}").json()
    assert sh["tries"][0]["task_exit_code"] == 2
    assert sh["stdout"]["head"].strip() == "hello from the task"
    assert c.get(f"/api/runs/{run_id}/tasks/99999").status_code == 404


def test_workers_page_and_static_files(client):
    c, run_id, _ = client
    body = c.get(f"/api/runs/{run_id}/workers").json()
    assert len(body["tries"]) == 33 and body["nodes"] == [] and body["blocks"] == []
    page = c.get("/").text
    assert "/static/app.js" in page and "http" not in page.split("<body>")[1].replace("http://www.w3.org", "")
    for name in os.listdir(os.path.join(os.path.dirname(create_app.__code__.co_filename), "static")):
        text = c.get(f"/static/{name}").text
        assert "cdn" not in text.lower() and "https://" not in text, f"{name} loads something from outside"


def test_metrics(client):
    c, run_id, _ = client
    text = c.get("/metrics").text
    assert f'flowlib_tasks{{app="work",run_id="{run_id}",state="exec_done"}} 30.0' in text
    assert f'flowlib_tasks_failed_total{{run_id="{run_id}"}} 3.0' in text
    assert f'flowlib_tasks_submitted_total{{run_id="{run_id}"}} 33.0' in text


def test_token_is_required_when_set(store):
    url, run_id, _ = store
    with serving(create_app(url, token="s3cret")) as base, httpx.Client(base_url=base, timeout=10) as c:
        assert c.get("/api/runs").status_code == 403
        assert c.get("/api/runs", params={"token": "wrong"}).status_code == 403
        assert c.get("/api/runs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        first = c.get("/", params={"token": "s3cret"})
        assert first.status_code == 200 and "flowlib_dashboard_token" in first.headers["set-cookie"]
        assert c.get("/api/runs").status_code == 200  # the cookie now
        assert c.get("/metrics").status_code == 200


def test_a_store_without_a_schema_is_refused(tmp_path):
    with pytest.raises(MonitoringError, match="no monitoring database"):
        create_app(f"sqlite:///{tmp_path / 'missing.db'}")
    (tmp_path / "empty.db").write_bytes(b"")
    with pytest.raises(MonitoringError, match="no flowlib monitoring data"):
        create_app(f"sqlite:///{tmp_path / 'empty.db'}")


@python_app
def gated(path):
    import os
    import time

    deadline = time.monotonic() + 30
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    return path


def test_live_feed_pushes_a_state_change_of_a_running_workflow(monitored, db_path, tmp_path):
    gate = tmp_path / "go"
    with flowlib.load(monitored(MonitoringHub(flush_period=0.1))) as dfk:
        fut = gated(str(gate))
        dfk.events.flush()
        app = create_app(f"sqlite:///{db_path}")
        received: list[dict] = []
        with serving(app) as base, httpx.Client(timeout=10) as http:
            with http.stream("GET", f"{base}/api/runs/{dfk.run_id}/events", params={"after": 0}) as stream:
                lines = stream.iter_lines()
                assert next(lines) == "event: hello"
                released = None
                for line in lines:
                    if line.startswith("data: ["):
                        received += json.loads(line[6:])
                        if released is None and any(r["task_status_name"] == "launched" for r in received):
                            released = time.monotonic()
                            gate.write_text("")
                        if any(r["task_status_name"] == "exec_done" for r in received):
                            break
                arrived = time.monotonic()
        assert fut.result() == str(gate)
    states = [r["task_status_name"] for r in received if r["task_id"] == fut.tid]
    assert states == ["pending", "launched", "exec_done"]
    assert arrived - released < 3  # typically 0.3 s: one flush (0.1 s) and one poll (0.2 s)


def test_cli_serves_with_a_token_and_stops(store, tmp_path):
    import subprocess
    import sys

    url, run_id, _ = store
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowlib", "dashboard", "--db", url, "--port", "0", "--token", "tok123"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "?token=tok123" in line, line
        address = line.split(" at ")[1].strip().split("?")[0]
        assert address.startswith("http://127.0.0.1:")
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.get(address + "api/runs", timeout=5)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "the dashboard never answered"
                time.sleep(0.05)
        assert r.status_code == 403
        r = httpx.get(address + "api/runs", params={"token": "tok123"}, timeout=5)
        assert r.json()["runs"][0]["run_id"] == run_id
    finally:
        proc.terminate()
        proc.wait(20)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def test_cli_errors_and_token_choice(tmp_path, capsys):
    from flowlib.cli.main import choose_token, database_url, main

    assert main(["dashboard", "--db", str(tmp_path / "nothing.db"), "--port", "0"]) == 1
    assert "no monitoring database" in capsys.readouterr().err
    assert choose_token("127.0.0.1", None) is None and choose_token("::1", None) is None
    assert choose_token("localhost", "x") == "x"
    generated = choose_token("0.0.0.0", None)
    assert generated is not None and len(generated) >= 24
    assert database_url("a.db") == "sqlite:///" + os.path.abspath("a.db")
    assert database_url("postgresql+psycopg://h/db") == "postgresql+psycopg://h/db"
