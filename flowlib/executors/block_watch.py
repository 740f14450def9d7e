"""Noticing blocks that were lost after their workers connected.

::

    executor's event thread               watch thread (woken by an event, else every ``period`` s)
    pool registered / pool lost  ---->    blocks left without a pool: ask the provider for their job
                                          job ended, or alive with no pool for ``grace`` s -> block lost
                                          no pool and no live block left:
                                            a scaling strategy -> it starts a replacement
                                            strategy "none"    -> fail every outstanding task and
                                                                  refuse new ones (BadStateException)

A pool that drains (scale-in) is not lost. Pools of blocks this executor did not
start (pools started by hand) are counted as connected pools, but their loss
alone never marks a block lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flowlib.executors.errors import BadStateException
from flowlib.jobs.states import JobState, JobStatus

if TYPE_CHECKING:
    from flowlib.executors.block_provider import BlockProviderExecutor

logger = logging.getLogger(__name__)


@dataclass
class _Orphan:
    """A block of ours whose every pool has gone."""

    since: float
    why: str


class LostBlockWatch:
    """Tracks which blocks have connected pools and acts when a block is lost.

    ``pool_registered`` and ``pool_lost`` are called by the executor as the
    interchange reports pools; they never block. The provider is asked about
    jobs only on the watch's own thread.
    """

    def __init__(
        self,
        executor: BlockProviderExecutor,
        *,
        period: float,
        grace: float,
        stopped: Callable[[], bool],
    ) -> None:
        self.executor = executor
        self.period = min(max(period, 0.1), 5.0)
        self.grace = grace
        self._stopped = stopped
        self._lock = threading.Lock()
        self._pools: dict[str, set[str]] = {}
        self._orphans: dict[str, _Orphan] = {}
        self.lost: dict[str, str] = {}
        """Block id -> why it was lost, for blocks found lost."""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --------------------------------------------------------------- events

    def pool_registered(self, block_id: str, pool_id: str) -> None:
        """A pool of ``block_id`` registered (a block that comes back is no longer orphaned)."""
        with self._lock:
            self._pools.setdefault(block_id, set()).add(pool_id)
            self._orphans.pop(block_id, None)

    def pool_lost(self, block_id: str, pool_id: str, why: str) -> None:
        """A pool went away; ``why`` is the interchange's reason ("drained" for a pool that drained)."""
        with self._lock:
            pools = self._pools.get(block_id, set())
            pools.discard(pool_id)
            if pools or why == "drained" or block_id not in self.executor.blocks_to_job_id:
                return
            self._orphans[block_id] = _Orphan(time.monotonic(), f"its last worker pool ({pool_id}) was lost: {why}")
        self._wake.set()

    @property
    def connected_pools(self) -> int:
        """Pools connected now, of any block."""
        with self._lock:
            return sum(len(p) for p in self._pools.values())

    # --------------------------------------------------------------- thread

    def start(self) -> None:
        """Start the watch thread."""
        self._thread = threading.Thread(
            target=self._run, name=f"flowlib-block-watch-{self.executor.label}", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop the watch thread and wait for it."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.period)
            self._wake.clear()
            if self._stop.is_set() or self._stopped():
                return
            try:
                self.check(time.monotonic())
            except Exception:
                logger.exception("executor %s: checking for lost blocks failed", self.executor.label)

    # ------------------------------------------------------------- decision

    def check(self, now: float) -> None:
        """One round: find out which orphaned blocks are lost; fail the executor if nothing is left."""
        executor = self.executor
        if executor.bad_state_is_set:
            return
        with self._lock:
            orphans = dict(self._orphans)
        to_cancel: list[str] = []
        if orphans:
            statuses = executor.refresh_blocks(list(orphans))
            for block_id, orphan in orphans.items():
                if self._judge(block_id, orphan, statuses.get(block_id), now):
                    to_cancel.append(block_id)
        try:
            self._decide()
        finally:
            for block_id in to_cancel:  # after the tasks were failed: cancelling may take a while
                executor.cancel_block_job(block_id)

    def _decide(self) -> None:
        executor = self.executor
        if not self.lost or self.connected_pools or executor.active_blocks():
            return
        strategy = executor.scaling_strategy
        provider = executor.provider
        if strategy not in (None, "none") and provider is not None and provider.max_blocks > 0:
            logger.warning(
                "executor %s: every block was lost (%s); the %r strategy starts a replacement",
                executor.label, "; ".join(self.lost.values()), strategy,
            )  # fmt: skip
            self.lost.clear()
            return
        why = "; ".join(self.lost.values())
        executor.set_bad_state_and_fail_all(
            BadStateException(
                executor,
                f"no block is left to run tasks and strategy {strategy or 'none'!r} starts no replacement: {why}",
            )
        )

    def _judge(self, block_id: str, orphan: _Orphan, status: JobStatus | None, now: float) -> bool:
        """Record ``block_id`` as lost if it is; return True if its still-running job must be cancelled."""
        executor = self.executor
        job_id = executor.blocks_to_job_id.get(block_id, "?")
        if status is None or status.state is JobState.SCALED_IN:
            self._forget(block_id)  # released by flowlib, or not ours
            return False
        cancel = False
        detail = f" ({status.message.strip()})" if status.message else ""
        if status.terminal:
            verdict = f"block {block_id} (job {job_id}) was lost: its job is {status.state.name}{detail}; {orphan.why}"
        elif now - orphan.since > self.grace:
            verdict = (
                f"block {block_id} (job {job_id}) was lost: no worker pool came back within {self.grace:g} s "
                f"while its job stayed {status.state.name}{detail}, so the job was cancelled; {orphan.why}"
            )
            executor.mark_block_failed(block_id, verdict)
            cancel = True
        else:
            return False  # the job may be ending, or a pool may come back: look again later
        logger.error("executor %s: %s", executor.label, verdict)
        self._forget(block_id)
        self.lost[block_id] = verdict
        return cancel

    def _forget(self, block_id: str) -> None:
        with self._lock:
            self._orphans.pop(block_id, None)
