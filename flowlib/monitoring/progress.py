"""``flowlib.progress()``: a progress bar per app, with failures counted, built on the event API.

::

    kernel transitions --> EventBus --(event thread)--> Tally (per app: total, done, failed)
                                                           |
                                              a view: tqdm bars (terminal) or
                                              ipywidgets (Jupyter), redrawn on change

In a terminal the call waits until the watched tasks are done (``block=False``
returns at once); in a Jupyter notebook it never waits: the widget keeps updating
while the next cells run.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import IO, Any

from flowlib.dataflow.states import FINAL_FAILURE_STATES, FINAL_STATES, States
from flowlib.errors import OptionalModuleMissing
from flowlib.monitoring.events import TaskEvent


class AppCount:
    """Counts of one app's watched tasks."""

    __slots__ = ("total", "done", "failed")

    def __init__(self) -> None:
        self.total = 0
        """Watched tasks of this app."""
        self.done = 0
        """Finished, successfully or not."""
        self.failed = 0
        """Finished in a failure state (failed, dep_fail, cancelled)."""

    def as_tuple(self) -> tuple[int, int, int]:
        """``(done, failed, total)``."""
        return (self.done, self.failed, self.total)


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where widgets can be shown)."""
    import sys

    if "IPython" not in sys.modules:
        return False
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except Exception:
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class Progress:
    """What :func:`progress` returns: live counts per app, ``wait()``, ``close()``; a context manager."""

    def __init__(self, dfk: Any, futures: list[Any] | None, view: _View) -> None:
        self._dfk = dfk
        self._view = view
        self._lock = threading.Lock()
        self._all_done = threading.Condition(self._lock)
        self._apps: dict[str, AppCount] = {}
        self._tracked: dict[int, bool] = {}  # task id -> finished
        self._watch_all = futures is None
        self._closed = False
        self._subscription = dfk.events.subscribe_batches(self._on_events)
        with self._lock:
            if futures is None:
                with dfk._lock:
                    records = list(dfk.tasks.values())
                for record in records:
                    self._track(record.id, record.func_name, record.status)
            else:
                for fut in futures:
                    record = fut.task_record
                    self._track(record.id, record.func_name, record.status if not fut.done() else _done_state(fut))
        self._view.redraw(self.counts())

    def _track(self, tid: int, app: str, state: States) -> None:
        """Start watching ``tid`` (once); caller holds the lock."""
        if tid in self._tracked:
            return
        count = self._apps.get(app)
        if count is None:
            count = self._apps[app] = AppCount()
        count.total += 1
        self._tracked[tid] = False
        if state in FINAL_STATES:
            self._finish(tid, app, state)

    def _finish(self, tid: int, app: str, state: States) -> None:
        if self._tracked.get(tid) is not False:
            return
        self._tracked[tid] = True
        count = self._apps[app]
        count.done += 1
        if state in FINAL_FAILURE_STATES:
            count.failed += 1

    def _on_events(self, events: Iterable[TaskEvent]) -> None:
        changed = False
        with self._lock:
            for ev in events:
                if ev.task_id not in self._tracked:
                    if not self._watch_all or ev.old is not States.unsched:
                        continue
                    self._track(ev.task_id, ev.app, ev.new)
                    changed = True
                elif ev.new in FINAL_STATES:
                    self._finish(ev.task_id, ev.app, ev.new)
                    changed = True
            if changed and self.finished:
                self._all_done.notify_all()
        if changed:
            self._view.redraw(self.counts())

    @property
    def finished(self) -> bool:
        """True when every watched task has finished (False while following a kernel that has seen no task)."""
        if self._watch_all and not self._tracked:
            return False
        return all(self._tracked.values())

    def counts(self) -> dict[str, tuple[int, int, int]]:
        """Per app: ``(done, failed, total)``."""
        return {app: c.as_tuple() for app, c in sorted(self._apps.items())}

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every watched task has finished; False on timeout."""
        with self._lock:
            done = self._all_done.wait_for(lambda: self.finished, timeout)
        return bool(done)

    def close(self) -> None:
        """Stop following the kernel and leave the bars as they are."""
        if self._closed:
            return
        self._closed = True
        self._subscription.cancel()
        self._view.close(self.counts())

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{app} {d}/{t}" + (f" ({f} failed)" if f else "") for app, (d, f, t) in self.counts().items()
        )
        return f"<Progress {parts or 'no tasks'}>"


