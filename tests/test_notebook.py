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


def _cell(source: str, raises: bool = False) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    if raises:
        cell.metadata["tags"] = ["raises-exception"]  # nbclient goes on past this cell's error
    return cell


def _error(cell: nbformat.NotebookNode) -> tuple[str, str]:
    (error,) = [out for out in cell.outputs if out.get("output_type") == "error"]
    return error.ename, error.evalue


def _stdout(cell: nbformat.NotebookNode) -> str:
    return "".join(out.text for out in cell.outputs if out.get("name") == "stdout").strip()


def test_failed_cells_do_not_leave_later_loads_failing(tmp_path: Path, kernel_name: str) -> None:
    """Cells that fail while a kernel is loaded, then cells run again, as a notebook user does."""
    work = tmp_path / "work"
    work.mkdir()
    cells = [
        _cell(
            "import flowlib\n"
            "from flowlib import python_app\n"
            "from flowlib.configs.local_threads import config\n"
            "from flowlib.configs.htex_local import fresh_config\n"
            "@python_app\n"
            "def add(a, b):\n"
            "    return a + b\n"
            "@python_app\n"
            "def boom(message):\n"
            "    raise ValueError(message)"
        ),
        _cell("dfk = flowlib.load(config)"),  # 1
        _cell("boom('a task fails').result()", raises=True),  # 2
        _cell("dfk = flowlib.load(config)", raises=True),  # 3: the load cell run again: Parsl's error
        _cell("flowlib.dfk().cleanup()\ndfk = flowlib.load(config)\nprint(add(1, 2).result())"),  # 4
        _cell("dfk.cleanup()"),  # 5
        _cell("with flowlib.load(config):\n    boom('inside with').result()", raises=True),  # 6
        _cell("with flowlib.load(config):\n    print(add(2, 3).result())"),  # 7: same Config again
        _cell(
            "hc = fresh_config(max_workers_per_node=1)\nwith flowlib.load(hc):\n    boom('htex').result()", raises=True
        ),
        _cell("with flowlib.load(hc):\n    print(add(3, 4).result())", raises=True),  # 9: a used htex Config
        _cell("with flowlib.load(fresh_config(max_workers_per_node=1)):\n    print(add(3, 4).result())"),  # 10
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nb.metadata["kernelspec"] = {"name": kernel_name, "display_name": "flowlib test kernel", "language": "python"}
    nbclient.NotebookClient(
        nb, kernel_name=kernel_name, timeout=60, startup_timeout=60, resources={"metadata": {"path": str(work)}}
    ).execute()

    assert _error(nb.cells[2]) == ("ValueError", "a task fails")
    ename, evalue = _error(nb.cells[3])
    assert ename == "ConfigurationError" and "already been loaded" in evalue
    assert "flowlib.dfk().cleanup()" in evalue and "flowlib.clear()" in evalue
    assert _stdout(nb.cells[4]) == "3"
    assert _error(nb.cells[6]) == ("ValueError", "inside with")
    assert _stdout(nb.cells[7]) == "5"
    assert _error(nb.cells[8]) == ("ValueError", "htex")
    ename, evalue = _error(nb.cells[9])
    assert ename == "ConfigurationError" and "cannot be started again" in evalue and "fresh_config()" in evalue
    assert _stdout(nb.cells[10]) == "7"
    assert sorted(p.name for p in (work / "runinfo").iterdir()) == ["000", "001", "002", "003", "004", "005"]
