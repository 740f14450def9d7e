"""The channel to this machine: commands run under bash, files are copied on the local disk."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess

from flowlib.channels.base import Channel
from flowlib.channels.errors import ChannelError, ChannelTimeout, FileCopyError
from flowlib.utils import RepresentationMixin

logger = logging.getLogger(__name__)

BASH = shutil.which("bash") or "/bin/bash"

# After a walltime kill, how long to wait for the pipes to drain. Only a process that left
# the killed process group (setsid) can keep them open that long; we then stop reading.
_DRAIN_AFTER_KILL = 5.0


def _decode(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", errors="replace")


class LocalChannel(Channel, RepresentationMixin):
    """Run commands and move files on this machine.

    :param script_dir: where providers write submit scripts (they pick one when ``None``).
    :param userhome: the working directory of commands (Parsl's keyword; default: the
        current directory of the process when the command runs).
    :param envs: environment variables added to every command, on top of this process's.
    """

    def __init__(self, script_dir: str | None = None, userhome: str = ".", envs: dict[str, str] | None = None) -> None:
        self.script_dir = script_dir
        self.userhome = userhome
        self.envs: dict[str, str] = dict(envs or {})
        self.hostname = "localhost"

    def execute_wait(
        self, cmd: str, walltime: float | None = None, envs: dict[str, str] | None = None
    ) -> tuple[int, str, str]:
        """Run ``cmd`` with bash; return ``(exit_code, stdout, stderr)``.

        The command runs in a process group of its own; past ``walltime`` seconds the whole
        group (children and grandchildren) is killed with SIGKILL and
        :class:`~flowlib.channels.errors.ChannelTimeout` is raised, carrying what the
        command had printed.
        """
        env = dict(os.environ)
        env.update(self.envs)
        env.update(envs or {})
        try:
            proc = subprocess.Popen(
                [BASH, "-c", cmd],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=self.userhome,
                env=env,
                start_new_session=True,
            )
        except OSError as e:
            raise ChannelError(f"cannot run {cmd!r} with {BASH} in {self.userhome!r}: {e}") from e
        try:
            out, err = proc.communicate(timeout=walltime)
        except subprocess.TimeoutExpired:
            assert walltime is not None
            out_text, err_text = self._kill_group(proc)
            raise ChannelTimeout(cmd, walltime, stdout=out_text, stderr=err_text) from None
        except BaseException:  # KeyboardInterrupt and friends: leave nothing running
            self._kill_group(proc)
            raise
        return proc.returncode, _decode(out), _decode(err)

    @staticmethod
    def _kill_group(proc: subprocess.Popen[bytes]) -> tuple[str, str]:
        """Kill ``proc``'s process group; return what it printed."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the leader's pid is the group's id (new session)
        except ProcessLookupError:
            pass
        try:
            out, err = proc.communicate(timeout=_DRAIN_AFTER_KILL)
        except subprocess.TimeoutExpired:
            # A descendant escaped the group and holds the pipes: stop waiting for it.
            logger.warning("a process started by pid %d left its group and keeps its output open", proc.pid)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
            proc.wait()
            out, err = b"", b""
        return _decode(out), _decode(err)

    def push_file(self, source: str, dest_dir: str) -> str:
        """Copy ``source`` into ``dest_dir`` (created if missing), keeping its mode; return the new path.

        Nothing is copied when the destination is the source itself.
        """
        return self._copy(source, dest_dir)

    def pull_file(self, remote_source: str, local_dir: str) -> str:
        """The same as :meth:`push_file`: both sides are this machine."""
        return self._copy(remote_source, local_dir)

    @staticmethod
    def _copy(source: str, dest_dir: str) -> str:
        dest = os.path.join(dest_dir, os.path.basename(source))
        if not os.path.isfile(source):
            raise FileCopyError(source, dest, "no such file")
        try:
            os.makedirs(dest_dir, exist_ok=True)
            if os.path.exists(dest) and os.path.samefile(source, dest):
                return dest
            shutil.copy2(source, dest)
        except OSError as e:
            raise FileCopyError(source, dest, str(e)) from e
        return dest

    def makedirs(self, path: str, mode: int = 0o700, exist_ok: bool = False) -> None:
        """``os.makedirs``: raises ``FileExistsError`` if ``path`` exists and not ``exist_ok``."""
        os.makedirs(path, mode=mode, exist_ok=exist_ok)

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def abspath(self, path: str) -> str:
        """``path`` made absolute, relative to ``userhome``; ``~`` is expanded."""
        return os.path.abspath(os.path.join(self.userhome, os.path.expanduser(path)))

    def close(self) -> None:
        """Nothing to release."""
