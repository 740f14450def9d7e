"""The append-only checkpoint store, crash safety, and the helpers in flowlib.utils."""

from __future__ import annotations

import logging
import os
import pathlib
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from typing import Any

import pytest

from flowlib.dataflow.checkpoint import MAGIC, CheckpointWriter, encode_record, read_checkpoint
from flowlib.dataflow.errors import BadCheckpoint
from flowlib.utils import (
    RepresentationMixin,
    get_all_checkpoints,
    get_last_checkpoint,
    time_limited_open,
)

pytestmark = pytest.mark.timeout(60)

LOGGER = "flowlib.dataflow.checkpoint"


def write_store(directory: pathlib.Path, records: list[tuple[str, Any]]) -> pathlib.Path:
    writer = CheckpointWriter(directory)
    assert writer.append(records) == []
    writer.close()
    return directory / "tasks.ckpt"


def record_offsets(path: pathlib.Path) -> list[int]:
    """Offsets of each record's frame, parsed independently of the reader."""
    data = path.read_bytes()
    offsets, pos = [], len(MAGIC)
    while pos < len(data):
        offsets.append(pos)
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        pos += 8 + length
    return offsets


RECORDS = [("h1", 1), ("h2", {"two": [2]}), ("h3", "three")]


def test_round_trip(tmp_path: pathlib.Path) -> None:
    path = write_store(tmp_path / "ckpt", RECORDS)
    assert path.read_bytes().startswith(MAGIC)
    assert read_checkpoint(path) == dict(RECORDS)
    assert read_checkpoint(tmp_path / "ckpt") == dict(RECORDS)


def test_reopen_appends(tmp_path: pathlib.Path) -> None:
    write_store(tmp_path, RECORDS[:2])
    path = write_store(tmp_path, RECORDS[2:])
    assert path.read_bytes().count(MAGIC) == 1
    assert read_checkpoint(path) == dict(RECORDS)


def test_later_record_wins_and_cloudpickle_fallback(tmp_path: pathlib.Path) -> None:
    path = write_store(tmp_path, [("h", 1), ("h", 2), ("f", lambda: 5)])
    loaded = read_checkpoint(path)
    assert loaded["h"] == 2 and loaded["f"]() == 5


def test_unpicklable_record_reported(tmp_path: pathlib.Path) -> None:
    writer = CheckpointWriter(tmp_path)
    failed = writer.append([("bad", threading.Lock()), ("good", 1)])
    writer.close()
    assert [h for h, _ in failed] == ["bad"]
    assert read_checkpoint(tmp_path) == {"good": 1}


def test_append_after_close_raises(tmp_path: pathlib.Path) -> None:
    writer = CheckpointWriter(tmp_path)
    writer.close()
    writer.close()
    assert writer.closed
    with pytest.raises(ValueError, match="closed"):
        writer.append([("h", 1)])


@pytest.mark.parametrize("keep", [1, 7, 8, 12, -1])
def test_torn_last_record(tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture, keep: int) -> None:
    """Keep only ``keep`` bytes of the last record (-1: all but its last byte)."""
    path = write_store(tmp_path, RECORDS)
    last = record_offsets(path)[-1]
    size = path.stat().st_size
    os.truncate(path, size - 1 if keep < 0 else last + keep)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        loaded = read_checkpoint(path)
    assert loaded == dict(RECORDS[:2])
    assert str(path) in caplog.text and f"offset {last}" in caplog.text


