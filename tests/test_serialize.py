"""Tests of flowlib.serialize: method selection, apply messages, and errors."""

from __future__ import annotations

import functools
import gc
import pickle
import subprocess
import sys
import textwrap
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flowlib.errors import FlowlibError
from flowlib.serialize import (
    DeserializationError,
    SerializationError,
    deserialize,
    pack_apply_message,
    pack_res_spec_apply_message,
    serialize,
    unpack_apply_message,
    unpack_res_spec_apply_message,
)
from flowlib.serialize.base import SerializerBase
from flowlib.serialize.concretes import (
    CloudpickleSerializer,
    DillCallableSerializer,
    DillSerializer,
    PickleSerializer,
)

pytestmark = pytest.mark.timeout(30)

PICKLE = PickleSerializer.identifier
CLOUDPICKLE = CloudpickleSerializer.identifier
DILL = DillSerializer.identifier
ONE_MB = 1 << 20


def run_python(code: str, *args: str, cwd: Path) -> str:
    """Run ``code`` as ``__main__`` in a fresh interpreter and return its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=25,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


class Custom(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(code, text)
        self.code = code


def _gen() -> Iterator[int]:
    yield 1


# --- round trips ----------------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [
        None,
        True,
        0,
        -(2**100),
        1.5,
        complex(1, -2),
        "text ü",
        b"\x00bytes",
        bytearray(b"mutable"),
        (),
        (1, "a", None),
        [1, [2, [3, [4]]]],
        {"a": {"b": [1, 2, {"c": (3, 4)}]}, 5: frozenset({6})},
        {1, 2, 3},
        range(3, 30, 3),
        slice(1, 9, 2),
        Ellipsis,
    ],
    ids=repr,
)
def test_builtins_round_trip_through_pickle(obj: Any) -> None:
    data = serialize(obj)
    assert data.startswith(PICKLE)
    assert deserialize(data) == obj
    assert type(deserialize(data)) is type(obj)


def test_small_tuple_of_ints_uses_pickle() -> None:
    data = serialize((1, 2, 3))
    assert data[: len(PICKLE)] == PICKLE
    assert pickle.loads(data[len(PICKLE) :]) == (1, 2, 3)


def test_shared_and_recursive_structure_survives() -> None:
    shared = [1, 2]
    outer: list[Any] = [shared, shared]
    outer.append(outer)
    back = deserialize(serialize(outer))
    assert back[0] is back[1]
    assert back[2] is back


@pytest.mark.parametrize("kind", [bytes, bytearray])
def test_large_binary_round_trip(kind: Callable[[bytes], Any]) -> None:
    blob = kind(bytes(range(256)) * (ONE_MB // 256))
    data = serialize(blob)
    assert data.startswith(PICKLE)
    assert len(data) < len(blob) + 64  # stored once, not escaped or duplicated
    back = deserialize(data)
    assert type(back) is type(blob)
    assert back == blob


def test_memoryview_round_trips_as_memoryview() -> None:
    source = bytearray(b"abcdef" * 1000)
    view = memoryview(source)[6:]
    back = deserialize(serialize({"v": view}))["v"]
    assert isinstance(back, memoryview)
    assert back.tobytes() == view.tobytes()
    assert not back.readonly
    frozen = deserialize(serialize(memoryview(b"ro")))
    assert frozen.readonly and frozen.tobytes() == b"ro"


def test_multidimensional_memoryview_keeps_format_and_shape() -> None:
    view = memoryview(bytes(range(24))).cast("i", (2, 3))
    back = deserialize(serialize(view))
    assert (back.format, back.shape) == ("i", (2, 3))
    assert back.tolist() == view.tolist()


def test_non_contiguous_memoryview_is_copied_flat() -> None:
    view = memoryview(b"a-b-c-")[::2]
    back = deserialize(serialize(view))
    assert back.tobytes() == b"abc"


@pytest.mark.parametrize(
    "exc",
    [ValueError("bad", 3), KeyError("k"), Custom(7, "seven"), SerializationError("x")],
    ids=lambda e: type(e).__name__,
)
def test_exceptions_round_trip(exc: BaseException) -> None:
    back = deserialize(serialize(exc))
    assert type(back) is type(exc)
    assert back.args == exc.args
    assert str(back) == str(exc)


def test_lambdas_and_closures_travel_by_value() -> None:
    def make_adder(n: int) -> Callable[[int], int]:
        def add(x: int) -> int:
            return x + n

        return add

    square = lambda x: x * x  # noqa: E731
    data = serialize([make_adder(5), square])
    assert data.startswith(CLOUDPICKLE)
    adder, sq = deserialize(data)
    assert adder(1) == 6
    assert sq(7) == 49


def test_module_level_function_goes_by_reference() -> None:
    data = serialize(functools.partial(_gen))
    assert data.startswith(PICKLE)
    assert next(deserialize(data)()) == 1


def test_main_references_switch_to_cloudpickle() -> None:
    thing = type("Thing", (), {"__module__": "__main__", "size": 3})

    def helper() -> int:
        return 11

    helper.__module__ = "__main__"
    for obj in (thing, thing(), [1, {"deep": helper}]):
        assert serialize(obj).startswith(CLOUDPICKLE)
    assert deserialize(serialize(thing())).size == 3
    assert deserialize(serialize([1, {"deep": helper}]))[1]["deep"]() == 11


def test_the_string_main_in_data_does_not_trigger_cloudpickle() -> None:
    assert serialize(["__main__", b"__main__"]).startswith(PICKLE)


def test_dill_is_the_last_resort(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"payload")
    with open(path, "rb") as handle:  # neither pickle nor cloudpickle take binary files
        data = serialize(handle)
    assert data.startswith(DILL)
    reopened = deserialize(data)
    try:
        assert reopened.read() == b"payload"
    finally:
        reopened.close()


# --- __main__ code in a real script -----------------------------------------------


SENDER = """
    import sys
    from flowlib.serialize import pack_apply_message, serialize

    OFFSET = 10

    class Point:
        def __init__(self, x, y):
            self.x, self.y = x, y

        def norm1(self):
            return abs(self.x) + abs(self.y) + OFFSET

    def triple(p, scale=1):
        return 3 * p.norm1() * scale

    with open(sys.argv[1], "wb") as f:
        f.write(pack_apply_message(triple, (Point(1, -2),), {"scale": 2}))
    with open(sys.argv[2], "wb") as f:
        f.write(serialize(Point))
    sys.stdout.write(repr(serialize(triple)[:3]))
