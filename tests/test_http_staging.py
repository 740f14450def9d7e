"""HTTP staging against a real http.server on 127.0.0.1; FTP against a scripted ftplib double."""

from __future__ import annotations

import ftplib
import functools
import http.server
import os
import pathlib
import socket
import sys
import threading
import types
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import cloudpickle
import pytest

from flowlib.app.futures import DataFuture
from flowlib.data_provider.data_manager import DataManager
from flowlib.data_provider.files import File
from flowlib.data_provider.ftp import FTPInTaskStaging, FTPSeparateTaskStaging, download_ftp
from flowlib.data_provider.http import (
    HTTPInTaskStaging,
    HTTPSeparateTaskStaging,
    download_http,
)
from flowlib.data_provider.staging import StagingError

pytestmark = pytest.mark.timeout(30)


@dataclass
class FakeExecutor:
    storage_access: Any = None
    working_dir: str | None = None


@dataclass
class FakeDFK:
    executors: dict[str, Any] = field(default_factory=dict)


def make_dm(storage: Any, working_dir: pathlib.Path) -> DataManager:
    return DataManager(FakeDFK({"ex": FakeExecutor(storage, str(working_dir))}))


def read_input(inputs: Any = ()) -> bytes:
    with open(inputs[0], "rb") as fh:
        return fh.read()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = False  # server_close() then joins the request threads


@dataclass
class Served:
    base: str
    root: pathlib.Path


