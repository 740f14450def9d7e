"""Executors that get their workers in blocks from a provider.

The executor owns a provider and a table of blocks (block id -> job id). The
scaling strategy (:mod:`flowlib.jobs.strategy`) decides how many blocks to have;
this class starts them, polls their state, releases them, and turns "no block can
start" into a clear error instead of a silent hang.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from flowlib.executors.base import FlowlibExecutor
from flowlib.executors.errors import BadStateException, ScalingFailed
from flowlib.jobs.states import JobState, JobStatus
from flowlib.providers.base import ExecutionProvider

logger = logging.getLogger(__name__)

BlockErrorHandler = Callable[["BlockProviderExecutor", dict[str, JobStatus]], None]


def simple_error_handler(executor: BlockProviderExecutor, status: dict[str, JobStatus]) -> None:
    """Set the executor bad when every block has failed and no worker ever connected.

    The error carries what the failed jobs reported (their stderr tails) and where
    their whole stderr is.
    """
    if not status or executor.ever_connected or executor.provider is None:
        return
    failed = {b: s for b, s in status.items() if s.state in (JobState.FAILED, JobState.MISSING, JobState.TIMEOUT)}
    if len(failed) < max(1, executor.provider.init_blocks) or len(failed) < len(status):
        return
    details = "; ".join(
        f"block {b}: {s.state.name}"
        + (f": {s.message.strip()}" if s.message else "")
        + (f" (the job's stderr file: {s.stderr_path})" if s.stderr_path else "")
        for b, s in failed.items()
    )
    executor.set_bad_state_and_fail_all(
        BadStateException(executor, f"all {len(failed)} blocks failed before any worker connected; {details}")
    )


def noop_error_handler(executor: BlockProviderExecutor, status: dict[str, JobStatus], threshold: int = 3) -> None:
    """Never mark the executor bad, however many blocks fail (``block_error_handler=False``)."""


class BlockProviderExecutor(FlowlibExecutor):
    """Base class of executors whose workers come from a provider in blocks."""

    def __init__(
        self, *, provider: ExecutionProvider | None, block_error_handler: bool | BlockErrorHandler = True
    ) -> None:
        self.provider = provider
        if block_error_handler is True:
            self.block_error_handler: BlockErrorHandler | None = simple_error_handler
        elif block_error_handler is False:
            self.block_error_handler = noop_error_handler  # as in Parsl: False is the no-op handler
        else:
            self.block_error_handler = block_error_handler
        self.blocks_to_job_id: dict[str, str] = {}
        self.job_ids_to_block: dict[str, str] = {}
        self._block_status: dict[str, JobStatus] = {}
        self._block_ids = itertools.count()
        self._blocks_lock = threading.Lock()
        self._last_poll = 0.0
        self.bad_state_is_set = False
        self.executor_exception: BaseException | None = None
        self.ever_connected = False
        self.scaling_strategy: str | None = None
        """The name of the strategy scaling this executor ('none', 'simple', ...); set by the kernel's poller."""
        self.block_listeners: list[Callable[[str, JobStatus], None]] = []
        """Called with (block id, status) each time a block's state changes (first PENDING when it is
        submitted), under the executor's block lock: they must be quick and must not block (monitoring)."""

    # ---------------------------------------------------------- subclass API

    def launch_command(self, block_id: str) -> str:
        """The command a block runs on each node (before the launcher wraps it)."""
        raise NotImplementedError

    @property
    def outstanding(self) -> int:
        """Tasks submitted and not finished."""
        raise NotImplementedError

    @property
    def workers_per_node(self) -> float:
        """Workers one node is expected to run (for scaling decisions)."""
        return 1.0

    def fail_all_outstanding(self, exc: BaseException) -> None:
        """Fail every task not yet finished with ``exc``."""
        raise NotImplementedError

    def drain_blocks(self, block_ids: list[str]) -> None:
        """Ask the workers of these blocks to finish their tasks and exit (default: nothing)."""

    def idle_blocks(self) -> dict[str, float]:
        """Block id -> seconds its workers have been idle, for blocks known to be idle."""
        return {}

    # ---------------------------------------------------------------- blocks

    def set_bad_state_and_fail_all(self, exc: BaseException) -> None:
        """Mark the executor unusable and fail every outstanding task with ``exc``."""
        if self.bad_state_is_set:
            return
        logger.error("executor %s is in a bad state: %s", self.label, exc)
        self.bad_state_is_set = True
        self.executor_exception = exc
        self.fail_all_outstanding(exc)

    def scale_out(self, blocks: int = 1) -> list[str]:
        """Start ``blocks`` new blocks; return their ids. A failed submit is recorded as a FAILED block."""
        if self.provider is None:
            raise ScalingFailed(self, "this executor has no provider")
        started = []
        for _ in range(blocks):
            block_id = str(next(self._block_ids))
            command = self.launch_command(block_id)
            try:
                job_id = self.provider.submit(command, 1, job_name=f"flowlib.{self.label}.block-{block_id}")
            except Exception as e:
                logger.error("executor %s could not start block %s: %s", self.label, block_id, e)
                with self._blocks_lock:
                    # MISSING, as Parsl reports a block with no job (the error handlers count it as failed)
                    self._set_block(block_id, JobStatus(JobState.MISSING, message=f"submit failed: {e}"))
                continue
            with self._blocks_lock:
                self.blocks_to_job_id[block_id] = job_id
                self.job_ids_to_block[job_id] = block_id
                self._set_block(block_id, JobStatus(JobState.PENDING))  # submitted (recorded as such)
                self._set_block(block_id, JobStatus(getattr(self.provider, "submitted_state", JobState.PENDING)))
            logger.info("executor %s started block %s as job %s", self.label, block_id, job_id)
            started.append(block_id)
        return started

    def scale_in(self, blocks: int = 0, block_ids: list[str] | None = None, drain: bool = True) -> list[str]:
        """Release blocks: the given ids, or ``blocks`` of the idlest ones; return the ids released."""
        if self.provider is None:
            return []
        if block_ids is None:
            idle = self.idle_blocks()
            active = [b for b, s in self._block_status.items() if not s.terminal]
            ordered = sorted(active, key=lambda b: (-idle.get(b, -1.0), b))
            block_ids = ordered[:blocks]
        if not block_ids:
            return []
        if drain:
            self.drain_blocks(block_ids)
        with self._blocks_lock:  # before cancelling: pools that die now are known to be released, not lost
            for b in block_ids:
                self._set_block(b, JobStatus(JobState.SCALED_IN))
        job_ids = [self.blocks_to_job_id[b] for b in block_ids if b in self.blocks_to_job_id]
        if job_ids:
            try:
                self.provider.cancel(job_ids)
            except Exception:
                logger.exception("executor %s could not cancel jobs %s", self.label, job_ids)
        logger.info("executor %s released blocks %s", self.label, block_ids)
        return block_ids

    def poll_blocks(self, force: bool = False) -> dict[str, JobStatus]:
        """Refresh block states from the provider (at most once per its polling interval).

        The error handler sees the block states on every call, also between polls:
        a block whose submit failed is FAILED at once, with no poll needed.
        """
        if self.provider is None:
            return {}
        now = time.monotonic()
        if force or now - self._last_poll >= self.provider.status_polling_interval:
            self._last_poll = now
            self._refresh_block_status()
        status = self.block_status()
        if not self.bad_state_is_set:
            self.handle_errors(status)
        return status

    def status(self) -> dict[str, JobStatus]:
        """Parsl's name for :meth:`block_status`: the last known state of every block (block id -> JobStatus)."""
        return self.block_status()

    def handle_errors(self, status: dict[str, JobStatus]) -> None:
        """Give ``status`` (block id -> JobStatus) to the ``block_error_handler``, as each poll does (Parsl's API)."""
        if self.block_error_handler is not None:
            self.block_error_handler(self, status)

    def refresh_blocks(self, block_ids: list[str]) -> dict[str, JobStatus]:
        """Ask the provider about these blocks now (those not known to have ended); return their states."""
        if self.provider is None:
            return {}
        self._refresh_block_status(set(block_ids))
        status = self.block_status()
        return {b: status[b] for b in block_ids if b in status}

    def mark_block_failed(self, block_id: str, message: str) -> None:
        """Record a block as FAILED with ``message`` (its job is left alone: see :meth:`cancel_block_job`)."""
        with self._blocks_lock:
            self._set_block(block_id, JobStatus(JobState.FAILED, message=message))

    def cancel_block_job(self, block_id: str) -> None:
        """Cancel the job of a block, keeping its recorded state; a failure is logged."""
        job_id = self.blocks_to_job_id.get(block_id)
        if job_id is None or self.provider is None:
            return
        try:
            self.provider.cancel([job_id])
        except Exception:
            logger.exception("executor %s could not cancel job %s of block %s", self.label, job_id, block_id)

    def _refresh_block_status(self, only: set[str] | None = None) -> None:
        """Ask the provider about every block (or those in ``only``) not known to have ended."""
        assert self.provider is not None
        with self._blocks_lock:
            pending = {
                b: j
                for b, j in self.blocks_to_job_id.items()
                if not self._block_status[b].terminal and (only is None or b in only)
            }
        if pending:
            try:
                statuses = self.provider.status(list(pending.values()))
            except Exception:
                logger.exception("executor %s: polling block status failed; keeping the last known states", self.label)
                statuses = []
            fresh = [
                (block_id, self._never_connected(block_id, status))
                for (block_id, _), status in zip(pending.items(), statuses, strict=False)
            ]
            with self._blocks_lock:
                for block_id, status in fresh:
                    if not self._block_status[block_id].terminal:  # SCALED_IN, or marked failed meanwhile
                        self._set_block(block_id, status)

    def _never_connected(self, block_id: str, status: JobStatus) -> JobStatus:
        """A job that completed although no worker of its block ever connected did nothing: MISSING, a failure.

        (A ``worker_init`` ending in ``exit 0`` does that; counting it as a success would
        leave tasks waiting for workers that never come.)
        """
        if status.state is not JobState.COMPLETED or self.block_ever_connected(block_id) is not False:
            return status
        note = f"the block's job ended (EXIT CODE: {status.exit_code}) before any worker of it connected"
        message = f"{note}; {status.message}" if status.message else note
        return dataclasses.replace(status, state=JobState.MISSING, message=message)  # Parsl's state for it

    def block_ever_connected(self, block_id: str) -> bool | None:
        """Whether a worker of this block has ever connected; None when this executor cannot tell."""
        return None

    def _set_block(self, block_id: str, status: JobStatus) -> None:
        """Record a block's status (the caller holds ``_blocks_lock``); tell listeners when its state changed."""
        before = self._block_status.get(block_id)
        self._block_status[block_id] = status
        if before is not None and before.state is status.state:
            return
        for listener in list(self.block_listeners):
            try:
                listener(block_id, status)
            except Exception:
                logger.exception("executor %s: a block listener failed", self.label)

    def block_status(self) -> dict[str, JobStatus]:
        """The last known state of every block this executor started."""
        with self._blocks_lock:
            return dict(self._block_status)

    def active_blocks(self) -> list[str]:
        """Blocks pending or running."""
        return [b for b, s in self.block_status().items() if not s.terminal]

    def release_all_blocks(self, drain: bool = True) -> None:
        """Cancel every block that is not finished (at shutdown)."""
        active = self.active_blocks()
        if active:
            self.scale_in(block_ids=active, drain=drain)


def describe_status(status: dict[str, JobStatus]) -> dict[str, Any]:
    """A JSON-friendly view of block states."""
    return {b: {"state": s.state.name, "message": s.message} for b, s in status.items()}
