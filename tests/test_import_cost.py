"""``import flowlib`` stays light: no heavy modules until they are used."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(60)

HEAVY = ["zmq", "paramiko", "sqlalchemy", "cloudpickle", "dill", "typeguard", "concurrent.futures.process",
         "flowlib.dataflow.dflow", "urllib.request", "ftplib"]  # fmt: skip


def test_import_flowlib_loads_no_heavy_module():
    code = f"import sys, flowlib; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"import flowlib imported {out}"


def test_using_an_app_loads_only_what_it_needs():
    code = (
        "import sys, flowlib\n"
        "@flowlib.python_app\n"
        "def f(): return 1\n"
        "print(','.join(m for m in ['zmq', 'paramiko', 'sqlalchemy', 'dill'] if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
