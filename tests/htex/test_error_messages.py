"""What the user reads when something fails on the high-throughput executor.

Errors name the kernel's task id and the app's function (never the executor's
internal task number or a serializer header), executor errors name the
executor by type and label only, and a worker pool registering impossible
capacities is refused by the real interchange with the reason logged.
"""

from __future__ import annotations

import itertools
import math
import os
import pickle
import re
from collections.abc import Iterator
from typing import Any

import pytest
import zmq
from conftest import try_assert

import flowlib
from flowlib import python_app
from flowlib.benchmark.simulated_managers import SimulatedPool, registration
from flowlib.config import Config
from flowlib.executors.errors import BadStateException
from flowlib.executors.high_throughput import protocol as p
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.providers import LocalProvider
from flowlib.serialize import DeserializationError, SerializationError

from .conftest import make_registration

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def htex(tmp_path: Any) -> Iterator[HighThroughputExecutor]:
    """A kernel with one real block; the executor's task numbers start far from the kernel's ids."""
    executor = HighThroughputExecutor(
        label="htex", max_workers_per_node=1, provider=LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1)
    )
    dfk = flowlib.load(Config(executors=[executor], run_dir=str(tmp_path), strategy="none"))
    executor._tids = itertools.count(1000)  # so that a message naming the executor's number would be caught
    try:
        yield executor
    finally:
        dfk.cleanup()


