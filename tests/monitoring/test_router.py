"""The router: every state change of a run reaches the store, off the hot path, with failures in full."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time

import pytest

import flowlib
from flowlib.app.app import bash_app, python_app
from flowlib.data_provider.data_manager import default_staging
from flowlib.data_provider.files import File
from flowlib.data_provider.staging import Staging
from flowlib.executors.threads import ThreadPoolExecutor
from flowlib.monitoring import MonitoringHub
from flowlib.monitoring.errors import MonitoringError


@python_app
def add(x, y=0):
    return x + y


@python_app
def fails(message):
    raise ValueError(message)


@bash_app
def exits(code):
    return f"exit {code}"


def test_history_tries_and_failures_are_stored(monitored, query):
    with flowlib.load(monitored(retries=1)) as dfk:
        a = add(1)
        b = add(a, 2)
        bad = fails("boom 42")
        sh = exits(3)
        dep = add(bad)
        assert b.result() == 3
        for fut in (bad, sh, dep):
            with pytest.raises(Exception):  # noqa: B017
                fut.result()
        run_id = dfk.run_id
    (wf,) = query("SELECT workflow_name, time_completed, tasks_completed_count, tasks_failed_count FROM workflow")
    assert wf[1] is not None and wf[2:] == (2, 3)
    states = dict(query("SELECT task_id, task_status_name FROM task WHERE run_id = ?", run_id))
    assert states == {a.tid: "exec_done", b.tid: "exec_done", bad.tid: "failed", sh.tid: "failed",
                      dep.tid: "dep_fail"}  # fmt: skip
    assert query("SELECT task_depends FROM task WHERE task_id = ?", b.tid) == [(str(a.tid),)]
    history = [r[0] for r in query("SELECT task_status_name FROM status WHERE task_id = ? ORDER BY timestamp", bad.tid)]
    assert history == ["pending", "launched", "fail_retryable", "launched", "failed"]
    tries = query(
        "SELECT try_id, task_exception_type, task_exception_message, task_traceback, task_try_time_launched,"
        " task_try_time_returned FROM try WHERE task_id = ? ORDER BY try_id",
        bad.tid,
    )
    assert [t[0] for t in tries] == [0, 1]
    for _, etype, message, tb, launched, returned in tries:
        assert etype == "builtins.ValueError" and message == "boom 42"
        assert "raise ValueError(message)" in tb  # the frame of the app itself
        assert launched <= returned
    (bash_try,) = query("SELECT task_exit_code FROM try WHERE task_id = ? AND try_id = 1", sh.tid)
    assert bash_try == (3,)
    (dep_try,) = query("SELECT task_failure_reason, task_exception_type FROM try WHERE task_id = ?", dep.tid)
    assert dep_try == ("dependency", "flowlib.dataflow.errors.DependencyError")
    assert query("SELECT task_fail_count FROM task WHERE task_id = ?", bad.tid) == [(2,)]


def test_runs_share_one_store(monitored, query):
    ids = []
    for _ in range(2):
        with flowlib.load(monitored()) as dfk:
            add(1).result()
            ids.append(dfk.run_id)
    assert sorted(r[0] for r in query("SELECT run_id FROM workflow")) == sorted(ids)
    assert query("SELECT count(*) FROM task") == [(2,)]


def test_the_submit_path_never_waits_for_the_database(monitored, db_path):
    """An exclusive lock held on the database stalls the router, not the workflow."""
    with flowlib.load(monitored(MonitoringHub(flush_period=0.05))) as dfk:
        add(0).result()
        blocker = sqlite3.connect(db_path, timeout=0)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            start = time.monotonic()
            futures = [add(i) for i in range(500)]
            assert [f.result() for f in futures] == list(range(500))
            assert time.monotonic() - start < 5
        finally:
            blocker.rollback()
            blocker.close()
        dfk.events.flush()
    conn = sqlite3.connect(db_path)
    try:  # the rows held back by the lock were written once it was released
        assert conn.execute("SELECT count(*) FROM task").fetchone() == (501,)
    finally:
        conn.close()


def test_a_store_that_breaks_mid_run_fails_cleanup_loudly_but_not_the_workflow(monitored, db_path):
    dfk = flowlib.load(monitored(MonitoringHub(flush_period=0.02)))
    add(1).result()
    dfk.events.flush()
    conn = sqlite3.connect(db_path)
    conn.execute("DROP TABLE status")  # every later write fails
    conn.close()
    futures = [add(i) for i in range(50)]
    assert [f.result() for f in futures] == list(range(50))
    start = time.monotonic()
    with pytest.raises(MonitoringError, match="status"):
        dfk.cleanup()
    assert time.monotonic() - start < 3
    assert dfk.cleanup_called
    flowlib.clear()


def test_overflowing_records_are_counted(monitored):
    hub = MonitoringHub(flush_period=0.02, max_queued=10)
    with flowlib.load(monitored(hub)) as dfk:
        blocker = sqlite3.connect(hub.endpoint_for(dfk.run_dir).removeprefix("sqlite:///"), timeout=0)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            assert [f.result() for f in [add(i) for i in range(200)]] == list(range(200))
            dfk.events.flush()
            deadline = time.monotonic() + 10
            while hub.dropped == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            blocker.rollback()
            blocker.close()
    assert hub.dropped > 0


def test_cleanup_with_monitoring_is_quick(monitored):
    dfk = flowlib.load(monitored())
    assert [f.result() for f in [add(i) for i in range(1000)]] == list(range(1000))
    start = time.monotonic()
    dfk.cleanup()
    assert time.monotonic() - start < 1.5
    flowlib.clear()


def test_cleanup_gives_up_on_a_stuck_store_and_counts_what_it_left(monitored, db_path):
    """A database locked for good at cleanup: no hang, and the unwritten records are counted."""
    hub = MonitoringHub(flush_period=0.02, close_timeout=1)
    dfk = flowlib.load(monitored(hub))
    blocker = sqlite3.connect(db_path, timeout=10)  # waits for a write in progress
    try:
        add(0).result()
        dfk.events.flush()
        blocker.execute("BEGIN EXCLUSIVE")
        assert [f.result() for f in [add(i) for i in range(100)]] == list(range(100))
        start = time.monotonic()
        with pytest.raises(MonitoringError, match=r"accepted no write for 1.0 s at cleanup; \d+ records"):
            dfk.cleanup()
        assert time.monotonic() - start < 8  # the store's own busy timeout is 10 s
        assert hub.dropped > 0
        assert dfk.cleanup_called
    finally:
        blocker.rollback()
        blocker.close()
        flowlib.clear()


_READER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1])
print("ready", flush=True)
while True:
    conn.execute("SELECT t.task_id, count(*) FROM task t JOIN status s USING (task_id, run_id) GROUP BY 1").fetchall()
"""


