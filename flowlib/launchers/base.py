"""The launcher contract: wrap a worker command so it starts on every node of a block."""

from __future__ import annotations

import abc
import inspect
from typing import Any

from flowlib.utils import RepresentationMixin


class Launcher(RepresentationMixin, metaclass=abc.ABCMeta):
    """A small callable: ``launcher(command, tasks_per_node, nodes_per_block, script_dir="") -> shell text``.

    The returned text runs ``command`` ``tasks_per_node`` times on each of the
    ``nodes_per_block`` nodes of a block (one worker pool per node, usually).
    ``script_dir`` is the provider's directory for submit scripts (Parsl's
    fourth argument); flowlib's own launchers accept it, check that it is a
    str, and need no files there. ``debug`` makes the generated shell trace
    its commands (``set -x``).
    """

    def __init__(self, debug: bool = True) -> None:
        self.debug = debug

    @abc.abstractmethod
    def __call__(self, command: str, tasks_per_node: int, nodes_per_block: int, script_dir: str = "") -> str:
        """The shell text that launches ``command`` across the block."""


def _script_dir_mode(launcher: Any) -> str:
    """How ``launcher`` takes ``script_dir``: ``"positional"``, ``"keyword"`` or ``"none"``."""
    try:
        signature = inspect.signature(launcher)
    except (TypeError, ValueError):
        # No signature to read (a builtin or C callable): call it the classic way.
        return "none"
    positional = 0
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return "positional"
        if parameter.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            positional += 1
        elif parameter.kind is inspect.Parameter.KEYWORD_ONLY and parameter.name == "script_dir":
            return "keyword"
    return "positional" if positional >= 4 else "none"


def call_launcher(
    launcher: Any, command: str, tasks_per_node: int, nodes_per_block: int, script_dir: str | None
) -> str:
    """Call ``launcher`` the way a provider does, with or without ``script_dir``.

    A launcher whose ``__call__`` takes a fourth positional argument (every
    flowlib launcher, and custom launchers written for Parsl) gets
    ``script_dir`` (``""`` when the provider has none), as does one with a
    keyword-only ``script_dir``; a custom launcher that takes only
    ``(command, tasks_per_node, nodes_per_block)`` is called with those three.
    For :class:`Launcher` subclasses the signature is read once per class.
    """
    if isinstance(launcher, Launcher):
        cls = type(launcher)
        mode = _SIGNATURE_CACHE.get(cls)
        if mode is None:
            mode = _SIGNATURE_CACHE[cls] = _script_dir_mode(launcher)
    else:
        mode = _script_dir_mode(launcher)
    directory = script_dir or ""
    if mode == "positional":
        return launcher(command, tasks_per_node, nodes_per_block, directory)
    if mode == "keyword":
        return launcher(command, tasks_per_node, nodes_per_block, script_dir=directory)
    return launcher(command, tasks_per_node, nodes_per_block)


_SIGNATURE_CACHE: dict[type, str] = {}
