"""SSHChannel, SSHInteractiveLoginChannel and SSHTunnel against a REAL sshd on loopback.

tests/services/sshd-up.sh starts it (root needed): 127.0.0.1:2222 takes key logins for
``flowtest``; 127.0.0.1:2223 takes keyboard-interactive (PAM password) logins for
``flowpass``. Without root, or if the script fails, these tests skip, except under
CI=true, where they fail: CI must not turn a broken sshd into silent skips.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import try_assert

from flowlib.channels import (
    AuthenticationError,
    ChannelClosedError,
    ChannelConnectError,
    ChannelError,
    ChannelTimeout,
    FileCopyError,
    HostKeyError,
)
from flowlib.channels.ssh import SSHChannel
from flowlib.channels.ssh_interactive import SSHInteractiveLoginChannel
from flowlib.channels.ssh_util import key_fingerprint
from flowlib.channels.tunnel import SSHTunnel, open_tunnel
from flowlib.errors import OptionalModuleMissing

pytestmark = pytest.mark.timeout(60)

SERVICES = Path(__file__).parent / "services"
REMOTE_PYTHON = "/usr/bin/python3"  # the test user cannot read root's pyenv


@dataclasses.dataclass(frozen=True)
class Sshd:
    dir: Path
    port: int
    kbd_port: int
    user: str
    kbd_user: str

    @property
    def key(self) -> str:
        return str(self.dir / "id_ed25519")

    @property
    def known_hosts(self) -> str:
        return str(self.dir / "known_hosts")

    @property
    def kbd_password(self) -> str:
        return (self.dir / "kbd_password").read_text().strip()

    @property
    def host_fingerprint(self) -> str:
        """The server's key fingerprint as ssh-keygen prints it."""
        out = subprocess.run(
            ["ssh-keygen", "-l", "-E", "sha256", "-f", str(self.dir / "ssh_host_ed25519_key.pub")],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return out.split()[1]


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"sshd for the channel tests is not available in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def sshd() -> Sshd:
    """The loopback sshd, started by tests/services/sshd-up.sh unless it already runs.

    It is left running afterwards: other pytest sessions may be using it. ``make test``
    stops it with tests/services/sshd-down.sh; so can you.
    """
    info = Sshd(
        dir=Path(os.environ.get("SSHD_DIR", "/tmp/flowlib-sshd")),
        port=int(os.environ.get("SSHD_PORT", "2222")),
        kbd_port=int(os.environ.get("SSHD_KBD_PORT", "2223")),
        user=os.environ.get("SSHD_USER", "flowtest"),
        kbd_user=os.environ.get("SSHD_KBD_USER", "flowpass"),
    )
    needed = [info.key, info.known_hosts, str(info.dir / "kbd_password")]
    if port_accepts(info.port) and port_accepts(info.kbd_port) and all(map(os.path.exists, needed)):
        return info
    if os.geteuid() != 0:
        unavailable("starting sshd needs root (tests/services/sshd-up.sh)")
    try:
        run = subprocess.run(["bash", str(SERVICES / "sshd-up.sh")], capture_output=True, text=True, timeout=50)
    except subprocess.TimeoutExpired as e:
        unavailable(f"tests/services/sshd-up.sh did not finish in 50 s: {e.stderr!r}")
    if run.returncode != 0:
        unavailable(f"tests/services/sshd-up.sh failed ({run.returncode}):\n{run.stdout}\n{run.stderr}")
    return info


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No ~/.ssh keys or known_hosts and no ssh-agent of the person running the tests."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return home


@pytest.fixture
def make_channel(sshd: Sshd, isolated_home: Path) -> Iterator[Callable[..., SSHChannel]]:
    """Build SSHChannels to the test sshd (key login, strict known_hosts); closes them afterwards."""
    made: list[SSHChannel] = []

    def make(**kwargs: Any) -> SSHChannel:
        kwargs.setdefault("username", sshd.user)
        kwargs.setdefault("port", sshd.port)
        kwargs.setdefault("key_filename", sshd.key)
        kwargs.setdefault("host_keys_filename", sshd.known_hosts)
        kwargs.setdefault("connect_timeout", 10)
        channel = SSHChannel("127.0.0.1", **kwargs)
        made.append(channel)
        return channel

    yield make
    for channel in made:
        channel.close()


@pytest.fixture
def channel(make_channel: Callable[..., SSHChannel]) -> SSHChannel:
    return make_channel()


def new_client_key(directory: Path) -> str:
    path = directory / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return str(path)


# ----------------------------------------------------------------- no server needed


def test_constructor_does_no_io() -> None:
    channel = SSHChannel("host.invalid", port=2, connect_timeout=1)
    assert not channel.is_connected
    assert channel.connections == 0
    assert "s3cret" not in repr(SSHChannel("host.invalid", password="s3cret"))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"known_hosts_policy": "yes"},
        {"port": 0},
        {"port": "22"},
        {"connect_timeout": 0},
        {"keepalive": -1},
        {"envs": {"BAD-NAME": "x"}},
    ],
)
def test_bad_arguments_are_refused_at_construction(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SSHChannel("host.invalid", **kwargs)


def test_missing_paramiko_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "paramiko", None)
    with pytest.raises(OptionalModuleMissing, match=r"paramiko.*flowlib\[ssh\]"):
        SSHChannel("host.invalid", connect_timeout=1).execute_wait("true")


