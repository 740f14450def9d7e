"""Walltime strings: parse, validate and convert them once, at a provider's construction.

flowlib accepts two spellings everywhere a provider takes ``walltime``:

* ``"HH:MM:SS"``: hours (one or more digits, may exceed 24), minutes and seconds
  (two digits each, below 60), for example ``"00:10:00"`` or ``"36:00:00"``;
* ``"D-HH:MM:SS"``: days first, as Slurm writes it, for example ``"1-12:00:00"``.

Schedulers that do not know the day form (Grid Engine, PBS, Torque) get the same
duration as hours: ``"1-12:00:00"`` becomes ``"36:00:00"``.
"""

from __future__ import annotations

import re

__all__ = ["Walltime", "parse_walltime"]

_PATTERN = re.compile(r"(?:(?P<days>\d+)-)?(?P<hours>\d+):(?P<minutes>[0-5]\d):(?P<seconds>[0-5]\d)")


class Walltime:
    """A validated duration, kept in seconds, with the spellings schedulers want."""

    __slots__ = ("seconds", "text")

    def __init__(self, text: str, seconds: int) -> None:
        self.text = text
        """The string the user gave."""
        self.seconds = seconds
        """The duration in seconds."""

    @property
    def hms(self) -> str:
        """``"HH:MM:SS"`` with the hours possibly above 24 (Grid Engine, PBS, Torque)."""
        hours, rest = divmod(self.seconds, 3600)
        return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"

    @property
    def slurm(self) -> str:
        """``"D-HH:MM:SS"`` when at least a day, else ``"HH:MM:SS"`` (Slurm's ``--time``)."""
        days, rest = divmod(self.seconds, 86400)
        hms = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
        return f"{days}-{hms}" if days else hms

    def __repr__(self) -> str:
        return f"Walltime({self.text!r})"


def parse_walltime(value: object, owner: str = "provider", argument: str = "walltime") -> Walltime:
    """Check ``value`` and return it as a :class:`Walltime`.

    Raises TypeError when ``value`` is not a string and ValueError, naming the
    value and the accepted forms, when it is a string in another format or a
    zero duration.
    """
    if not isinstance(value, str):
        raise TypeError(
            f"{owner} argument {argument!r} must be str ('HH:MM:SS'), got {type(value).__name__} ({value!r})"
        )
    match = _PATTERN.fullmatch(value.strip())
    if match is None:
        raise ValueError(
            f"{owner} argument {argument!r} = {value!r} is not a walltime: use 'HH:MM:SS' (e.g. '01:30:00') "
            "or 'D-HH:MM:SS' (e.g. '1-00:00:00')"
        )
    days = int(match["days"] or 0)
    seconds = ((days * 24 + int(match["hours"])) * 60 + int(match["minutes"])) * 60 + int(match["seconds"])
    if seconds == 0:
        raise ValueError(f"{owner} argument {argument!r} = {value!r} is zero; a job needs some time to run")
    return Walltime(value, seconds)
