"""DataManager plugin selection, the Staging base and helpers, rsync and globus plugins."""

from __future__ import annotations

import os
import pathlib
import stat
import sys
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from typing import Any

import cloudpickle
import pytest

from flowlib.app.futures import DataFuture
from flowlib.data_provider import data_manager as dm_module
from flowlib.data_provider.data_manager import DataManager, default_staging
from flowlib.data_provider.file_noop import NoOpFileStaging
from flowlib.data_provider.files import File
from flowlib.data_provider.ftp import FTPSeparateTaskStaging
from flowlib.data_provider.globus import GlobusStaging
from flowlib.data_provider.http import HTTPSeparateTaskStaging
from flowlib.data_provider.rsync import RSyncStaging
from flowlib.data_provider.staging import (
    Staging,
    StagingError,
    StagingWrapper,
    gate_on,
    local_path_for,
    set_local_path,
    write_atomically,
)
from flowlib.data_provider.zip import ZipFileStaging
from flowlib.errors import OptionalModuleMissing

pytestmark = pytest.mark.timeout(30)


@dataclass
class FakeExecutor:
    storage_access: list[Staging] | None = None
    working_dir: str | None = None


@dataclass
class FakeDFK:
    executors: dict[str, Any] = field(default_factory=dict)


def make_dm(storage: list[Staging] | None = None, working_dir: str | None = None) -> DataManager:
    return DataManager(FakeDFK({"ex": FakeExecutor(storage, working_dir)}))


def app(x: Any = None, inputs: Any = (), outputs: Any = ()) -> str:
    return "ran"


class Recorder(Staging):
    """Claims one scheme and records every call; optionally replaces input/func."""

    def __init__(self, scheme: str, *, replace_input: bool = False, wrap: bool = False) -> None:
        self.scheme = scheme
        self.replace_input = replace_input
        self.wrap = wrap
        self.calls: list[tuple[Any, ...]] = []

    def can_stage_in(self, file: File) -> bool:
        return file.scheme == self.scheme

    def can_stage_out(self, file: File) -> bool:
        return file.scheme == self.scheme

    def stage_in(self, dm: DataManager, executor: str, file: File, parent_fut: Future[Any] | None) -> DataFuture | None:
        self.calls.append(("stage_in", executor, file, parent_fut))
        if self.replace_input:
            done: Future[None] = Future()
            done.set_result(None)
            return DataFuture(done, file)
        return None

    def replace_task(
        self, dm: DataManager, executor: str, file: File, func: Callable[..., Any]
    ) -> Callable[..., Any] | None:
        self.calls.append(("replace_task", executor, file))
        return StagingWrapper(func) if self.wrap else None

    def stage_out(self, dm: DataManager, executor: str, file: File, app_fu: Future[Any]) -> Future[Any] | None:
        self.calls.append(("stage_out", executor, file, app_fu))
        return app_fu if self.replace_input else None

    def replace_task_stage_out(
        self, dm: DataManager, executor: str, file: File, func: Callable[..., Any]
    ) -> Callable[..., Any] | None:
        self.calls.append(("replace_task_stage_out", executor, file))
        return StagingWrapper(func) if self.wrap else None


# ---------------------------------------------------------------- selection


def test_default_staging_contents() -> None:
    kinds = [type(p) for p in default_staging]
    assert kinds == [
        NoOpFileStaging,
        ZipFileStaging,
        HTTPSeparateTaskStaging,
        FTPSeparateTaskStaging,
    ]


def test_staging_for_uses_default_when_none() -> None:
    assert make_dm(None).staging_for("ex") is dm_module.default_staging
    mine = [Recorder("x")]
    assert make_dm(mine).staging_for("ex") == mine


def test_staging_for_executor_without_attribute() -> None:
    dm = DataManager(FakeDFK({"bare": object()}))
    assert dm.staging_for("bare") is dm_module.default_staging


def test_unknown_executor_is_named() -> None:
    with pytest.raises(ValueError, match="'nope'"):
        make_dm().staging_for("nope")


@pytest.mark.parametrize("value", [1, "text", None, [1, 2], Future()])
def test_non_files_pass_through(value: Any) -> None:
    dm = make_dm([Recorder("file")])
    assert dm.optionally_stage_in(value, app, "ex") == (value, app)


def test_local_file_with_default_staging_is_the_tasks_own_copy() -> None:
    f = File("/tmp/in.txt")
    new_input, new_func = make_dm().optionally_stage_in(f, app, "ex")
    assert new_func is app
    assert new_input is not f and new_input.url == f.url and new_input.filepath == "/tmp/in.txt"
    new_input.local_path = "/elsewhere/in.txt"
    assert f.filepath == "/tmp/in.txt"  # the caller's File never changes