def test_unreachable_port_is_a_connect_error_quickly() -> None:
    with socket.socket() as s:  # a port that was free a moment ago and has no listener now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    channel = SSHChannel("127.0.0.1", port=port, connect_timeout=5)
    start = time.monotonic()
    with pytest.raises(ChannelConnectError) as info:
        channel.execute_wait("true")
    assert time.monotonic() - start < 5
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "refused" in str(info.value).lower()
    assert info.value.port == port


def test_closed_channel_refuses_use() -> None:
    channel = SSHChannel("host.invalid")
    channel.close()
    with pytest.raises(ChannelClosedError):
        channel.execute_wait("true")


# ----------------------------------------------------------------- commands


def test_execute_wait_stdout_stderr_exit_code(channel: SSHChannel, sshd: Sshd) -> None:
    code, out, err = channel.execute_wait("echo hello; id -un; echo oops >&2; exit 3")
    assert (code, out, err) == (3, f"hello\n{sshd.user}\n", "oops\n")
    assert channel.execute_wait("true") == (0, "", "")


def test_execute_wait_env_vars(make_channel: Callable[..., SSHChannel]) -> None:
    channel = make_channel(envs={"FROM_CHANNEL": "c", "BOTH": "channel"})
    tricky = "spaces, 'quotes', \"dq\", $dollar `tick`"
    code, out, _ = channel.execute_wait(
        'printf "%s|%s|%s\\n" "$FROM_CHANNEL" "$BOTH" "$TRICKY"', envs={"BOTH": "call", "TRICKY": tricky}
    )
    assert code == 0
    assert out == f"c|call|{tricky}\n"


def test_walltime_raises_and_kills_the_remote_process_group(channel: SSHChannel) -> None:
    cmd = "sleep 300 & echo $!; sleep 300"
    start = time.monotonic()
    with pytest.raises(ChannelTimeout) as info:
        channel.execute_wait(cmd, walltime=1)
    assert time.monotonic() - start < 15
    assert cmd in str(info.value) and "127.0.0.1" in str(info.value)
    background = int(info.value.stdout.split()[0])
    assert not info.value.stderr.startswith("FLOWLIB")

    def gone() -> bool:
        _, out, _ = channel.execute_wait(f"ps -o stat= -p {background} || true")
        return out.strip() in ("", "Z")

    try_assert(gone, timeout=15, message=f"remote pid {background} outlived the walltime")


def test_large_output_is_complete(channel: SSHChannel) -> None:
    code, out, err = channel.execute_wait(f"{REMOTE_PYTHON} -c 'import sys; sys.stdout.write(\"x\" * 3000000)'")
    assert code == 0 and len(out) == 3_000_000 and err == ""


def test_concurrent_commands_share_one_connection(channel: SSHChannel) -> None:
    results: list[tuple[int, str, str]] = []

    def run(i: int) -> None:
        results.append(channel.execute_wait(f"echo {i}"))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(12)]  # more than max_sessions
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(out for _, out, _ in results) == sorted(f"{i}\n" for i in range(12))
    assert channel.connections == 1