def test_writer_cuts_torn_tail_before_appending(tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_store(tmp_path, RECORDS)
    os.truncate(path, path.stat().st_size - 2)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        write_store(tmp_path, [("h4", 4)])
    assert "torn" in caplog.text
    assert read_checkpoint(path) == {**dict(RECORDS[:2]), "h4": 4}


def test_crc_mismatch_in_middle(tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_store(tmp_path, RECORDS)
    middle = record_offsets(path)[1]
    data = bytearray(path.read_bytes())
    data[middle + 8 + 5] ^= 0xFF
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        loaded = read_checkpoint(path)
    assert loaded == {"h1": 1, "h3": "three"}
    assert "CRC" in caplog.text and f"offset {middle}" in caplog.text


@pytest.mark.parametrize("byte", [0, 1, 2, 3])
def test_flipped_length_byte_costs_only_its_record(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture, byte: int
) -> None:
    records = [(f"h{i}", "x" * (i % 7) * 10) for i in range(200)]
    path = write_store(tmp_path, records)
    damaged = record_offsets(path)[50]
    data = bytearray(path.read_bytes())
    data[damaged + byte] ^= 0x40  # one bit of the big-endian length: far past the end, or short
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        loaded = read_checkpoint(path)
    assert loaded == dict(records[:50] + records[51:])
    assert f"offset {damaged}" in caplog.text and "resume" in caplog.text


def test_writer_keeps_records_after_damage_when_appending(tmp_path: pathlib.Path) -> None:
    path = write_store(tmp_path, RECORDS)
    first = record_offsets(path)[0]
    data = bytearray(path.read_bytes())
    data[first] ^= 0x10  # the first record's length now runs past the end of the file
    path.write_bytes(bytes(data))
    write_store(tmp_path, [("h4", 4)])
    assert read_checkpoint(path) == {**dict(RECORDS[1:]), "h4": 4}


def test_record_that_does_not_unpickle(tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_store(tmp_path, RECORDS[:1])
    garbage = b"\x80\x05this is not a pickle"
    not_a_pair = pickle.dumps(["no", "tuple"])
    with open(path, "ab") as f:
        for payload in (garbage, not_a_pair):
            f.write(struct.pack(">II", len(payload), zlib.crc32(payload)) + payload)
        f.write(encode_record("h9", 9))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        loaded = read_checkpoint(path)
    assert loaded == {"h1": 1, "h9": 9}
    assert caplog.text.count("skipping") == 2


def test_bad_header(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "tasks.ckpt"
    path.write_bytes(pickle.dumps({"old": "format"}))
    with pytest.raises(BadCheckpoint, match=str(path)):
        read_checkpoint(path)
    with pytest.raises(BadCheckpoint, match="refusing to append"):
        CheckpointWriter(tmp_path)


def test_missing(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "nowhere" / "tasks.ckpt"
    with pytest.raises(BadCheckpoint, match="nowhere"):
        read_checkpoint(missing)


def test_torn_header_reads_empty(tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "tasks.ckpt"
    path.write_bytes(MAGIC[:5])
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert read_checkpoint(path) == {}
    assert "incomplete" in caplog.text


CRASH_SCRIPT = """
import sys
from flowlib.dataflow.checkpoint import CheckpointWriter
writer = CheckpointWriter(sys.argv[1])
i = 0
while True:
    writer.append([(f"h{i}", (i, "x" * 1000))])
    writer.flush(fsync=False)
    i += 1
"""


def test_sigkill_leaves_complete_records_readable(tmp_path: pathlib.Path) -> None:
    wanted = 200
    path = tmp_path / "tasks.ckpt"
    proc = subprocess.Popen([sys.executable, "-c", CRASH_SCRIPT, str(tmp_path)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not (path.exists() and path.stat().st_size > len(MAGIC) + wanted * 1100):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "writer did not write enough records"
            threading.Event().wait(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    loaded = read_checkpoint(path)
    assert len(loaded) >= wanted
    assert loaded == {f"h{i}": (i, "x" * 1000) for i in range(len(loaded))}


# ----------------------------------------------------------------------- utils


def make_run(rundir: pathlib.Path, name: str, with_checkpoint: bool) -> None:
    ckpt = rundir / name / "checkpoint"
    ckpt.mkdir(parents=True)
    if with_checkpoint:
        write_store(ckpt, [("h", name)])


def test_get_all_and_last_checkpoint(tmp_path: pathlib.Path) -> None:
    for name, has in [("1000", True), ("001", True), ("000", True), ("002", False), ("abc", True)]:
        make_run(tmp_path, name, has)
    (tmp_path / "003").mkdir()
    found = get_all_checkpoints(str(tmp_path))
    assert found == [str((tmp_path / n / "checkpoint").resolve()) for n in ("000", "001", "1000")]
    assert get_last_checkpoint(str(tmp_path)) == found[-1:]
    assert read_checkpoint(found[-1]) == {"h": "1000"}


def test_no_checkpoints(tmp_path: pathlib.Path) -> None:
    assert get_all_checkpoints(str(tmp_path / "missing")) == []
    assert get_last_checkpoint(str(tmp_path)) == []


class Widget(RepresentationMixin):
    def __init__(self, size: int, name: str = "w", secret: str = "", *args: Any, **kw: Any) -> None:
        self.size = size
        self.name = name


def test_representation_mixin() -> None:
    assert repr(Widget(3, name="x")) == "Widget(size=3, name='x')"


class StrictWidget(Widget):
    _validate_repr = True


def test_representation_mixin_validating_names_the_missing_parameter() -> None:
    with pytest.raises(AttributeError, match="'secret'"):
        repr(StrictWidget(3, secret="s"))


def test_time_limited_open_existing(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "f.txt"
    path.write_text("hello")
    with time_limited_open(path, "r") as f:
        assert f.read() == "hello"


def test_time_limited_open_times_out(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "never.txt"
    with pytest.raises(TimeoutError, match="never.txt"):
        time_limited_open(missing, "r", seconds=0.05)


def test_time_limited_open_waits_for_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "later.txt"
    staged = tmp_path / "staged.txt"
    staged.write_text("made")
    creator = threading.Timer(0.1, os.replace, args=(staged, path))
    creator.start()
    try:
        with time_limited_open(path, "r", seconds=20) as f:
            assert f.read() == "made"
    finally:
        creator.join()
