"""Scaling strategies: how many blocks each executor should have right now.

- ``none``: only the ``init_blocks`` started with the executor.
- ``simple``: enough blocks for the outstanding tasks (times the provider's
  ``parallelism``), between ``min_blocks`` and ``max_blocks``; when no task has been
  outstanding for ``max_idletime`` seconds, back down to ``min_blocks``.
- ``htex_auto_scale``: ``simple``, and also releases individual blocks whose
  workers have been idle for ``max_idletime`` while others are busy. Released
  blocks are drained first, so no running task is lost.
"""

from __future__ import annotations

import logging
import math
import time

from flowlib.executors.block_provider import BlockProviderExecutor

logger = logging.getLogger(__name__)

STRATEGIES = ("none", "simple", "htex_auto_scale")


class Strategy:
    """Decides scale-out and scale-in for a set of block-provider executors."""

    def __init__(self, *, strategy: str | None, max_idletime: float) -> None:
        if strategy is None:
            strategy = "none"
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; known: {STRATEGIES}")
        self.strategy = strategy
        self.max_idletime = max_idletime
        self._idle_since: dict[str, float] = {}

    def strategize(self, executors: list[BlockProviderExecutor]) -> None:
        """Scale each executor once."""
        if self.strategy == "none":
            return
        for executor in executors:
            if executor.bad_state_is_set or executor.provider is None:
                continue
            try:
                self._scale(executor, time.monotonic())
            except Exception:
                logger.exception("scaling executor %s failed", executor.label)

    def _scale(self, executor: BlockProviderExecutor, now: float) -> None:
        provider = executor.provider
        assert provider is not None
        active = executor.active_blocks()
        outstanding = executor.outstanding
        min_blocks, max_blocks = provider.min_blocks, provider.max_blocks
        if outstanding == 0:
            if len(active) <= min_blocks:
                self._idle_since.pop(executor.label, None)
                return
            since = self._idle_since.setdefault(executor.label, now)
            if now - since >= self.max_idletime:
                logger.info(
                    "executor %s idle for %.0f s; scaling in to %d blocks", executor.label, now - since, min_blocks
                )
                executor.scale_in(len(active) - min_blocks)
                self._idle_since.pop(executor.label, None)
            return
        self._idle_since.pop(executor.label, None)
        slots_per_block = max(1.0, executor.workers_per_node * provider.nodes_per_block)
        wanted = math.ceil(outstanding * provider.parallelism / slots_per_block)
        wanted = min(max_blocks, max(min_blocks, wanted, 1))
        if wanted > len(active):
            logger.info(
                "executor %s: %d tasks outstanding on %d blocks; adding %d",
                executor.label,
                outstanding,
                len(active),
                wanted - len(active),
            )
            executor.scale_out(wanted - len(active))
        elif self.strategy == "htex_auto_scale" and wanted < len(active):
            idle = executor.idle_blocks()
            releasable = [
                b for b, seconds in sorted(idle.items(), key=lambda kv: -kv[1]) if seconds >= self.max_idletime
            ]
            excess = min(len(active) - wanted, len(active) - min_blocks)
            if releasable and excess > 0:
                executor.scale_in(block_ids=releasable[:excess])
