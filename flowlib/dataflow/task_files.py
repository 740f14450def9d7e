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
    from flowlib.data_provider.files import File

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
            shown: Any = spec
        elif isinstance(spec, File):
            kwargs[stream] = spec.filepath
            shown = DataFuture(app_fu, spec, tid=record.id)
        else:
            shown = spec
        setattr(app_fu, "_" + stream, shown)

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
        for item in outputs:
            if isinstance(item, File):
                func = data_manager.replace_task_stage_out(item, func, label)
                stage_fut = data_manager.stage_out(item, label, app_fu)
                data_futures.append(DataFuture(stage_fut or app_fu, item, tid=record.id))
            elif isinstance(item, DataFuture):
                data_futures.append(DataFuture(app_fu, item.file_obj, tid=record.id))
            else:
                raise TypeError(
                    f"outputs= must hold File objects; task {record.id} got {type(item).__name__} ({item!r})"
                )
        app_fu._outputs = data_futures
    record.func = func
