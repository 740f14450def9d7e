"""One record per task, and the single function through which its state changes.

A :class:`TaskRecord` is readable both as attributes (``rec.fail_count``) and as a
mapping (``rec["fail_count"]``), because retry handlers written for Parsl index it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from flowlib.dataflow.states import TRANSITIONS, States
from flowlib.errors import InternalConsistencyError

if TYPE_CHECKING:
    from flowlib.dataflow.futures import AppFuture


class TaskRecord:
    """Everything the kernel knows about one task.

    Fields:

    - ``id``: the task id, unique within its kernel.
    - ``func``: the callable that runs (for bash apps, the command builder).
    - ``func_name``: the app's name.
    - ``fn_hash``: the app's identity for memoization (name and source).
    - ``args`` / ``kwargs``: as given by the caller; futures are replaced by their
      results just before launch.
    - ``executor``: the label of the executor chosen for this task.
    - ``status``: the current :class:`~flowlib.dataflow.states.States`.
    - ``depends``: the futures this task waits for.
    - ``app_fu``: the task's :class:`~flowlib.dataflow.futures.AppFuture` while it is in flight
      (None once it has finished, so finished tasks form no reference cycles).
    - ``exec_fu``: the executor's future for the current try, if launched.
    - ``fail_count`` / ``fail_cost`` / ``fail_history``: retry book-keeping.
    - ``try_id``: 0 for the first try, then 1, 2, ...
    - ``memoize`` / ``hashsum`` / ``ignore_for_cache``: memoization settings and key.
    - ``from_memo``: True when the result came from the memo table.
    - ``join``: True for join apps; ``joins`` holds the inner future(s).
    - ``resource_specification``: the task's resource request.
    - ``time_invoked`` / ``time_returned``: ``time.time()`` stamps.
    - ``history``: the states the task went through, oldest first.
    - ``kind``: ``"python"``, ``"bash"`` or ``"join"``.
    - ``dfk``: the kernel that owns the task.
    - ``stream_files``: set only when ``stdout``/``stderr`` was given as a ``File``:
      stream name -> that File (the keyword itself then holds the path the app writes).
    """

    __slots__ = (
        "id", "func", "func_name", "fn_hash", "args", "kwargs", "executor", "status",
        "depends", "app_fu", "exec_fu", "fail_count", "fail_cost", "fail_history",
        "try_id", "memoize", "hashsum", "ignore_for_cache", "from_memo", "join", "joins",
        "resource_specification", "time_invoked", "time_returned", "_history", "kind",
        "outstanding", "dfk", "strip_kwargs", "stream_files", "__weakref__",
    )  # fmt: skip

    stream_files: dict[str, Any]  # not set in __init__: only streams given as a File have it

    def __init__(
        self,
        tid: int,
        func: Callable[..., Any],
        func_name: str,
        fn_hash: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        executor: str,
        *,
        memoize: bool = False,
        ignore_for_cache: Sequence[str] | None = None,
        join: bool = False,
        kind: str = "python",
        resource_specification: dict[str, Any] | None = None,
        time_invoked: float = 0.0,
    ) -> None:
        self.id = tid
        self.func = func
        self.func_name = func_name
        self.fn_hash = fn_hash
        self.args = args
        self.kwargs = kwargs
        self.executor = executor
        self.status = States.unsched
        self.depends: Sequence[Future[Any]] = ()
        self.app_fu: AppFuture[Any] | None = None
        self.exec_fu: Future[Any] | None = None
        self.fail_count = 0
        self.fail_cost = 0.0
        self.fail_history: Sequence[str] = ()
        self.try_id = 0
        self.memoize = memoize
        self.hashsum: str | None = None
        self.ignore_for_cache = ignore_for_cache if ignore_for_cache is not None else ()
        self.from_memo = False
        self.join = join
        self.joins: Any = None
        self.resource_specification = resource_specification or {}
        self.time_invoked = time_invoked
        self.time_returned: float | None = None
        self._history = b""  # one byte per state left; bytes are invisible to the cyclic GC
        self.kind = kind
        self.outstanding = 0
        self.dfk: Any = None
        self.strip_kwargs: frozenset[str] = frozenset()

    @property
    def history(self) -> list[States]:
        """The states the task went through, oldest first (not counting the current one)."""
        return [States(code - 1) for code in self._history]

    def __getitem__(self, key: str) -> Any:
        if key == "status":
            return self.status
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in self.__slots__ or key.startswith("_"):
            raise KeyError(key)
        setattr(self, key, value)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (key in self.__slots__ or key == "history")

    def get(self, key: str, default: Any = None) -> Any:
        """Mapping-style access with a default."""
        return getattr(self, key, default)

    def __repr__(self) -> str:
        return f"<TaskRecord {self.id} {self.func_name} {self.status.name}>"


_STATE_CODES = {state: bytes((state.value + 1,)) for state in States}


def check_transition(record: TaskRecord, new: States) -> States:
    """Check that ``record`` may move to ``new``; return the old state.

    Raises InternalConsistencyError, carrying the task's history, for a move that
    the transition table does not allow.
    """
    old = record.status
    if (old, new) not in TRANSITIONS:
        path = " -> ".join(s.name for s in [*record.history, old])
        raise InternalConsistencyError(
            f"task {record.id} ({record.func_name}): illegal state transition {old.name} -> {new.name}; history: {path}"
        )
    record._history += _STATE_CODES[old]
    record.status = new
    return old
