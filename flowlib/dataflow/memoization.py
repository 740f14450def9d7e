"""Deterministic task keys, the memo table, and checkpointing of results.

Keys come from :mod:`flowlib.dataflow.memo_keys` (``id_for_memo``, re-exported here).

:class:`BasicMemoizer` keys a task by its app's identity (``fn_hash``), its
positional arguments and its keyword arguments (minus ``ignore_for_cache`` and
resource keywords), keeps results and exceptions in memory, and appends results
to the run's checkpoint store (:mod:`flowlib.dataflow.checkpoint`).
"""

from __future__ import annotations

import abc
import hashlib
import logging
import os
import re
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, Literal

from flowlib.dataflow.checkpoint import CheckpointWriter, checkpoint_file, read_checkpoint
from flowlib.dataflow.memo_keys import function_identity, id_for_memo
from flowlib.dataflow.taskrecord import TaskRecord
from flowlib.utils import RepresentationMixin

logger = logging.getLogger(__name__)

__all__ = ["BasicMemoizer", "Memoizer", "function_identity", "id_for_memo", "memoizer_for", "start_memoizer"]

# ------------------------------------------------------------------------ memoizers


class Memoizer(abc.ABC):
    """What the kernel asks of a memoizer; ``Config(memoizer=...)`` takes any subclass."""

    @abc.abstractmethod
    def start(self, *, run_dir: str, config_run_dir: str | None = None) -> None:
        """Load earlier checkpoints and open this run's store under ``run_dir``.

        ``config_run_dir`` is the configured ``Config.run_dir`` (Parsl's interface); the
        kernel passes it only to memoizers whose ``start`` accepts it.
        """

    @abc.abstractmethod
    def check_memo(self, task: TaskRecord) -> Future[Any] | None:
        """Return a future with the task's outcome when it is known or in flight, else None."""

    @abc.abstractmethod
    def update_memo_result(self, task: TaskRecord, result: Any) -> None:
        """Record that ``task`` finished with ``result``."""

    @abc.abstractmethod
    def update_memo_exception(self, task: TaskRecord, exception: BaseException) -> None:
        """Record that ``task`` failed for good with ``exception``."""

    def discard(self, task: TaskRecord) -> None:  # noqa: B027 - optional hook
        """Forget ``task`` (cancelled before it finished); by default nothing to do."""

    @abc.abstractmethod
    def checkpoint(self) -> str | None:
        """Write every result not yet in the checkpoint store; return where (or None)."""

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


