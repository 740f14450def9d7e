"""The stdlib picklers are reused per thread: each dump must still behave like a fresh pickler's."""

from __future__ import annotations

import gc
import pickle
import threading
import types
import weakref

import pytest

from flowlib.serialize import deserialize, serialize, serialize_function
from flowlib.serialize.concretes import _LOCAL, _MAX_VERDICTS, PROTOCOL, PickleSerializer, _MainRefusingPickler
from flowlib.serialize.errors import SerializationError


class _Boom:
    def __reduce__(self) -> tuple[object, ...]:
        raise RuntimeError("boom in __reduce__")


class _Nested:
    """Serializes something else from inside its own pickling (same thread)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def __reduce__(self) -> tuple[object, ...]:
        return deserialize, (serialize(self.inner),)


class _Payload:
    pass


def _make_adder(n: int) -> types.FunctionType:
    def add(x: int) -> int:
        return x + n

    return add  # type: ignore[return-value]


def test_output_equals_a_fresh_picklers() -> None:
    obj = ((1, "a", b"x" * 10, [1.5, None]), {"k": (1, 2)}, {})
    first = serialize(obj)
    second = serialize(obj)
    assert first == second == b"01\n" + pickle.dumps(obj, PROTOCOL)


def test_two_closures_back_to_back() -> None:
    add1, add5 = _make_adder(1), _make_adder(5)
    one, five = serialize_function(add1), serialize_function(add5)
    assert deserialize(one)(10) == 11
    assert deserialize(five)(10) == 15
    assert deserialize(serialize((1, 2))) == (1, 2)  # the stdlib pickler is fine after both fell back


def test_a_pickling_error_does_not_poison_the_next_dump() -> None:
    with pytest.raises(SerializationError, match="boom"):
        serialize([1, 2, _Boom()])
    assert deserialize(serialize([3, 4])) == [3, 4]
    assert serialize({"a": 1}) == b"01\n" + pickle.dumps({"a": 1}, PROTOCOL)


def test_nothing_pickled_is_kept_alive_or_remembered() -> None:
    item = _Payload()
    ref = weakref.ref(item)
    shared = [item, item]
    data = serialize(shared)
    copy = deserialize(data)
    assert copy[0] is copy[1]  # the memo works within one dump
    del item, shared, copy
    gc.collect()
    assert ref() is None  # the reused pickler's memo was cleared
    again = [_Payload()]
    assert deserialize(serialize(again))[0] is not again[0]


def test_a_dump_inside_a_dump_on_the_same_thread() -> None:
    value = deserialize(serialize([_Nested({"x": 1}), 2]))
    assert value == [{"x": 1}, 2]


def test_each_thread_has_its_own_pickler() -> None:
    results: dict[int, object] = {}
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            for round_ in range(200):
                obj = (index, round_, "t" * index)
                assert deserialize(serialize(obj)) == obj
            results[index] = _LOCAL.picklers
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert len({id(p) for p in results.values()}) == 4


def test_main_function_changed_global_travels_by_value_each_time() -> None:
    namespace: dict[str, object] = {"__name__": "__main__", "LIMIT": 1}
    exec("def capped(x):\n    return min(x, LIMIT)\n", namespace)
    capped = namespace["capped"]
    assert deserialize(serialize_function(capped))(5) == 1  # type: ignore[arg-type]
    namespace["LIMIT"] = 3
    assert deserialize(serialize_function(capped))(5) == 3  # type: ignore[arg-type]


def test_main_reference_still_falls_back_after_reuse() -> None:
    namespace: dict[str, object] = {"__name__": "__main__"}
    exec("class Local:\n    pass\n", namespace)
    local = namespace["Local"]()  # type: ignore[operator]
    for _ in range(3):
        data = serialize([1, local])
        assert data[:3] == b"02\n"  # cloudpickle: by value
    assert serialize([1])[:3] == b"01\n"


def test_the_verdict_cache_stays_bounded() -> None:
    PickleSerializer(allow_main=False).serialize(1)
    pickler = _LOCAL.picklers[_MainRefusingPickler].pickler
    for i in range(_MAX_VERDICTS + 50):
        kind = type(f"K{i}", (), {"__module__": __name__})
        globals()[kind.__name__] = kind
        try:
            PickleSerializer(allow_main=False).serialize(kind())
        finally:
            del globals()[kind.__name__]
    assert len(pickler._verdicts) <= _MAX_VERDICTS + 1
