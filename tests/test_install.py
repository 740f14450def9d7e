"""A plain ``pip install`` of this checkout (no extras) is enough for a Parsl-style HTEX workflow.

A fresh virtual environment (no system site-packages) gets ``pip install <copy of the
checkout>``, nothing else: pip resolves the core dependencies from the configured
indexes (PyPI, or the machine's mirror). A script written as for Parsl, with ``parsl``
replaced by ``flowlib``, then runs a HighThroughputExecutor on a LocalProvider with
``loopback_address="127.0.0.1"`` and with ``"::1"``, over TCP as well as with the local
fast paths. The same environment shows that an optional part whose extra is missing
fails at construction, naming the extra.

Marked slow; about 15-30 s, most of it pip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import textwrap
import venv
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[1]


def clean_env() -> dict[str, str]:
    """This process's environment without what would point a child at the checkout or this venv."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


SCRIPT = textwrap.dedent(
    """
    import sys

    import flowlib
    from flowlib.app.app import python_app
    from flowlib.config import Config
    from flowlib.executors import HighThroughputExecutor
    from flowlib.providers import LocalProvider

    assert "zmq" not in sys.modules, "import flowlib imported zmq"


    @python_app
    def square(x):
        return x * x


    loopback, unix_sockets = sys.argv[1], sys.argv[2] == "unix"
    config = Config(
        executors=[
            HighThroughputExecutor(
                label="htex_local",
                loopback_address=loopback,
                max_workers_per_node=2,
                cores_per_worker=1,
                unix_sockets=unix_sockets,
                provider=LocalProvider(init_blocks=1, max_blocks=1),
            )
        ],
        run_dir=sys.argv[3],
    )
    with flowlib.load(config):
        print(sum(f.result(timeout=60) for f in [square(i) for i in range(10)]))
    """
)

EXTRA_CHECK = textwrap.dedent(
    """
    from flowlib.errors import OptionalModuleMissing
    from flowlib.providers import KubernetesProvider
    try:
        KubernetesProvider(image="busybox")
    except OptionalModuleMissing as e:
        print(e)
    """
)


def ipv6_loopback_works() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a fresh venv into which a copy of this checkout was pip-installed without extras."""
    base = tmp_path_factory.mktemp("install")
    source = base / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    # Only the package: an in-tree build must not write build/ or *.egg-info into the checkout.
    shutil.copytree(REPO / "flowlib", source / "flowlib", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env_dir = base / "venv"
    venv.create(env_dir, with_pip=True, clear=True)
    python = env_dir / "bin" / "python"
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(source)],
        capture_output=True,
        text=True,
        timeout=180,
        env=clean_env(),
    )
    assert done.returncode == 0, f"pip install failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return python


@pytest.mark.parametrize("links", ["tcp", "unix"])
@pytest.mark.parametrize("loopback", ["127.0.0.1", "::1"])
def test_a_parsl_style_htex_script_runs_after_a_plain_install(
    installed: Path, tmp_path: Path, loopback: str, links: str
) -> None:
    if loopback == "::1" and not ipv6_loopback_works():
        pytest.skip("no IPv6 loopback on this machine")
    script = tmp_path / "workflow.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [str(installed), str(script), loopback, links, str(tmp_path / "runinfo")],
        capture_output=True,
        text=True,
        timeout=90,
        env=clean_env(),
        cwd=tmp_path,  # not the checkout: flowlib must come from the venv
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.split() == ["285"]


def test_the_installed_environment_has_only_the_core(installed: Path) -> None:
    probe = (
        "import importlib.util as u; print(*[m for m in ('zmq', 'psutil', 'paramiko', 'kubernetes') if u.find_spec(m)])"
    )
    done = subprocess.run(
        [str(installed), "-c", probe], capture_output=True, text=True, timeout=30, check=True, env=clean_env()
    )
    assert done.stdout.split() == ["zmq", "psutil"]
    where = subprocess.run(
        [str(installed), "-c", "import flowlib; print(flowlib.__file__)"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        cwd="/",
        env=clean_env(),
    )
    assert str(REPO) not in where.stdout, f"flowlib came from the checkout: {where.stdout}"
    # And an optional part whose extra is missing fails at once, saying what to install.
    extra = subprocess.run(
        [str(installed), "-c", EXTRA_CHECK], capture_output=True, text=True, timeout=30, check=True, env=clean_env()
    )
    assert "pip install 'flowlib[kubernetes]'" in extra.stdout, extra.stdout + extra.stderr
