"""Apps: decorated functions whose calls become tasks of the DataFlowKernel.

``@python_app``, ``@bash_app`` and ``@join_app`` work bare or with options::

    @python_app
    def double(x: int) -> int:
        return 2 * x

    @bash_app(cache=True, executors=["cluster"])
    def echo(msg, stdout=AUTO_LOGNAME):
        return f"echo {msg}"

Calling an app returns an :class:`~flowlib.dataflow.futures.AppFuture` at once.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from flowlib.app.special import SPECIAL_KEYWORDS

if TYPE_CHECKING:
    from flowlib.app.bash import BashApp
    from flowlib.app.python import PythonApp
    from flowlib.dataflow.dflow import DataFlowKernel
    from flowlib.dataflow.futures import AppFuture

P = ParamSpec("P")
R = TypeVar("R")


class AppBase(Generic[P, R]):
    """What every app kind shares: the function, its options and its signature facts.

    Parameters:
        func: the function (or a ``functools.partial`` carrying a ``__name__``).
        data_flow_kernel: the kernel to submit to; default the loaded one.
        executors: executor labels the tasks may run on, or ``"all"``.
        cache: reuse results for equal arguments (memoization).
        ignore_for_cache: keyword arguments left out of the cache key.
    """

    kind: str = "python"

    def __init__(
        self,
        func: Callable[P, Any],
        data_flow_kernel: DataFlowKernel | None = None,
        executors: str | Sequence[str] = "all",
        cache: bool = False,
        ignore_for_cache: Sequence[str] | None = None,
    ) -> None:
        if not callable(func):
            raise TypeError(f"an app must be made from a callable, got {type(func).__name__} ({func!r})")
        if inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(getattr(func, "func", None)):
            raise TypeError(
                f"{getattr(func, '__name__', func)!r} is a coroutine function (async def); apps must be "
                "regular functions. Call asyncio.run(...) inside a regular function instead."
            )
        name = getattr(func, "__name__", None)
        if not isinstance(name, str):
            raise TypeError(
                f"an app's function must have a __name__; {func!r} has none "
                "(for functools.partial, copy it with functools.update_wrapper)"
            )
        if isinstance(executors, str):
            if executors != "all":
                raise TypeError(f"executors must be 'all' or a list of labels, got the string {executors!r}")
        elif not all(isinstance(e, str) for e in executors):
            raise TypeError(f"executors must be a list of executor labels (str), got {executors!r}")
        if not isinstance(cache, bool):
            raise TypeError(f"cache must be a bool, got {type(cache).__name__}")
        self.func = func
        self.executable_func = _without_future_defaults(func)
        self.__name__ = name
        self.__doc__ = getattr(func, "__doc__", None)
        self.data_flow_kernel = data_flow_kernel
        # a list, as in Parsl (frameworks compare it to one); the kernel keys its choice cache by a tuple copy
        self.executors: str | list[str] = executors if isinstance(executors, str) else list(executors)
        self.cache = cache
        self.ignore_for_cache = list(ignore_for_cache or [])
        self._fn_hash: str | None = None
        self._inspect_signature(func)

    def _inspect_signature(self, func: Callable[..., Any]) -> None:
        try:
            params = inspect.signature(func).parameters
        except (TypeError, ValueError):  # builtins without a signature: pass nothing special
            params = {}  # type: ignore[assignment]
        var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        accepted = SPECIAL_KEYWORDS if var_kw else SPECIAL_KEYWORDS.intersection(params)
        self.accepted_special = frozenset(accepted)
        self.strip_kwargs = SPECIAL_KEYWORDS - accepted
        self.kwargs = {
            k: params[k].default
            for k in ("stdout", "stderr", "walltime", "label")
            if k in params and params[k].default is not inspect.Parameter.empty
        }
        self.inputs = (
            params["inputs"].default
            if "inputs" in params and params["inputs"].default is not inspect.Parameter.empty
            else []
        )
        self.outputs = (
            params["outputs"].default
            if "outputs" in params and params["outputs"].default is not inspect.Parameter.empty
            else []
        )
        self.defaults_to_fill = tuple(
            (name, p.default)
            for name, p in params.items()
            if p.default is not inspect.Parameter.empty
            and p.kind is not inspect.Parameter.VAR_KEYWORD
            and (name in SPECIAL_KEYWORDS or isinstance(p.default, Future) or _holds_future(p.default))
            and p.kind is not inspect.Parameter.POSITIONAL_ONLY
        )

    @property
    def fn_hash(self) -> str:
        """The function's identity for memoization: module, name and source."""
        if self._fn_hash is None:
            from flowlib.dataflow.memoization import function_identity

            self._fn_hash = function_identity(self.func)
        return self._fn_hash

    def _kernel(self) -> DataFlowKernel:
        if self.data_flow_kernel is not None:
            return self.data_flow_kernel
        from flowlib.dataflow.dflow import DataFlowKernelLoader

        return DataFlowKernelLoader.dfk()

    def executable(self, executor_label: str, working_dir: str | None) -> Callable[..., Any]:
        """The callable an executor runs for one call of this app."""
        return self.executable_func

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> AppFuture[R]:
        """Submit a task; return its future at once."""
        for name, default in self.defaults_to_fill:
            if name not in kwargs:
                kwargs[name] = default
        return self._kernel().submit_app(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.__name__}>"


