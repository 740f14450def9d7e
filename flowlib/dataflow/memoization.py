"""Deterministic task keys, the memo table, and checkpointing of results.

``id_for_memo`` turns an argument into bytes that are equal for equal values in
any process (it never uses ``hash()`` or ``id()``), and different for values that
differ in type or structure. Each encoding is self-delimiting: a one-byte tag,
an 8-byte big-endian length and the payload, so ``[[1], 2]`` and ``[1, [2]]`` or
``1``, ``"1"``, ``True`` and ``1.0`` never collide. Users add types with
``id_for_memo.register(MyType)``.

:class:`BasicMemoizer` keys a task by its app's identity (``fn_hash``), its
positional arguments and its keyword arguments (minus ``ignore_for_cache`` and
resource keywords), keeps results and exceptions in memory, and appends results
to the run's checkpoint store (:mod:`flowlib.dataflow.checkpoint`).
"""

from __future__ import annotations

import abc
import enum
import functools
import hashlib
import inspect
import logging
import os
import pathlib
import re
import threading
import types
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Literal

from flowlib.dataflow.checkpoint import CheckpointWriter, checkpoint_file, read_checkpoint
from flowlib.dataflow.taskrecord import TaskRecord
from flowlib.utils import RepresentationMixin

logger = logging.getLogger(__name__)

__all__ = ["BasicMemoizer", "Memoizer", "function_identity", "id_for_memo"]

# ----------------------------------------------------------------------------- keys


def _frame(tag: bytes, payload: bytes) -> bytes:
    return tag + len(payload).to_bytes(8, "big") + payload


def _typed(obj: object, base: type, tag: bytes, payload: bytes) -> bytes:
    """Frame ``payload``; a subclass of ``base`` (an IntEnum, ...) also carries its type name."""
    if type(obj) is base:
        return _frame(tag, payload)
    cls = type(obj)
    name = f"{cls.__module__}.{cls.__qualname__}".encode()
    return _frame(b"X", _frame(b"t", name) + _frame(tag, payload))


def _child(obj: object, output_ref: bool) -> bytes:
    key = id_for_memo(obj, output_ref=output_ref)
    if not isinstance(key, bytes):
        raise TypeError(
            f"the id_for_memo key function for {type(obj).__qualname__} returned "
            f"{type(key).__qualname__}, expected bytes"
        )
    return key


@functools.singledispatch
def id_for_memo(obj: object, output_ref: bool = False) -> bytes:
    """Return the memoization key of ``obj`` as bytes.

    ``output_ref`` is True while encoding the ``outputs`` keyword (files the task
    will write), so a key function may ignore content that does not exist yet.
    Raises ValueError for a type with no key function.
    """
    if _register_lazy_types():
        return id_for_memo(obj, output_ref=output_ref)
    cls = type(obj)
    raise ValueError(
        f"cannot compute a memoization key for an argument of type "
        f"{cls.__module__}.{cls.__qualname__}; register a key function with "
        f"@id_for_memo.register({cls.__qualname__}) returning bytes, or leave the "
        f"argument out with ignore_for_cache"
    )


def _scalar_key(base: type, tag: bytes, encode: Callable[[Any], bytes]) -> Callable[..., bytes]:
    def key(obj: Any, output_ref: bool = False) -> bytes:
        return _typed(obj, base, tag, encode(obj))

    key.__name__ = f"id_for_memo_{base.__name__}"
    return key


def _sequence_key(base: type, tag: bytes) -> Callable[..., bytes]:
    def key(obj: Any, output_ref: bool = False) -> bytes:
        return _typed(obj, base, tag, b"".join(_frame(b"e", _child(x, output_ref)) for x in obj))

    key.__name__ = f"id_for_memo_{base.__name__}"
    return key


