"""Exceptions raised by executors."""

from __future__ import annotations

from flowlib.errors import FlowlibError


class ExecutorError(FlowlibError):
    """Base class of executor failures; names the executor by label."""

    def __init__(self, executor: object, reason: str) -> None:
        self.executor = executor
        self.reason = reason
        super().__init__(executor, reason)

    def __str__(self) -> str:
        label = getattr(self.executor, "label", self.executor)
        return f"Executor {label} failed due to: {self.reason}"


class BadStateException(ExecutorError):
    """The executor is in a state where it cannot take tasks (its workers died, it failed to start)."""


class UnsupportedFeatureError(ExecutorError):
    """The task asked for a feature this executor does not offer."""

    def __init__(self, feature: str, current_executor: str, target_executor: str | None) -> None:
        self.feature = feature
        self.current_executor = current_executor
        self.target_executor = target_executor
        reason = f"The {feature} feature is not supported by {current_executor}"
        if target_executor:
            reason += f"; use {target_executor} instead"
        super().__init__(current_executor, reason)


class InvalidResourceSpecification(ExecutorError):
    """A task's resource specification has a key or value the executor cannot honour."""

    def __init__(self, invalid_keys: set[str] | str, message: str | None = None) -> None:
        self.invalid_keys = invalid_keys
        self.message = message
        super().__init__(None, message or f"Invalid resource specification keys: {invalid_keys}")

    def __str__(self) -> str:
        return self.message or f"Invalid resource specification keys: {self.invalid_keys}"


class ScalingFailed(ExecutorError):
    """The executor could not get the blocks of workers it asked its provider for."""
