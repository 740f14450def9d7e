"""Bash apps: exit codes, stream redirection, AUTO_LOGNAME, outputs and walltime."""

from __future__ import annotations

import os
import re
import time

import pytest
from conftest import try_assert
from proc_state import process_gone

import flowlib
from flowlib import AUTO_LOGNAME, File, bash_app
from flowlib.app.errors import (
    AppBadFormatting,
    AppTimeout,
    BadStdStreamFile,
    BashAppNoReturn,
    BashExitFailure,
    MissingOutputs,
)

pytestmark = pytest.mark.timeout(60)


@bash_app
def echo(message, stdout=None, stderr=None):
    return f"echo {message}"


@bash_app
def echo_both(message, stdout=None, stderr=None):
    return f"echo out-{message}; echo err-{message} >&2"


@bash_app
def exit_with(code):
    return f"exit {code}"


@bash_app
def not_a_command():
    return 42


@bash_app
def bad_format(inputs=()):
    return f"cat {inputs[3]}"


@bash_app
def touch_outputs(create, outputs=()):
    return " && ".join(["true"] + [f"echo made > {f.filepath}" for f in outputs[:create]])


@bash_app
def copy_upper(inputs=(), outputs=()):
    return f"tr a-z A-Z < {inputs[0]} > {outputs[0]}"


@bash_app
def run(command, walltime=None):
    return command


def test_bash_app_returns_zero(dfk, tmp_path):
    out = tmp_path / "out.txt"
    assert echo("hello", stdout=str(out)).result(timeout=10) == 0
    assert out.read_text() == "hello\n"


def test_stdout_and_stderr_append_by_default(dfk, tmp_path):
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    assert echo_both("one", stdout=str(out), stderr=str(err)).result(timeout=10) == 0
    assert echo_both("two", stdout=str(out), stderr=str(err)).result(timeout=10) == 0
    assert out.read_text() == "out-one\nout-two\n"
    assert err.read_text() == "err-one\nerr-two\n"


def test_stdout_write_mode_truncates(dfk, tmp_path):
    out = tmp_path / "out.txt"
    out.write_text("old content that must go\n")
    assert echo("fresh", stdout=(str(out), "w")).result(timeout=10) == 0
    assert out.read_text() == "fresh\n"
    assert echo("appended", stdout=(str(out), "a")).result(timeout=10) == 0
    assert out.read_text() == "fresh\nappended\n"


def test_bad_stream_mode(dfk, tmp_path):
    fut = echo("x", stdout=(str(tmp_path / "out.txt"), "r"))
    with pytest.raises(BadStdStreamFile):
        fut.result(timeout=10)
    assert echo("still works", stdout=str(tmp_path / "ok.txt")).result(timeout=10) == 0


def test_auto_logname(dfk):
    fut = echo_both("auto", stdout=AUTO_LOGNAME, stderr=AUTO_LOGNAME)
    assert fut.result(timeout=10) == 0
    expected = os.path.join(dfk.run_dir, "task_logs", "0000", f"task_{fut.tid:04d}_echo_both")
    assert fut.stdout == expected + ".stdout"
    assert fut.stderr == expected + ".stderr"
    with open(fut.stdout) as f:
        assert f.read() == "out-auto\n"
    with open(fut.stderr) as f:
        assert f.read() == "err-auto\n"


def test_auto_logname_with_label(dfk):
    fut = echo("labelled", stdout=AUTO_LOGNAME, label="mylabel")
    assert fut.result(timeout=10) == 0
    name = os.path.basename(fut.stdout)
    assert re.fullmatch(rf"task_{fut.tid:04d}_echo_mylabel\.stdout", name), name
    assert os.path.dirname(fut.stdout) == os.path.join(dfk.run_dir, "task_logs", "0000")
    with open(fut.stdout) as f:
        assert f.read() == "labelled\n"


def test_stdout_spec_is_kept_on_the_future(dfk, tmp_path):
    path = str(tmp_path / "out.txt")
    fut = echo("kept", stdout=path)
    assert fut.stdout == path
    assert fut.stderr is None
    fut.result(timeout=10)


def test_stdout_as_file_gives_a_data_future(dfk, tmp_path):
    target = File(str(tmp_path / "as-file.txt"))
    fut = echo("to a File", stdout=target)
    assert fut.stdout.result(timeout=10) is target
    assert fut.result(timeout=10) == 0
    assert (tmp_path / "as-file.txt").read_text() == "to a File\n"


def test_std_autopath(make_config, tmp_path):
    logs = tmp_path / "custom-logs"

    def autopath(task_record, stream):
        return str(logs / f"{task_record['func_name']}-{task_record['id']}.{stream}")

    with flowlib.load(make_config(std_autopath=autopath)):
        fut = echo_both("custom", stdout=AUTO_LOGNAME, stderr=AUTO_LOGNAME)
        assert fut.result(timeout=10) == 0
    assert fut.stdout == str(logs / f"echo_both-{fut.tid}.stdout")
    assert (logs / f"echo_both-{fut.tid}.stdout").read_text() == "out-custom\n"
    assert (logs / f"echo_both-{fut.tid}.stderr").read_text() == "err-custom\n"


