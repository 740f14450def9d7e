"""The common shape of flowlib's launchers: check the arguments, fill a shell template.

Every launcher's text runs the user's command as ``/bin/bash -c <command>``, with
the command quoted by :func:`shlex.quote`: whatever it contains (quotes, ``$``,
backticks, braces, newlines, a line that looks like a heredoc delimiter) reaches
bash unchanged, and is expanded by the bash that runs each copy, so ``$SLURM_PROCID``
in a command is that copy's rank. The launcher text itself is a subshell
``( ... )``: its variables, traps and ``set -x`` stay inside it, and its exit
status is the block's exit status.
"""

from __future__ import annotations

import shlex
from typing import Any, ClassVar

from flowlib.launchers._template import render
from flowlib.launchers.base import Launcher
from flowlib.validation import validate_arguments


def check_constructor(owner: str, arguments: dict[str, tuple[Any, Any]], one_line: tuple[str, ...] = ()) -> None:
    """Type-check constructor arguments (TypeError naming the argument).

    The arguments named in ``one_line`` are shell text inserted verbatim into a
    command line (``overrides``, ``prepend``, ``bind_cmd``): a newline in them
    would end that command line early, so it is a ValueError.
    """
    validate_arguments(owner, arguments)
    for name in one_line:
        value = arguments[name][0]
        if "\n" in value or "\r" in value:
            raise ValueError(f"{owner} argument {name!r} must be a single line of shell text, got {value!r}")


def check_call(owner: str, command: Any, tasks_per_node: Any, nodes_per_block: Any, script_dir: Any = "") -> None:
    """Check the launcher call's arguments; raise TypeError/ValueError naming the bad one."""
    if not isinstance(script_dir, str):
        raise TypeError(f"{owner} argument 'script_dir' must be str, got {type(script_dir).__name__}")
    if not isinstance(command, str):
        raise TypeError(f"{owner} argument 'command' must be str, got {type(command).__name__}")
    if not command.strip():
        raise ValueError(f"{owner} argument 'command' must not be empty")
    for name, value in (("tasks_per_node", tasks_per_node), ("nodes_per_block", nodes_per_block)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{owner} argument {name!r} must be int, got {type(value).__name__} ({value!r})")
        if value < 1:
            raise ValueError(f"{owner} argument {name!r} must be at least 1, got {value}")


class ShellLauncher(Launcher):
    """A launcher whose shell text is the template :attr:`template`.

    Every template gets ``trace`` (``set -x`` when ``debug``), ``command`` (the
    quoted command), ``tasks_per_node``, ``nodes_per_block`` and ``total`` (their
    product); a subclass adds its own values in :meth:`template_values`.
    """

    template: ClassVar[str]

    def __call__(self, command: str, tasks_per_node: int, nodes_per_block: int, script_dir: str = "") -> str:
        """The shell text that runs ``command`` ``tasks_per_node`` times on each node of the block.

        ``script_dir`` (Parsl's fourth argument, the provider's submit-script
        directory) is accepted and checked; the text does not depend on it,
        because flowlib's launchers pass the command inline, with no helper file.
        """
        check_call(type(self).__name__, command, tasks_per_node, nodes_per_block, script_dir)
        values: dict[str, str | int] = {
            "trace": "set -x" if self.debug else "",
            "command": shlex.quote(command),
            "tasks_per_node": tasks_per_node,
            "nodes_per_block": nodes_per_block,
            "total": tasks_per_node * nodes_per_block,
        }
        values.update(self.template_values(tasks_per_node, nodes_per_block))
        return render(self.template, values)

    def template_values(self, tasks_per_node: int, nodes_per_block: int) -> dict[str, str | int]:
        """Values for this launcher's own placeholders (none by default)."""
        return {}


def snippet(name: str, launcher: str) -> str:
    """A shared shell snippet (``nodes.sh``, ``wait.sh``) whose messages name ``launcher``."""
    return render(name, {"launcher": launcher})
