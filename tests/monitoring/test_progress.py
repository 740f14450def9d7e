"""flowlib.progress: counts per app from the event API; a terminal (tmux) and a Jupyter kernel (nbclient)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import flowlib
from flowlib.app.app import python_app
from flowlib.config import Config
from flowlib.executors.threads import ThreadPoolExecutor


@python_app
def gated(path, x):
    import os
    import time

    deadline = time.monotonic() + 60
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    return x


@python_app
def fail(x):
    raise ValueError(x)


@pytest.fixture
def kernel(tmp_path):
    dfk = flowlib.load(Config(run_dir=str(tmp_path / "runinfo"), executors=[ThreadPoolExecutor(max_threads=32)]))
    yield dfk
    if not dfk.cleanup_called:
        dfk.cleanup()
    flowlib.clear()


def test_counts_per_app_with_failures_and_blocking(kernel, tmp_path):
    gate = tmp_path / "gate"
    gate.write_text("")
    done_before = fail(-1)
    done_before.exception()
    futures = [gated(str(gate), i) for i in range(20)] + [fail(i) for i in range(3)] + [done_before]
    out = io.StringIO()
    bar = flowlib.progress(futures, file=out)  # a terminal: waits
    assert bar.finished
    assert bar.counts() == {"fail": (4, 4, 4), "gated": (20, 0, 20)}
    text = out.getvalue()
    assert "gated" in text and "20/20" in text and "failed=4" in text


def test_non_blocking_follows_the_whole_kernel_including_later_tasks(kernel, tmp_path):
    gate = tmp_path / "gate"
    first = [gated(str(gate), i) for i in range(5)]
    start = time.monotonic()
    bar = flowlib.progress(block=False, file=io.StringIO())
    assert time.monotonic() - start < 1
    later = [gated(str(gate), i) for i in range(5)] + [fail(0)]
    later[-1].exception()
    kernel.events.flush()
    assert bar.counts() == {"fail": (1, 1, 1), "gated": (0, 0, 10)}
    assert not bar.wait(timeout=0.05)
    gate.write_text("")
    assert [f.result() for f in first + later[:-1]] == [0, 1, 2, 3, 4] * 2
    assert bar.wait(timeout=10)
    assert bar.counts()["gated"] == (10, 0, 10)
    bar.close()
    bar.close()  # twice is harmless


def test_progress_refuses_other_futures(kernel):
    from concurrent.futures import Future

    with pytest.raises(TypeError, match="AppFutures"):
        flowlib.progress([Future()])


def test_progress_without_a_kernel():
    from flowlib.errors import NoDataFlowKernelError

    with pytest.raises(NoDataFlowKernelError):
        flowlib.progress()


# ------------------------------------------------------------------ a real terminal

_SCRIPT = """
import os, sys
import flowlib
from flowlib.config import Config
from flowlib.executors.threads import ThreadPoolExecutor
sys.path.insert(0, {tests!r})
from monitoring.test_progress import gated, fail
gate = {gate!r}
with flowlib.load(Config(run_dir={run_dir!r}, executors=[ThreadPoolExecutor(max_threads=48)])):
    futures = [gated(gate, i) for i in range(40)] + [fail(i) for i in range(2)]
    bar = flowlib.progress(futures)
    print("COUNTS", bar.counts(), flush=True)
open({finished!r}, "w").close()
"""


def _tmux_installed() -> bool:
    return shutil.which("tmux") is not None


@pytest.mark.timeout(90)
def test_bars_in_a_terminal_under_tmux(tmp_path):
    from conftest import require_service

    require_service("tmux", _tmux_installed)
    gate, finished = tmp_path / "gate", tmp_path / "finished"
    script = tmp_path / "workflow.py"
    tests = str(Path(__file__).resolve().parents[1])
    script.write_text(
        _SCRIPT.format(tests=tests, gate=str(gate), run_dir=str(tmp_path / "runinfo"), finished=str(finished))
    )
    socket_name = f"flowlib-test-{os.getpid()}"
    tmux = ["tmux", "-L", socket_name, "-f", "/dev/null"]
    env = {**os.environ, "TERM": "xterm-256color"}
    subprocess.run([*tmux, "new-session", "-d", "-s", "wf", "-x", "150", "-y", "20",
                    f"{sys.executable} {script}; sleep 60"], check=True, env=env, timeout=30)  # fmt: skip

    def screen() -> str:
        return subprocess.run([*tmux, "capture-pane", "-p", "-t", "wf"], capture_output=True, text=True,
                              timeout=30).stdout  # fmt: skip

    def wait_for(check, what):
        deadline = time.monotonic() + 40
        while not check(screen()):
            assert time.monotonic() < deadline, f"never saw {what}; the screen:\n{screen()}"
            time.sleep(0.05)

    try:
        wait_for(lambda s: "gated" in s and "0/40" in s and "fail" in s and "failed=2" in s, "the bars")
        gate.write_text("")
        wait_for(lambda s: "40/40" in s and "COUNTS" in s, "the finished bars")
        final = screen()
        assert "100%" in final and "{'fail': (2, 2, 2), 'gated': (40, 0, 40)}" in final
        deadline = time.monotonic() + 30
        while not finished.exists():
            assert time.monotonic() < deadline, "the workflow script did not finish"
            time.sleep(0.05)
    finally:
        gate.write_text("")
        subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=30)


# ------------------------------------------------------------------ a real Jupyter kernel


def test_widget_in_a_notebook_does_not_block(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipywidgets")
    name = "flowlib-progress-test"
    prefix = tmp_path / "jupyter-prefix"
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--prefix", str(prefix), "--name", name],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    gate = tmp_path / "gate"
    cells = [
        f"""\
import os, time, flowlib
from flowlib.config import Config
from flowlib.executors.threads import ThreadPoolExecutor
from flowlib import python_app
dfk = flowlib.load(Config(run_dir={str(tmp_path / "runinfo")!r}, executors=[ThreadPoolExecutor(max_threads=16)]))

@python_app
def wait_then(x, gate={str(gate)!r}):
    import os, time
    deadline = time.monotonic() + 60
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)
    if x == 3:
        raise ValueError(x)
    return x""",
        """\
futures = [wait_then(i) for i in range(12)]
start = time.monotonic()
bar = flowlib.progress(futures)
took = time.monotonic() - start
assert took < 2 and not bar.finished, (took, bar.counts())
print("RETURNED", bar.counts())""",
        f"""\
open({str(gate)!r}, "w").close()
assert bar.wait(30)
print("FINAL", bar.counts())
dfk.cleanup()
flowlib.clear()""",
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": name, "display_name": "flowlib progress test", "language": "python"}
    nbclient.NotebookClient(nb, kernel_name=name, timeout=60, startup_timeout=60,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()  # fmt: skip
    outputs = nb.cells[1].outputs
    widget = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widget, f"no widget displayed; outputs: {outputs}"
    text = "".join(o.get("text", "") for o in outputs)
    assert "RETURNED {'wait_then': (0, 0, 12)}" in text
    final = "".join(o.get("text", "") for o in nb.cells[2].outputs)
    assert "FINAL {'wait_then': (12, 1, 12)}" in final
