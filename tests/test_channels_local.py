"""LocalChannel: commands under bash, walltime kills the whole process tree, local file copies."""

from __future__ import annotations

import os
import pickle
import stat
import sys
import time
from pathlib import Path

import pytest
from conftest import try_assert
from proc_state import process_gone

from flowlib.channels import ChannelError, ChannelTimeout, FileCopyError, LocalChannel
from flowlib.channels.errors import (
    AuthenticationError,
    ChannelConnectError,
    HostKeyError,
)

pytestmark = pytest.mark.timeout(60)


def test_output_and_exit_code() -> None:
    code, out, err = LocalChannel().execute_wait("echo out; echo err >&2; exit 7")
    assert (code, out, err) == (7, "out\n", "err\n")


def test_runs_under_bash() -> None:
    code, out, _ = LocalChannel().execute_wait("[[ -n $BASH_VERSION ]] && echo bash")
    assert (code, out) == (0, "bash\n")


def test_env_additions_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWLIB_TEST_INHERITED", "from-process")
    channel = LocalChannel(envs={"A": "channel", "B": "channel"})
    code, out, _ = channel.execute_wait(
        'echo "$A $B $C $FLOWLIB_TEST_INHERITED"', envs={"B": "call", "C": "with space 'quoted'"}
    )
    assert code == 0
    assert out == "channel call with space 'quoted' from-process\n"


def test_userhome_is_the_working_directory(tmp_path: Path) -> None:
    code, out, _ = LocalChannel(userhome=str(tmp_path)).execute_wait("pwd -P")
    assert out.strip() == str(tmp_path.resolve())


def test_missing_working_directory_is_a_channel_error(tmp_path: Path) -> None:
    with pytest.raises(ChannelError, match="nowhere"):
        LocalChannel(userhome=str(tmp_path / "nowhere")).execute_wait("true")


def test_walltime_kills_children_and_grandchildren() -> None:
    # bash -> (subshell) -> sleep: the grandchild prints its pid and would outlive a plain kill.
    cmd = "echo started; ( sleep 300 & echo $! ; wait ) ; echo never"
    start = time.monotonic()
    with pytest.raises(ChannelTimeout) as info:
        LocalChannel().execute_wait(cmd, walltime=1)
    assert time.monotonic() - start < 10
    error = info.value
    assert error.command == cmd and error.timeout == 1
    assert cmd in str(error) and "1 s" in str(error)
    lines = error.stdout.split()
    assert lines[0] == "started"
    grandchild = int(lines[1])
    try_assert(lambda: process_gone(grandchild), timeout=10, message=f"grandchild {grandchild} survived the walltime")


def test_walltime_not_reached() -> None:
    assert LocalChannel().execute_wait("echo quick", walltime=30) == (0, "quick\n", "")


def test_push_and_pull_copy_content_and_mode(tmp_path: Path) -> None:
    source = tmp_path / "script.sh"
    source.write_bytes(b"#!/bin/sh\necho hi\n" + bytes(range(256)))
    source.chmod(0o751)
    channel = LocalChannel()
    pushed = channel.push_file(str(source), str(tmp_path / "new" / "dir"))
    assert pushed == str(tmp_path / "new" / "dir" / "script.sh")
    assert Path(pushed).read_bytes() == source.read_bytes()
    assert stat.S_IMODE(os.stat(pushed).st_mode) == 0o751
    pulled = channel.pull_file(pushed, str(tmp_path / "back"))
    assert Path(pulled).read_bytes() == source.read_bytes()
    assert stat.S_IMODE(os.stat(pulled).st_mode) == 0o751


def test_copy_onto_itself_is_a_no_op(tmp_path: Path) -> None:
    source = tmp_path / "f.txt"
    source.write_text("keep me")
    assert LocalChannel().push_file(str(source), str(tmp_path)) == str(source)
    assert source.read_text() == "keep me"


def test_copy_of_a_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileCopyError, match="absent.txt"):
        LocalChannel().push_file(str(tmp_path / "absent.txt"), str(tmp_path / "dest"))


def test_makedirs_isdir_abspath(tmp_path: Path) -> None:
    channel = LocalChannel(userhome=str(tmp_path))
    target = str(tmp_path / "a" / "b")
    channel.makedirs(target)
    assert channel.isdir(target)
    assert not channel.isdir(str(tmp_path / "missing"))
    with pytest.raises(FileExistsError):
        channel.makedirs(target)
    channel.makedirs(target, exist_ok=True)
    assert stat.S_IMODE(os.stat(target).st_mode) & 0o077 == 0
    assert channel.abspath("a/../c") == str(tmp_path / "c")
    assert channel.abspath("/x/y") == "/x/y"
    assert channel.abspath("~") == os.path.expanduser("~")


def test_channel_errors_pickle() -> None:
    errors = [
        ChannelError("broken", "host"),
        ChannelTimeout("sleep 9", 1.5, "host", "out", "err"),
        ChannelConnectError("host", 22, "refused"),
        HostKeyError("host", 22, "ssh-ed25519", "SHA256:abc", "changed", ["kh"], "ssh-ed25519 SHA256:def"),
        AuthenticationError("me", "host", 22, ["publickey (refused)"], ["publickey"]),
        FileCopyError("a", "b", "no space", "host"),
    ]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert str(copy) == str(error)


@pytest.mark.skipif(sys.platform != "linux", reason="uses /proc")
def test_process_gone_helper_sees_a_live_process() -> None:
    assert not process_gone(os.getpid())
