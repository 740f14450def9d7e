"""Parsl's module path for the base class of executors that get blocks from a provider.

``BlockProviderExecutor`` here is :class:`flowlib.executors.block_provider.BlockProviderExecutor`
itself (the same class, so ``isinstance`` and subclassing work under either path).
"""

from flowlib.executors.block_provider import BlockErrorHandler, BlockProviderExecutor

__all__ = ["BlockErrorHandler", "BlockProviderExecutor"]
