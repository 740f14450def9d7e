"""Exceptions raised by executors."""

from __future__ import annotations

from flowlib.errors import FlowlibError


def _describe(executor: object) -> str:
    """An executor as errors name it: its type and label, never its whole configuration."""
    label = getattr(executor, "label", None)
    if label is None:
        return str(executor)
    return f"{type(executor).__name__} {label!r}"


def _rebuild(cls: type[ExecutorError], args: tuple[object, ...], state: dict[str, object]) -> ExecutorError:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class ExecutorError(FlowlibError):
    """Base class of executor failures; names the executor by label.

    ``executor`` is the executor object; the exception's ``args``, ``repr`` and
    pickled form carry only its type and label (``HighThroughputExecutor 'htex'``),
    so logs and remote copies do not drag the whole configuration along.
    """

    def __init__(self, executor: object, reason: str) -> None:
        self.executor = executor
        self.reason = reason
        self.label = getattr(executor, "label", executor)
        """The executor's label (the executor itself when it has none, e.g. a name)."""
        super().__init__(_describe(executor), reason)

    def __str__(self) -> str:
        return f"Executor {self.label} failed due to: {self.reason}"

    def __reduce__(self) -> tuple[object, ...]:
        state = dict(self.__dict__)
        state["executor"] = _describe(self.executor)
        if not isinstance(state.get("label"), (str, type(None))):
            state["label"] = str(state["label"])
        return (_rebuild, (type(self), self.args, state))


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
