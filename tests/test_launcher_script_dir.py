"""Parsl's fourth launcher argument, ``script_dir``, and providers calling custom launchers.

Every flowlib launcher takes ``script_dir`` positionally or by keyword and
produces the same text as without it; providers pass it to launchers that take
it and still call three-argument custom launchers with three arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import try_assert

from flowlib.jobs.states import JobState
from flowlib.launchers import (
    AprunLauncher,
    GnuParallelLauncher,
    JsrunLauncher,
    Launcher,
    MpiExecLauncher,
    MpiRunLauncher,
    SimpleLauncher,
    SingleNodeLauncher,
    SrunLauncher,
    SrunMPILauncher,
    WrappedLauncher,
)
from flowlib.launchers.base import call_launcher
from flowlib.providers import LocalProvider

pytestmark = pytest.mark.timeout(30)

ALL: list[Launcher] = [
    AprunLauncher(),
    GnuParallelLauncher(),
    JsrunLauncher(),
    MpiExecLauncher(),
    MpiRunLauncher(),
    SimpleLauncher(),
    SingleNodeLauncher(),
    SrunLauncher(),
    SrunMPILauncher(),
    WrappedLauncher("env A=1"),
]


@pytest.mark.parametrize("launcher", ALL, ids=lambda launcher: type(launcher).__name__)
def test_script_dir_positional_and_keyword(launcher: Launcher, tmp_path: Path) -> None:
    plain = launcher("echo hi", 1, 1)
    assert launcher("echo hi", 1, 1, str(tmp_path)) == plain
    assert launcher("echo hi", 1, 1, script_dir=str(tmp_path)) == plain
    assert launcher(command="echo hi", tasks_per_node=1, nodes_per_block=1, script_dir="") == plain


@pytest.mark.parametrize("launcher", ALL, ids=lambda launcher: type(launcher).__name__)
def test_script_dir_must_be_a_string(launcher: Launcher) -> None:
    with pytest.raises(TypeError, match="'script_dir' must be str, got int"):
        launcher("echo hi", 1, 1, 42)  # type: ignore[arg-type]


class Recorder:
    """Collects the arguments custom launchers were called with."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []


class ThreeArguments(Launcher):
    def __init__(self, seen: Recorder) -> None:
        super().__init__()
        self.seen = seen

    def __call__(self, command: str, tasks_per_node: int, nodes_per_block: int) -> str:  # type: ignore[override]
        self.seen.calls.append((command, tasks_per_node, nodes_per_block))
        return command


class ParslStyle(Launcher):
    """A launcher written against Parsl's contract: script_dir required, no default."""

    def __init__(self, seen: Recorder) -> None:
        super().__init__()
        self.seen = seen

    def __call__(self, command: str, tasks_per_node: int, nodes_per_block: int, script_dir: str) -> str:  # type: ignore[override]
        self.seen.calls.append((command, tasks_per_node, nodes_per_block, script_dir))
        return command


def test_call_launcher_adapts_to_the_signature() -> None:
    seen = Recorder()
    assert call_launcher(ThreeArguments(seen), "a", 2, 3, "/d") == "a"
    assert call_launcher(ParslStyle(seen), "b", 2, 3, "/d") == "b"
    assert call_launcher(ParslStyle(seen), "c", 1, 1, None) == "c"

    def keyword_only(command: str, tasks_per_node: int, nodes_per_block: int, *, script_dir: str) -> str:
        seen.calls.append(("kw", script_dir))
        return command

    def var_args(*args: Any) -> str:
        seen.calls.append(("var", *args))
        return str(args[0])

    assert call_launcher(keyword_only, "d", 1, 1, "/k") == "d"
    assert call_launcher(var_args, "e", 1, 1, "/v") == "e"
    assert call_launcher(lambda c, t, n: c.upper(), "f", 1, 1, "/x") == "F"
    assert seen.calls == [
        ("a", 2, 3),
        ("b", 2, 3, "/d"),
        ("c", 1, 1, ""),
        ("kw", "/k"),
        ("var", "e", 1, 1, "/v"),
    ]


def wait_done(p: LocalProvider, job: str) -> None:
    try_assert(lambda: p.status([job])[0].terminal, timeout=20, message=f"block {job} did not finish")
    (status,) = p.status([job])
    assert status.state is JobState.COMPLETED, status


@pytest.mark.parametrize("kind", [ThreeArguments, ParslStyle])
def test_provider_runs_custom_launchers_of_both_shapes(kind: type, tmp_path: Path) -> None:
    seen = Recorder()
    p = LocalProvider(launcher=kind(seen))
    p.script_dir = str(tmp_path / "scripts")
    marker = tmp_path / "ran"
    job = p.submit(f"touch {marker}", 1)
    wait_done(p, job)
    assert marker.exists()
    (call,) = seen.calls
    assert call[:3] == (f"touch {marker}", 1, 1)
    if kind is ParslStyle:
        assert Path(call[3]).is_dir() and Path(call[3]).resolve() == (tmp_path / "scripts").resolve()
