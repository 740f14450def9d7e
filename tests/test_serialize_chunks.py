"""The one-copy serialization buffer (``_ChunkStream``) behind ``serialize`` and the apply messages.

``_ChunkStream`` keeps what the picklers write as a list of chunks and joins them
once; rewinding (``seek`` + ``truncate``) is how ``_write`` drops the output of a
method that failed midway before trying the next one. These tests check that
large and mutable buffers survive the round trip byte for byte, that a failure
after megabytes were written leaves no trace in the result, and the stream's
own bookkeeping.
"""

from __future__ import annotations

import hashlib
import io
import random
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flowlib.serialize import (
    deserialize,
    facade,
    pack_apply_message,
    pack_res_spec_apply_message,
    serialize,
    serialize_function,
    unpack_apply_message,
    unpack_res_spec_apply_message,
)
from flowlib.serialize.concretes import CloudpickleSerializer, DillSerializer, PickleSerializer
from flowlib.serialize.facade import _ChunkStream

pytestmark = pytest.mark.timeout(60)

PICKLE = PickleSerializer.identifier
CLOUDPICKLE = CloudpickleSerializer.identifier
DILL = DillSerializer.identifier
MiB = 1 << 20
BIG = 4 * MiB


def big_bytes(seed: int, size: int = BIG) -> bytes:
    """``size`` reproducible pseudo-random bytes (distinct per seed)."""
    return random.Random(seed).randbytes(size)


def digest(data: Any) -> str:
    return hashlib.sha256(data).hexdigest()


def describe(data: Any) -> tuple[int, str]:
    """Module-level (so pickled by reference): length and hash of a buffer."""
    return len(data), digest(data)


class RecordingStream(_ChunkStream):
    """A ``_ChunkStream`` that remembers every rewind: (position, size before the rewind)."""

    instances: list[RecordingStream] = []

    def __init__(self) -> None:
        super().__init__()
        self.rewinds: list[tuple[int, int]] = []
        RecordingStream.instances.append(self)

    def seek(self, position: int) -> int:
        self.rewinds.append((position, self.size))
        return super().seek(position)


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> list[RecordingStream]:
    """Make ``serialize`` and ``_pack`` use :class:`RecordingStream`; return the streams they made."""
    RecordingStream.instances = []
    monkeypatch.setattr(facade, "_ChunkStream", RecordingStream)
    return RecordingStream.instances


def main_function() -> Callable[[bytes], tuple[int, str]]:
    """A function that claims to live in ``__main__``: plain pickle refuses it, cloudpickle ships it by value."""

    def from_main(data: bytes) -> tuple[int, str]:
        import hashlib

        return len(data), hashlib.sha256(data).hexdigest()

    from_main.__module__ = "__main__"
    from_main.__qualname__ = "from_main"
    return from_main


# ------------------------------------------------------------------------ _ChunkStream itself


def test_write_keeps_bytes_by_reference_and_joins_once() -> None:
    stream = _ChunkStream()
    payload = big_bytes(1)
    assert stream.write(payload) == BIG
    assert stream.chunks[0] is payload  # no copy of an immutable bytes object
    assert stream.getvalue() is payload  # one chunk: nothing to join
    assert stream.write(b"tail") == 4
    assert stream.tell() == BIG + 4
    assert stream.getvalue() == payload + b"tail"


def test_write_copies_mutable_buffers() -> None:
    stream = _ChunkStream()
    source = bytearray(b"abcdef")
    view = memoryview(source)[1:4]
    stream.write(source)
    stream.write(view)
    source[:] = b"XXXXXX"
    assert all(type(chunk) is bytes for chunk in stream.chunks)
    assert stream.getvalue() == b"abcdefbcd"
    assert stream.tell() == 9


def test_empty_stream() -> None:
    stream = _ChunkStream()
    assert stream.tell() == 0
    assert stream.getvalue() == b""
    assert stream.seek(0) == 0
    assert stream.truncate() == 0


def test_seek_inside_a_chunk_keeps_its_head() -> None:
    stream = _ChunkStream()
    for chunk in (b"abc", b"defgh", b"ijkl"):
        stream.write(chunk)
    assert stream.seek(5) == 5
    assert stream.chunks == [b"abc", b"de"]
    assert stream.tell() == 5
    assert stream.truncate() == 5
    stream.write(b"XY")
    assert stream.getvalue() == b"abcdeXY"


