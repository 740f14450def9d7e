"""FunctionCache: a worker deserializes each function of its apply messages once."""

from __future__ import annotations

import pytest

from flowlib.serialize import pack_res_spec_apply_message, serialize, unpack_res_spec_apply_message
from flowlib.serialize.errors import DeserializationError
from flowlib.serialize.facade import FunctionCache, serialize_function


def double(x: int) -> int:
    return 2 * x


def make_by_value(n: int):  # noqa: ANN201 - a closure: serialized by value, a new function each time it is loaded
    def scaled(x: int) -> int:
        return n * x

    return scaled


@pytest.mark.timeout(10)
def test_the_same_function_bytes_give_the_same_function_object() -> None:
    cache = FunctionCache()
    func = make_by_value(3)
    fb = serialize_function(func)
    first = pack_res_spec_apply_message(func, (2,), {}, {"cores": 1}, function_bytes=fb)
    second = pack_res_spec_apply_message(func, (5,), {}, {}, function_bytes=fb)
    f1, args1, kwargs1, spec1 = unpack_res_spec_apply_message(memoryview(first), cache)
    f2, args2, _, spec2 = unpack_res_spec_apply_message(second, cache)
    assert f1 is f2
    assert (f1(*args1, **kwargs1), f2(*args2)) == (6, 15)
    assert (spec1, spec2) == ({"cores": 1}, {})
    # without a cache, every message gives a fresh function
    g1 = unpack_res_spec_apply_message(first)[0]
    g2 = unpack_res_spec_apply_message(first)[0]
    assert g1 is not g2 and g1(1) == 3


@pytest.mark.timeout(10)
def test_at_most_size_functions_are_kept_oldest_first_out() -> None:
    cache = FunctionCache(size=2)
    blobs = [serialize_function(make_by_value(n)) for n in range(3)]
    a = cache.load(blobs[0])
    cache.load(blobs[1])
    assert cache.load(blobs[0]) is a
    cache.load(blobs[2])  # evicts blobs[0], the oldest entry
    assert cache.load(blobs[0]) is not a
    assert cache.load(blobs[0])(4) == 0


@pytest.mark.timeout(10)
def test_a_function_that_is_not_callable_or_not_deserializable_is_refused_and_not_kept() -> None:
    cache = FunctionCache()
    with pytest.raises(DeserializationError, match="not callable"):
        cache.load(serialize(42))
    with pytest.raises(DeserializationError):
        cache.load(b"\x00garbage")
    message = pack_res_spec_apply_message(double, (1,), {}, {})
    assert unpack_res_spec_apply_message(message, cache)[0](21) == 42
