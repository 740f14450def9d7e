"""AprunLauncher: Cray ALPS."""

from __future__ import annotations

from flowlib.launchers._shell import ShellLauncher, check_constructor


class AprunLauncher(ShellLauncher):
    """Start the copies with Cray's ``aprun`` (ALPS), inside a PBS/Torque job on a Cray.

    Renders ``aprun -n N*T -N T <overrides> /bin/bash -c <command>``: ``-n`` is
    the total number of processing elements, ``-N`` how many per node. Each copy
    sees ``ALPS_APP_PE`` (0 .. N*T-1). ``overrides`` is shell text added to the
    ``aprun`` options (one line), e.g. ``"-cc none -d 64"``.
    """

    template = "aprun.sh"

    def __init__(self, debug: bool = True, overrides: str = "") -> None:
        check_constructor(
            "AprunLauncher", {"debug": (debug, bool), "overrides": (overrides, str)}, one_line=("overrides",)
        )
        super().__init__(debug=debug)
        self.overrides = overrides

    def template_values(self, tasks_per_node: int, nodes_per_block: int) -> dict[str, str | int]:
        return {"overrides": self.overrides}
