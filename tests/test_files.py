"""File and DataFuture: attributes, paths, pickling, and how a DataFuture follows its parent."""

from __future__ import annotations

import os
import pathlib
import pickle
import subprocess
import sys
from concurrent.futures import CancelledError, Future

import cloudpickle
import pytest

from flowlib.app.futures import DataFuture
from flowlib.data_provider.files import File

pytestmark = pytest.mark.timeout(30)


# ---------------------------------------------------------------- File attributes


def test_relative_path() -> None:
    f = File("data/in.txt")
    assert (f.url, f.scheme, f.netloc, f.path, f.filename) == (
        "data/in.txt",
        "file",
        "",
        "data/in.txt",
        "in.txt",
    )
    assert f.local_path is None  # as in Parsl: set only where the file was staged
    assert f.filepath == "data/in.txt"


def test_absolute_path() -> None:
    f = File("/scratch/run/out.csv")
    assert f.scheme == "file"
    assert f.path == "/scratch/run/out.csv"
    assert f.filename == "out.csv"
    assert f.filepath == "/scratch/run/out.csv"


def test_plain_path_keeps_url_special_characters() -> None:
    f = File("runs/a#1?b;c.txt")
    assert f.scheme == "file"
    assert f.path == "runs/a#1?b;c.txt"
    assert f.filename == "a#1?b;c.txt"


def test_file_url() -> None:
    f = File("file:///tmp/test.txt")
    assert f.url == "file:///tmp/test.txt"
    assert (f.scheme, f.netloc, f.path, f.filename) == ("file", "", "/tmp/test.txt", "test.txt")
    assert f.filepath == "/tmp/test.txt"


def test_file_url_with_host() -> None:
    f = File("file://localhost/tmp/test.txt")
    assert f.netloc == "localhost"
    assert f.path == "/tmp/test.txt"


def test_http_url() -> None:
    f = File("https://example.org:8443/data/table.csv?version=2")
    assert f.scheme == "https"
    assert f.netloc == "example.org:8443"
    assert f.path == "/data/table.csv"
    assert f.filename == "table.csv"
    assert f.local_path is None


def test_unstaged_remote_filepath_names_url() -> None:
    f = File("http://example.org/x.dat")
    with pytest.raises(ValueError, match="http://example.org/x.dat"):
        f.filepath  # noqa: B018
    with pytest.raises(ValueError, match="http://example.org/x.dat"):
        os.fspath(f)


def test_staged_remote_uses_local_path() -> None:
    f = File("ftp://example.org/pub/x.dat")
    f.local_path = "/work/x.dat"
    assert f.filepath == "/work/x.dat"
    assert os.fspath(f) == "/work/x.dat"
    assert str(f) == "/work/x.dat"


def test_pathlike() -> None:
    f = File(pathlib.Path("d") / "e.txt")
    assert f.url == os.path.join("d", "e.txt")
    assert f.scheme == "file"
    assert f.filename == "e.txt"


def test_pathlike_is_never_parsed_as_url() -> None:
    f = File(pathlib.PurePosixPath("run:1.txt"))
    assert f.scheme == "file"
    assert f.path == "run:1.txt"


def test_file_is_pathlike() -> None:
    assert isinstance(File("x"), os.PathLike)


class _BytesPath:
    def __fspath__(self) -> bytes:
        return b"raw"


@pytest.mark.parametrize("bad", [3, None, b"bytes/path", ["a"], 1.5])
def test_bad_type_names_type(bad: object) -> None:
    with pytest.raises(TypeError, match=type(bad).__name__):
        File(bad)  # type: ignore[arg-type]


def test_bytes_pathlike_rejected() -> None:
    with pytest.raises(TypeError, match="bytes"):
        File(_BytesPath())  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["", "http://[::1", "::", "not a url at all", "a:b:c", "?#;"])
