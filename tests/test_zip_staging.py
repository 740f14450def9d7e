"""zip: staging: URL splitting, concurrent appends to one archive, extraction, errors."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import threading
import zipfile
from dataclasses import dataclass, field
from typing import Any

import cloudpickle
import pytest

from flowlib.data_provider.data_manager import DataManager
from flowlib.data_provider.files import File
from flowlib.data_provider.staging import StagingError
from flowlib.data_provider.zip import ZipAuthorityError, ZipFileStaging, zip_path_split

pytestmark = pytest.mark.timeout(30)


@dataclass
class FakeExecutor:
    storage_access: Any = None
    working_dir: str | None = None


@dataclass
class FakeDFK:
    executors: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def dm(tmp_path: pathlib.Path) -> DataManager:
    return DataManager(FakeDFK({"ex": FakeExecutor(None, str(tmp_path / "wd"))}))


def write_output(text: str, outputs: Any = ()) -> str:
    with open(outputs[0], "w") as fh:
        fh.write(text)
    return "written"


def read_input(inputs: Any = ()) -> str:
    with open(inputs[0]) as fh:
        return fh.read()


def make_archive(path: pathlib.Path, members: dict[str, str]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)


# ---------------------------------------------------------------- zip_path_split


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/a/b.zip/c/d.txt", ("/a/b.zip", "c/d.txt")),
        ("/b.zip/d.txt", ("/b.zip", "d.txt")),
        ("rel/b.zip/d.txt", ("rel/b.zip", "d.txt")),
        ("/a/first.zip/inner.zip/x", ("/a/first.zip", "inner.zip/x")),
        ("/a/b.zip//c//d.txt", ("/a/b.zip", "c/d.txt")),
    ],
)
def test_zip_path_split(path: str, expected: tuple[str, str]) -> None:
    assert zip_path_split(path) == expected


@pytest.mark.parametrize("path", ["/a/b/c.txt", "/a/zip/c", "/a/b.zipx/c"])
def test_zip_path_split_without_archive(path: str) -> None:
    with pytest.raises(ValueError, match=path):
        zip_path_split(path)


@pytest.mark.parametrize("path", ["/a/b.zip", "/a/b.zip/"])
def test_zip_path_split_without_member(path: str) -> None:
    with pytest.raises(ValueError, match="no member"):
        zip_path_split(path)


# ---------------------------------------------------------------- errors at submit time


def test_authority_is_rejected(dm: DataManager) -> None:
    f = File("zip://somehost/tmp/a.zip/m.txt")
    with pytest.raises(ZipAuthorityError, match="zip://somehost/tmp/a.zip/m.txt") as info:
        dm.replace_task_stage_out(f, write_output, "ex")
    assert info.value.file is f
    with pytest.raises(ZipAuthorityError):
        dm.optionally_stage_in(f, read_input, "ex")
    back = cloudpickle.loads(cloudpickle.dumps(info.value))
    assert back.file.url == f.url and str(back) == str(info.value)


def test_url_without_archive_is_rejected(dm: DataManager) -> None:
    with pytest.raises(ValueError, match="'.zip'"):
        dm.replace_task_stage_out(File("zip:/tmp/plain/m.txt"), write_output, "ex")


def test_claims_zip_scheme_only() -> None:
    z = ZipFileStaging()
    assert z.can_stage_in(File("zip:/a.zip/b")) and z.can_stage_out(File("zip:/a.zip/b"))
    assert not z.can_stage_in(File("/a.zip/b")) and not z.can_stage_out(File("http://h/a.zip/b"))


# ---------------------------------------------------------------- stage out


def test_stage_out_appends_member(dm: DataManager, tmp_path: pathlib.Path) -> None:
    archive = tmp_path / "new" / "out.zip"
    f = File(f"zip:{archive}/results/a.txt")
    func = dm.replace_task_stage_out(f, write_output, "ex")
    assert dm.stage_out(f, "ex", None) is None  # type: ignore[arg-type]
    # The app writes a local file under the executor's working dir.
    assert f.local_path is not None and f.local_path.startswith(str(tmp_path / "wd"))
    assert f.filepath.endswith("/a.txt")
    assert func("alpha", outputs=[f]) == "written"
    with zipfile.ZipFile(archive) as zf:
        assert zf.namelist() == ["results/a.txt"]
        assert zf.read("results/a.txt") == b"alpha"


def test_stage_out_wrapper_pickles_and_finds_the_copied_file(dm: DataManager, tmp_path: pathlib.Path) -> None:
    archive = tmp_path / "out.zip"
    f = File(f"zip:{archive}/m.txt")
    func = dm.replace_task_stage_out(f, write_output, "ex")
    remote_func = cloudpickle.loads(cloudpickle.dumps(func))
    remote_outputs = cloudpickle.loads(cloudpickle.dumps([f.cleancopy()]))
    assert remote_outputs[0].local_path is None
    remote_func("beta", outputs=remote_outputs)
    assert remote_outputs[0].local_path == f.local_path
    with zipfile.ZipFile(archive) as zf:
        assert zf.read("m.txt") == b"beta"


def test_concurrent_appends_from_threads(dm: DataManager, tmp_path: pathlib.Path) -> None:
    archive = tmp_path / "shared.zip"
    n = 16
    # Large enough that appends overlap in time (zlib releases the GIL).
    payload = {i: os.urandom(256 * 1024) + f"member {i} ".encode() * 50_000 for i in range(n)}
    start = threading.Barrier(n)
    errors: list[BaseException] = []

    def writer(outputs: Any = (), i: int = 0) -> None:
        with open(outputs[0], "wb") as fh:
            fh.write(payload[i])
        start.wait(timeout=10)  # all threads reach the append together

    tasks = []
    for i in range(n):
        f = File(f"zip:{archive}/dir{i % 3}/m{i}.bin")
        tasks.append((dm.replace_task_stage_out(f, writer, "ex"), f, i))

    def run(func: Any, f: File, i: int) -> None:
        try:
            func(outputs=[f], i=i)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=t) for t in tasks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert errors == []
    with zipfile.ZipFile(archive) as zf:
        assert zf.testzip() is None
        assert sorted(zf.namelist()) == sorted(f"dir{i % 3}/m{i}.bin" for i in range(n))
        for i in range(n):
            assert zf.read(f"dir{i % 3}/m{i}.bin") == payload[i]


APPENDER = """
import sys
from flowlib.data_provider.zip import append_to_zip
archive, worker, count, workdir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
for j in range(count):
    local = f"{workdir}/p{worker}-{j}.txt"
    with open(local, "w") as fh:
        fh.write(f"process {worker} item {j}\\n" * 200)
    append_to_zip("zip:" + archive, archive, f"p{worker}/{j}.txt", local)
