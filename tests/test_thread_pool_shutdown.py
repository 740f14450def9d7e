"""Leaving `with`, cleanup() and Ctrl-C on the thread pool: queued tasks are cancelled at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import CancelledError

import pytest
from child_signals import default_sigint
from conftest import REPO_ROOT, try_assert

import flowlib
from flowlib import python_app
from flowlib.config import Config
from flowlib.executors.errors import BadStateException
from flowlib.executors.threads import ThreadPoolExecutor

pytestmark = pytest.mark.timeout(60)


@python_app
def hold(i, started, release):
    started.append(i)
    release.wait()  # a blocking C call: the interruption cannot reach it
    return i


@python_app
def spin(i, started):
    started.append(i)
    while True:  # Python code: stopped by the interruption
        sum(range(100))


def test_leaving_with_cancels_queued_tasks_at_once(tmp_path):
    started: list[int] = []
    release = threading.Event()
    try:
        with flowlib.load(Config(executors=[ThreadPoolExecutor(max_threads=4)], run_dir=str(tmp_path))):
            futures = [hold(i, started, release) for i in range(10)]
            try_assert(lambda: len(started) == 4, message="four tasks never started")
            leaving = time.monotonic()
        elapsed = time.monotonic() - leaving
        assert elapsed < 3.0, f"leaving `with` took {elapsed:.1f} s"
        assert sorted(started) == [0, 1, 2, 3], "a queued task started after the kernel was cleaned up"
        for fut in futures[4:]:
            assert fut.cancelled()
        for fut in futures[:4]:
            exc = fut.exception(timeout=5)
            assert isinstance(exc, BadStateException) and "shut down while the task was running" in str(exc)
    finally:
        release.set()
    assert sorted(started) == [0, 1, 2, 3]  # released threads take nothing more


def test_cleanup_stops_running_python_code(tmp_path):
    started: list[int] = []
    pool = ThreadPoolExecutor(max_threads=2)
    dfk = flowlib.load(Config(executors=[pool], run_dir=str(tmp_path)))
    try:
        futures = [spin(i, started) for i in range(3)]
        try_assert(lambda: len(started) == 2, message="two tasks never started")
    finally:
        dfk.cleanup()
        flowlib.clear()
    assert futures[2].cancelled()
    assert all(isinstance(f.exception(timeout=5), BadStateException) for f in futures[:2])
    try_assert(lambda: pool.abandoned_threads == 0, timeout=5, message="the spinning threads were never stopped")


def test_submit_after_shutdown_is_refused():
    pool = ThreadPoolExecutor(label="closed")
    pool.start()
    assert pool.submit(sum, {}, [1, 2]).result(timeout=5) == 3
    pool.shutdown()
    pool.shutdown()  # twice is harmless
    with pytest.raises(BadStateException, match="closed.*shut down"):
        pool.submit(sum, {}, [1])
    assert pool.statistics().outstanding == 0


def test_direct_shutdown_without_waiting_cancels_queue():
    pool = ThreadPoolExecutor(max_threads=1)
    pool.start()
    release = threading.Event()
    try:
        running = pool.submit(release.wait, {})
        try_assert(running.running, message="the first task never started")
        queued = [pool.submit(sum, {}, [i]) for i in range(5)]
        pool.shutdown(block=False)
        assert all(f.cancelled() for f in queued)
        with pytest.raises(BadStateException):
            running.result(timeout=5)
        assert pool.statistics().outstanding == 0
    finally:
        release.set()


SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    import flowlib
    from flowlib import python_app
    from flowlib.config import Config
    from flowlib.executors.threads import ThreadPoolExecutor

    signal.signal(signal.SIGINT, signal.default_int_handler)
    markers = sys.argv[1]

    @python_app
    def long_task(i):
        open(os.path.join(markers, f"started-{i}"), "w").close()
        time.sleep(20)
        return i

    with flowlib.load(Config(executors=[ThreadPoolExecutor(max_threads=4)], run_dir=sys.argv[2])):
        futures = [long_task(i) for i in range(10)]
        print("submitted", flush=True)
        for f in futures:
            f.result()
    """
)


def test_ctrl_c_exits_at_once_and_starts_no_queued_task(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    script = tmp_path / "campaign.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(markers), str(tmp_path / "runinfo")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=default_sigint,  # noqa: PLW1509 - no threads are started between fork and exec here
    )
    try:
        try_assert(lambda: len(os.listdir(markers)) == 4 or proc.poll() is not None, timeout=30)
        assert proc.poll() is None, proc.communicate()
        interrupted = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
        elapsed = time.monotonic() - interrupted
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "submitted" in out
    assert "KeyboardInterrupt" in err, err
    assert proc.returncode != 0
    assert elapsed < 5.0, f"the script took {elapsed:.1f} s to exit after Ctrl-C"
    assert sorted(os.listdir(markers)) == [f"started-{i}" for i in range(4)], "a queued task started after Ctrl-C"


def test_cancelled_queued_futures_raise_cancelled_error(tmp_path):
    started: list[int] = []
    release = threading.Event()
    try:
        dfk = flowlib.load(Config(executors=[ThreadPoolExecutor(max_threads=1)], run_dir=str(tmp_path)))
        first = hold(0, started, release)
        second = hold(1, started, release)
        try_assert(lambda: started == [0])
        dfk.cleanup()
        flowlib.clear()
        with pytest.raises(CancelledError):
            second.result(timeout=5)
        assert isinstance(first.exception(timeout=5), BadStateException)
    finally:
        release.set()


def _interrupt_main_once_inside(function_name: str) -> threading.Thread:
    """Send SIGINT to the main thread as soon as it is inside ``function_name``."""
    main = threading.main_thread().ident
    assert main is not None

    def inside() -> bool:
        frame = sys._current_frames().get(main)
        while frame is not None:
            if frame.f_code.co_name == function_name:
                return True
            frame = frame.f_back
        return False

    def watch() -> None:
        deadline = time.monotonic() + 20
        while not inside() and time.monotonic() < deadline:
            time.sleep(0.005)
        signal.pthread_kill(main, signal.SIGINT)

    watcher = threading.Thread(target=watch, name="sigint-sender")
    watcher.start()
    return watcher


def test_interrupted_wait_on_exit_still_cleans_up(tmp_path):
    started: list[int] = []
    release = threading.Event()
    pool = ThreadPoolExecutor(max_threads=1)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # a background job inherits SIGINT ignored
    try:
        with pytest.raises(KeyboardInterrupt):
            with flowlib.load(Config(executors=[pool], run_dir=str(tmp_path), exit_mode="wait")) as dfk:
                futures = [hold(i, started, release) for i in range(3)]
                try_assert(lambda: started == [0])
                watcher = _interrupt_main_once_inside("wait_for_current_tasks")  # Ctrl-C while `with` waits
        watcher.join(timeout=20)
        assert dfk.cleanup_called
        assert futures[1].cancelled() and futures[2].cancelled()
    finally:
        release.set()
        signal.signal(signal.SIGINT, previous)
    assert started == [0]
