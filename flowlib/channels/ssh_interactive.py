"""An SSH channel that logs in through keyboard-interactive prompts (password, one-time codes).

Sites with two-factor logins ask for a password and then a code from a token or an app.
The server sends rounds of prompts; a *prompt handler* answers them:

``prompt_handler(text, prompts) -> answers``
    ``text`` is the server's title and instructions for the round (often empty);
    ``prompts`` is a list of ``(prompt, echo)``, ``echo`` False for secrets; the handler
    returns one answer per prompt (an empty list for a round without prompts).

The default handler asks on the terminal (``getpass`` for secrets). Scripts and tests pass
their own. If ``password`` is given, prompts that ask for a password are answered with it
and only the others reach the handler.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from flowlib.channels.errors import ChannelConnectError
from flowlib.channels.ssh import SSHChannel
from flowlib.channels.ssh_auth import Login

PromptHandler = Callable[[str, list[tuple[str, bool]]], list[str]]


def terminal_prompt_handler(text: str, prompts: list[tuple[str, bool]]) -> list[str]:
    """Show ``text`` and ask each prompt on the controlling terminal (secrets without echo)."""
    try:
        with open("/dev/tty", "r+") as tty:
            if text:
                tty.write(text + "\n")
                tty.flush()
            answers = []
            for prompt, echo in prompts:
                if echo:
                    tty.write(prompt)
                    tty.flush()
                    answers.append(tty.readline().rstrip("\n"))
                else:
                    answers.append(getpass.getpass(prompt, stream=tty))
            return answers
    except OSError as e:
        raise RuntimeError(
            f"no terminal to ask the login prompts on ({e}); pass prompt_handler= to SSHInteractiveLoginChannel"
        ) from e


class SSHInteractiveLoginChannel(SSHChannel):
    """An :class:`~flowlib.channels.ssh.SSHChannel` that authenticates with keyboard-interactive.

    :param prompt_handler: answers the server's prompts (see the module docstring);
        default: :func:`terminal_prompt_handler`.
    :param key_filename: key files tried *before* the prompts, for servers that require a
        key and then a one-time code; without it, only keyboard-interactive is used.
    :param auth_timeout: seconds allowed for each round of prompts (a person is typing).

    The other parameters are :class:`~flowlib.channels.ssh.SSHChannel`'s. The prompts come
    again whenever the channel reconnects after a dropped connection.
    """

    def __init__(
        self,
        hostname: str,
        username: str | None = None,
        password: str | None = None,
        script_dir: str | None = None,
        envs: dict[str, str] | None = None,
        prompt_handler: PromptHandler | None = None,
        port: int = 22,
        key_filename: str | Sequence[str] | None = None,
        host_keys_filename: str | None = None,
        known_hosts_policy: str = "reject",
        connect_timeout: float = 10,
        keepalive: float = 30,
        io_timeout: float = 60,
        auth_timeout: float = 300,
    ) -> None:
        super().__init__(
            hostname,
            username=username,
            password=password,
            script_dir=script_dir,
            envs=envs,
            skip_auth=True,
            port=port,
            key_filename=key_filename,
            host_keys_filename=host_keys_filename,
            known_hosts_policy=known_hosts_policy,
            connect_timeout=connect_timeout,
            keepalive=keepalive,
            io_timeout=io_timeout,
        )
        if prompt_handler is not None and not callable(prompt_handler):
            raise TypeError(f"prompt_handler must be callable, not {type(prompt_handler).__name__}")
        if not auth_timeout > 0:
            raise ValueError(f"auth_timeout must be a positive number of seconds, not {auth_timeout!r}")
        self.prompt_handler = prompt_handler
        self.auth_timeout = auth_timeout

    def _authenticate(self, paramiko: ModuleType, t: Any, username: str) -> None:
        login = Login(paramiko, t, username, self.hostname, self.port)
        if self.key_filename is not None:
            login.try_key_files(self._key_files(), self._password, explicit=True)
        if login.done:
            return
        handler = self.prompt_handler or terminal_prompt_handler
        failure: list[BaseException] = []

        def answer(title: str, instructions: str, prompts: list[tuple[str, bool]]) -> list[str]:
            # Runs in paramiko's thread: an exception here must not escape into it.
            text = "\n".join(part for part in (title, instructions) if part)
            prompts = [(str(p), bool(echo)) for p, echo in prompts]
            answers: list[str | None] = [None] * len(prompts)
            if self._password is not None:
                for i, (prompt, echo) in enumerate(prompts):
                    if not echo and "password" in prompt.lower():
                        answers[i] = self._password
            ask = [i for i, a in enumerate(answers) if a is None]
            if ask or (text and not prompts):
                try:
                    given = list(handler(text, [prompts[i] for i in ask]))
                    if len(given) != len(ask):
                        raise ValueError(f"the prompt handler gave {len(given)} answers to {len(ask)} prompts")
                    for i, value in zip(ask, given, strict=True):
                        answers[i] = str(value)
                except BaseException as e:
                    failure.append(e)
                    t.close()  # ends the login at once instead of sending wrong answers
                    return []
            return [a if a is not None else "" for a in answers]

        try:
            login.attempt("keyboard-interactive", lambda: t.auth_interactive(username, answer))
        except ChannelConnectError:
            if not failure:
                raise
        if failure:
            error = failure[0]
            if not isinstance(error, Exception):
                raise error  # KeyboardInterrupt at the prompt: let it through
            raise login.failure(f"the prompt handler failed: {error!r}") from error
        if not login.done:
            raise login.failure()