@pytest.fixture
def served(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """A static file server on an ephemeral loopback port, serving ``tmp_path/www``."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="test-http-server")
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{server.server_address[1]}", root)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def staged_files(directory: pathlib.Path) -> list[str]:
    if not directory.exists():
        return []
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


# ---------------------------------------------------------------- download_http


def test_download(served: Served, tmp_path: pathlib.Path) -> None:
    data = os.urandom(300_000)
    (served.root / "blob.bin").write_bytes(data)
    dest = tmp_path / "out" / "blob.bin"
    download_http(f"{served.base}/blob.bin", str(dest))
    assert dest.read_bytes() == data
    assert os.listdir(dest.parent) == ["blob.bin"]


def test_404_names_url_and_leaves_nothing(served: Served, tmp_path: pathlib.Path) -> None:
    url = f"{served.base}/missing.txt"
    dest = tmp_path / "out" / "missing.txt"
    with pytest.raises(StagingError, match="404") as info:
        download_http(url, str(dest))
    assert info.value.url == url
    assert url in str(info.value)
    assert staged_files(tmp_path / "out") == []
    cloudpickle.loads(cloudpickle.dumps(info.value))  # travels back from a worker


def test_unreachable_server(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once the socket is closed
    url = f"http://127.0.0.1:{port}/x"
    with pytest.raises(StagingError, match="could not reach") as info:
        download_http(url, str(tmp_path / "x"), timeout=5)
    assert info.value.url == url


# ---------------------------------------------------------------- in-task staging


def test_in_task_staging(served: Served, tmp_path: pathlib.Path) -> None:
    (served.root / "data.csv").write_text("a,b\n1,2\n")
    wd = tmp_path / "wd"
    dm = make_dm([HTTPInTaskStaging()], wd)
    f = File(f"{served.base}/data.csv")
    new_input, func = dm.optionally_stage_in(f, read_input, "ex")
    assert new_input is not f and new_input.url == f.url and func is not read_input
    assert func.__name__ == "read_input"
    # As on a remote worker: wrapper and arguments pickled separately.
    remote_func = cloudpickle.loads(cloudpickle.dumps(func))
    remote_inputs = cloudpickle.loads(cloudpickle.dumps([new_input]))
    assert remote_func(inputs=remote_inputs) == b"a,b\n1,2\n"
    assert remote_inputs[0].filepath.startswith(str(wd))
    assert remote_inputs[0].filename == "data.csv"


def test_in_task_404_fails_the_task(served: Served, tmp_path: pathlib.Path) -> None:
    dm = make_dm([HTTPInTaskStaging()], tmp_path / "wd")
    url = f"{served.base}/nope.csv"
    f = File(url)
    ran: list[bool] = []
    _, func = dm.optionally_stage_in(f, lambda inputs=(): ran.append(True), "ex")
    with pytest.raises(StagingError, match="404") as info:
        func(inputs=[f])
    assert info.value.url == url
    assert ran == []
    assert staged_files(tmp_path / "wd") == []


def test_plugins_validate_timeout() -> None:
    with pytest.raises(TypeError, match="timeout"):
        HTTPInTaskStaging(timeout="10")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        HTTPSeparateTaskStaging(timeout=0)
    assert HTTPInTaskStaging().can_stage_in(File("https://h/x"))
    assert not HTTPInTaskStaging().can_stage_out(File("https://h/x"))
    assert not HTTPSeparateTaskStaging().can_stage_in(File("ftp://h/x"))


# ---------------------------------------------------------------- separate-task staging


class _FakePythonApp:
    """Stands in for flowlib.app.python.PythonApp: waits for future kwargs, runs in a pool."""

    pool: ThreadPoolExecutor
    made: list[tuple[Any, list[str]]] = []

    def __init__(self, func: Callable[..., Any], executors: list[str], data_flow_kernel: Any):
        self.func = func
        _FakePythonApp.made.append((func, executors))

    def __call__(self, *args: Any, **kwargs: Any) -> Future[Any]:
        def run() -> Any:
            resolved = {k: v.result() if isinstance(v, Future) else v for k, v in kwargs.items()}
            return self.func(*args, **resolved)

        return self.pool.submit(run)


@pytest.fixture
def fake_apps(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_FakePythonApp]]:
    module = types.ModuleType("flowlib.app.python")
    module.PythonApp = _FakePythonApp  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "flowlib.app.python", module)
    _FakePythonApp.made = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        _FakePythonApp.pool = pool
        yield _FakePythonApp


def test_separate_task_staging(served: Served, tmp_path: pathlib.Path, fake_apps: type[_FakePythonApp]) -> None:
    (served.root / "in.txt").write_text("downloaded")
    wd = tmp_path / "wd"
    dm = make_dm([HTTPSeparateTaskStaging()], wd)
    f = File(f"{served.base}/in.txt")
    new_input, func = dm.optionally_stage_in(f, read_input, "ex")
    assert func is read_input
    assert isinstance(new_input, DataFuture) and new_input.file_obj.url == f.url
    assert fake_apps.made[0][1] == ["ex"]  # the transfer runs on the app's executor
    staged = new_input.result(timeout=10)
    assert staged is new_input.file_obj and staged.filepath.startswith(str(wd))
    assert read_input(inputs=[staged]) == b"downloaded"
    with pytest.raises(ValueError, match="No local_path set"):
        f.filepath  # noqa: B018 - the caller's File is not the task's copy


def test_separate_task_waits_for_parent(
    served: Served, tmp_path: pathlib.Path, fake_apps: type[_FakePythonApp]
) -> None:
    (served.root / "late.txt").write_text("late")
    dm = make_dm([HTTPSeparateTaskStaging()], tmp_path / "wd")
    f = File(f"{served.base}/late.txt")
    parent: Future[Any] = Future()
    upstream = DataFuture(parent, f)
    staged, _ = dm.optionally_stage_in(upstream, read_input, "ex")
    assert isinstance(staged, DataFuture) and staged is not upstream
    assert not staged.done()
    parent.set_result(None)
    copy = staged.result(timeout=10)
    assert copy is not f and copy.url == f.url
    assert pathlib.Path(copy.filepath).read_text() == "late"


def test_separate_task_failed_parent(served: Served, tmp_path: pathlib.Path, fake_apps: type[_FakePythonApp]) -> None:
    dm = make_dm([HTTPSeparateTaskStaging()], tmp_path / "wd")
    parent: Future[Any] = Future()
    staged, _ = dm.optionally_stage_in(DataFuture(parent, File(f"{served.base}/x")), read_input, "ex")
    err = RuntimeError("producer failed")
    parent.set_exception(err)
    assert staged.exception(timeout=10) is err


def test_separate_task_404(served: Served, tmp_path: pathlib.Path, fake_apps: type[_FakePythonApp]) -> None:
    dm = make_dm([HTTPSeparateTaskStaging()], tmp_path / "wd")
    url = f"{served.base}/absent.bin"
    staged, _ = dm.optionally_stage_in(File(url), read_input, "ex")
    exc = staged.exception(timeout=10)
    assert isinstance(exc, StagingError) and exc.url == url


def test_http_through_the_kernel(served: Served, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flowlib = pytest.importorskip("flowlib")
    config_mod = pytest.importorskip("flowlib.config")
    threads = pytest.importorskip("flowlib.executors.threads")
    monkeypatch.chdir(tmp_path)
    (served.root / "k.txt").write_text("via kernel")
    config = config_mod.Config(executors=[threads.ThreadPoolExecutor(label="local")], run_dir=str(tmp_path / "runinfo"))
    with flowlib.load(config):

        @flowlib.python_app
        def cat(inputs: Any = ()) -> str:
            with open(inputs[0]) as fh:
                return fh.read()

        assert cat(inputs=[File(f"{served.base}/k.txt")]).result(timeout=20) == "via kernel"
        # The download is a task of its own; the app fails with a dependency error on it.
        failed = cat(inputs=[File(f"{served.base}/none.txt")])
        exc = failed.exception(timeout=20)
        causes = [cause for cause, _ in getattr(exc, "dependent_exceptions_tids", [])]
        assert len(causes) == 1 and isinstance(causes[0], StagingError), exc
        assert "404" in str(causes[0])


# ---------------------------------------------------------------- FTP (scripted ftplib double)


class _FakeFTP:
    """Replays an FTP server with one file; records the session."""

    files = {"/pub/data": {"x.bin": b"ftp bytes"}}
    log: list[tuple[Any, ...]] = []

    def __init__(self, timeout: float | None = None) -> None:
        self.log.append(("init", timeout))
        self.cwd_path = "/"

    def __enter__(self) -> _FakeFTP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.log.append(("quit",))

    def connect(self, host: str, port: int) -> None:
        self.log.append(("connect", host, port))

    def login(self, user: str, password: str) -> None:
        self.log.append(("login", user, password))

    def cwd(self, path: str) -> None:
        if path not in self.files:
            raise ftplib.error_perm(f"550 {path}: No such directory")
        self.cwd_path = path

    def retrbinary(self, cmd: str, callback: Callable[[bytes], Any]) -> None:
        name = cmd.removeprefix("RETR ")
        data = self.files.get(self.cwd_path, {}).get(name)
        if data is None:
            raise ftplib.error_perm(f"550 {name}: No such file")
        callback(data[:4])
        callback(data[4:])


@pytest.fixture
def fake_ftp(monkeypatch: pytest.MonkeyPatch) -> type[_FakeFTP]:
    monkeypatch.setattr(ftplib, "FTP", _FakeFTP)
    _FakeFTP.log = []
    return _FakeFTP


def test_ftp_download(fake_ftp: type[_FakeFTP], tmp_path: pathlib.Path) -> None:
    dest = tmp_path / "x.bin"
    download_ftp("ftp://127.0.0.1:2121/pub/data/x.bin", str(dest), timeout=7)
    assert dest.read_bytes() == b"ftp bytes"
    assert ("connect", "127.0.0.1", 2121) in fake_ftp.log
    assert ("login", "anonymous", "") in fake_ftp.log
    assert ("init", 7) in fake_ftp.log


def test_ftp_credentials(fake_ftp: type[_FakeFTP], tmp_path: pathlib.Path) -> None:
    download_ftp("ftp://alice:s%40cret@127.0.0.1/pub/data/x.bin", str(tmp_path / "x"))
    assert ("login", "alice", "s@cret") in fake_ftp.log
    assert ("connect", "127.0.0.1", 21) in fake_ftp.log


def test_ftp_missing_file(fake_ftp: type[_FakeFTP], tmp_path: pathlib.Path) -> None:
    url = "ftp://127.0.0.1/pub/data/none.bin"
    with pytest.raises(StagingError, match="550") as info:
        download_ftp(url, str(tmp_path / "none.bin"))
    assert info.value.url == url
    assert list(tmp_path.iterdir()) == []


def test_ftp_in_task(fake_ftp: type[_FakeFTP], tmp_path: pathlib.Path) -> None:
    dm = make_dm([FTPInTaskStaging()], tmp_path / "wd")
    f = File("ftp://127.0.0.1/pub/data/x.bin")
    _, func = dm.optionally_stage_in(f, read_input, "ex")
    assert func(inputs=[f]) == b"ftp bytes"
    assert f.filepath.startswith(str(tmp_path / "wd"))


def test_ftp_separate_task(fake_ftp: type[_FakeFTP], fake_apps: type[_FakePythonApp], tmp_path: pathlib.Path) -> None:
    dm = make_dm([FTPSeparateTaskStaging()], tmp_path / "wd")
    f = File("ftp://127.0.0.1/pub/data/x.bin")
    staged, _ = dm.optionally_stage_in(f, read_input, "ex")
    copy = staged.result(timeout=10)
    assert copy.url == f.url
    assert read_input(inputs=[copy]) == b"ftp bytes"