def test_non_zero_exit(dfk):
    fut = exit_with(3)
    with pytest.raises(BashExitFailure) as info:
        fut.result(timeout=10)
    assert info.value.exitcode == 3
    assert "3" in str(info.value)


@bash_app
def count_and_exit(tally, code):
    return f"echo try >> {tally}; exit {code}"


def half_cost(exception, task_record):
    return 0.5


def test_non_zero_exit_after_the_retry_budget(make_config, tmp_path):
    tally = tmp_path / "tally"
    with flowlib.load(make_config(retries=2, retry_handler=half_cost)):
        fut = count_and_exit(str(tally), 4)
        with pytest.raises(BashExitFailure) as info:
            fut.result(timeout=30)
    assert info.value.exitcode == 4
    assert tally.read_text().count("try") == 5


def test_non_string_return(dfk):
    with pytest.raises(BashAppNoReturn):
        not_a_command().result(timeout=10)


def test_formatting_error(dfk):
    with pytest.raises(AppBadFormatting):
        bad_format(inputs=[1]).result(timeout=10)


def test_missing_outputs(dfk, tmp_path):
    made, absent = File(str(tmp_path / "made.txt")), File(str(tmp_path / "absent.txt"))
    fut = touch_outputs(1, outputs=[made, absent])
    with pytest.raises(MissingOutputs) as info:
        fut.result(timeout=10)
    assert [os.fspath(f) for f in info.value.outputs] == [os.fspath(absent)]


def test_outputs_created(dfk, tmp_path):
    target = File(str(tmp_path / "made.txt"))
    fut = touch_outputs(1, outputs=[target])
    assert fut.result(timeout=10) == 0
    assert len(fut.outputs) == 1
    produced = fut.outputs[0].result(timeout=10)
    assert isinstance(produced, File)
    assert produced.filepath == str(tmp_path / "made.txt")
    with open(produced) as f:
        assert f.read() == "made\n"


def test_inputs_in_command(dfk, tmp_path):
    source = tmp_path / "source.txt"
    source.write_text("shout this\n")
    target = File(str(tmp_path / "upper.txt"))
    fut = copy_upper(inputs=[File(str(source))], outputs=[target])
    assert fut.outputs[0].result(timeout=10) is target
    assert (tmp_path / "upper.txt").read_text() == "SHOUT THIS\n"


def test_bash_apps_chained_through_files(dfk, tmp_path):
    first = touch_outputs(1, outputs=[File(str(tmp_path / "a.txt"))])
    second = copy_upper(inputs=[first.outputs[0]], outputs=[File(str(tmp_path / "b.txt"))])
    assert second.result(timeout=10) == 0
    assert (tmp_path / "b.txt").read_text() == "MADE\n"


def test_walltime_stops_a_long_command(dfk):
    start = time.monotonic()
    fut = run("sleep 30", walltime=1)
    with pytest.raises(AppTimeout):
        fut.result(timeout=20)
    assert time.monotonic() - start < 10


@bash_app
def sleeper(seconds):
    return f"sleep {seconds}"


def test_walltime_for_an_app_not_declaring_it(dfk):
    start = time.monotonic()
    with pytest.raises(AppTimeout):
        sleeper(30, walltime=1).result(timeout=20)
    assert time.monotonic() - start < 10
    assert sleeper(0, walltime=10).result(timeout=10) == 0


def test_walltime_kills_grandchildren(dfk, tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    command = f"bash -c 'sleep 60 & echo $! > {pidfile}; wait'"
    fut = run(command, walltime=1)
    with pytest.raises(AppTimeout):
        fut.result(timeout=20)
    try_assert(lambda: pidfile.exists() and pidfile.read_text().strip() != "", timeout=5)
    pid = int(pidfile.read_text())
    try_assert(lambda: process_gone(pid), timeout=10, message=f"grandchild {pid} is still running")


def test_auto_logname_into_a_zip_archive(make_config, tmp_path):
    import zipfile

    archive = tmp_path / "logs.zip"

    def into_archive(record, stream):
        return f"zip:{archive}/task_{record.id}.{stream}"

    with flowlib.load(make_config(std_autopath=into_archive)):
        futures = [echo_both(i, stdout=AUTO_LOGNAME, stderr=AUTO_LOGNAME) for i in range(3)]
        assert [f.result(timeout=20) for f in futures] == [0, 0, 0]
        for f in futures:
            f.stdout.result(timeout=20)
            f.stderr.result(timeout=20)
    with zipfile.ZipFile(archive) as zf:
        for i, f in enumerate(futures):
            assert zf.read(f"task_{f.tid}.stdout") == f"out-{i}\n".encode()
            assert zf.read(f"task_{f.tid}.stderr") == f"err-{i}\n".encode()