def test_first_matching_plugin_wins() -> None:
    first, second = Recorder("s3", wrap=True), Recorder("s3", wrap=True)
    skipped = Recorder("other")
    dm = make_dm([skipped, first, second])
    f = File("s3://bucket/key.txt")
    new_input, new_func = dm.optionally_stage_in(f, app, "ex")
    assert new_input is not f and new_input.url == f.url
    assert isinstance(new_func, StagingWrapper) and new_func.func is app
    assert [c[0] for c in first.calls] == ["stage_in", "replace_task"]
    assert first.calls[0] == ("stage_in", "ex", new_input, None)  # the plugin stages the task's copy
    assert second.calls == [] and skipped.calls == []


def test_stage_in_datafuture_replaces_input() -> None:
    plugin = Recorder("s3", replace_input=True)
    dm = make_dm([plugin])
    f = File("s3://bucket/key.txt")
    new_input, new_func = dm.optionally_stage_in(f, app, "ex")
    assert isinstance(new_input, DataFuture) and new_input.file_obj.url == f.url
    assert new_input.file_obj is not f
    assert new_func is app


def test_datafuture_input_stages_its_file_with_parent() -> None:
    plugin = Recorder("s3")
    dm = make_dm([plugin])
    f = File("s3://bucket/key.txt")
    upstream = DataFuture(Future(), f, tid=3)
    new_input, new_func = dm.optionally_stage_in(upstream, app, "ex")
    assert isinstance(new_input, DataFuture) and new_input.parent is upstream and new_func is app
    assert new_input.file_obj is not f and new_input.file_obj.url == f.url
    assert plugin.calls[0] == ("stage_in", "ex", new_input.file_obj, upstream)


def test_no_plugin_names_url_and_executor() -> None:
    dm = make_dm([Recorder("s3")])
    with pytest.raises(ValueError, match=r"'ex'.*'gs://b/k'|'gs://b/k'.*'ex'"):
        dm.optionally_stage_in(File("gs://b/k"), app, "ex")
    with pytest.raises(ValueError, match=r"'ex'.*'gs://b/k'|'gs://b/k'.*'ex'"):
        dm.stage_out(File("gs://b/k"), "ex", Future())
    with pytest.raises(ValueError, match=r"'ex'.*'gs://b/k'|'gs://b/k'.*'ex'"):
        dm.replace_task_stage_out(File("gs://b/k"), app, "ex")


def test_default_staging_cannot_stage_out_http() -> None:
    with pytest.raises(ValueError, match="http://h/x"):
        make_dm().replace_task_stage_out(File("http://h/x"), app, "ex")


def test_stage_out_selection() -> None:
    skipped, plugin = Recorder("other", wrap=True), Recorder("s3", wrap=True, replace_input=True)
    dm = make_dm([skipped, plugin])
    f = File("s3://b/out")
    app_fu: Future[Any] = Future()
    func = dm.replace_task_stage_out(f, app, "ex")
    assert isinstance(func, StagingWrapper)
    assert dm.stage_out(f, "ex", app_fu) is app_fu
    assert [c[0] for c in plugin.calls] == ["replace_task_stage_out", "stage_out"]
    assert skipped.calls == []


def test_stage_out_none_keeps_func() -> None:
    dm = make_dm([Recorder("s3")])
    f = File("s3://b/out")
    assert dm.replace_task_stage_out(f, app, "ex") is app
    assert dm.stage_out(f, "ex", Future()) is None


def test_parsl_style_stage_in_and_replace_task() -> None:
    plugin = Recorder("s3", replace_input=True, wrap=True)
    dm = make_dm([plugin])
    f = File("s3://b/k")
    assert isinstance(dm.stage_in(f, f, "ex"), DataFuture)
    assert isinstance(dm.replace_task(f, app, "ex"), StagingWrapper)


def test_staging_base_defaults() -> None:
    base = Staging()
    f = File("x")
    dm = make_dm()
    assert base.can_stage_in(f) is False and base.can_stage_out(f) is False
    assert base.stage_in(dm, "ex", f, None) is None
    assert base.stage_out(dm, "ex", f, Future()) is None
    assert base.replace_task(dm, "ex", f, app) is None
    assert base.replace_task_stage_out(dm, "ex", f, app) is None


def test_noop_claims_only_file_scheme() -> None:
    noop = NoOpFileStaging()
    assert noop.can_stage_in(File("a.txt")) and noop.can_stage_out(File("file:///a.txt"))
    assert not noop.can_stage_in(File("http://h/a")) and not noop.can_stage_out(File("zip:/a.zip/b"))


