"""Block error handlers under Parsl's module path, for ``block_error_handler=``.

A block error handler is called with the executor and its blocks' states
(block id -> :class:`~flowlib.jobs.states.JobStatus`) each time the executor
polls them; it decides whether failed blocks mean the executor cannot work, and
then calls ``executor.set_bad_state_and_fail_all(error)``, which fails every
outstanding and future task with that error.

``block_error_handler=True`` (the default of the high-throughput executor) keeps
flowlib's own rule, :func:`flowlib.executors.block_provider.simple_error_handler`
(every block failed before any worker connected). The functions here follow
Parsl's documented rules, with a ``threshold`` (default 3) of failed blocks:

* :func:`simple_error_handler`: bad once at least ``threshold`` blocks exist and
  all of them have failed;
* :func:`windowed_error_handler`: bad once the ``threshold`` most recent blocks
  (by block id) have all failed, whatever happened to older blocks;
* :func:`noop_error_handler`: never; ``block_error_handler=False`` sets this one.

A different threshold: ``functools.partial(windowed_error_handler, threshold=5)``.
"""

from __future__ import annotations

from flowlib.executors.block_provider import BlockProviderExecutor, noop_error_handler
from flowlib.executors.errors import BadStateException
from flowlib.jobs.states import JobState, JobStatus

__all__ = ["noop_error_handler", "simple_error_handler", "windowed_error_handler"]

_FAILED = (JobState.FAILED, JobState.MISSING)


def _check_threshold(threshold: int) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise ValueError(f"block error handler threshold must be an int of at least 1, got {threshold!r}")


def _block_order(block_id: str) -> tuple[int, int | str]:
    # Numeric block ids ("0", "1", ... "10") in numeric order; anything else after them, by name.
    return (0, int(block_id)) if block_id.isdigit() else (1, block_id)


def _fail(executor: BlockProviderExecutor, failed: dict[str, JobStatus], rule: str) -> None:
    details = "; ".join(
        f"block {block}: {status.state.name}" + (f": {status.message.strip()}" if status.message else "")
        for block, status in failed.items()
    )
    executor.set_bad_state_and_fail_all(BadStateException(executor, f"{rule}; {details}"))


def simple_error_handler(executor: BlockProviderExecutor, status: dict[str, JobStatus], threshold: int = 3) -> None:
    """Mark the executor bad when there are at least ``threshold`` blocks and every one has failed."""
    _check_threshold(threshold)
    failed = {block: s for block, s in status.items() if s.state in _FAILED}
    if len(status) >= threshold and len(failed) == len(status):
        _fail(executor, failed, f"all {len(failed)} blocks failed (threshold {threshold})")


def windowed_error_handler(executor: BlockProviderExecutor, status: dict[str, JobStatus], threshold: int = 3) -> None:
    """Mark the executor bad when the ``threshold`` most recent blocks have all failed."""
    _check_threshold(threshold)
    recent = sorted(status, key=_block_order)[-threshold:]
    if len(recent) == threshold and all(status[block].state in _FAILED for block in recent):
        _fail(executor, {block: status[block] for block in recent}, f"the last {threshold} blocks all failed")
