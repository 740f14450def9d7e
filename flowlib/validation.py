"""Checking constructor arguments in one place, with errors that name the argument."""

from __future__ import annotations

from typing import Any

import typeguard

__all__ = ["ArgumentTypeError", "validate_arguments"]


class ArgumentTypeError(typeguard.TypeCheckError, TypeError):
    """An argument of the wrong type, raised by flowlib's constructors (Config, executors,
    providers, launchers, ...).

    It is a TypeError, and also typeguard's ``TypeCheckError``, which Parsl's
    typechecked constructors raise: code written for either catches it.
    """


def _describe(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    return text or str(annotation).replace("typing.", "")


def validate_arguments(owner: str, arguments: dict[str, tuple[Any, Any]]) -> None:
    """Check each ``name: (value, annotation)``; raise :class:`ArgumentTypeError` naming the first bad one.

    The message names the owner (a class), the argument, the expected type and the
    type received, e.g. ``Config argument 'retries' must be int, got str ('3')``.
    """
    for name, (value, annotation) in arguments.items():
        try:
            typeguard.check_type(
                value, annotation, collection_check_strategy=typeguard.CollectionCheckStrategy.ALL_ITEMS
            )
        except typeguard.TypeCheckError:
            shown = repr(value)
            if len(shown) > 60:
                shown = shown[:57] + "..."
            raise ArgumentTypeError(
                f"{owner} argument {name!r} must be {_describe(annotation)}, got {type(value).__name__} ({shown})"
            ) from None