@pytest.mark.timeout(120)
def test_burst_with_readers_loses_no_record(monitored, db_path, query):
    n = 10_000
    stop = threading.Event()
    reads = []

    def reader():
        conn = sqlite3.connect(db_path)
        while not stop.is_set():
            reads.append(conn.execute("SELECT count(*) FROM status").fetchone()[0])
        conn.close()

    with flowlib.load(monitored(MonitoringHub(flush_period=0.1))) as dfk:
        readers = [threading.Thread(target=reader) for _ in range(2)]
        for t in readers:
            t.start()
        killed = subprocess.Popen([sys.executable, "-c", _READER, db_path], stdout=subprocess.PIPE, text=True)
        try:
            assert killed.stdout is not None and killed.stdout.readline().strip() == "ready"
            futures = [add(i) for i in range(n)]
            killed.kill()  # a reader killed mid-query leaves no lock behind (WAL)
            killed.wait(10)
            assert sum(f.result() for f in futures) == n * (n - 1) // 2
        finally:
            stop.set()
            for t in readers:
                t.join(10)
            if killed.poll() is None:
                killed.kill()
                killed.wait(10)
            if killed.stdout is not None:
                killed.stdout.close()
        run_id = dfk.run_id
    assert reads, "the readers never read"
    assert query("SELECT count(*) FROM status WHERE run_id = ?", run_id) == [(3 * n,)]
    assert query("SELECT count(*) FROM task WHERE run_id = ? AND task_status_name = 'exec_done'", run_id) == [(n,)]


class _PathLike:
    def __init__(self, path):
        self.path = path

    def __fspath__(self):
        return self.path


@python_app
def std_spec(stdout=None, stderr=None):
    return None


def test_stdout_and_stderr_columns_are_plain_text(monitored, query, tmp_path):
    specs = {
        "none": None,
        "str": str(tmp_path / "a.txt"),
        "tuple": (str(tmp_path / "b.txt"), "w"),
        "bytes_pathlike": _PathLike(str(tmp_path / "c.txt").encode()),
    }
    expected = {"none": "", "str": specs["str"], "tuple": specs["tuple"][0],
                "bytes_pathlike": str(tmp_path / "c.txt")}  # fmt: skip
    with flowlib.load(monitored()):
        futures = {name: std_spec(stdout=spec, stderr=spec) for name, spec in specs.items()}
        for fut in futures.values():
            fut.result()
    for name, fut in futures.items():
        rows = query("SELECT task_stdout, task_stderr FROM task WHERE task_id = ?", fut.tid)
        assert rows == [(expected[name], expected[name])], name


class _NoPathStaging(Staging):
    """Accepts ``arbitrary:`` files for stage-out and gives them no local path (writes nothing)."""

    def can_stage_out(self, file):
        return file.scheme == "arbitrary"


@python_app
def std_file(stdout=None, stderr=None):
    return type(stdout).__name__


def test_a_stream_given_as_a_file_is_recorded_by_its_url(monitored, query, tmp_path):
    threads = ThreadPoolExecutor(label="threads", storage_access=[*default_staging, _NoPathStaging()])
    local = File(f"file://{tmp_path}/out.txt")
    with flowlib.load(monitored(executors=[threads])):
        by_url = std_file(stdout=local, stderr=local)
        # a Python app writes no stream, so a scheme with no local path is fine: the app gets the File
        arbitrary = std_file(stdout=File("arbitrary:abc123"), stderr=File("arbitrary:def456"))
        assert by_url.result() == "str" and arbitrary.result() == "File"
    assert query("SELECT task_stdout, task_stderr FROM task WHERE task_id = ?", by_url.tid) == [(local.url, local.url)]
    assert query("SELECT task_stdout, task_stderr FROM task WHERE task_id = ?", arbitrary.tid) == [
        ("arbitrary:abc123", "arbitrary:def456")
    ]


@bash_app
def bash_to(stdout=None):
    return "echo hi"


def test_a_bash_app_still_needs_a_local_path_for_its_stream(monitored, tmp_path):
    threads = ThreadPoolExecutor(label="threads", storage_access=[*default_staging, _NoPathStaging()])
    with flowlib.load(monitored(executors=[threads])):
        with pytest.raises(ValueError, match="gives the app no local path"):
            bash_to(stdout=File("arbitrary:abc123"))
