"""The kernel's background thread that polls blocks and applies the scaling strategy."""

from __future__ import annotations

import logging
import threading

from flowlib.executors.block_provider import BlockProviderExecutor
from flowlib.jobs.strategy import Strategy

logger = logging.getLogger(__name__)


class JobStatusPoller:
    """Every ``period`` seconds: refresh block states, then scale."""

    def __init__(self, executors: list[BlockProviderExecutor], strategy: Strategy, period: float) -> None:
        self.executors = executors
        self.strategy = strategy
        self.period = period
        for executor in executors:  # so that an executor that lost every block knows whether one will replace it
            executor.scaling_strategy = strategy.strategy
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flowlib-job-status-poller", daemon=True)

    def add_executor(self, executor: BlockProviderExecutor) -> None:
        """Poll and scale one more executor (added to a running kernel) from the next round on."""
        executor.scaling_strategy = self.strategy.strategy
        self.executors.append(executor)

    def start(self) -> None:
        """Start polling."""
        self._thread.start()

    def poll_once(self) -> None:
        """One round: poll every executor's blocks, then apply the strategy."""
        for executor in self.executors:
            try:
                executor.poll_blocks()
            except Exception:
                logger.exception("polling the blocks of executor %s failed", executor.label)
        self.strategy.strategize(self.executors)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.poll_once()

    def close(self) -> None:
        """Stop polling and wait for the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