"""

RECEIVER = """
    import sys
    import __main__
    from flowlib.serialize import deserialize, unpack_apply_message

    assert not hasattr(__main__, "triple") and not hasattr(__main__, "Point")
    with open(sys.argv[1], "rb") as f:
        func, args, kwargs = unpack_apply_message(f.read())
    with open(sys.argv[2], "rb") as f:
        point_class = deserialize(f.read())
    print(func.__name__, func(*args, **kwargs), point_class(3, 4).norm1())
"""


def test_main_function_and_class_travel_by_value_between_processes(tmp_path: Path) -> None:
    message, cls = str(tmp_path / "apply.bin"), str(tmp_path / "class.bin")
    header = run_python(SENDER, message, cls, cwd=tmp_path)
    assert header == repr(CLOUDPICKLE)
    out = run_python(RECEIVER, message, cls, cwd=tmp_path)
    assert out.split() == ["triple", "78", "17"]


def test_import_does_not_load_cloudpickle_or_dill(tmp_path: Path) -> None:
    out = run_python(
        """
        import sys
        import flowlib.serialize as s
        s.deserialize(s.serialize((1, 2, 3)))
        s.unpack_apply_message(s.pack_apply_message(len, ([1, 2],), {}))
        print(sorted(m for m in ("cloudpickle", "dill") if m in sys.modules))
        """,
        cwd=tmp_path,
    )
    assert out.strip() == "[]"


# --- apply messages ---------------------------------------------------------------


def test_apply_message_round_trip() -> None:
    blob = bytes(ONE_MB)
    data = pack_apply_message(divmod, (17, 5), {"extra": blob})
    func, args, kwargs = unpack_apply_message(data)
    assert func is divmod
    assert args == (17, 5)
    assert kwargs == {"extra": blob}
    assert len(data) < ONE_MB + 256


def test_apply_message_with_closure_and_list_args() -> None:
    base = 100
    data = pack_apply_message(lambda a, b=0: a + b + base, [1], {"b": 2})
    func, args, kwargs = unpack_apply_message(data)
    assert args == (1,)
    assert func(*args, **kwargs) == 103


def test_res_spec_apply_message_round_trip() -> None:
    spec = {"num_nodes": 2, "ranks_per_node": 4, "priority": 1.5}
    data = pack_res_spec_apply_message(max, (3, 9), {"default": 0}, spec)
    func, args, kwargs, back = unpack_res_spec_apply_message(data)
    assert (func, args, kwargs, back) == (max, (3, 9), {"default": 0}, spec)


def test_res_spec_reader_accepts_plain_message_and_not_the_reverse() -> None:
    plain = pack_apply_message(abs, (-1,), {})
    assert unpack_res_spec_apply_message(plain) == (abs, (-1,), {}, {})
    with_spec = pack_res_spec_apply_message(abs, (-1,), {}, {"cores": 1})
    with pytest.raises(DeserializationError, match="unpack_res_spec_apply_message"):
        unpack_apply_message(with_spec)


# --- serialization errors ---------------------------------------------------------


def test_unserializable_keyword_argument_is_named() -> None:
    with pytest.raises(SerializationError) as info:
        pack_apply_message(print, (1,), {"lock": threading.Lock()}, task_id=7)
    err = info.value
    assert "keyword argument 'lock' of type _thread.lock" in str(err)
    assert "task 7" in str(err)
    assert err.what == "keyword argument 'lock'"
    assert err.type_name == "_thread.lock"
    assert err.task_id == 7
    assert err.function_name == "print"
    assert err.reason
    assert isinstance(err.__cause__, Exception)
    assert isinstance(err, FlowlibError)


def test_unserializable_positional_argument_is_named() -> None:
    with pytest.raises(SerializationError) as info:
        pack_apply_message(print, (1, _gen()), {})
    assert "positional argument 1 of type generator" in str(info.value)
    assert info.value.__cause__ is not None


def test_unserializable_resource_specification_is_named() -> None:
    with pytest.raises(SerializationError, match="resource specification of type dict"):
        pack_res_spec_apply_message(print, (), {}, {"lock": threading.RLock()})


def test_unserializable_function_is_named() -> None:
    guarded = functools.partial(print, file=threading.Lock())
    with pytest.raises(SerializationError, match="the function of type functools.partial"):
        pack_apply_message(guarded, (), {}, task_id=3)


@pytest.mark.parametrize(
    "obj, type_name",
    [(threading.Lock(), "_thread.lock"), (_gen(), "generator"), ({"x": threading.RLock()}, "dict")],
)
def test_serialize_names_the_type_and_chains_the_cause(obj: Any, type_name: str) -> None:
    with pytest.raises(SerializationError) as info:
        serialize(obj)
    assert f"of type {type_name}" in str(info.value)
    assert info.value.__cause__ is not None


def test_serialization_error_survives_pickle() -> None:
    err = SerializationError("positional argument 0", type_name="t", reason="r", task_id=4)
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == str(err)
    assert (back.what, back.type_name, back.reason, back.task_id) == (
        "positional argument 0",
        "t",
        "r",
        4,
    )


# --- deserialization errors -------------------------------------------------------


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b"", "empty data"),
        (b"no newline here", "no header"),
        (b"zz\npayload", "b'zz\\n'"),
        (PICKLE + b"\x80\x05garbage", "b'01\\n'"),
    ],
)
def test_bad_data_raises_deserialization_error(data: bytes, fragment: str) -> None:
    with pytest.raises(DeserializationError) as info:
        deserialize(data)
    assert fragment in str(info.value)
    assert isinstance(info.value, FlowlibError)


@pytest.mark.parametrize("obj", [list(range(100)), (lambda: 1)], ids=["pickle", "cloudpickle"])
def test_truncated_data_names_its_header(obj: Any) -> None:
    data = serialize(obj)
    with pytest.raises(DeserializationError) as info:
        deserialize(data[:-5])
    assert info.value.header == data[:3]
    assert repr(data[:3]) in str(info.value)
    assert info.value.__cause__ is not None


def test_missing_module_on_the_reading_side_is_a_deserialization_error() -> None:
    data = PICKLE + b"cno_such_module\nf\n."  # protocol 0: the global no_such_module.f
    with pytest.raises(DeserializationError, match="ModuleNotFoundError"):
        deserialize(data)


def test_apply_message_is_not_plain_data() -> None:
    with pytest.raises(DeserializationError, match="unpack_apply_message"):
        deserialize(pack_apply_message(abs, (1,), {}))


@pytest.mark.parametrize("cut", [3, 5, 10, -3])
def test_truncated_apply_message_raises(cut: int) -> None:
    data = pack_apply_message(abs, (-4,), {})
    with pytest.raises(DeserializationError):
        unpack_apply_message(data[:cut])


def test_plain_data_is_not_an_apply_message() -> None:
    with pytest.raises(DeserializationError, match="not an apply message"):
        unpack_apply_message(serialize((abs, (1,), {})))


def test_deserialization_error_survives_pickle() -> None:
    err = DeserializationError("truncated", header=b"01\n")
    back = pickle.loads(pickle.dumps(err))
    assert (str(back), back.header, back.reason) == (str(err), b"01\n", "truncated")


# --- the serializer classes -------------------------------------------------------


@pytest.mark.parametrize(
    "serializer",
    [PickleSerializer(), CloudpickleSerializer(), DillSerializer(), DillCallableSerializer()],
    ids=lambda s: type(s).__name__,
)
def test_each_serializer_round_trips_and_is_readable_by_the_facade(
    serializer: SerializerBase,
) -> None:
    obj = {"n": [1, 2.5, "x"], "f": len, "b": bytes(1000)}
    data = serializer.serialize(obj)
    assert data.startswith(serializer.identifier)
    assert serializer.deserialize(data) == obj
    assert deserialize(data) == obj


def test_identifiers_are_distinct_headers() -> None:
    classes: list[type[SerializerBase]] = [
        PickleSerializer,
        CloudpickleSerializer,
        DillSerializer,
        DillCallableSerializer,
    ]
    idents = [c.identifier for c in classes]
    assert len(set(idents)) == len(idents)
    assert all(i.endswith(b"\n") and i.count(b"\n") == 1 for i in idents)


def test_serializer_rejects_foreign_header() -> None:
    with pytest.raises(DeserializationError, match="expects header"):
        DillSerializer().deserialize(PickleSerializer().serialize(1))


def test_bad_identifier_is_refused_at_class_creation() -> None:
    with pytest.raises(TypeError, match="identifier"):

        class NoNewline(SerializerBase):
            identifier = b"99"


def test_main_reference_is_detected_even_when_pickle_would_succeed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    thing = type("Thing", (), {"__module__": "__main__", "__qualname__": "Thing"})
    monkeypatch.setattr(sys.modules["__main__"], "Thing", thing, raising=False)
    by_name = PickleSerializer().serialize(thing)  # plain pickle records it by name
    assert b"__main__" in by_name
    assert PickleSerializer().deserialize(by_name) is thing
    assert serialize(thing).startswith(CLOUDPICKLE)
    assert serialize([thing()]).startswith(CLOUDPICKLE)


def test_dill_callable_serializer_caches_per_function_object() -> None:
    serializer = DillCallableSerializer()

    def work(x: int) -> int:
        return x + 1

    first = serializer.serialize(work)
    assert serializer.serialize(work) is first
    assert serializer.deserialize(first)(1) == 2
    other = serializer.serialize(lambda x: x)
    assert other is not first
    assert serializer.cache_size == 2


def test_dill_callable_cache_is_bounded_and_keeps_nothing_alive() -> None:
    serializer = DillCallableSerializer(maxsize=4)
    funcs = [(lambda i=i: i) for i in range(10)]
    for func in funcs:
        serializer.serialize(func)
    assert serializer.cache_size == 4
    assert serializer.deserialize(serializer.serialize(funcs[-1]))() == 9

    probe = weakref.ref(funcs[-1])
    del funcs, func
    gc.collect()
    assert probe() is None


def test_dill_callable_cache_does_not_confuse_a_new_object_at_a_reused_id() -> None:
    serializer = DillCallableSerializer()
    outputs = set()
    for i in range(50):  # short-lived functions: CPython often reuses their ids
        data = serializer.serialize(lambda i=i: i)
        outputs.add(serializer.deserialize(data)())
    assert outputs == set(range(50))


def test_dill_callable_serializer_validates_maxsize() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        DillCallableSerializer(maxsize=0)
