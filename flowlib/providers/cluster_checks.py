"""Checks of the keywords every scheduler provider shares, in one place.

Each check raises TypeError or ValueError naming the provider and the argument, or
:class:`~flowlib.errors.UnsuitableLauncherError` (a ConfigurationError and a TypeError)
for a launcher the provider cannot use.
Nothing here does I/O: providers call these from their constructors.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flowlib.channels.base import Channel
from flowlib.errors import UnsuitableLauncherError
from flowlib.launchers.base import Launcher
from flowlib.validation import ArgumentTypeError, validate_arguments

__all__ = ["LAUNCHER_NEEDS", "check_launcher", "check_positive_int", "validate_common"]

LAUNCHER_NEEDS = {
    "SrunLauncher": "srun, which exists only inside a Slurm allocation",
    "SrunMPILauncher": "srun, which exists only inside a Slurm allocation",
    "AprunLauncher": "aprun, which exists only on Cray ALPS systems",
    "JsrunLauncher": "jsrun, which exists only inside an IBM LSF allocation",
}
"""Launchers tied to one kind of system, by class name, and what they need."""


def check_positive_int(owner: str, name: str, value: object, minimum: int = 1) -> None:
    """Raise TypeError unless ``value`` is an int (not a bool), ValueError if below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentTypeError(f"{owner} argument {name!r} must be int, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{owner} argument {name!r} must be >= {minimum}, got {value}")


def validate_common(owner: str, values: dict[str, Any]) -> None:
    """Check the common keywords (types, ranges, ``min_blocks <= max_blocks``).

    The walltime's format is checked by :func:`flowlib.providers.walltime.parse_walltime`.
    """
    validate_arguments(
        owner,
        {
            "label": (values["label"], str),
            "channel": (values["channel"], Channel | None),
            "parallelism": (values["parallelism"], int | float),
            "walltime": (values["walltime"], str | None),
            "worker_init": (values["worker_init"], str),
            "scheduler_options": (values["scheduler_options"], str),
            "launcher": (values["launcher"], Launcher | None),
            "cmd_timeout": (values["cmd_timeout"], int | float),
            "move_files": (values["move_files"], bool | None),
        },
    )
    check_positive_int(owner, "nodes_per_block", values["nodes_per_block"], 1)
    for name in ("init_blocks", "min_blocks", "max_blocks"):
        check_positive_int(owner, name, values[name], 0)
    low, high = values["min_blocks"], values["max_blocks"]
    # init_blocks may lie outside [min_blocks, max_blocks], as in Parsl: that many blocks start,
    # and scaling afterwards keeps to the bounds.
    if low > high:
        raise ValueError(f"{owner} needs min_blocks <= max_blocks, got min_blocks={low}, max_blocks={high}")
    if isinstance(values["parallelism"], bool) or not 0 <= values["parallelism"] <= 1:
        raise ValueError(f"{owner} argument 'parallelism' must be between 0 and 1, got {values['parallelism']!r}")
    if isinstance(values["cmd_timeout"], bool) or values["cmd_timeout"] <= 0:
        raise ValueError(f"{owner} argument 'cmd_timeout' must be a positive number, got {values['cmd_timeout']!r}")


def check_launcher(
    owner: str, launcher: Launcher, nodes_per_block: int, refused: Iterable[str], scheduler: str
) -> None:
    """Refuse a launcher whose class (or a base class) is in ``refused``, and a
    single-node launcher for blocks of several nodes; the message names both sides."""
    names = [cls.__name__ for cls in type(launcher).__mro__]
    refused = set(refused)
    for name in names:
        if name in refused:
            raise UnsuitableLauncherError(
                f"{owner} cannot use launcher {type(launcher).__name__}: it needs "
                f"{LAUNCHER_NEEDS.get(name, 'another kind of system')}, and {owner} runs its blocks through {scheduler}"
            )
    if "SingleNodeLauncher" in names and nodes_per_block > 1:
        raise UnsuitableLauncherError(
            f"{owner} with nodes_per_block={nodes_per_block} cannot use launcher {type(launcher).__name__}: "
            "it starts workers on one node only; use a multi-node launcher (e.g. SrunLauncher, "
            "MpiExecLauncher) or nodes_per_block=1"
        )
