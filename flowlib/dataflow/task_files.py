"""At submit time: stream paths (``AUTO_LOGNAME``), input staging and output DataFutures.

Runs only for calls that name files, so the common path pays one dict lookup.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flowlib.app.special import AUTO_LOGNAME

if TYPE_CHECKING:
    from flowlib.data_provider.data_manager import DataManager
    from flowlib.dataflow.taskrecord import TaskRecord


def needs_file_handling(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """True when the call names streams, inputs, outputs, or passes File/DataFuture arguments."""
    if kwargs and ("stdout" in kwargs or "stderr" in kwargs or "outputs" in kwargs or "inputs" in kwargs):
        return True
    if args:
        file_types = _file_types()
        return any(isinstance(a, file_types) for a in args)
    return False


_FILE_TYPES: tuple[type, ...] = ()


def _file_types() -> tuple[type, ...]:
    # imported on first use, then kept: this runs for every task with positional arguments
    global _FILE_TYPES
    if not _FILE_TYPES:
        from flowlib.app.futures import DataFuture
        from flowlib.data_provider.files import File

        _FILE_TYPES = (File, DataFuture)
    return _FILE_TYPES


def auto_log_path(run_dir: str, record: TaskRecord, stream: str) -> str:
    """``<run_dir>/task_logs/NNNN/task_<id>_<func>[_<label>].<stream>``."""
    label = record.kwargs.get("label")
    suffix = f"_{label}" if label else ""
    return os.path.join(
        run_dir, "task_logs", f"{record.id // 10000:04d}", f"task_{record.id:04d}_{record.func_name}{suffix}.{stream}"
    )


def prepare_files(
    record: TaskRecord,
    run_dir: str,
    data_manager: DataManager,
    std_autopath: Callable[..., str] | None,
) -> None:
    """Resolve streams, stage inputs and register outputs for one task, updating ``record``."""
    from flowlib.app.futures import DataFuture
    from flowlib.data_provider.files import File, task_copy

    kwargs = record.kwargs
    app_fu = record.app_fu
    assert app_fu is not None
    label = record.executor
    func = record.func
    for stream in ("stdout", "stderr"):
        spec = kwargs.get(stream)
        if spec is None:
            continue
        if spec is AUTO_LOGNAME or (isinstance(spec, int) and not isinstance(spec, bool) and spec == AUTO_LOGNAME):
            spec = std_autopath(record, stream) if std_autopath else auto_log_path(run_dir, record, stream)
            kwargs[stream] = spec
            if isinstance(spec, str) and _is_remote_url(spec):
                spec = File(spec)  # e.g. a std_autopath that puts logs into a zip: archive
        if isinstance(spec, File):
            func, shown = _stage_stream(record, stream, spec, func, data_manager)
        else:
            shown = spec
        setattr(app_fu, "_" + stream, shown)

    if kwargs.get("_parsl_staging_inhibit"):
        # A staging plugin's own transfer app (Parsl's convention): its files are what it moves,
        # not files to stage again. Outputs still get DataFutures; the keyword reaches the function.
        outputs = kwargs.get("outputs")
        if outputs:
            app_fu._outputs = [
                DataFuture(app_fu, o if isinstance(o, File) else o.file_obj, tid=record.id)
                for o in outputs
                if isinstance(o, (File, DataFuture))
            ]
        record.func = func
        return
    if record.args and any(isinstance(a, (File, DataFuture)) for a in record.args):
        new_args = []
        for arg in record.args:
            arg, func = data_manager.optionally_stage_in(arg, func, label)
            new_args.append(arg)
        record.args = tuple(new_args)
    inputs = kwargs.get("inputs")
    if inputs:
        staged = []
        for item in inputs:
            item, func = data_manager.optionally_stage_in(item, func, label)
            staged.append(item)
        kwargs["inputs"] = staged
    outputs = kwargs.get("outputs")
    if outputs:
        data_futures = []
        task_outputs: list[Any] = []
        for item in outputs:
            if isinstance(item, File):
                copy = task_copy(item)  # staging sets local_path on the task's copy, never on the caller's File
                task_outputs.append(copy)
                func = data_manager.replace_task_stage_out(copy, func, label)
                stage_fut = data_manager.stage_out(copy, label, app_fu)
                data_futures.append(DataFuture(stage_fut or app_fu, item, tid=record.id))
            elif isinstance(item, DataFuture):
                task_outputs.append(item)
                data_futures.append(DataFuture(app_fu, item.file_obj, tid=record.id))
            else:
                raise TypeError(
                    f"outputs= must hold File objects; task {record.id} got {type(item).__name__} ({item!r})"
                )
        app_fu._outputs = data_futures
        kwargs["outputs"] = task_outputs
    record.func = func


def _is_remote_url(path: str) -> bool:
    from flowlib.data_provider.files import File

    return ":" in path and File(path).scheme != "file"


def _stage_stream(
    record: TaskRecord, stream: str, spec: Any, func: Callable[..., Any], data_manager: DataManager
) -> tuple[Callable[..., Any], Any]:
    """Point ``stdout``/``stderr`` given as a ``File`` at a local path; stage a remote one out after the app.

    Returns the function to run (maybe wrapped) and what ``app_future.stdout`` shows.
    """
    from flowlib.app.futures import DataFuture
    from flowlib.data_provider.files import task_copy

    app_fu = record.app_fu
    assert app_fu is not None
    files = getattr(record, "stream_files", None)
    if files is None:
        files = record.stream_files = {}
    files[stream] = spec
    copy = task_copy(spec)
    stage_fut = None
    if copy.scheme != "file":
        func = data_manager.replace_task_stage_out(copy, func, record.executor)
        stage_fut = data_manager.stage_out(copy, record.executor, app_fu)
        if copy.local_path is None:
            if record.kind != "bash":
                # Only a bash app writes its streams; a Python app gets the File (as in Parsl)
                record.kwargs[stream] = copy
                return func, DataFuture(stage_fut or app_fu, spec, tid=record.id)
            raise ValueError(
                f"{stream}={spec.url!r}: the staging plugin for {copy.scheme}: files of executor "
                f"{record.executor!r} gives the app no local path to write the stream to"
            )
    record.kwargs[stream] = copy.filepath
    return func, DataFuture(stage_fut or app_fu, spec, tid=record.id)