def test_seek_to_a_chunk_boundary_and_to_the_start() -> None:
    stream = _ChunkStream()
    for chunk in (b"abc", b"defgh"):
        stream.write(chunk)
    stream.seek(3)
    assert stream.chunks == [b"abc"] and stream.tell() == 3
    stream.seek(3)  # seeking to where it is changes nothing
    assert stream.chunks == [b"abc"]
    stream.seek(0)
    assert stream.chunks == [] and stream.tell() == 0 and stream.getvalue() == b""


def test_seek_inside_a_large_chunk() -> None:
    payload = big_bytes(2)
    stream = _ChunkStream()
    stream.write(b"head")
    stream.write(payload)
    stream.seek(4 + MiB)
    assert stream.getvalue() == b"head" + payload[:MiB]


@pytest.mark.parametrize("position", [4, 103, -1])
def test_seek_outside_what_was_written_raises(position: int) -> None:
    stream = _ChunkStream()
    stream.write(b"abc")
    with pytest.raises(ValueError, match="only rewinds"):
        stream.seek(position)
    assert stream.getvalue() == b"abc" and stream.tell() == 3  # unchanged


@pytest.mark.parametrize("seed", range(5))
def test_random_writes_and_rewinds_match_bytesio(seed: int) -> None:
    rng = random.Random(seed)
    stream, reference = _ChunkStream(), io.BytesIO()
    for _ in range(300):
        if rng.random() < 0.7 or reference.tell() == 0:
            kind = rng.choice([bytes, bytearray, memoryview])
            data = rng.randbytes(rng.randrange(0, 50))
            chunk = kind(data) if kind is not memoryview else memoryview(bytearray(data))
            assert stream.write(chunk) == len(data)
            reference.write(data)
        else:
            position = rng.randrange(0, reference.tell() + 1)
            assert stream.seek(position) == position
            stream.truncate()
            reference.seek(position)
            reference.truncate()
        assert stream.tell() == reference.tell()
        assert stream.size == sum(len(chunk) for chunk in stream.chunks)
    assert stream.getvalue() == reference.getvalue()


# ------------------------------------------------------------------------------ serialize


@pytest.mark.parametrize(
    "make",
    [bytes, bytearray, memoryview, lambda data: memoryview(bytearray(data))],
    ids=["bytes", "bytearray", "memoryview-of-bytes", "memoryview-of-bytearray"],
)
def test_big_buffers_round_trip(make: Callable[[bytes], Any]) -> None:
    data = big_bytes(3)
    obj = make(data)
    back = deserialize(serialize(obj))
    assert type(back) is type(obj)
    assert bytes(back) == data


def test_nested_structure_with_big_buffers_round_trips() -> None:
    structure = {
        "blobs": [big_bytes(4), bytearray(big_bytes(5, MiB)), (b"small", bytearray(b"x"))],
        "nested": {"deep": [[1, 2.5, None, True], {"set": frozenset({1, 2})}], "text": "é" * 1000},
        "empty": [b"", bytearray(), (), {}],
        7: big_bytes(6, 100_000),
    }
    data = serialize(structure)
    assert data.startswith(PICKLE)
    assert deserialize(data) == structure


def test_shared_big_buffer_is_written_once() -> None:
    payload = big_bytes(7)
    data = serialize([payload, payload, {"again": payload}])
    assert len(data) < BIG + 1000  # pickle's memo: the second and third references cost a few bytes
    first, second, third = deserialize(data)
    assert first == payload and second is first and third["again"] is first


def test_main_function_falls_back_to_cloudpickle() -> None:
    func = main_function()
    data = serialize([big_bytes(8), func])
    assert data.startswith(CLOUDPICKLE)
    payload, back = deserialize(data)
    assert payload == big_bytes(8)
    assert back(payload) == describe(payload)