class _LastOutputRacesTheEnd:
    """A paramiko channel whose transport thread delivers the last output, EOF and status all at once,
    just after the reader has emptied both buffers: the race that lost ``echo``'s output under load."""

    def __init__(self) -> None:
        self.status_event = threading.Event()
        self.exit_status = -1
        self.eof_received = False
        self.closed = False
        self._out = b""
        self._stderr_checks = 0
        self._fds = os.pipe()

    def fileno(self) -> int:
        return self._fds[0]

    def recv_ready(self) -> bool:
        return bool(self._out)

    def recv(self, size: int) -> bytes:
        data, self._out = self._out[:size], self._out[size:]
        return data

    def recv_stderr_ready(self) -> bool:
        self._stderr_checks += 1
        if self._stderr_checks == 2:  # the reader's last look at the buffers; then the thread runs
            self._out, self.eof_received, self.exit_status = b"8\n", True, 0
            self.status_event.set()
        return False

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)


def test_output_that_arrives_with_the_end_of_the_command_is_kept() -> None:
    chan = _LastOutputRacesTheEnd()
    try:
        result = SSHChannel("localhost")._collect(None, chan, "echo 8", walltime=5)
    finally:
        chan.close()
    assert result == (0, "8\n", "")


# ----------------------------------------------------------------- files


def test_push_pull_round_trip_keeps_content_and_mode(channel: SSHChannel, tmp_path: Path, sshd: Sshd) -> None:
    source = tmp_path / "payload.bin"
    content = os.urandom(300_000)
    source.write_bytes(content)
    source.chmod(0o751)
    top = f"flowlib-test-{uuid.uuid4().hex[:8]}"
    remote_dir = f"{top}/push/deeper"
    channel.execute_wait(f"rm -rf ~/{top}")
    pushed = channel.push_file(str(source), remote_dir)
    assert pushed == f"{remote_dir}/payload.bin"
    code, out, _ = channel.execute_wait(f"stat -c '%a %s' {pushed}")
    assert (code, out) == (0, f"751 {len(content)}\n")

    channel.execute_wait(f"chmod 640 {pushed}")
    pulled = channel.pull_file(pushed, str(tmp_path / "back" / "here"))
    assert pulled == str(tmp_path / "back" / "here" / "payload.bin")
    assert Path(pulled).read_bytes() == content
    assert stat.S_IMODE(os.stat(pulled).st_mode) == 0o640

    absolute = channel.push_file(str(source), f"/home/{sshd.user}/{top}/abs")
    assert absolute == f"/home/{sshd.user}/{top}/abs/payload.bin"
    channel.execute_wait(f"rm -rf ~/{top}")


def test_missing_files_are_named(channel: SSHChannel, tmp_path: Path) -> None:
    with pytest.raises(FileCopyError, match="nothing-here.txt"):
        channel.push_file(str(tmp_path / "nothing-here.txt"), "somewhere")
    with pytest.raises(FileCopyError, match="no-such-remote.txt"):
        channel.pull_file("no-such-remote.txt", str(tmp_path))


def test_makedirs_isdir_abspath(channel: SSHChannel, sshd: Sshd) -> None:
    home = f"/home/{sshd.user}"
    top = f"flowlib-dirs-{uuid.uuid4().hex[:8]}"
    channel.execute_wait(f"rm -rf ~/{top}")
    assert not channel.isdir(top)
    channel.makedirs(f"{top}/a/b", mode=0o750)
    assert channel.isdir(f"{top}/a/b")
    assert channel.isdir(f"{home}/{top}/a")
    with pytest.raises(FileExistsError):
        channel.makedirs(f"{top}/a/b")
    channel.makedirs(f"{top}/a/b", exist_ok=True)
    channel.execute_wait(f"touch ~/{top}/file")
    assert not channel.isdir(f"{top}/file")
    with pytest.raises(FileExistsError):
        channel.makedirs(f"{top}/file", exist_ok=True)
    assert channel.execute_wait(f"stat -c %a ~/{top}/a/b")[1] == "750\n"
    assert channel.abspath("x/../y") == f"{home}/y"
    assert channel.abspath("~/z") == f"{home}/z"
    assert channel.abspath("/tmp/q/") == "/tmp/q"
    channel.execute_wait(f"rm -rf ~/{top}")


# ----------------------------------------------------------------- reconnection


def test_reconnects_after_the_transport_is_closed_behind_its_back(channel: SSHChannel) -> None:
    assert channel.execute_wait("echo one")[1] == "one\n"
    channel._transport.close()  # as if the network dropped the connection
    assert channel.execute_wait("echo two")[1] == "two\n"
    assert channel.connections == 2
    assert channel.isdir(".")