def _flat_paths(checkpoint_files: Any) -> list[str | os.PathLike[str]]:
    """The paths of ``checkpoint_files``, one level of lists flattened.

    ``get_last_checkpoint()`` returns a list, so Parsl programs write
    ``checkpoint_files=[get_last_checkpoint()]``.
    """
    bad = TypeError(f"checkpoint_files must be a list of paths (e.g. get_all_checkpoints()), got {checkpoint_files!r}")
    if isinstance(checkpoint_files, (str, bytes)) or not isinstance(checkpoint_files, Sequence):
        raise bad
    flat: list[str | os.PathLike[str]] = []
    for item in checkpoint_files:
        if isinstance(item, (str, os.PathLike)):
            flat.append(item)
        elif isinstance(item, (list, tuple)) and all(isinstance(p, (str, os.PathLike)) for p in item):
            flat.extend(item)
        else:
            raise bad
    return flat


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
        checkpoint_files: Sequence[str | os.PathLike[str] | Sequence[str]] | None = None,
        checkpoint_period: str | None = None,
        checkpoint_mode: CheckpointMode | None = None,
    ) -> None:
        if not isinstance(memoize, bool):
            raise TypeError(f"memoize must be a bool, got {type(memoize).__qualname__}")
        paths = _flat_paths(checkpoint_files) if checkpoint_files is not None else []
        if checkpoint_period is not None and not isinstance(checkpoint_period, str):
            kind = type(checkpoint_period).__qualname__
            raise TypeError(f"checkpoint_period must be a str 'HH:MM:SS', got {kind}")
        if checkpoint_mode is not None and checkpoint_mode not in _MODES:
            raise ValueError(
                f"checkpoint_mode must be one of {', '.join(map(repr, _MODES))} or None, got {checkpoint_mode!r}"
            )
        self._period: float | None = None
        if checkpoint_period is not None:
            self._period = _parse_period(checkpoint_period)
        elif checkpoint_mode == "periodic":
            raise ValueError("checkpoint_mode='periodic' needs checkpoint_period='HH:MM:SS'")
        self.memoize = memoize
        self.checkpoint_files = [os.fspath(p) for p in paths]
        # None with a checkpoint mode means: load every checkpoint under the configured run_dir
        self._load_all_earlier = checkpoint_files is None and checkpoint_mode is not None
        self.checkpoint_period = checkpoint_period
        self.checkpoint_mode = checkpoint_mode
        self.checkpoint_dir: str | None = None
        """This run's checkpoint directory, set by :meth:`start` when a mode is set."""
        self._lock = threading.Lock()
        self._memo: dict[str, tuple[bool, Any]] = {}  # hashsum -> (succeeded, value)
        self._in_flight: dict[str, Future[Any]] = {}
        # loaded from earlier runs and not yet in this run's checkpoint: a hit on
        # one is checkpointed again, so the newest checkpoint alone has every result used
        self._from_earlier_runs: set[str] = set()
        self._pending: list[tuple[str, Any, str]] = []  # (hashsum, result, task label)
        self._writer: CheckpointWriter | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self, *, run_dir: str, config_run_dir: str | None = None) -> None:
        """Load ``checkpoint_files`` and open ``<run_dir>/checkpoint/`` when a mode is set.

        When ``checkpoint_files`` was not given (None) and a ``checkpoint_mode`` is
        set, every earlier checkpoint under ``config_run_dir`` (the configured
        ``run_dir``, parent of this run's) is loaded, as Parsl does; an explicit
        list, even ``[]``, is used as given.

        Raises :class:`~flowlib.dataflow.errors.BadCheckpoint` naming a checkpoint
        that is missing or is not a flowlib checkpoint.
        """
        loaded: dict[str, Any] = {}
        paths = self.checkpoint_files
        if self._load_all_earlier and config_run_dir is not None:
            from flowlib.utils import get_all_checkpoints

            paths = get_all_checkpoints(config_run_dir)
        for path in paths:
            entries = read_checkpoint(checkpoint_file(path))
            logger.info("loaded %d memoized results from %s", len(entries), path)
            loaded.update(entries)
        writer = None
        if self.checkpoint_mode is not None:
            self.checkpoint_dir = os.path.join(run_dir, "checkpoint")
            writer = CheckpointWriter(self.checkpoint_dir)
        with self._lock:
            for hashsum, result in loaded.items():
                if hashsum not in self._memo:
                    self._memo[hashsum] = (True, result)
                    self._from_earlier_runs.add(hashsum)
            self._writer = writer
        if self.checkpoint_mode == "periodic":
            self._thread = threading.Thread(target=self._periodic, name="flowlib-checkpoint-periodic", daemon=True)
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
            carry_over = hashsum in self._from_earlier_runs and self.checkpoint_mode is not None
            self._from_earlier_runs.discard(hashsum)
        if carry_over:
            self._checkpoint(hashsum, known[1], f"task {task.id} ({task.func_name}), from an earlier run")
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
        self._checkpoint(hashsum, result, f"task {task.id} ({task.func_name})")

    def _checkpoint(self, hashsum: str, result: Any, label: str) -> None:
        """Write one result now (task_exit) or queue it for the next checkpoint."""
        with self._lock:
            writer = self._writer if self.checkpoint_mode == "task_exit" else None
            if writer is None:
                self._pending.append((hashsum, result, label))
        if writer is not None:
            self._write([(hashsum, result, label)], writer, fsync=False)

    def update_memo_exception(self, task: TaskRecord, exception: BaseException) -> None:
        """Memoize ``exception`` in memory only (see the class docstring)."""
        self._record(task, False, exception)

    def _write(self, batch: list[tuple[str, Any, str]], writer: CheckpointWriter, fsync: bool) -> None:
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

    def discard(self, task: TaskRecord) -> None:
        """Forget ``task`` as in flight without recording an outcome (it was cancelled)."""
        if task.hashsum is None:
            return
        with self._lock:
            if self._in_flight.get(task.hashsum) is task.app_fu:
                del self._in_flight[task.hashsum]

    def checkpoint(self) -> str | None:
        """Write all buffered results now (what ``dfk.checkpoint()`` does); return the checkpoint directory.

        ``None`` when no ``checkpoint_mode`` is set (there is no checkpoint store).
        """
        if self._writer is None:
            logger.debug("checkpoint() called with no open checkpoint store; nothing written")
            return None
        self._write_pending()
        return self.checkpoint_dir

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


def memoizer_for(config: Any) -> Memoizer:
    """The memoizer a kernel uses for ``config``: ``config.memoizer``, or one built from Parsl's keywords.

    Raises:
        ValueError: ``memoizer`` is set together with ``app_cache=False`` or a checkpoint keyword.
    """
    keywords = {
        "checkpoint_files": getattr(config, "checkpoint_files", None),
        "checkpoint_mode": getattr(config, "checkpoint_mode", None),
        "checkpoint_period": getattr(config, "checkpoint_period", None),
    }
    app_cache = getattr(config, "app_cache", True)
    if config.memoizer is not None:
        clashing = [name for name, value in keywords.items() if value is not None]
        if app_cache is not True:
            clashing.insert(0, "app_cache")
        if clashing:
            raise ValueError(
                f"Config sets memoizer= and also {', '.join(clashing)}: give these to the memoizer "
                f"(BasicMemoizer({', '.join(f'{n}=...' for n in clashing)})) or drop memoizer="
            )
        return config.memoizer
    return BasicMemoizer(memoize=app_cache, **keywords)


def start_memoizer(memoizer: Memoizer, run_dir: str, config_run_dir: str) -> None:
    """Call ``memoizer.start``, passing ``config_run_dir`` only where its signature takes it."""
    import inspect

    try:
        params = inspect.signature(memoizer.start).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    takes_it = "config_run_dir" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    if takes_it:
        memoizer.start(run_dir=run_dir, config_run_dir=config_run_dir)
    else:
        memoizer.start(run_dir=run_dir)
