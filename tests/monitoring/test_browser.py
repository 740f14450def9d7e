"""The dashboard in a real browser: Debian's Chromium driven by Playwright (no downloaded browser).

Opens the dashboard of a workflow that is still running, sees a task change state
live (no reload), filters the task table, opens a failed task and reads its
traceback. Screenshots go to $FLOWLIB_SCREENSHOTS when set (docs/images/monitoring
holds the ones in the documentation), else to the test's temporary directory.
"""

from __future__ import annotations

import os

import pytest

import flowlib
from flowlib.app.app import python_app
from flowlib.monitoring import MonitoringHub
from flowlib.monitoring.dashboard.app import create_app

from .serve import serving

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"


def _chromium_installed() -> bool:
    return os.access(CHROMIUM, os.X_OK)


@pytest.fixture
def shots(tmp_path) -> str:
    """Where screenshots go: $FLOWLIB_SCREENSHOTS when set, else the test's temporary directory."""
    directory = os.environ.get("FLOWLIB_SCREENSHOTS") or str(tmp_path)
    os.makedirs(directory, exist_ok=True)
    return directory


@pytest.fixture
def chromium_page():
    """A blank page of Debian's Chromium, with a 15 s default timeout; closed after the test."""
    from conftest import require_service

    require_service("chromium", _chromium_installed)
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(15_000)
            yield page
        finally:
            browser.close()


@python_app
def wait_for(path):
    import os
    import time

    deadline = time.monotonic() + 60
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    return "released"


@python_app
def quick(x):
    return x * 3


@python_app
def divide(x):
    return 1 / x


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_dashboard_in_chromium(monitored, db_path, tmp_path, shots, chromium_page):
    page = chromium_page
    gate = tmp_path / "gate"
    with flowlib.load(monitored(MonitoringHub(flush_period=0.1, workflow_name="browser-demo"))) as dfk:
        blocked = wait_for(str(gate))
        done = [quick(i) for i in range(40)]
        broken = divide(0)
        for f in [*done, broken]:
            f.exception()
        dfk.events.flush()
        with serving(create_app(f"sqlite:///{db_path}")) as base:
            run = f"{base}/#/run/{dfk.run_id}"
            page.goto(run)
            page.wait_for_selector("#counts")
            page.wait_for_selector("#live.on")
            page.screenshot(path=os.path.join(shots, "run.png"))

            page.goto(f"{run}/tasks")
            cell = page.locator(f'tr[data-task-id="{blocked.tid}"] .state-cell')
            playwright_api.expect(cell).to_have_text("launched")
            page.evaluate("window.__same_page = true")
            gate.write_text("go")  # the task finishes; the open page must show it without a reload
            assert blocked.result(timeout=30) == "released"
            playwright_api.expect(cell).to_have_text("exec_done", timeout=5_000)
            assert page.evaluate("window.__same_page === true")
            page.screenshot(path=os.path.join(shots, "tasks.png"))

            page.select_option("#f-state", "failed")
            page.click("#f-apply")
            rows = page.locator("#tasks tbody tr")
            playwright_api.expect(rows).to_have_count(1)
            playwright_api.expect(rows.first).to_contain_text("divide")
            playwright_api.expect(page.locator("#total")).to_contain_text("1 tasks")

            rows.first.locator("a").first.click()
            traceback = page.locator("pre.traceback").first
            playwright_api.expect(traceback).to_contain_text("ZeroDivisionError")
            playwright_api.expect(traceback).to_contain_text("return 1 / x")
            playwright_api.expect(page.locator("#tries")).to_contain_text("builtins.ZeroDivisionError")
            page.screenshot(path=os.path.join(shots, "task.png"), full_page=True)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_dependency_graph_in_chromium(monitored, db_path, tmp_path, shots, chromium_page):
    page = chromium_page
    gate = tmp_path / "gate"
    with flowlib.load(monitored(MonitoringHub(flush_period=0.1, workflow_name="graph-demo"))) as dfk:
        blocked = wait_for(str(gate))
        after = [quick(blocked) for _ in range(3)]
        dfk.events.flush()
        with serving(create_app(f"sqlite:///{db_path}")) as base:
            page.goto(f"{base}/#/run/{dfk.run_id}/graph")
            page.wait_for_selector("#live.on")
            playwright_api.expect(page.locator("#graph-note")).to_contain_text("showing 4 of 4 tasks, 3 dependencies")
            node = page.locator(f'#graph g[data-task-id="{blocked.tid}"]')
            playwright_api.expect(node).to_have_class("node state-launched")
            page.evaluate("window.__same_page = true")
            gate.write_text("go")
            assert [f.result(timeout=30) for f in after] == ["releasedreleasedreleased"] * 3
            playwright_api.expect(node).to_have_class("node state-exec_done", timeout=5_000)
            child = page.locator(f'#graph g[data-task-id="{after[0].tid}"]')
            playwright_api.expect(child).to_have_class("node state-exec_done", timeout=5_000)
            assert page.evaluate("window.__same_page === true")
            page.screenshot(path=os.path.join(shots, "graph.png"))
            child.click()
            playwright_api.expect(page.locator("#task-info")).to_contain_text(f"{blocked.tid}")
            playwright_api.expect(page.locator("h1")).to_contain_text(f"Task {after[0].tid}")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_resource_plots_in_chromium(monitored, db_path, tmp_path, shots, chromium_page):
    from conftest import try_assert

    from flowlib.executors import HighThroughputExecutor
    from flowlib.providers import LocalProvider

    from .test_htex_resources import ALLOCATION, burn

    page = chromium_page
    stop = tmp_path / "stop"
    htex = HighThroughputExecutor(
        label="htex", address="127.0.0.1", max_workers_per_node=1, provider=LocalProvider(init_blocks=1, max_blocks=1)
    )
    hub = MonitoringHub(flush_period=0.05, resource_monitoring_interval=0.2, workflow_name="resources-demo")
    with flowlib.load(monitored(hub, executors=[htex])) as dfk:
        hot = burn(str(stop), ALLOCATION)
        import sqlite3

        def samples() -> int:
            with sqlite3.connect(db_path) as conn:
                return conn.execute("SELECT count(*) FROM resource WHERE task_id = ?", (hot.tid,)).fetchone()[0]

        try:
            try_assert(lambda: samples() >= 5, timeout=40, message="no resource samples")
        finally:
            stop.write_text("stop")
        assert hot.result(timeout=30) == ALLOCATION
        run_id = dfk.run_id
    with serving(create_app(f"sqlite:///{db_path}")) as base:
        page.goto(f"{base}/#/run/{run_id}")
        page.click("nav a:has-text('resources')")
        cpu = page.locator("#resource-cpu polyline")
        playwright_api.expect(cpu).to_have_count(1)
        points = cpu.first.get_attribute("points") or ""
        assert len(points.split()) >= 2, points
        playwright_api.expect(page.locator("#resource-rss polyline")).to_have_count(1)
        page.screenshot(path=os.path.join(shots, "resources.png"))
        page.goto(f"{base}/#/run/{run_id}/task/{hot.tid}")
        playwright_api.expect(page.locator("#try-resources")).to_contain_text("MiB")
        playwright_api.expect(page.locator("#task-rss polyline")).to_have_count(1)