def test_reconnects_after_the_socket_dies(channel: SSHChannel) -> None:
    assert channel.isdir(".")  # an SFTP session exists now
    channel._transport.sock.shutdown(socket.SHUT_RDWR)  # the transport may not have noticed yet
    assert channel.isdir(".")
    assert channel.execute_wait("echo fine")[1] == "fine\n"
    assert channel.connections == 2


def test_server_side_drop_during_a_command_is_reported_then_reconnects(channel: SSHChannel) -> None:
    # $PPID of the remote shell is the sshd process that serves this connection. The short
    # sleep usually lets sshd confirm the start first ("lost while ... ran"); if not, the
    # error says "cannot start": either way it must warn that the command may have run.
    with pytest.raises(ChannelError, match="may or may not have"):
        channel.execute_wait("sleep 0.3; kill -9 $PPID; kill -9 -- -$$; sleep 30")
    assert channel.execute_wait("echo back")[1] == "back\n"
    assert channel.connections == 2


class FreezableProxy:
    """A TCP proxy to the sshd whose existing connections can go silent (no FIN, no RST),
    as when a laptop sleeps or a NAT forgets the connection. New connections still work."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.frozen: set[int] = set()  # ids of frozen connections
        self.connections: list[tuple[int, socket.socket, socket.socket]] = []
        self.threads: list[threading.Thread] = []
        self._start(self._accept)

    def _start(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name="proxy", daemon=True)
        self.threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            number = len(self.connections)
            self.connections.append((number, client, server))
            self._start(self._pump, number, client, server)
            self._start(self._pump, number, server, client)

    def _pump(self, number: int, source: socket.socket, dest: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
                if not data:
                    dest.shutdown(socket.SHUT_WR)
                    return
                if number not in self.frozen:  # a frozen connection swallows everything
                    dest.sendall(data)
            except OSError:
                return

    def freeze_existing(self) -> None:
        self.frozen.update(number for number, _, _ in self.connections)

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for _, a, b in self.connections:
            for sock in (a, b):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for thread in self.threads:
            thread.join(10)
        for _, a, b in self.connections:
            a.close()
            b.close()


@pytest.fixture
def proxy(sshd: Sshd) -> Iterator[FreezableProxy]:
    p = FreezableProxy(sshd.port)
    yield p
    p.close()


def proxied_known_hosts(tmp_path: Path, sshd: Sshd, port: int) -> str:
    key = (sshd.dir / "ssh_host_ed25519_key.pub").read_text().split()
    path = tmp_path / "proxy_known_hosts"
    path.write_text(f"[127.0.0.1]:{port} {key[0]} {key[1]}\n")
    return str(path)


def test_silently_dead_connection_is_replaced_before_use(
    make_channel: Callable[..., SSHChannel], proxy: FreezableProxy, sshd: Sshd, tmp_path: Path
) -> None:
    channel = make_channel(
        port=proxy.port, host_keys_filename=proxied_known_hosts(tmp_path, sshd, proxy.port), connect_timeout=2
    )
    assert channel.execute_wait("echo one")[1] == "one\n"
    proxy.freeze_existing()
    start = time.monotonic()
    assert channel.execute_wait("echo two")[1] == "two\n"  # the session does not open: reconnect once
    assert time.monotonic() - start < 15
    assert channel.connections == 2


def test_connection_dying_silently_during_a_command_is_reported(
    make_channel: Callable[..., SSHChannel], proxy: FreezableProxy, sshd: Sshd, tmp_path: Path
) -> None:
    channel = make_channel(
        port=proxy.port,
        host_keys_filename=proxied_known_hosts(tmp_path, sshd, proxy.port),
        connect_timeout=2,
        keepalive=1,
    )
    assert channel.execute_wait("echo up")[1] == "up\n"
    # The "remote" side shares /tmp with us: the command leaves a mark there once it runs.
    shared = Path(tempfile.mkdtemp(dir="/tmp", prefix="flowlib-ssh-test-"))
    shared.chmod(0o777)
    marker = shared / "running"
    done = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            channel.execute_wait(f"echo $$ > {marker}.tmp; mv {marker}.tmp {marker}; sleep 20")
        except BaseException as e:
            failure.append(e)
        done.set()

    runner = threading.Thread(target=run)
    runner.start()
    try_assert(marker.exists, timeout=15, message="the remote command did not start")
    proxy.freeze_existing()
    assert done.wait(15), "execute_wait hung on a silently dead connection"
    runner.join()
    assert failure and isinstance(failure[0], ChannelError) and "lost while" in str(failure[0])
    assert channel.execute_wait("echo recovered")[1] == "recovered\n"
    channel.execute_wait(f"kill -KILL -- -{int(marker.read_text())}")  # the orphaned sleep
    shutil.rmtree(shared)


def test_silent_server_times_out_at_connect_timeout() -> None:
    with socket.create_server(("127.0.0.1", 0)) as mute:  # accepts TCP, never says a word
        port = mute.getsockname()[1]
        start = time.monotonic()
        with pytest.raises(ChannelConnectError, match=f"127.0.0.1:{port}"):
            SSHChannel("127.0.0.1", port=port, connect_timeout=1).execute_wait("true")
        assert time.monotonic() - start < 10


# ----------------------------------------------------------------- host keys


def test_unknown_host_key_is_refused_by_default(
    make_channel: Callable[..., SSHChannel], sshd: Sshd, tmp_path: Path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    channel = make_channel(host_keys_filename=str(empty))
    with pytest.raises(HostKeyError) as info:
        channel.execute_wait("true")
    error = info.value
    assert error.reason == "unknown"
    assert error.fingerprint == sshd.host_fingerprint
    assert sshd.host_fingerprint in str(error) and f"127.0.0.1:{sshd.port}" in str(error)
    assert empty.read_text() == ""


def changed_known_hosts(tmp_path: Path, sshd: Sshd) -> Path:
    other = new_client_key(tmp_path)  # any other ed25519 key stands in for the "old" host key
    public = Path(other + ".pub").read_text().split()
    path = tmp_path / "changed_known_hosts"
    path.write_text(f"[127.0.0.1]:{sshd.port} {public[0]} {public[1]}\n")
    return path


@pytest.mark.parametrize("policy", ["reject", "warn", "auto-add"])
def test_changed_host_key_is_refused_under_every_policy(
    make_channel: Callable[..., SSHChannel], sshd: Sshd, tmp_path: Path, policy: str
) -> None:
    known = changed_known_hosts(tmp_path, sshd)
    before = known.read_text()
    channel = make_channel(host_keys_filename=str(known), known_hosts_policy=policy)
    with pytest.raises(HostKeyError) as info:
        channel.execute_wait("true")
    error = info.value
    assert error.reason == "changed"
    assert error.fingerprint == sshd.host_fingerprint
    assert "CHANGED" in str(error) and sshd.host_fingerprint in str(error)
    assert error.expected_fingerprint is not None and error.expected_fingerprint.split()[1] in str(error)
    assert known.read_text() == before


def test_auto_add_accepts_and_records_the_key(
    make_channel: Callable[..., SSHChannel], sshd: Sshd, tmp_path: Path
) -> None:
    known = tmp_path / "sub" / "known_hosts"
    channel = make_channel(host_keys_filename=str(known), known_hosts_policy="auto-add")
    assert channel.execute_wait("echo in")[1] == "in\n"
    assert known.read_text().startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 ")
    strict = make_channel(host_keys_filename=str(known))
    assert strict.execute_wait("echo again")[1] == "again\n"


def test_warn_policy_connects_and_logs(
    make_channel: Callable[..., SSHChannel], sshd: Sshd, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    channel = make_channel(host_keys_filename=str(known), known_hosts_policy="warn")
    with caplog.at_level(logging.WARNING, logger="flowlib.channels.ssh"):
        assert channel.execute_wait("echo in")[0] == 0
    assert sshd.host_fingerprint in caplog.text
    assert known.read_text() == ""


def test_user_known_hosts_is_read(make_channel: Callable[..., SSHChannel], sshd: Sshd, isolated_home: Path) -> None:
    (isolated_home / ".ssh").mkdir()
    (isolated_home / ".ssh" / "known_hosts").write_text(Path(sshd.known_hosts).read_text())
    assert make_channel(host_keys_filename=None).execute_wait("true")[0] == 0


# ----------------------------------------------------------------- authentication


def test_wrong_key_is_an_authentication_error(
    make_channel: Callable[..., SSHChannel], sshd: Sshd, tmp_path: Path
) -> None:
    wrong = new_client_key(tmp_path)
    channel = make_channel(key_filename=wrong)
    with pytest.raises(AuthenticationError) as info:
        channel.execute_wait("true")
    text = str(info.value)
    assert f"{sshd.user}@127.0.0.1:{sshd.port}" in text
    assert f"publickey (key file {wrong})" in text
    assert "publickey" in info.value.allowed or "(refused)" in text


def test_missing_key_file_is_named(make_channel: Callable[..., SSHChannel], tmp_path: Path) -> None:
    missing = str(tmp_path / "no_such_key")
    with pytest.raises(AuthenticationError, match="no_such_key"):
        make_channel(key_filename=missing).execute_wait("true")


def test_default_key_in_home_is_used(make_channel: Callable[..., SSHChannel], sshd: Sshd, isolated_home: Path) -> None:
    ssh_dir = isolated_home / ".ssh"
    ssh_dir.mkdir()
    (ssh_dir / "id_ed25519").write_bytes(Path(sshd.key).read_bytes())
    (ssh_dir / "id_ed25519").chmod(0o600)
    assert make_channel(key_filename=None).execute_wait("id -un")[1] == f"{sshd.user}\n"


def test_agent_authentication(
    make_channel: Callable[..., SSHChannel], sshd: Sshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        try_assert(sock.exists, timeout=10, message="ssh-agent did not create its socket")
        env = dict(os.environ, SSH_AUTH_SOCK=str(sock))
        subprocess.run(["ssh-add", "-q", sshd.key], env=env, check=True, capture_output=True, timeout=20)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        channel = make_channel(key_filename=None)
        assert channel.execute_wait("id -un")[1] == f"{sshd.user}\n"
    finally:
        agent.kill()
        agent.wait()


# ----------------------------------------------------------------- keyboard-interactive


@pytest.fixture
def make_interactive(sshd: Sshd, isolated_home: Path) -> Iterator[Callable[..., SSHInteractiveLoginChannel]]:
    made: list[SSHInteractiveLoginChannel] = []

    def make(**kwargs: Any) -> SSHInteractiveLoginChannel:
        kwargs.setdefault("username", sshd.kbd_user)
        kwargs.setdefault("port", sshd.kbd_port)
        kwargs.setdefault("host_keys_filename", sshd.known_hosts)
        kwargs.setdefault("auth_timeout", 20)
        channel = SSHInteractiveLoginChannel("127.0.0.1", **kwargs)
        made.append(channel)
        return channel

    yield make
    for channel in made:
        channel.close()


def test_interactive_login_with_a_prompt_handler(
    make_interactive: Callable[..., SSHInteractiveLoginChannel], sshd: Sshd
) -> None:
    rounds: list[tuple[str, list[tuple[str, bool]]]] = []

    def handler(text: str, prompts: list[tuple[str, bool]]) -> list[str]:
        rounds.append((text, prompts))
        return [sshd.kbd_password for _ in prompts]

    channel = make_interactive(prompt_handler=handler)
    assert channel.execute_wait("id -un") == (0, f"{sshd.kbd_user}\n", "")
    asked = [prompt for _, prompts in rounds for prompt in prompts]
    assert asked and all(not echo for _, echo in asked)
    assert any("password" in prompt.lower() for prompt, _ in asked)


def test_interactive_password_argument_answers_password_prompts(
    make_interactive: Callable[..., SSHInteractiveLoginChannel], sshd: Sshd
) -> None:
    def handler(text: str, prompts: list[tuple[str, bool]]) -> list[str]:
        assert not prompts, f"the handler was asked {prompts} although password= answers them"
        return []

    channel = make_interactive(password=sshd.kbd_password, prompt_handler=handler)
    assert channel.execute_wait("id -un")[1] == f"{sshd.kbd_user}\n"


def test_interactive_wrong_answer_is_an_authentication_error(
    make_interactive: Callable[..., SSHInteractiveLoginChannel], sshd: Sshd
) -> None:
    channel = make_interactive(prompt_handler=lambda text, prompts: ["wrong" for _ in prompts])
    with pytest.raises(AuthenticationError) as info:
        channel.execute_wait("true")
    assert f"{sshd.kbd_user}@127.0.0.1:{sshd.kbd_port}" in str(info.value)
    assert "keyboard-interactive" in str(info.value)


def test_interactive_handler_failure_is_reported(make_interactive: Callable[..., SSHInteractiveLoginChannel]) -> None:
    def handler(text: str, prompts: list[tuple[str, bool]]) -> list[str]:
        raise RuntimeError("token device unplugged")

    channel = make_interactive(prompt_handler=handler)
    start = time.monotonic()
    with pytest.raises(AuthenticationError, match="token device unplugged") as info:
        channel.execute_wait("true")
    assert isinstance(info.value.__cause__, RuntimeError)
    assert time.monotonic() - start < 15


# ----------------------------------------------------------------- tunnel


class EchoServer:
    """A local TCP server on 127.0.0.1:<ephemeral> that sends back ``prefix`` + what it receives."""

    def __init__(self, prefix: bytes = b"") -> None:
        self.prefix = prefix
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port: int = self.listener.getsockname()[1]
        self.threads: list[threading.Thread] = []
        self.accepted = 0
        self._acceptor = threading.Thread(target=self._accept, name="echo-accept", daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            t = threading.Thread(target=self._echo, args=(conn,), name="echo-conn", daemon=True)
            self.threads.append(t)
            t.start()

    def _echo(self, conn: socket.socket) -> None:
        with conn:
            first = True
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                conn.sendall((self.prefix if first else b"") + data)
                first = False

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self._acceptor.join(10)
        for t in self.threads:
            t.join(10)


@pytest.fixture
def echo_server() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


def remote_client(port: int, payload: str) -> str:
    """A /usr/bin/python3 one-liner run remotely: connect, send, half-close, print the reply."""
    code = (
        "import socket,sys;"
        f"s=socket.create_connection(('127.0.0.1',{port}),timeout=20);"
        f"s.sendall({payload!r}.encode());s.shutdown(socket.SHUT_WR);"
        "b=b''\nwhile True:\n d=s.recv(65536)\n if not d: break\n b+=d\n"
        "sys.stdout.write(b.decode())"
    )
    return f"{REMOTE_PYTHON} -c {shlex.quote(code)}"


CONCURRENT_CLIENTS = r"""
import socket, sys, threading
port, n = int(sys.argv[1]), int(sys.argv[2])
ok = []
def one(i):
    payload = (b"client-%d;" % i) * 5000
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    def send():
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
    sender = threading.Thread(target=send)
    sender.start()
    got = bytearray()
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
    sender.join()
    s.close()
    ok.append(bytes(got) == payload)
threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(sum(ok), len(ok))
"""


def tunnel_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("flowlib-tunnel")]


def test_tunnel_carries_bytes_both_ways(channel: SSHChannel, echo_server: EchoServer) -> None:
    tunnel = SSHTunnel(channel, [echo_server.port])
    try:
        [remote_port] = tunnel.start()
        assert tunnel.remote_port(echo_server.port) == remote_port
        code, out, err = channel.execute_wait(remote_client(remote_port, "hello through the tunnel"))
        assert (code, out, err) == (0, "hello through the tunnel", "")
        stats = tunnel.statistics()
        assert stats.connections_total == 1
        assert stats.bytes_to_local == stats.bytes_to_remote == len("hello through the tunnel")
        assert stats.remote_ports == {remote_port: echo_server.port}
    finally:
        tunnel.close()
    assert not tunnel_threads()


def test_tunnel_twenty_concurrent_connections(channel: SSHChannel, echo_server: EchoServer) -> None:
    with SSHTunnel(channel, echo_server.port) as tunnel:
        [remote_port] = tunnel.remote_ports
        code, out, err = channel.execute_wait(
            f"{REMOTE_PYTHON} -c {shlex.quote(CONCURRENT_CLIENTS)} {remote_port} 20", walltime=45
        )
        assert (code, out, err) == (0, "20 20\n", "")
        assert tunnel.statistics().connections_total == 20
        assert echo_server.accepted == 20
    assert not tunnel_threads()


def test_tunnel_several_ports(channel: SSHChannel) -> None:
    servers = [EchoServer(b"A:"), EchoServer(b"B:")]
    try:
        with SSHTunnel(channel, [s.port for s in servers]) as tunnel:
            first, second = tunnel.remote_ports
            assert first != second
            assert channel.execute_wait(remote_client(first, "x"))[1] == "A:x"
            assert channel.execute_wait(remote_client(second, "y"))[1] == "B:y"
    finally:
        for s in servers:
            s.close()


def test_tunnel_survives_a_reconnection(channel: SSHChannel, echo_server: EchoServer) -> None:
    with SSHTunnel(channel, [echo_server.port], check_interval=0) as tunnel:
        [remote_port] = tunnel.remote_ports
        assert channel.execute_wait(remote_client(remote_port, "before"))[1] == "before"
        channel._transport.close()  # the connection drops; the next use reconnects and re-forwards

        def works_again() -> bool:
            tunnel.check()
            return channel.execute_wait(remote_client(remote_port, "after"))[1] == "after"

        try_assert(works_again, timeout=20, message="the tunnel did not come back after the reconnection")
        assert tunnel.remote_ports == [remote_port]
        assert tunnel.statistics().reconnections >= 1


def test_tunnel_watchdog_replaces_a_silently_dead_connection(
    make_channel: Callable[..., SSHChannel],
    proxy: FreezableProxy,
    sshd: Sshd,
    tmp_path: Path,
    echo_server: EchoServer,
) -> None:
    channel = make_channel(
        port=proxy.port, host_keys_filename=proxied_known_hosts(tmp_path, sshd, proxy.port), connect_timeout=2
    )
    with SSHTunnel(channel, [echo_server.port], check_interval=0.5) as tunnel:
        [remote_port] = tunnel.remote_ports
        proxy.freeze_existing()  # nobody uses the channel: only the watchdog can notice
        try_assert(lambda: tunnel.statistics().reconnections >= 1, timeout=20, message="the watchdog did not reconnect")
        assert channel.execute_wait(remote_client(remote_port, "via the new connection"))[1] == "via the new connection"
        assert channel.connections == 2


def test_tunnel_to_a_closed_local_port_drops_only_that_connection(channel: SSHChannel, echo_server: EchoServer) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    with SSHTunnel(channel, [dead_port, echo_server.port]) as tunnel:
        dead_remote, live_remote = tunnel.remote_ports
        code, out, _ = channel.execute_wait(remote_client(dead_remote, "lost"))
        assert out == ""  # the remote client sees the connection closed
        assert tunnel.statistics().local_connect_failures == 1
        assert channel.execute_wait(remote_client(live_remote, "still fine"))[1] == "still fine"


def test_tunnel_close_stops_the_remote_listener(channel: SSHChannel, echo_server: EchoServer) -> None:
    tunnel = SSHTunnel(channel, [echo_server.port])
    [remote_port] = tunnel.start()
    tunnel.close()
    assert not tunnel_threads()
    probe = (
        f"import socket\ntry:\n socket.create_connection(('127.0.0.1',{remote_port}),timeout=5).close()\n"
        " print('open')\nexcept OSError:\n print('closed')"
    )

    def listener_gone() -> bool:
        return channel.execute_wait(f"{REMOTE_PYTHON} -c {shlex.quote(probe)}")[1] == "closed\n"

    try_assert(listener_gone, timeout=10, message=f"remote port {remote_port} still accepts after close()")


def test_closing_the_channel_first_still_lets_the_tunnel_close(
    make_channel: Callable[..., SSHChannel], echo_server: EchoServer
) -> None:
    channel = make_channel()
    tunnel = open_tunnel(channel, echo_server.port, check_interval=0.1)  # a busy watchdog
    [remote_port] = tunnel.remote_ports
    assert channel.execute_wait(remote_client(remote_port, "hi"))[1] == "hi"
    channel.close()
    tunnel.close()
    assert not tunnel_threads()


def test_tunnel_arguments_are_checked(channel: SSHChannel) -> None:
    with pytest.raises(ValueError):
        SSHTunnel(channel, [])
    with pytest.raises(ValueError):
        SSHTunnel(channel, [80, 81], remote_ports=[0])
    with pytest.raises(ValueError):
        SSHTunnel(channel, [70000])
    with pytest.raises(ValueError):
        SSHTunnel(channel, [8080, 8080])
    with pytest.raises(TypeError):
        SSHTunnel(object(), [80])  # type: ignore[arg-type]


def test_host_key_fingerprint_matches_ssh_keygen(channel: SSHChannel, sshd: Sshd) -> None:
    channel.execute_wait("true")
    assert key_fingerprint(channel._transport.get_remote_server_key()) == sshd.host_fingerprint


def test_channel_errors_from_a_real_server_pickle(make_channel: Callable[..., SSHChannel], tmp_path: Path) -> None:
    with pytest.raises(AuthenticationError) as info:
        make_channel(key_filename=new_client_key(tmp_path)).execute_wait("true")
    copy = pickle.loads(pickle.dumps(info.value))
    assert str(copy) == str(info.value)
