"""The Parsl-compatible module paths and names of the core exist (COMPAT.md)."""

from __future__ import annotations

import importlib

import pytest

pytestmark = pytest.mark.timeout(30)

NAMES = {
    "flowlib": ["python_app", "bash_app", "join_app", "load", "dfk", "clear", "wait_for_current_tasks", "Config",
                "File", "AUTO_LOGNAME", "ThreadPoolExecutor", "set_stream_logger", "set_file_logger"],
    "flowlib.app.app": ["python_app", "bash_app", "join_app", "AppBase"],
    "flowlib.app.python": ["PythonApp"],
    "flowlib.app.bash": ["BashApp"],
    "flowlib.app.futures": ["DataFuture"],
    "flowlib.app.errors": ["AppException", "BashExitFailure", "AppTimeout", "BashAppNoReturn", "AppBadFormatting",
                           "MissingOutputs", "BadStdStreamFile", "RemoteExceptionWrapper"],
    "flowlib.config": ["Config"],
    "flowlib.dataflow.dflow": ["DataFlowKernel", "DataFlowKernelLoader"],
    "flowlib.dataflow.errors": ["DataFlowException", "DependencyError", "JoinError", "BadCheckpoint"],
    "flowlib.dataflow.states": ["States", "FINAL_STATES", "FINAL_FAILURE_STATES"],
    "flowlib.dataflow.taskrecord": ["TaskRecord"],
    "flowlib.dataflow.memoization": ["BasicMemoizer", "Memoizer", "id_for_memo"],
    "flowlib.dataflow.dependency_resolvers": ["DependencyResolver", "SHALLOW_DEPENDENCY_RESOLVER",
                                              "DEEP_DEPENDENCY_RESOLVER"],
    "flowlib.data_provider.files": ["File"],
    "flowlib.data_provider.staging": ["Staging"],
    "flowlib.data_provider.data_manager": ["DataManager", "default_staging"],
    "flowlib.data_provider.zip": ["ZipFileStaging", "ZipAuthorityError", "zip_path_split"],
    "flowlib.data_provider.http": ["HTTPSeparateTaskStaging", "HTTPInTaskStaging"],
    "flowlib.data_provider.ftp": ["FTPSeparateTaskStaging", "FTPInTaskStaging"],
    "flowlib.data_provider.globus": ["GlobusStaging"],
    "flowlib.data_provider.rsync": ["RSyncStaging"],
    "flowlib.errors": ["FlowlibError", "ParslError", "ConfigurationError", "NoDataFlowKernelError",
                       "OptionalModuleMissing"],
    "flowlib.executors": ["ThreadPoolExecutor"],
    "flowlib.executors.base": ["ParslExecutor", "FlowlibExecutor"],
    "flowlib.executors.threads": ["ThreadPoolExecutor"],
    "flowlib.executors.errors": ["ExecutorError", "BadStateException", "InvalidResourceSpecification",
                                 "ScalingFailed", "UnsupportedFeatureError"],
    "flowlib.serialize": ["serialize", "deserialize"],
    "flowlib.serialize.concretes": ["PickleSerializer", "DillSerializer", "DillCallableSerializer"],
    "flowlib.serialize.errors": ["SerializationError", "DeserializationError"],
    "flowlib.utils": ["get_all_checkpoints", "get_last_checkpoint", "RepresentationMixin", "time_limited_open"],
    "flowlib.logconfigs.file": ["FileLogging"],
    "flowlib.logconfigs.json": ["JSONLogging"],
    "flowlib.logconfigs.noop": ["NoopLogging"],
    "flowlib.concurrent": ["FlowlibPoolExecutor", "ParslPoolExecutor"],
    "flowlib.logconfigs.base": ["LogConfig", "LoggingConfig"],
    "flowlib.jobs.error_handlers": ["simple_error_handler", "windowed_error_handler", "noop_error_handler"],
    "flowlib.executors.status_handling": ["BlockProviderExecutor"],
    "flowlib.providers.kubernetes": ["KubernetesProvider"],
    "flowlib.providers.kubernetes.kube": ["KubernetesProvider"],
    "flowlib.executors.high_throughput.manager_selector": ["ManagerSelector", "RandomManagerSelector",
                                                          "BlockIdManagerSelector"],
}  # fmt: skip


@pytest.mark.parametrize("module", sorted(NAMES))
def test_names_exist(module):
    mod = importlib.import_module(module)
    missing = [name for name in NAMES[module] if not hasattr(mod, name)]
    assert not missing, f"{module} lacks {missing}"


def test_twins_are_the_same_objects():
    import flowlib.concurrent
    import flowlib.errors
    import flowlib.executors.base

    assert flowlib.errors.ParslError is flowlib.errors.FlowlibError
    assert flowlib.executors.base.ParslExecutor is flowlib.executors.base.FlowlibExecutor
    assert flowlib.concurrent.ParslPoolExecutor is flowlib.concurrent.FlowlibPoolExecutor


def test_app_errors_reachable_as_attribute_after_import_flowlib():
    import subprocess
    import sys

    code = "import flowlib; print(flowlib.app.errors.BashExitFailure.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "BashExitFailure"


def test_id_for_memo_is_singledispatch():
    from flowlib.dataflow.memoization import id_for_memo

    assert hasattr(id_for_memo, "register") and hasattr(id_for_memo, "dispatch")