def _holds_future(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and any(isinstance(v, Future) for v in value)


def _without_future_defaults(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` with futures among its default values replaced by None.

    The kernel passes those arguments explicitly (waiting for the futures), and a
    future cannot travel to another process, so the shipped copy must not carry it.
    """
    if not isinstance(func, types.FunctionType):
        return func
    defaults = func.__defaults__ or ()
    kwdefaults = func.__kwdefaults__ or {}

    def futurish(v: Any) -> bool:
        return isinstance(v, Future) or _holds_future(v)

    if not any(futurish(v) for v in defaults) and not any(futurish(v) for v in kwdefaults.values()):
        return func
    clone = types.FunctionType(
        func.__code__,
        func.__globals__,
        func.__name__,
        tuple(None if futurish(v) else v for v in defaults),
        func.__closure__,
    )
    clone.__kwdefaults__ = {k: None if futurish(v) else v for k, v in kwdefaults.items()} or None
    clone.__qualname__ = func.__qualname__
    clone.__module__ = func.__module__
    clone.__doc__ = func.__doc__
    clone.__dict__.update(func.__dict__)
    return clone


@overload
def python_app(
    function: Callable[P, R],
    data_flow_kernel: DataFlowKernel | None = None,
    cache: bool = False,
    executors: str | Sequence[str] = "all",
    ignore_for_cache: Sequence[str] | None = None,
) -> PythonApp[P, R]: ...


@overload
def python_app(
    function: None = None,
    data_flow_kernel: DataFlowKernel | None = None,
    cache: bool = False,
    executors: str | Sequence[str] = "all",
    ignore_for_cache: Sequence[str] | None = None,
) -> Callable[[Callable[P, R]], PythonApp[P, R]]: ...


def python_app(
    function: Callable[P, R] | None = None,
    data_flow_kernel: DataFlowKernel | None = None,
    cache: bool = False,
    executors: str | Sequence[str] = "all",
    ignore_for_cache: Sequence[str] | None = None,
) -> PythonApp[P, R] | Callable[[Callable[P, R]], PythonApp[P, R]]:
    """Make a Python function an app: each call becomes a task and returns an AppFuture.

    Use bare (``@python_app``) or with options (``@python_app(cache=True)``).
    """
    from flowlib.app.python import PythonApp

    def decorator(func: Callable[P, R]) -> PythonApp[P, R]:
        return PythonApp(
            func, data_flow_kernel=data_flow_kernel, cache=cache, executors=executors, ignore_for_cache=ignore_for_cache
        )

    if function is not None:
        return decorator(function)
    return decorator


@overload
def bash_app(
    function: Callable[P, str],
    data_flow_kernel: DataFlowKernel | None = None,
    cache: bool = False,
    executors: str | Sequence[str] = "all",
    ignore_for_cache: Sequence[str] | None = None,
) -> BashApp[P]: ...


@overload
def bash_app(
    function: None = None,
    data_flow_kernel: DataFlowKernel | None = None,
    cache: bool = False,
    executors: str | Sequence[str] = "all",
    ignore_for_cache: Sequence[str] | None = None,
) -> Callable[[Callable[P, str]], BashApp[P]]: ...


def bash_app(
    function: Callable[P, str] | None = None,
    data_flow_kernel: DataFlowKernel | None = None,
    cache: bool = False,
    executors: str | Sequence[str] = "all",
    ignore_for_cache: Sequence[str] | None = None,
) -> BashApp[P] | Callable[[Callable[P, str]], BashApp[P]]:
    """Make a function that returns a shell command an app; the task runs it under bash.

    The future's result is 0; a non-zero exit raises BashExitFailure.
    """
    from flowlib.app.bash import BashApp

    def decorator(func: Callable[P, str]) -> BashApp[P]:
        return BashApp(
            func, data_flow_kernel=data_flow_kernel, cache=cache, executors=executors, ignore_for_cache=ignore_for_cache
        )

    if function is not None:
        return decorator(function)
    return decorator


@overload
def join_app(
    function: Callable[P, Future[R]],
    data_flow_kernel: DataFlowKernel | None = None,
    cache: bool = False,
    ignore_for_cache: Sequence[str] | None = None,
) -> PythonApp[P, R]: ...


@overload
def join_app(
    function: Callable[P, list[Any]] | Callable[P, Any],
    data_flow_kernel: DataFlowKernel | None = None,
    cache: bool = False,
    ignore_for_cache: Sequence[str] | None = None,
) -> PythonApp[P, Any]: ...


@overload
def join_app(
    function: None = None,
    data_flow_kernel: DataFlowKernel | None = None,
    cache: bool = False,
    ignore_for_cache: Sequence[str] | None = None,
) -> Callable[[Callable[P, Any]], PythonApp[P, Any]]: ...


def join_app(
    function: Callable[P, Any] | None = None,
    data_flow_kernel: DataFlowKernel | None = None,
    cache: bool = False,
    ignore_for_cache: Sequence[str] | None = None,
) -> PythonApp[P, Any] | Callable[[Callable[P, Any]], PythonApp[P, Any]]:
    """Make a function that launches other apps an app; it returns their future(s).

    The function runs on the kernel's internal executor and must return a future
    or a list of futures; the join app's future takes their result(s). The app is
    a :class:`~flowlib.app.python.PythonApp` with ``join=True``, as in Parsl.
    """
    from flowlib.app.python import PythonApp

    def decorator(func: Callable[P, Any]) -> PythonApp[P, Any]:
        return PythonApp(
            func, data_flow_kernel=data_flow_kernel, cache=cache, ignore_for_cache=ignore_for_cache, join=True
        )

    if function is not None:
        return decorator(function)
    return decorator