def _done_state(fut: Any) -> States:
    if fut.cancelled():
        return States.cancelled
    return States.failed if fut.exception() is not None else States.exec_done


class _View:
    def redraw(self, counts: dict[str, tuple[int, int, int]]) -> None:
        raise NotImplementedError

    def close(self, counts: dict[str, tuple[int, int, int]]) -> None:
        self.redraw(counts)


class _TqdmView(_View):
    """One tqdm bar per app, in the order apps appear."""

    def __init__(self, file: IO[str] | None) -> None:
        try:
            import tqdm
        except ImportError as e:
            raise OptionalModuleMissing(["tqdm"], "progress bars need: pip install 'flowlib[monitoring]'") from e
        self._tqdm = tqdm.tqdm
        self._file = file
        self._bars: dict[str, Any] = {}
        self._lock = threading.Lock()

    def redraw(self, counts: dict[str, tuple[int, int, int]]) -> None:
        with self._lock:
            for app, (done, failed, total) in counts.items():
                bar = self._bars.get(app)
                if bar is None:
                    bar = self._bars[app] = self._tqdm(
                        total=total, desc=app, unit="task", position=len(self._bars), file=self._file,
                        leave=True, dynamic_ncols=True, mininterval=0.1,
                    )  # fmt: skip
                bar.total = total
                bar.n = done
                bar.set_postfix_str(f"failed={failed}" if failed else "", refresh=False)
                bar.refresh()

    def close(self, counts: dict[str, tuple[int, int, int]]) -> None:
        self.redraw(counts)
        with self._lock:
            for bar in self._bars.values():
                bar.close()


class _WidgetView(_View):
    """An ipywidgets box with one progress bar and label per app."""

    def __init__(self) -> None:
        try:
            import ipywidgets
            from IPython.display import display
        except ImportError as e:
            raise OptionalModuleMissing(
                ["ipywidgets"], "notebook progress needs: pip install 'flowlib[monitoring]'"
            ) from e
        self._w = ipywidgets
        self._rows: dict[str, tuple[Any, Any]] = {}
        self._box = ipywidgets.VBox([])
        self._lock = threading.Lock()
        display(self._box)

    def redraw(self, counts: dict[str, tuple[int, int, int]]) -> None:
        with self._lock:
            for app, (done, failed, total) in counts.items():
                row = self._rows.get(app)
                if row is None:
                    bar = self._w.IntProgress(min=0, max=max(total, 1), description=app)
                    label = self._w.Label()
                    row = self._rows[app] = (bar, label)
                    self._box.children = (*self._box.children, self._w.HBox([bar, label]))
                bar, label = row
                bar.max = max(total, 1)
                bar.value = done
                bar.bar_style = "danger" if failed else ("success" if done == total and total else "")
                label.value = f"{done}/{total}" + (f", {failed} failed" if failed else "")


def progress(
    futures: Iterable[Any] | None = None,
    *,
    dfk: Any = None,
    block: bool | None = None,
    file: IO[str] | None = None,
) -> Progress:
    """Show a progress bar per app for ``futures`` (default: every task of the loaded kernel).

    With no futures it follows every task the kernel has in flight and every one
    submitted later. Failures are counted per app. In a terminal (tqdm, on
    ``file``, default stderr) the call waits until the watched tasks are done
    unless ``block=False``; in Jupyter it shows an ipywidgets box and returns at
    once (the bars go on updating). Returns a :class:`Progress` (``counts()``,
    ``wait()``, ``close()``).
    """
    if dfk is None:
        from flowlib.dataflow.loader import DataFlowKernelLoader

        dfk = DataFlowKernelLoader.dfk()
    watched: list[Any] | None = None
    if futures is not None:
        watched = list(futures)
        bad = [f for f in watched if getattr(f, "task_record", None) is None]
        if bad:
            raise TypeError(f"progress() takes flowlib AppFutures, got {type(bad[0]).__name__}")
    notebook = in_notebook()
    view: _View = _WidgetView() if notebook else _TqdmView(file)
    bar = Progress(dfk, watched, view)
    if block is None:
        block = not notebook
    if block:
        try:
            if watched is None:
                dfk.wait_for_current_tasks()
            else:
                bar.wait()
            dfk.events.flush()
        finally:
            bar.close()
    return bar
