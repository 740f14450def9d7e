"""Process-state checks shared by the tests.

A process can exit between any two looks at ``/proc``, so each check reads one file once and treats a
missing file as "gone". PID 1 on these machines reaps late, so a zombie also counts as gone.
"""

from __future__ import annotations


def process_gone(pid: int) -> bool:
    """True once ``pid`` no longer runs: missing, a zombie waiting to be reaped, or dead."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")
