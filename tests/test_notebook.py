"""A real notebook, run by a real Jupyter kernel, uses flowlib.

The notebook is built here with nbformat: its cells import flowlib, load a
thread-pool configuration, define apps in the notebook itself (so they live in
the kernel's ``__main__``), run a small map-reduce DAG and a dependency chain,
and check the answers. nbclient executes it through an ipykernel started from
this test's own Python, registered under a private kernel name in a temporary
Jupyter data directory so no user-wide kernel can be picked up by mistake.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

pytestmark = pytest.mark.timeout(120)

KERNEL_NAME = "flowlib-notebook-test"


def build_notebook(run_dir: Path) -> nbformat.NotebookNode:
    cells = [
        """\
import flowlib
from flowlib import python_app
from flowlib.config import Config
from flowlib.executors import ThreadPoolExecutor""",
        f"""\
config = Config(
    executors=[ThreadPoolExecutor(label="notebook_threads", max_threads=2)],
    run_dir={str(run_dir)!r},
)
dfk = flowlib.load(config)""",
        """\
@python_app
def square(x):
    return x * x


@python_app
def add_one(x):
    return x + 1


@python_app
def total(inputs=()):
    return sum(inputs)""",
        """\
squares = [square(i) for i in range(10)]
reduced = total(inputs=squares)
chained = add_one(add_one(square(7)))
answer = {"sum_of_squares": reduced.result(), "chain": chained.result()}
assert answer == {"sum_of_squares": 285, "chain": 51}, answer
print(json.dumps(answer))""",
        """\
dfk.cleanup()
flowlib.clear()""",
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import json")]
    nb.cells += [nbformat.v4.new_code_cell(source) for source in cells]
    nb.metadata["kernelspec"] = {
        "name": KERNEL_NAME,
        "display_name": "flowlib test kernel",
        "language": "python",
    }
    return nb


@pytest.fixture
def kernel_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Register an ipykernel for this interpreter in a private Jupyter path."""
    prefix = tmp_path / "jupyter-prefix"
    install = ["install", "--prefix", str(prefix), "--name", KERNEL_NAME]
    subprocess.run(
        [sys.executable, "-m", "ipykernel", *install],
        check=True,
        capture_output=True,
        timeout=60,
    )
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    return KERNEL_NAME


def test_notebook_runs_a_dag_on_the_thread_pool(tmp_path: Path, kernel_name: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    run_dir = tmp_path / "runinfo"
    nb = build_notebook(run_dir)

    client = nbclient.NotebookClient(
        nb,
        kernel_name=kernel_name,
        timeout=60,
        startup_timeout=60,
        resources={"metadata": {"path": str(work)}},
    )
    client.execute()

    dag_cell = nb.cells[4]
    streams = [out for out in dag_cell.outputs if out.get("name") == "stdout"]
    assert streams, f"the DAG cell printed nothing; outputs: {dag_cell.outputs}"
    answer = json.loads("".join(out.text for out in streams).strip())
    assert answer == {"sum_of_squares": 285, "chain": 51}

    # the kernel ran in the notebook's kernel, with its run directory where we said
    assert (run_dir / "000").is_dir()
    assert not (work / "runinfo").exists()