# ---------------------------------------------------------------- helpers


def test_wrapper_keeps_name_and_order() -> None:
    events: list[str] = []

    def work(x: int) -> int:
        """Doc of work."""
        events.append("func")
        return x * 2

    def step(tag: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        events.append(tag)

    w = StagingWrapper(work, before=lambda a, k: step("before", a, k), after=lambda a, k: step("after", a, k))
    assert w.__name__ == "work" and w.__doc__ == "Doc of work." and w.__wrapped__ is work
    assert w(21) == 42
    assert events == ["before", "func", "after"]


def test_wrapper_skips_after_on_failure() -> None:
    after_ran: list[bool] = []

    def boom() -> None:
        raise KeyError("inner")

    w = StagingWrapper(boom, after=lambda a, k: after_ran.append(True))
    with pytest.raises(KeyError, match="inner"):
        w()
    assert after_ran == []


def test_set_local_path_finds_nested_files() -> None:
    a, b, c, other = File("zip:/a.zip/m"), File("zip:/a.zip/m"), File("zip:/a.zip/m"), File("y")
    set_local_path("zip:/a.zip/m", "/l/m", (a, [other]), {"inputs": [b], "d": {"k": (c,)}})
    assert a.local_path == b.local_path == c.local_path == "/l/m"
    assert other.local_path is None  # another URL: untouched


def test_local_path_for_separates_urls() -> None:
    p1 = local_path_for(File("http://h/a/data.csv"), "/wd")
    p2 = local_path_for(File("http://h/b/data.csv"), "/wd")
    assert p1 != p2
    assert p1.startswith("/wd/") and p1.endswith("/data.csv")
    assert local_path_for(File("http://h/a/data.csv"), "/wd") == p1
    assert not local_path_for(File("http://h/x"), None).startswith("/")


def test_write_atomically_leaves_nothing_on_failure(tmp_path: pathlib.Path) -> None:
    dest = tmp_path / "sub" / "out.bin"

    def fail(out: Any) -> None:
        out.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(str(dest), fail)
    assert os.listdir(dest.parent) == []
    write_atomically(str(dest), lambda out: out.write(b"whole"))
    assert dest.read_bytes() == b"whole"
    assert os.listdir(dest.parent) == ["out.bin"]


def test_gate_follows_parent() -> None:
    assert gate_on(None) is None
    ok: Future[int] = Future()
    gate = gate_on(ok)
    assert gate is not None and not gate.done()
    ok.set_result(5)
    assert gate.result(timeout=5) is None

    bad: Future[int] = Future()
    gate = gate_on(bad)
    err = ValueError("upstream")
    bad.set_exception(err)
    assert gate is not None and gate.exception(timeout=5) is err

    cancelled: Future[int] = Future()
    gate = gate_on(cancelled)
    cancelled.cancel()
    assert gate is not None and isinstance(gate.exception(timeout=5), CancelledError)


def test_staging_error_pickles() -> None:
    err = StagingError("http://h/x", "HTTP 404")
    back = cloudpickle.loads(cloudpickle.dumps(err))
    assert (back.url, back.reason, str(back)) == (err.url, err.reason, str(err))


# ---------------------------------------------------------------- globus (a seam)


def test_globus_claims_scheme_and_validates() -> None:
    g = GlobusStaging("uuid-1", endpoint_path="/ep", local_path="/local")
    assert g.can_stage_in(File("globus://uuid-1/a.txt")) and g.can_stage_out(File("globus://u/a"))
    assert not g.can_stage_in(File("a.txt"))
    assert "uuid-1" in repr(g)
    with pytest.raises(TypeError, match="endpoint_uuid"):
        GlobusStaging(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="local_path"):
        GlobusStaging("u", local_path=3)  # type: ignore[arg-type]


def test_globus_without_sdk_raises_optional_module_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    g = GlobusStaging("uuid-1")  # built while the SDK is there; it goes away afterwards
    monkeypatch.setitem(sys.modules, "globus_sdk", None)  # makes the import fail
    with pytest.raises(OptionalModuleMissing, match=r"pip install 'flowlib\[globus\]'"):
        GlobusStaging("uuid-1")  # a missing SDK fails at construction
    dm = make_dm([g])
    f = File("globus://uuid-1/a.txt")
    with pytest.raises(OptionalModuleMissing, match="globus_sdk") as info:
        dm.optionally_stage_in(f, app, "ex")
    assert info.value.module_names == ["globus_sdk"]
    with pytest.raises(OptionalModuleMissing, match="globus-sdk"):
        dm.stage_out(f, "ex", Future())


# ---------------------------------------------------------------- rsync (fake command on PATH)

FAKE_RSYNC = """#!/bin/sh
# Test double for rsync: logs its arguments, copies "[host:]src" to "[host:]dst".
printf '%s\\n' "$*" >> "$RSYNC_LOG"
if [ -n "$RSYNC_FAIL" ]; then echo "rsync: connection refused" >&2; exit 12; fi
src="$2"; dst="$3"
case "$src" in *:*) src="${src#*:}";; esac
case "$dst" in *:*) dst="${dst#*:}";; esac
cp "$src" "$dst"
"""


@pytest.fixture
def fake_rsync(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "rsync"
    script.write_text(FAKE_RSYNC)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "rsync.log"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("RSYNC_LOG", str(log))
    monkeypatch.delenv("RSYNC_FAIL", raising=False)
    return log


def read_input(inputs: Any = ()) -> str:
    with open(inputs[0]) as fh:
        return fh.read()


def write_output(text: str, outputs: Any = ()) -> None:
    with open(outputs[0], "w") as fh:
        fh.write(text)


def test_rsync_stage_in_and_out(tmp_path: pathlib.Path, fake_rsync: pathlib.Path) -> None:
    source = tmp_path / "src" / "in.txt"
    source.parent.mkdir()
    source.write_text("payload")
    wd = tmp_path / "wd"
    dm = make_dm([RSyncStaging("submit-host"), NoOpFileStaging()], working_dir=str(wd))

    f_in = File(str(source))
    new_input, func = dm.optionally_stage_in(f_in, read_input, "ex")
    assert new_input is not f_in and new_input.url == f_in.url
    copy_of_args = cloudpickle.loads(cloudpickle.dumps([new_input]))  # as a remote worker sees them
    remote_func = cloudpickle.loads(cloudpickle.dumps(func))
    assert remote_func(inputs=copy_of_args) == "payload"
    assert copy_of_args[0].local_path.startswith(str(wd))
    assert fake_rsync.read_text().split() == [
        "--timeout=60",
        f"submit-host:{source}",
        os.path.abspath(copy_of_args[0].local_path),
    ]

    target = tmp_path / "results" / "out.txt"
    target.parent.mkdir()
    f_out = File(str(target))
    func = dm.replace_task_stage_out(f_out, write_output, "ex")
    assert f_out.filepath.startswith(str(wd))
    func("result", outputs=[f_out])
    assert target.read_text() == "result"


def test_rsync_url_with_host_is_passed_verbatim() -> None:
    r = RSyncStaging("submit-host")
    assert r.remote_spec(File("rsync://mirror.example.org/module/a.txt")) == "rsync://mirror.example.org/module/a.txt"
    assert r.remote_spec(File("rsync:/data/a.txt")) == "submit-host:/data/a.txt"
    assert RSyncStaging("").remote_spec(File("/data/a.txt")) == "/data/a.txt"
    assert not r.can_stage_in(File("http://h/a"))


def test_rsync_failure_is_staging_error(
    tmp_path: pathlib.Path, fake_rsync: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RSYNC_FAIL", "1")
    dm = make_dm([RSyncStaging("h")], working_dir=str(tmp_path))
    f = File("/data/in.txt")
    _, func = dm.optionally_stage_in(f, read_input, "ex")
    with pytest.raises(StagingError, match="connection refused") as info:
        func(inputs=[f])
    assert info.value.url == "/data/in.txt"
    assert "status 12" in str(info.value)


def test_rsync_missing_command(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no rsync here
    dm = make_dm([RSyncStaging("h")], working_dir=str(tmp_path))
    f = File("/data/in.txt")
    _, func = dm.optionally_stage_in(f, read_input, "ex")
    with pytest.raises(StagingError, match="not installed"):
        func(inputs=[f])


def test_rsync_stage_out_without_output(tmp_path: pathlib.Path, fake_rsync: pathlib.Path) -> None:
    dm = make_dm([RSyncStaging("h")], working_dir=str(tmp_path))
    f = File(str(tmp_path / "never.txt"))
    func = dm.replace_task_stage_out(f, app, "ex")
    with pytest.raises(StagingError, match="did not create"):
        func(outputs=[f])
    assert not fake_rsync.exists()


def test_rsync_validates_arguments() -> None:
    with pytest.raises(TypeError, match="hostname"):
        RSyncStaging(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="timeout"):
        RSyncStaging("h", timeout=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        RSyncStaging("h", timeout=0)