_SCALARS: list[tuple[type, bytes, Callable[[Any], bytes]]] = [
    (type(None), b"N", lambda _: b""),
    (bool, b"B", lambda b: b"1" if b else b"0"),
    (int, b"I", lambda n: int(n).to_bytes((n.bit_length() + 8) // 8, "big", signed=True)),
    (float, b"F", lambda x: float(x).hex().encode()),
    (complex, b"C", lambda z: f"{z.real.hex()},{z.imag.hex()}".encode()),
    (str, b"S", lambda s: str(s).encode("utf-8", "surrogatepass")),
    (bytes, b"Y", bytes),
]
for _base, _tag, _encode in _SCALARS:
    id_for_memo.register(_base, _scalar_key(_base, _tag, _encode))
id_for_memo.register(list, _sequence_key(list, b"L"))
id_for_memo.register(tuple, _sequence_key(tuple, b"T"))


@id_for_memo.register(dict)
def _(obj: dict[Any, Any], output_ref: bool = False) -> bytes:
    items = sorted((_child(k, output_ref), _child(v, output_ref)) for k, v in obj.items())
    return _typed(obj, dict, b"D", b"".join(_frame(b"k", k) + _frame(b"v", v) for k, v in items))


@id_for_memo.register(set)
@id_for_memo.register(frozenset)
def _(obj: set[Any] | frozenset[Any], output_ref: bool = False) -> bytes:
    tag = b"Z" if isinstance(obj, frozenset) else b"E"
    base = frozenset if isinstance(obj, frozenset) else set
    elements = sorted(_child(x, output_ref) for x in obj)
    return _typed(obj, base, tag, b"".join(_frame(b"e", x) for x in elements))


@id_for_memo.register(pathlib.PurePath)
def _(obj: pathlib.PurePath, output_ref: bool = False) -> bytes:
    flavour = b"w" if isinstance(obj, pathlib.PureWindowsPath) else b"p"
    return _frame(b"P", flavour + str(obj).encode("utf-8", "surrogateescape"))


@id_for_memo.register(enum.Enum)
def _(obj: enum.Enum, output_ref: bool = False) -> bytes:
    cls = type(obj)
    return _frame(b"M", f"{cls.__module__}.{cls.__qualname__}.{obj.name}".encode())


@id_for_memo.register(types.FunctionType)
@id_for_memo.register(types.BuiltinFunctionType)
@id_for_memo.register(functools.partial)
def _(obj: Any, output_ref: bool = False) -> bytes:
    return _frame(b"f", function_identity(obj).encode())


def _id_for_file(obj: Any, output_ref: bool = False) -> bytes:
    # By URL only: an input file's content is not read (it may be large or remote).
    return _frame(b"U", str(obj.url).encode("utf-8", "surrogateescape"))


_lazy_done = False


def _register_lazy_types() -> bool:
    """Register key functions for flowlib types imported after this module; True if any added."""
    global _lazy_done
    if _lazy_done:
        return False
    try:
        from flowlib.data_provider.files import File
    except ImportError:
        return False
    _lazy_done = True
    id_for_memo.register(File, _id_for_file)
    return True


_register_lazy_types()

# ------------------------------------------------------------------------ functions


def function_identity(func: Any) -> str:
    """Return a stable hex digest of a callable's module, qualname and source.

    Editing the body of a function changes its identity, so memoized results of
    the old version are not reused. When the source is unavailable (a function
    built with ``exec``), the code object (bytecode, constants, names) is used.
    A ``functools.partial`` includes its wrapped function and bound arguments.
    """
    h = hashlib.sha256()
    for part in _identity_parts(func):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def _identity_parts(func: Any) -> list[bytes]:
    if isinstance(func, functools.partial):
        return [
            b"partial",
            function_identity(func.func).encode(),
            _key_or_token(func.args),
            _key_or_token(func.keywords),
        ]
    if isinstance(func, types.MethodType):
        return [b"method", function_identity(func.__func__).encode(), _key_or_token(func.__self__)]
    module = str(getattr(func, "__module__", None)).encode()
    qualname = str(getattr(func, "__qualname__", type(func).__qualname__)).encode()
    code = getattr(func, "__code__", None)
    if code is None:
        if callable(func) and not isinstance(func, (type, types.BuiltinFunctionType)):
            # a callable object: its class's __call__ and the instance's state
            return [b"object", function_identity(type(func).__call__).encode(), _key_or_token(func)]
        bound = getattr(func, "__self__", None)
        if bound is not None and not isinstance(bound, types.ModuleType):
            return [b"builtin method", module, qualname, _key_or_token(bound)]
        return [b"builtin", module, qualname]
    try:
        source = inspect.getsource(func).encode("utf-8", "surrogateescape")
    except (OSError, TypeError):
        source = _code_bytes(code)
    return [b"function", module, qualname, source]


def _code_bytes(code: types.CodeType) -> bytes:
    """Encode a code object deterministically (nested code objects included)."""
    parts = [code.co_code, repr(code.co_names).encode(), repr(code.co_varnames).encode()]
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            parts.append(_frame(b"c", _code_bytes(const)))
        elif const is Ellipsis:
            parts.append(_frame(b".", b""))
        else:
            parts.append(_frame(b"k", _key_or_token(const)))
    return b"".join(_frame(b"p", p) for p in parts)


def _key_or_token(obj: Any) -> bytes:
    """The memo key of ``obj``, or a token unique to this live object when it has none.

    The token makes a cache miss across processes, never a false hit.
    """
    try:
        return _frame(b"v", id_for_memo(obj))
    except (ValueError, TypeError, RecursionError):
        return _frame(b"o", f"{os.getpid()}:{id(obj)}".encode())


# ------------------------------------------------------------------------ memoizers


class Memoizer(abc.ABC):
    """What the kernel asks of a memoizer; ``Config(memoizer=...)`` takes any subclass."""

    @abc.abstractmethod
    def start(self, *, run_dir: str) -> None:
        """Load earlier checkpoints and open this run's store under ``run_dir``."""

    @abc.abstractmethod
    def check_memo(self, task: TaskRecord) -> Future[Any] | None:
        """Return a future with the task's outcome when it is known or in flight, else None."""

    @abc.abstractmethod
    def update_memo_result(self, task: TaskRecord, result: Any) -> None:
        """Record that ``task`` finished with ``result``."""

    @abc.abstractmethod
    def update_memo_exception(self, task: TaskRecord, exception: BaseException) -> None:
        """Record that ``task`` failed for good with ``exception``."""

    @abc.abstractmethod
    def checkpoint(self) -> None:
        """Write every result not yet in the checkpoint store."""

    @abc.abstractmethod
    def close(self) -> None:
        """Write what the checkpoint mode requires and release files and threads."""


CheckpointMode = Literal["task_exit", "periodic", "dfk_exit", "manual"]
_MODES = ("task_exit", "periodic", "dfk_exit", "manual")
_PERIOD_RE = re.compile(r"^(\d+):([0-5]\d):([0-5]\d)$")
_NOT_CACHE_KEYS = frozenset({"walltime", "parsl_resource_specification", "resource_specification"})


def _parse_period(period: str) -> float:
    match = _PERIOD_RE.match(period)
    if match is None:
        raise ValueError(f"checkpoint_period must be 'HH:MM:SS', got {period!r}")
    h, m, s = (int(g) for g in match.groups())
    seconds = float(h * 3600 + m * 60 + s)
    if seconds <= 0:
        raise ValueError(f"checkpoint_period must be longer than zero, got {period!r}")
    return seconds


class BasicMemoizer(RepresentationMixin, Memoizer):
    """The default memoizer: an in-memory memo table plus a checkpoint store.

    Successful results go to ``<run_dir>/checkpoint/tasks.ckpt`` according to
    ``checkpoint_mode``: ``'task_exit'`` writes each result when its task ends;
    ``'periodic'`` every ``checkpoint_period``; ``'manual'`` on :meth:`checkpoint`;
    ``'dfk_exit'`` on :meth:`close`. Every mode writes what is left on close.
    ``'task_exit'`` hands each record to the operating system at once (it survives
    the process being killed) and fsyncs on close; the batched modes fsync each batch.
    Exceptions are memoized in memory for this run only and never checkpointed:
    a failure may be transient (a lost node, a full disk), and a resumed run must
    try the task again rather than replay the failure.
    """

    def __init__(
        self,
        *,
        memoize: bool = True,
        checkpoint_files: Sequence[str] | None = None,
        checkpoint_period: str | None = None,
        checkpoint_mode: CheckpointMode | None = None,
    ) -> None:
        if not isinstance(memoize, bool):
            raise TypeError(f"memoize must be a bool, got {type(memoize).__qualname__}")
        if checkpoint_files is not None and (
            isinstance(checkpoint_files, (str, bytes))
            or not isinstance(checkpoint_files, Sequence)
            or not all(isinstance(p, (str, os.PathLike)) for p in checkpoint_files)
        ):
            raise TypeError(
                "checkpoint_files must be a list of paths (e.g. get_all_checkpoints()), "
                f"got {checkpoint_files!r}"
            )
        if checkpoint_period is not None and not isinstance(checkpoint_period, str):
            kind = type(checkpoint_period).__qualname__
            raise TypeError(f"checkpoint_period must be a str 'HH:MM:SS', got {kind}")
        if checkpoint_mode is not None and checkpoint_mode not in _MODES:
            raise ValueError(
                f"checkpoint_mode must be one of {', '.join(map(repr, _MODES))} or None, "
                f"got {checkpoint_mode!r}"
            )
        self._period: float | None = None
        if checkpoint_period is not None:
            self._period = _parse_period(checkpoint_period)
        elif checkpoint_mode == "periodic":
            raise ValueError("checkpoint_mode='periodic' needs checkpoint_period='HH:MM:SS'")
        self.memoize = memoize
        self.checkpoint_files = [os.fspath(p) for p in checkpoint_files or []]
        self.checkpoint_period = checkpoint_period
        self.checkpoint_mode = checkpoint_mode
        self.checkpoint_dir: str | None = None
        """This run's checkpoint directory, set by :meth:`start` when a mode is set."""
        self._lock = threading.Lock()
        self._memo: dict[str, tuple[bool, Any]] = {}  # hashsum -> (succeeded, value)
        self._in_flight: dict[str, Future[Any]] = {}
        self._pending: list[tuple[str, Any, str]] = []  # (hashsum, result, task label)
        self._writer: CheckpointWriter | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self, *, run_dir: str) -> None:
        """Load ``checkpoint_files`` and open ``<run_dir>/checkpoint/`` when a mode is set.

        Raises :class:`~flowlib.dataflow.errors.BadCheckpoint` naming a checkpoint
        that is missing or is not a flowlib checkpoint.
        """
        loaded: dict[str, Any] = {}
        for path in self.checkpoint_files:
            entries = read_checkpoint(checkpoint_file(path))
            logger.info("loaded %d memoized results from %s", len(entries), path)
            loaded.update(entries)
        writer = None
        if self.checkpoint_mode is not None:
            self.checkpoint_dir = os.path.join(run_dir, "checkpoint")
            writer = CheckpointWriter(self.checkpoint_dir)
        with self._lock:
            for hashsum, result in loaded.items():
                self._memo.setdefault(hashsum, (True, result))
            self._writer = writer
        if self.checkpoint_mode == "periodic":
            self._thread = threading.Thread(
                target=self._periodic, name="flowlib-checkpoint-periodic", daemon=True
            )
            self._thread.start()

    def _periodic(self) -> None:
        assert self._period is not None
        while not self._stop.wait(self._period):
            try:
                self._write_pending()
            except Exception:
                logger.exception("periodic checkpoint to %s failed", self.checkpoint_dir)

    def task_hash(self, task: TaskRecord) -> str:
        """Return the memo key of ``task`` (a sha256 hex digest); may raise ValueError."""
        ignore = set(task.ignore_for_cache) | _NOT_CACHE_KEYS
        kwargs = {k: v for k, v in task.kwargs.items() if k not in ignore}
        has_outputs = "outputs" in kwargs
        outputs = kwargs.pop("outputs", None)
        parts = [
            id_for_memo(task.fn_hash),
            id_for_memo(tuple(task.args)),
            id_for_memo(kwargs),
            id_for_memo(outputs, output_ref=True) if has_outputs else b"",
        ]
        h = hashlib.sha256()
        for part in parts:
            h.update(len(part).to_bytes(8, "big"))
            h.update(part)
        return h.hexdigest()

    def check_memo(self, task: TaskRecord) -> Future[Any] | None:
        """Return a done future for a known outcome, the in-flight twin's future, or None.

        Sets ``task.hashsum``. On a miss the task is recorded as in flight until
        ``update_memo_result``/``update_memo_exception`` is called for it, so the
        kernel must call one of them for every task that got None here.
        """
        if not (self.memoize and task.memoize):
            return None
        hashsum = self.task_hash(task)
        task.hashsum = hashsum
        with self._lock:
            known = self._memo.get(hashsum)
            if known is None:
                twin = self._in_flight.get(hashsum)
                if twin is not None and twin is not task.app_fu:
                    return twin
                if task.app_fu is not None:
                    self._in_flight[hashsum] = task.app_fu
                return None
        fut: Future[Any] = Future()
        if known[0]:
            fut.set_result(known[1])
        else:
            fut.set_exception(known[1])
        return fut

    def _record(self, task: TaskRecord, succeeded: bool, value: Any) -> str | None:
        if not task.memoize or task.hashsum is None or task.from_memo:
            return None
        with self._lock:
            self._memo[task.hashsum] = (succeeded, value)
            self._in_flight.pop(task.hashsum, None)
        return task.hashsum

    def update_memo_result(self, task: TaskRecord, result: Any) -> None:
        """Memoize ``result`` and checkpoint it as the mode says."""
        hashsum = self._record(task, True, result)
        if hashsum is None or self.checkpoint_mode is None:
            return
        label = f"task {task.id} ({task.func_name})"
        with self._lock:
            writer = self._writer if self.checkpoint_mode == "task_exit" else None
            if writer is None:
                self._pending.append((hashsum, result, label))
        if writer is not None:
            self._write([(hashsum, result, label)], writer, fsync=False)

    def update_memo_exception(self, task: TaskRecord, exception: BaseException) -> None:
        """Memoize ``exception`` in memory only (see the class docstring)."""
        self._record(task, False, exception)

    def _write(
        self, batch: list[tuple[str, Any, str]], writer: CheckpointWriter, fsync: bool
    ) -> None:
        labels = {h: label for h, _, label in batch}
        try:
            failed = writer.append((h, r) for h, r, _ in batch)
            writer.flush(fsync=fsync)
        except (OSError, ValueError) as e:  # a full disk or a closed store must not fail tasks
            logger.error("could not checkpoint %d results to %s: %r", len(batch), writer.path, e)
            return
        for hashsum, err in failed:
            logger.warning(
                "result of %s cannot be pickled, so it is not checkpointed: %r",
                labels[hashsum],
                err,
            )

    def _write_pending(self) -> None:
        with self._lock:
            writer = self._writer
            if writer is None or not self._pending:
                return
            batch, self._pending = self._pending, []
        self._write(batch, writer, fsync=True)
        logger.debug("checkpointed %d results to %s", len(batch), writer.path)

    def checkpoint(self) -> None:
        """Write all buffered results now (what ``dfk.checkpoint()`` does)."""
        if self._writer is None:
            logger.debug("checkpoint() called with no open checkpoint store; nothing written")
            return
        self._write_pending()

    def close(self) -> None:
        """Stop the periodic thread, write what is buffered, fsync and close. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._write_pending()
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