def test_any_string_is_accepted(text: str) -> None:
    f = File(text)
    assert f.url == text
    if f.scheme == "file":
        assert f.filepath == f.path
    if text in ("", "http://[::1", "not a url at all", "?#;"):
        assert (f.scheme, f.path) == ("file", text)  # unparsable or plain: the whole string is the path


def test_remote_file_without_local_path_says_so() -> None:
    f = File("https://example.org/data.csv")
    with pytest.raises(ValueError, match="No local_path set for <File at 0x.* url=https://example.org/data.csv"):
        f.filepath  # noqa: B018
    with pytest.raises(ValueError, match="No local_path"):
        os.fspath(f)
    with pytest.raises(ValueError, match="No local_path"):
        str(f)


def test_file_from_file_is_clean_copy() -> None:
    a = File("zip:/a.zip/m.txt")
    a.local_path = "/tmp/m.txt"
    b = File(a)
    assert b is not a
    assert b.url == a.url
    assert b.local_path is None


def test_open_and_fspath(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "hello.txt"
    target.write_text("hello\n")
    f = File(str(target))
    assert os.fspath(f) == str(target)
    assert str(f) == str(target)
    with open(f) as fh:
        assert fh.read() == "hello\n"


def test_repr_is_readable() -> None:
    f = File("http://example.org/a/b.txt")
    text = repr(f)
    assert text.startswith("<File at 0x") and text.endswith(">")
    assert text.split(" ", 3)[3] == (
        "url=http://example.org/a/b.txt scheme=http netloc=example.org path=/a/b.txt filename=b.txt>"
    )
    f.local_path = "/tmp/b.txt"
    assert repr(f).endswith(" filename=b.txt local_path=/tmp/b.txt>")


def test_cleancopy() -> None:
    f = File("http://example.org/x.txt")
    f.local_path = "/tmp/x.txt"
    c = f.cleancopy()
    assert c is not f
    assert c.url == f.url and c.scheme == "http" and c.path == "/x.txt"
    assert c.local_path is None
    assert f.local_path == "/tmp/x.txt"
    local = File("/tmp/y.txt")
    local.local_path = "/elsewhere/y.txt"
    assert local.cleancopy().local_path is None and local.cleancopy().filepath == "/tmp/y.txt"


def test_identity_semantics() -> None:
    a, b = File("same.txt"), File("same.txt")
    assert a != b
    assert a == a
    assert len({a, b}) == 2


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps])
def test_pickle_round_trip(dumps: object) -> None:
    f = File("https://example.org/d/x.bin")
    f.local_path = "/w/x.bin"
    g = pickle.loads(dumps(f))  # type: ignore[operator]
    assert type(g) is File
    assert (g.url, g.scheme, g.netloc, g.path, g.filename, g.local_path) == (
        f.url,
        f.scheme,
        f.netloc,
        f.path,
        f.filename,
        f.local_path,
    )


