"""Files between apps, and zip: staging in and out of an archive."""

from __future__ import annotations

import os
import zipfile

import pytest

from flowlib import File, bash_app, python_app

pytestmark = pytest.mark.timeout(60)


@python_app
def write_lines(lines, outputs=()):
    with open(outputs[0], "w") as f:
        f.write("".join(f"{line}\n" for line in lines))
    return len(lines)


@python_app
def count_lines(inputs=()):
    with open(inputs[0]) as f:
        return len(f.read().splitlines())


@python_app
def read_text(inputs=()):
    with open(inputs[0].filepath) as f:
        return f.read()


@bash_app
def bash_write(text, outputs=()):
    return f"echo {text} > {outputs[0].filepath}"


@bash_app
def bash_copy(inputs=(), outputs=()):
    return f"cp {inputs[0].filepath} {outputs[0].filepath}"


@pytest.fixture
def in_tmp_path(tmp_path, monkeypatch):
    # Staged copies go under the executor's working directory, or the current one.
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_output_filename_is_the_path_to_open(dfk, tmp_path):
    # Parsl's tutorials: run an app with outputs=[File(...)], then open(fut.outputs[0].filename).
    (tmp_path / "results").mkdir()
    made = bash_write("Hello", outputs=[File(str(tmp_path / "results" / "hello.txt"))])
    assert made.result(timeout=30) == 0
    out = made.outputs[0]
    assert out.filename == out.filepath == str(tmp_path / "results" / "hello.txt")
    with open(out.filename) as f:
        assert f.read() == "Hello\n"
    written = write_lines(["x", "y"], outputs=[File(str(tmp_path / "results" / "xy.txt"))])
    assert written.result(timeout=30) == 2
    with open(written.outputs[0].filename) as f:
        assert f.read().splitlines() == ["x", "y"]


def test_file_passed_between_apps(dfk, tmp_path):
    target = File(str(tmp_path / "lines.txt"))
    writer = write_lines(["a", "b", "c"], outputs=[target])
    data = writer.outputs[0]
    assert data.filename == data.filepath == str(tmp_path / "lines.txt")  # Parsl: the path, not the basename
    assert data.file_obj.filename == "lines.txt"
    reader = count_lines(inputs=[data])
    assert reader.result(timeout=10) == 3
    assert writer.result(timeout=10) == 3
    assert data.result(timeout=10) is target


def test_failed_writer_fails_its_data_future_and_reader(dfk, tmp_path):
    from flowlib.dataflow.errors import DependencyError

    writer = write_lines(None, outputs=[File(str(tmp_path / "never.txt"))])
    reader = count_lines(inputs=[writer.outputs[0]])
    with pytest.raises(TypeError):
        writer.outputs[0].result(timeout=10)
    with pytest.raises(DependencyError):
        reader.result(timeout=10)


def test_zip_stage_out(in_tmp_path, dfk):
    archive = in_tmp_path / "out.zip"
    fut = bash_write("zipped-content", outputs=[File(f"zip:{archive}/inner/a.txt")])
    assert fut.result(timeout=10) == 0
    produced = fut.outputs[0].result(timeout=10)
    assert produced.url == f"zip:{archive}/inner/a.txt"
    with zipfile.ZipFile(archive) as zf:
        assert "inner/a.txt" in zf.namelist()
        assert zf.read("inner/a.txt") == b"zipped-content\n"


def test_zip_stage_out_from_python_and_in_again(in_tmp_path, dfk):
    archive = in_tmp_path / "data.zip"
    writer = write_lines(["x", "y"], outputs=[File(f"zip:{archive}/lines.txt")])
    # the reader gets the member extracted to a local file before it runs
    assert read_text(inputs=[writer.outputs[0]]).result(timeout=10) == "x\ny\n"
    assert read_text(inputs=[File(f"zip:{archive}/lines.txt")]).result(timeout=10) == "x\ny\n"


def test_several_members_in_one_archive(in_tmp_path, dfk):
    archive = in_tmp_path / "many.zip"
    futs = [bash_write(f"member-{i}", outputs=[File(f"zip:{archive}/m{i}.txt")]) for i in range(5)]
    assert [f.result(timeout=10) for f in futs] == [0] * 5
    with zipfile.ZipFile(archive) as zf:
        assert sorted(zf.namelist()) == [f"m{i}.txt" for i in range(5)]
        assert [zf.read(f"m{i}.txt") for i in range(5)] == [f"member-{i}\n".encode() for i in range(5)]


def test_zip_member_copied_by_bash(in_tmp_path, dfk):
    archive = in_tmp_path / "copy.zip"
    source = bash_write("original", outputs=[File(f"zip:{archive}/src.txt")])
    copy = bash_copy(inputs=[source.outputs[0]], outputs=[File(f"zip:{archive}/dst.txt")])
    assert copy.result(timeout=10) == 0
    with zipfile.ZipFile(archive) as zf:
        assert zf.read("dst.txt") == b"original\n"
    assert not os.path.exists(in_tmp_path / "dst.txt")


@bash_app
def speak(text, stdout=None, stderr=None):
    return f"echo {text}; echo {text}-err >&2"


def test_relative_output_path_is_the_file_where_the_script_runs(in_tmp_path, dfk):
    fut = bash_write("relative", outputs=[File("output.txt")])
    assert fut.result(timeout=10) == 0
    assert (in_tmp_path / "output.txt").read_text() == "relative\n"
    assert fut.outputs[0].filepath == "output.txt"  # the caller's File keeps its relative path
    assert count_lines(inputs=[File("output.txt")]).result(timeout=10) == 1


def test_staging_never_changes_the_callers_file(in_tmp_path, dfk):
    archive = in_tmp_path / "own.zip"
    out = File(f"zip:{archive}/m.txt")
    assert bash_write("mine", outputs=[out]).result(timeout=10) == 0
    member = File(f"zip:{archive}/m.txt")
    assert read_text(inputs=[member]).result(timeout=10) == "mine\n"
    for f in (out, member):
        assert f.local_path is None
        with pytest.raises(ValueError, match="No local_path set"):
            f.filepath  # noqa: B018


def test_stdout_and_stderr_staged_to_a_zip_archive(in_tmp_path, dfk):
    archive = in_tmp_path / "logs.zip"
    fut = speak("hello", stdout=File(f"zip:{archive}/task/out.txt"), stderr=File(f"zip:{archive}/task/err.txt"))
    assert fut.result(timeout=10) == 0
    fut.stdout.result(timeout=10)
    with zipfile.ZipFile(archive) as zf:
        assert zf.read("task/out.txt") == b"hello\n"
        assert zf.read("task/err.txt") == b"hello-err\n"