class LoadsAsValueError:
    """Pickles fine; unpickling it calls ``int("not a number")``, which raises ValueError."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (int, ("not a number",))


@python_app
def returns_lock() -> Any:
    import threading

    return threading.Lock()


@python_app
def takes(value: Any) -> str:
    return "unreachable"


@python_app
def returns_unreadable() -> Any:
    class Unreadable:
        def __reduce__(self) -> tuple[Any, ...]:
            return (int, ("not a number",))

    return Unreadable()


def test_result_serialization_error_names_the_task_and_function(htex):
    fut = returns_lock()
    exc = fut.exception(timeout=30)
    assert isinstance(exc, SerializationError), repr(exc)
    text = str(exc)
    assert f"cannot serialize the task's result of type _thread.lock for task {fut.tid} " in text, text
    assert "(function 'returns_lock')" in text, text
    assert exc.task_id == fut.tid
    assert "task 10" not in text  # not the executor's number (1000 and up)


def test_argument_deserialization_error_on_the_worker_names_the_task_and_function(htex):
    fut = takes(LoadsAsValueError())
    exc = fut.exception(timeout=30)
    assert isinstance(exc, DeserializationError), repr(exc)
    text = str(exc)
    assert text.startswith(f"cannot deserialize the task's arguments of task {fut.tid} (function 'takes'): "), text
    assert "invalid literal for int()" in text
    assert "header" not in text, text


def test_result_deserialization_error_in_the_submitter_names_the_task_and_function(htex):
    fut = returns_unreadable()
    exc = fut.exception(timeout=30)
    assert isinstance(exc, DeserializationError), repr(exc)
    text = str(exc)
    assert text.startswith(f"cannot deserialize the task's result of task {fut.tid} (function 'returns_unreadable'):")
    assert "header" not in text, text


def test_plain_deserialization_error_still_names_the_header():
    text = str(DeserializationError("truncated", header=b"07\n"))
    assert text == "cannot deserialize data with header b'07\\n': truncated"


def test_bad_state_exception_names_the_executor_by_type_and_label_only():
    executor = HighThroughputExecutor(label="mine", provider=LocalProvider(worker_init="module load huge-config"))
    exc = BadStateException(executor, "its blocks were lost")
    assert str(exc) == "Executor mine failed due to: its blocks were lost"
    for text in (repr(exc), str(exc.args), repr(pickle.loads(pickle.dumps(exc)))):
        assert "huge-config" not in text and "LocalProvider" not in text, text
    assert repr(exc) == "BadStateException(\"HighThroughputExecutor 'mine'\", 'its blocks were lost')"
    assert exc.executor is executor  # still there for code that inspects it
    back = pickle.loads(pickle.dumps(exc))
    assert (type(back), str(back), back.reason) == (BadStateException, str(exc), exc.reason)


# ---------------------------------------------------------------------------- registrations

BAD_REGISTRATIONS: list[tuple[dict[str, Any], str]] = [
    ({"worker_count": 10**12}, "worker_count must be an integer from 0 to 65536, got 1000000000000"),
    ({"cores": math.nan}, "cores must be a number from 0 to 65536, got nan"),
    ({"cores": math.inf}, "cores must be a number"),
    ({"worker_count": -1}, "worker_count must be an integer from 0 to 65536, got -1"),
    ({"worker_count": "2"}, "worker_count must be an integer from 0 to 65536, got '2'"),
    ({"worker_count": 2.5}, "worker_count must be an integer"),
    ({"cores": True}, "cores must be a number from 0 to 65536, got True"),
    ({"memory_mb": -5.0}, "memory_mb must be a number from 0 to 4294967296, got -5.0"),
    ({"prefetch_capacity": 10**9}, "prefetch_capacity must be an integer from 0 to 1048576"),
    ({"accelerators": "gpu0"}, "accelerators must be a list of at most 4096 strings, got 'gpu0'"),
    ({"accelerators": [0, 1]}, "accelerators must be a list"),
    ({"hostname": 12}, "hostname must be a string of at most 256 characters, got 12"),
    ({"pid": 0}, "pid must be an integer from 1"),
]


@pytest.mark.parametrize(("changes", "reason"), BAD_REGISTRATIONS, ids=[next(iter(c)) for c, _ in BAD_REGISTRATIONS])
def test_absurd_registration_is_refused_naming_the_field(changes, reason):
    frames = [bytes(f) for f in make_registration(**changes).encode()]
    expected = f"^bad registration( from pool 'pool' on 'unit')?: {re.escape(reason)}"
    with pytest.raises(p.BadRegistration, match=expected):
        p.Registration.decode(frames)


def test_sane_registration_is_accepted_as_sent():
    reg = make_registration(worker_count=8, cores=8, memory_mb=16000, accelerators=["0", "1"])
    back = p.Registration.decode([bytes(f) for f in reg.encode()])
    assert back == make_registration(worker_count=8, cores=8.0, memory_mb=16000.0, accelerators=["0", "1"])
    assert isinstance(back.cores, float)


def test_interchange_refuses_absurd_pools_logs_why_and_keeps_serving(tmp_path):
    executor = HighThroughputExecutor(
        label="htex",
        provider=LocalProvider(init_blocks=0, min_blocks=0, max_blocks=0),
        heartbeat_period=1,
        heartbeat_threshold=5,
    )
    dfk = flowlib.load(Config(executors=[executor], run_dir=str(tmp_path), strategy="none"))
    context: zmq.Context[Any] = zmq.Context()
    try:
        port = executor._client.worker_port
        for index, (changes, reason) in enumerate(BAD_REGISTRATIONS[:4]):
            reg = registration(**{"worker_count": 2, "pool_id": f"bad{index}", **changes})
            pool = SimulatedPool(context, "127.0.0.1", port, executor.cert_dir, reg)
            try:
                answer = pool.register()
            finally:
                pool.close()
            assert p.parse_header(answer[0])[1] is p.Kind.REJECT
            text = answer[1].decode()
            assert text.startswith(f"BadRegistration: bad registration from pool 'bad{index}' on "), text
            assert reason in text, text
        try_assert(lambda: len(executor._rejections) == 4, timeout=10, message="the executor was not told")
        assert executor.connected_managers == []  # none of them was registered
        log = os.path.join(executor.logdir, "interchange.log")
        with open(log) as f:
            text = f.read()
        assert text.count("refused a worker pool: BadRegistration") == 4, text
        assert "worker_count must be an integer from 0 to 65536, got 1000000000000" in text
        assert "cores must be a number from 0 to 65536, got nan" in text

        good = SimulatedPool(context, "127.0.0.1", port, executor.cert_dir, registration(1, pool_id="good"))
        try:
            assert p.parse_header(good.register()[0])[1] is p.Kind.REGISTERED
            try_assert(lambda: len(executor.connected_managers) == 1, timeout=10)
        finally:
            good.close()
    finally:
        context.term()
        dfk.cleanup()