def test_lambda_after_big_bytes_rewinds_and_uses_cloudpickle(recording: list[RecordingStream]) -> None:
    payload = big_bytes(9)
    square = lambda x: x * x  # noqa: E731 - plain pickle cannot find a lambda by name
    data = serialize([payload, bytearray(b"after"), square])
    assert data.startswith(CLOUDPICKLE)
    (stream,) = recording
    # pickle had written the 4 MiB before it met the lambda; all of it was dropped
    assert len(stream.rewinds) == 1
    position, size_before = stream.rewinds[0]
    assert position == 0 and size_before > BIG
    assert len(data) < BIG + 10_000  # the failed attempt left nothing behind
    back_payload, back_after, back_square = deserialize(data)
    assert back_payload == payload
    assert back_after == bytearray(b"after") and type(back_after) is bytearray
    assert back_square(12) == 144


def test_main_reference_after_big_bytes_rewinds(recording: list[RecordingStream]) -> None:
    payload = big_bytes(10)
    data = serialize({"payload": payload, "func": main_function()})
    assert data.startswith(CLOUDPICKLE)
    (stream,) = recording
    assert [position for position, _ in stream.rewinds] == [0]
    assert stream.rewinds[0][1] > BIG  # the pickler stopped after writing the payload
    back = deserialize(data)
    assert back["payload"] == payload
    assert back["func"](payload) == describe(payload)


def test_two_failed_methods_after_big_bytes_fall_back_to_dill(tmp_path: Path, recording: list[RecordingStream]) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"file contents")
    payload = big_bytes(11)
    with open(path, "rb") as handle:  # neither pickle nor cloudpickle take an open file; dill does
        data = serialize([payload, handle])
    assert data.startswith(DILL)
    (stream,) = recording
    assert [position for position, _ in stream.rewinds] == [0, 0]
    assert all(size_before > BIG for _, size_before in stream.rewinds)
    back_payload, reopened = deserialize(data)
    try:
        assert back_payload == payload
        assert reopened.read() == b"file contents"
    finally:
        reopened.close()


# ------------------------------------------------------------------------ apply messages


def test_res_spec_apply_message_with_big_arguments_round_trips() -> None:
    args = (big_bytes(12), bytearray(big_bytes(13, MiB)), memoryview(big_bytes(14, MiB)))
    kwargs = {"nested": {"blob": big_bytes(15, 200_000), "list": [1, "two", (3.0,)]}}
    spec = {"cores": 2, "priority": 1}
    message = pack_res_spec_apply_message(describe, args, kwargs, spec)
    func, back_args, back_kwargs, back_spec = unpack_res_spec_apply_message(message)
    assert func is describe
    assert back_args[0] == args[0] and type(back_args[0]) is bytes
    assert back_args[1] == args[1] and type(back_args[1]) is bytearray
    assert type(back_args[2]) is memoryview and back_args[2].tobytes() == args[2].tobytes()
    assert back_kwargs == kwargs
    assert back_spec == spec
    assert func(back_args[0]) == describe(args[0])


def test_apply_message_with_big_arguments_round_trips() -> None:
    payload = big_bytes(16)
    message = pack_apply_message(describe, [payload], {})
    func, args, kwargs = unpack_apply_message(message)
    assert func is describe and args == (payload,) and kwargs == {}
    # the plain message is also read by the resource-specification reader
    assert unpack_res_spec_apply_message(message)[3] == {}


def test_apply_message_whose_arguments_fall_back_midway(recording: list[RecordingStream]) -> None:
    payload = big_bytes(17)
    shift = 3
    message = pack_res_spec_apply_message(describe, ([payload, lambda x: x + shift],), {"k": payload}, {})
    (stream,) = recording
    # the function went through pickle at once; the arguments were rewound to just after it
    assert len(stream.rewinds) == 1
    position, size_before = stream.rewinds[0]
    assert 0 < position < 1000 and size_before > position + BIG
    func, args, kwargs, spec = unpack_res_spec_apply_message(message)
    assert func is describe and spec == {}
    (items,) = args
    assert items[0] == payload and kwargs["k"] == payload
    assert items[1](4) == 7


def test_main_function_with_big_arguments_in_an_apply_message() -> None:
    func = main_function()
    payload = big_bytes(18)
    message = pack_res_spec_apply_message(func, (payload,), {}, {"cores": 1})
    back, args, kwargs, spec = unpack_res_spec_apply_message(message)
    assert back is not func  # shipped by value
    assert back(*args, **kwargs) == describe(payload)
    assert spec == {"cores": 1}