"""


def test_concurrent_appends_from_processes(tmp_path: pathlib.Path) -> None:
    archive = tmp_path / "multi.zip"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, str(archive), str(w), "8", str(tmp_path)],
            stderr=subprocess.PIPE,
        )
        for w in range(4)
    ]
    for p in procs:
        _, err = p.communicate(timeout=25)
        assert p.returncode == 0, err.decode()
    with zipfile.ZipFile(archive) as zf:
        assert zf.testzip() is None
        assert len(zf.namelist()) == 32
        for w in range(4):
            for j in range(8):
                assert zf.read(f"p{w}/{j}.txt") == f"process {w} item {j}\n".encode() * 200


def test_rewriting_a_member_replaces_it(dm: DataManager, tmp_path: pathlib.Path) -> None:
    archive = tmp_path / "retry.zip"
    make_archive(archive, {"keep.txt": "kept", "m.txt": "old"})
    f = File(f"zip:{archive}/m.txt")
    dm.replace_task_stage_out(f, write_output, "ex")("new", outputs=[f])
    with zipfile.ZipFile(archive) as zf:
        assert sorted(zf.namelist()) == ["keep.txt", "m.txt"]
        assert zf.read("m.txt") == b"new"
        assert zf.read("keep.txt") == b"kept"


def test_failed_app_appends_nothing(dm: DataManager, tmp_path: pathlib.Path) -> None:
    archive = tmp_path / "none.zip"
    f = File(f"zip:{archive}/m.txt")

    def broken(outputs: Any = ()) -> None:
        raise RuntimeError("app failed")

    with pytest.raises(RuntimeError, match="app failed"):
        dm.replace_task_stage_out(f, broken, "ex")(outputs=[f])
    assert not archive.exists()


def test_missing_output_is_staging_error(dm: DataManager, tmp_path: pathlib.Path) -> None:
    f = File(f"zip:{tmp_path}/o.zip/m.txt")
    func = dm.replace_task_stage_out(f, lambda outputs=(): None, "ex")
    with pytest.raises(StagingError, match="did not create") as info:
        func(outputs=[f])
    assert info.value.url == f.url


# ---------------------------------------------------------------- stage in


def test_stage_in_extracts(dm: DataManager, tmp_path: pathlib.Path) -> None:
    archive = tmp_path / "in.zip"
    make_archive(archive, {"data/x.txt": "x content", "data/y.txt": "y content"})
    f = File(f"zip:{archive}/data/y.txt")
    new_input, func = dm.optionally_stage_in(f, read_input, "ex")
    assert new_input is not f and new_input.url == f.url
    assert new_input.local_path is None  # set on the worker, when the task runs
    remote_func = cloudpickle.loads(cloudpickle.dumps(func))
    remote_inputs = cloudpickle.loads(cloudpickle.dumps([new_input]))
    assert remote_func(inputs=remote_inputs) == "y content"
    assert remote_inputs[0].filepath.startswith(str(tmp_path / "wd"))


def test_stage_in_of_same_name_from_two_archives(dm: DataManager, tmp_path: pathlib.Path) -> None:
    make_archive(tmp_path / "a.zip", {"d.txt": "from a"})
    make_archive(tmp_path / "b.zip", {"d.txt": "from b"})
    fa, fb = File(f"zip:{tmp_path}/a.zip/d.txt"), File(f"zip:{tmp_path}/b.zip/d.txt")

    def both(inputs: Any = ()) -> list[str]:
        return [pathlib.Path(p).read_text() for p in inputs]

    _, func = dm.optionally_stage_in(fa, both, "ex")
    _, func = dm.optionally_stage_in(fb, func, "ex")
    assert func(inputs=[fa, fb]) == ["from a", "from b"]


def test_round_trip_out_then_in(dm: DataManager, tmp_path: pathlib.Path) -> None:
    url = f"zip:{tmp_path}/rt.zip/nested/file.txt"
    out = File(url)
    dm.replace_task_stage_out(out, write_output, "ex")("round trip", outputs=[out])
    os.remove(out.filepath)  # the archive, not the local copy, must serve the read
    inp = File(url)
    _, func = dm.optionally_stage_in(inp, read_input, "ex")
    assert func(inputs=[inp]) == "round trip"


def test_stage_in_missing_member(dm: DataManager, tmp_path: pathlib.Path) -> None:
    make_archive(tmp_path / "in.zip", {"a.txt": "a"})
    f = File(f"zip:{tmp_path}/in.zip/zzz.txt")
    _, func = dm.optionally_stage_in(f, read_input, "ex")
    with pytest.raises(StagingError, match="no member 'zzz.txt'"):
        func(inputs=[f])


def test_stage_in_missing_archive(dm: DataManager, tmp_path: pathlib.Path) -> None:
    f = File(f"zip:{tmp_path}/absent.zip/a.txt")
    _, func = dm.optionally_stage_in(f, read_input, "ex")
    with pytest.raises(StagingError, match="does not exist") as info:
        func(inputs=[f])
    assert f.url in str(info.value)


def test_stage_in_not_a_zip(dm: DataManager, tmp_path: pathlib.Path) -> None:
    (tmp_path / "bad.zip").write_text("this is not an archive")
    f = File(f"zip:{tmp_path}/bad.zip/a.txt")
    _, func = dm.optionally_stage_in(f, read_input, "ex")
    with pytest.raises(StagingError, match="not a valid zip"):
        func(inputs=[f])


# ---------------------------------------------------------------- through the kernel


def test_zip_through_the_kernel(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flowlib = pytest.importorskip("flowlib")
    config_mod = pytest.importorskip("flowlib.config")
    threads = pytest.importorskip("flowlib.executors.threads")
    monkeypatch.chdir(tmp_path)
    config = config_mod.Config(executors=[threads.ThreadPoolExecutor(label="local")], run_dir=str(tmp_path / "runinfo"))

    with flowlib.load(config):

        @flowlib.python_app
        def produce(text: str, outputs: Any = ()) -> None:
            with open(outputs[0], "w") as fh:
                fh.write(text)

        @flowlib.python_app
        def consume(inputs: Any = ()) -> str:
            return "+".join(pathlib.Path(p).read_text() for p in inputs)

        archive = tmp_path / "k.zip"
        made = [produce(f"v{i}", outputs=[File(f"zip:{archive}/m{i}.txt")]) for i in range(4)]
        total = consume(inputs=[m.outputs[0] for m in made])
        assert total.result(timeout=20) == "v0+v1+v2+v3"
    with zipfile.ZipFile(archive) as zf:
        assert sorted(zf.namelist()) == [f"m{i}.txt" for i in range(4)]