def test_imports_stay_light() -> None:
    code = (
        "import sys\n"
        "def heavy():\n"
        "    return [m for m in ('urllib.request', 'ftplib', 'zipfile') if m in sys.modules]\n"
        "import flowlib.data_provider.files\n"
        "print(heavy())\n"
        "import flowlib.data_provider.data_manager\n"
        "print(heavy())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=25)
    assert out.stdout.split("\n")[:2] == ["[]", "[]"]


# ---------------------------------------------------------------- DataFuture


def test_datafuture_success() -> None:
    parent: Future[int] = Future()
    f = File("out.txt")
    df = DataFuture(parent, f, tid=7)
    assert not df.done()
    assert df.tid == 7
    assert df.parent is parent and df.app_fut is parent
    assert df.file_obj is f
    assert df.filepath == "out.txt"
    assert df.filename == "out.txt"  # the path (here relative, with no directory part)
    assert "state=pending" in repr(df)
    parent.set_result(0)
    assert df.result(timeout=5) is f
    assert "state=finished" in repr(df)
    assert "tid=7" in repr(df)
    assert "out.txt" in repr(df)


def test_datafuture_filename_is_the_path_file_filename_the_basename() -> None:
    # As in Parsl: DataFuture.filename is the file's path (what to open), File.filename its last component.
    f = File("results/run1/out.txt")
    df = DataFuture(Future(), f)
    assert df.filename == df.filepath == "results/run1/out.txt"
    assert f.filename == "out.txt"
    staged = File("https://example.org/data/table.csv")
    staged.local_path = "/scratch/staged/table.csv"
    assert DataFuture(Future(), staged).filename == "/scratch/staged/table.csv"
    with pytest.raises(ValueError, match="example.org"):
        DataFuture(Future(), File("https://example.org/data/table.csv")).filename  # noqa: B018


def test_tutorial_open_outputs_filename_in_a_subdirectory(tmp_path: pathlib.Path, monkeypatch) -> None:
    # A relative output in a subdirectory of the working directory: the basename alone would not open.
    import flowlib
    from flowlib import bash_app, python_app
    from flowlib.configs.local_threads import fresh_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()

    @bash_app
    def echo_hello(outputs=()):
        return f"echo 'Hello World!' > {outputs[0]}"

    @python_app
    def write_number(n, outputs=()):
        with open(outputs[0], "w") as f:
            f.write(str(n))

    with flowlib.load(fresh_config(run_dir=str(tmp_path / "runinfo"))):
        hello = echo_hello(outputs=[File("out/hello.txt")])
        number = write_number(7, outputs=[File(os.path.join("out", "number.txt"))])
        hello.result(timeout=30)
        number.result(timeout=30)
        with open(hello.outputs[0].filename) as f:
            assert f.read() == "Hello World!\n"
        with open(number.outputs[0].filename) as f:
            assert f.read() == "7"
        assert not os.path.exists(hello.outputs[0].file_obj.filename)  # "hello.txt" is not in the cwd


def test_datafuture_of_done_parent() -> None:
    parent: Future[int] = Future()
    parent.set_result(1)
    f = File("x")
    assert DataFuture(parent, f).result(timeout=5) is f


def test_datafuture_failure_is_same_exception() -> None:
    parent: Future[int] = Future()
    df = DataFuture(parent, File("x"))
    err = RuntimeError("app broke")
    parent.set_exception(err)
    assert df.exception(timeout=5) is err
    with pytest.raises(RuntimeError, match="app broke"):
        df.result(timeout=5)
    assert "state=failed" in repr(df)


def test_datafuture_follows_cancelled_parent() -> None:
    parent: Future[int] = Future()
    df = DataFuture(parent, File("x"))
    assert parent.cancel()
    assert df.cancelled()
    with pytest.raises(CancelledError):
        df.result(timeout=5)
    assert "state=cancelled" in repr(df)


def test_datafuture_cancel_cancels_parent() -> None:
    parent: Future[int] = Future()
    df = DataFuture(parent, File("x"))
    assert df.cancel()
    assert parent.cancelled() and df.cancelled()


def test_datafuture_cannot_cancel_running_parent() -> None:
    parent: Future[int] = Future()
    assert parent.set_running_or_notify_cancel()
    df = DataFuture(parent, File("x"))
    assert df.running()
    assert "state=running" in repr(df)
    assert not df.cancel()
    assert not df.cancelled()
    parent.set_result(0)
    assert not df.running()
    assert df.cancel() is False


def test_datafuture_callbacks_run() -> None:
    parent: Future[int] = Future()
    df = DataFuture(parent, File("x"))
    seen: list[object] = []
    df.add_done_callback(lambda fut: seen.append(fut.result()))
    parent.set_result(0)
    assert seen == [df.file_obj]


def test_datafuture_bad_arguments() -> None:
    with pytest.raises(TypeError, match="Future"):
        DataFuture("not a future", File("x"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="str"):
        DataFuture(Future(), "x.txt")  # type: ignore[arg-type]
