"""JsrunLauncher: IBM's jsrun (LSF on Summit-class machines)."""

from __future__ import annotations

from flowlib.launchers._shell import ShellLauncher, check_constructor


class JsrunLauncher(ShellLauncher):
    """Start the copies with IBM's ``jsrun``, inside an LSF job.

    Renders ``jsrun -n N*T -r T <overrides> /bin/bash -c <command>``: ``-n`` is
    the number of resource sets, ``-r`` resource sets per host; each resource set
    runs one copy (jsrun's default of one task per set) and has jsrun's default
    of one CPU, so a worker pool that should use a whole node needs e.g.
    ``overrides="-c ALL_CPUS -g ALL_GPUS"``. Each copy sees ``JSM_NAMESPACE_RANK``
    (0 .. N*T-1) and ``JSM_NAMESPACE_SIZE``.
    """

    template = "jsrun.sh"

    def __init__(self, debug: bool = True, overrides: str = "") -> None:
        check_constructor(
            "JsrunLauncher", {"debug": (debug, bool), "overrides": (overrides, str)}, one_line=("overrides",)
        )
        super().__init__(debug=debug)
        self.overrides = overrides

    def template_values(self, tasks_per_node: int, nodes_per_block: int) -> dict[str, str | int]:
        return {"overrides": self.overrides}