@pytest.mark.parametrize("make_function", [lambda: describe, main_function], ids=["by-reference", "from-main"])
def test_cached_function_bytes_give_the_same_message(make_function: Callable[[], Any]) -> None:
    func = make_function()
    args, kwargs, spec = (big_bytes(19), bytearray(b"xy")), {"flag": True}, {"priority": 3}
    cached = serialize_function(func)
    fresh = pack_res_spec_apply_message(func, args, kwargs, spec)
    reused = pack_res_spec_apply_message(func, args, kwargs, spec, function_bytes=cached)
    again = pack_res_spec_apply_message(func, args, kwargs, spec, function_bytes=cached)
    assert reused == again
    if func is describe:
        assert reused == fresh  # same method, same bytes
    results = []
    for message in (fresh, reused):
        back, back_args, back_kwargs, back_spec = unpack_res_spec_apply_message(message)
        assert back_args == args and back_kwargs == kwargs and back_spec == spec
        results.append(back(back_args[0]))
    assert results == [describe(args[0])] * 2


@pytest.mark.parametrize("size", [100, 70_000, BIG], ids=["small", "above-frame", "4MiB"])
def test_mutating_a_bytearray_after_packing_does_not_change_the_message(size: int) -> None:
    original = big_bytes(20, size)
    argument = bytearray(original)
    view_source = bytearray(original)
    message = pack_res_spec_apply_message(describe, (argument, memoryview(view_source)), {}, {})
    snapshot = bytes(message)
    argument[0] ^= 0xFF
    argument[-1] ^= 0xFF
    view_source[size // 2] ^= 0xFF
    argument.extend(b"more")
    assert message == snapshot
    _, args, _, _ = unpack_res_spec_apply_message(message)
    assert args[0] == original and args[1].tobytes() == original


def test_mutating_a_bytearray_after_serialize_does_not_change_the_output() -> None:
    argument = bytearray(big_bytes(21))
    data = serialize(argument)
    snapshot = bytes(data)
    argument[:16] = bytes(16)
    assert data == snapshot
    assert deserialize(data) == bytearray(big_bytes(21))


def test_deserialize_reads_memoryview_and_bytearray_input() -> None:
    payload = big_bytes(22)
    message = pack_res_spec_apply_message(describe, (payload,), {}, {})
    for data in (bytearray(message), memoryview(message)):
        _, args, _, _ = unpack_res_spec_apply_message(data)
        assert args[0] == payload
    assert deserialize(memoryview(serialize(payload))) == payload


# ------------------------------------------------------------------ a real __main__ script


def test_main_script_function_with_big_argument_runs_in_another_interpreter(tmp_path: Path) -> None:
    """A function defined in a script's ``__main__`` travels by value with a 4 MiB argument."""
    message_path = tmp_path / "message.bin"
    writer = textwrap.dedent(
        """
        import random, sys
        from flowlib.serialize import pack_res_spec_apply_message

        OFFSET = 5

        def checksum(data, step):
            return len(data), sum(data[::step]) + OFFSET

        payload = random.Random(23).randbytes(4 << 20)
        message = pack_res_spec_apply_message(checksum, (payload,), {"step": 4096}, {"cores": 1})
        assert message[3 + 4 : 3 + 4 + 3] == b"02\\n", message[:16]  # the function went by cloudpickle
        with open(sys.argv[1], "wb") as f:
            f.write(message)
        """
    )
    reader = textwrap.dedent(
        """
        import sys
        import __main__
        from flowlib.serialize import unpack_res_spec_apply_message

        assert not hasattr(__main__, "checksum")
        with open(sys.argv[1], "rb") as f:
            func, args, kwargs, spec = unpack_res_spec_apply_message(f.read())
        print(func(*args, **kwargs), spec)
        """
    )
    for code in (writer, reader):
        done = subprocess.run(
            [sys.executable, "-c", code, str(message_path)], capture_output=True, text=True, timeout=40, cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr
    payload = big_bytes(23)
    assert done.stdout.strip() == f"{(BIG, sum(payload[::4096]) + 5)} {{'cores': 1}}"
