"""The serialization methods: stdlib pickle, cloudpickle and dill.

=========================  ==========  =============================================
class                      identifier  payload
=========================  ==========  =============================================
``PickleSerializer``       ``b"01\\n"``  stdlib pickle, highest protocol
``CloudpickleSerializer``  ``b"02\\n"``  cloudpickle (``__main__`` code by value)
``DillSerializer``         ``b"03\\n"``  dill, tracing referenced globals
``DillCallableSerializer`` ``b"04\\n"``  dill, output cached per function object
=========================  ==========  =============================================

Every payload is written at pickle protocol 5, so large ``bytes`` and
``bytearray`` objects are copied once, straight into the output buffer.
``memoryview`` objects, which plain pickle refuses, travel the same way and come
back as memoryviews. cloudpickle and dill are imported on first use only.

The stdlib picklers are made once per thread and reused (:func:`_reused_dump`):
building a pickler costs several times more than pickling a task's arguments.
Between two dumps its memo is cleared, so nothing pickled before is referenced
or remembered; each dump gives exactly what a fresh pickler would.
"""

from __future__ import annotations

import _thread
import collections
import functools
import io
import pickle
import threading
import types
import weakref
from collections.abc import Callable
from typing import Any, BinaryIO

from flowlib.serialize.base import Bytes, SerializerBase

PROTOCOL = pickle.HIGHEST_PROTOCOL
"""Pickle protocol used by every method (5 or later)."""

_PROCESS_LOCAL_TYPES = frozenset({_thread.LockType, type(threading.RLock())})
"""Types dill would copy although a copy in another process synchronizes nothing."""


class ReferencesMainModule(Exception):
    """Signal from ``PickleSerializer(allow_main=False)``: ``obj`` refers to ``__main__``.

    Pickle would record such a function or class by name, and a worker has no
    such name in its ``__main__``; the facade then asks cloudpickle instead.
    """


def _rebuild_memoryview(data: Bytes, fmt: str, shape: tuple[int, ...]) -> memoryview:
    view = memoryview(data)
    if fmt == "B" and len(shape) == 1:
        return view
    flat: Any = view.cast("B")  # Any: typeshed accepts only literal formats
    return flat.cast(fmt, shape)


def _reduce_memoryview(view: memoryview) -> tuple[Any, tuple[Any, ...]]:
    """Reduce ``view`` so that protocol 5 writes its bytes without a copy."""
    if view.c_contiguous:
        flat: Any = view.cast("B")
        try:
            flat.cast(view.format, view.shape)
        except (TypeError, ValueError):
            pass  # a format that cast() cannot restore: ship plain bytes below
        else:
            return _rebuild_memoryview, (pickle.PickleBuffer(view), view.format, view.shape)
    return _rebuild_memoryview, (view.tobytes(), "B", (view.nbytes,))


class _StdPickler(pickle.Pickler):
    """C pickler that also writes memoryviews (as protocol 5 buffers, no copy).

    ``reducer_override`` is not called for ``None``, booleans, and exact ``int``,
    ``float``, ``bytes``, ``str``, ``list``, ``tuple``, ``dict``, ``set`` and
    ``frozenset`` instances, so plain data pays nothing for it.
    """

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is memoryview:
            return _reduce_memoryview(obj)
        return NotImplemented


_PLAIN, _VIEW, _MAIN, _CODE = range(4)
_MAX_VERDICTS = 256


def _classify(kind: type) -> int:
    if kind is memoryview:
        return _VIEW
    if kind.__module__ == "__main__":
        return _MAIN
    if kind is types.FunctionType or issubclass(kind, type):
        return _CODE
    return _PLAIN


class _MainRefusingPickler(pickle.Pickler):
    """:class:`_StdPickler` that stops at the first reference to ``__main__``.

    Checked: the object's type, and the object itself when it is a class or a
    function. This runs once per non-builtin object, so the verdict on each
    type is remembered for the length of one dump.
    """

    def __init__(self, stream: BinaryIO, protocol: int) -> None:
        super().__init__(stream, protocol=protocol)
        self._verdicts: dict[type, int] = {}

    def clear_memo(self) -> None:
        super().clear_memo()
        if len(self._verdicts) > _MAX_VERDICTS:  # a reused pickler must not keep many classes alive
            self._verdicts.clear()

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        verdict = self._verdicts.get(kind)
        if verdict is None:
            verdict = self._verdicts[kind] = _classify(kind)
        if verdict == _PLAIN:
            return NotImplemented
        if verdict == _VIEW:
            return _reduce_memoryview(obj)
        if verdict == _MAIN or getattr(obj, "__module__", None) == "__main__":
            raise ReferencesMainModule(obj)
        return NotImplemented


class _Redirect:
    """The stream a reused pickler writes to: forwards to the stream of the current dump."""

    __slots__ = ("target",)

    def __init__(self) -> None:
        self.target: Any = None

    def write(self, data: Any) -> Any:
        return self.target.write(data)


class _ReusedPickler:
    """One thread's pickler of one class, with the stream it writes through."""

    __slots__ = ("pickler", "redirect", "busy")

    def __init__(self, kind: type[pickle.Pickler]) -> None:
        self.redirect = _Redirect()
        self.pickler = kind(self.redirect, PROTOCOL)
        self.busy = False


_LOCAL = threading.local()


def _reused_dump(kind: type[pickle.Pickler], obj: Any, stream: BinaryIO) -> None:
    """``kind(stream, PROTOCOL).dump(obj)``, with this thread's pickler of ``kind`` reused.

    A dump started from inside another one on the same thread (a ``__reduce__``
    that serializes) gets a pickler of its own.
    """
    try:
        picklers = _LOCAL.picklers
    except AttributeError:
        picklers = _LOCAL.picklers = {}
    reused = picklers.get(kind)
    if reused is None:
        reused = picklers[kind] = _ReusedPickler(kind)
    if reused.busy:
        kind(stream, PROTOCOL).dump(obj)
        return
    reused.busy = True
    reused.redirect.target = stream
    try:
        reused.pickler.dump(obj)
    finally:
        reused.redirect.target = None
        reused.pickler.clear_memo()  # drop every reference to what was pickled
        reused.busy = False


class PickleSerializer(SerializerBase):
    """Stdlib pickle at the highest protocol: the fastest method.

    With ``allow_main=False`` it raises :class:`ReferencesMainModule` as soon as
    the object refers to a function or class defined in ``__main__`` (a script
    or a notebook), which pickle could only record by name.
    """

    identifier = b"01\n"

    def __init__(self, *, allow_main: bool = True) -> None:
        self.allow_main = allow_main

    def serialize(self, obj: Any) -> bytes:
        stream = io.BytesIO()
        self.write(obj, stream)
        return stream.getvalue()

    def write(self, obj: Any, stream: BinaryIO) -> None:
        stream.write(self.identifier)
        _reused_dump(_StdPickler if self.allow_main else _MainRefusingPickler, obj, stream)

    def deserialize(self, data: Bytes) -> Any:
        return pickle.loads(self.payload(data))


@functools.cache
def _cloudpickler_class() -> Callable[..., pickle.Pickler]:
    import cloudpickle

    base: type[pickle.Pickler] = cloudpickle.Pickler

    class _CloudPickler(base):  # type: ignore[valid-type,misc]
        # cloudpickle would turn a memoryview into bytes; keep it a memoryview.
        dispatch_table = collections.ChainMap({memoryview: _reduce_memoryview}, cloudpickle.Pickler.dispatch_table)

    return _CloudPickler


class CloudpickleSerializer(SerializerBase):
    """cloudpickle: functions and classes from ``__main__``, lambdas and closures by value.

    Output is read back by stdlib pickle, so a worker needs cloudpickle only to
    run what it rebuilds, not to parse it.
    """

    identifier = b"02\n"

    def serialize(self, obj: Any) -> bytes:
        stream = io.BytesIO()
        self.write(obj, stream)
        return stream.getvalue()

    def write(self, obj: Any, stream: BinaryIO) -> None:
        stream.write(self.identifier)
        _cloudpickler_class()(stream, protocol=PROTOCOL).dump(obj)

    def deserialize(self, data: Bytes) -> Any:
        return pickle.loads(self.payload(data))


@functools.cache
def _dill_pickler_class() -> Callable[..., pickle.Pickler]:
    import dill

    base: type[pickle.Pickler] = dill.Pickler

    class _DillPickler(base):  # type: ignore[valid-type,misc]
        def save(self, obj: Any, save_persistent_id: bool = True) -> None:
            kind = type(obj)
            if kind in _PROCESS_LOCAL_TYPES:
                raise TypeError(
                    f"cannot pickle {kind.__module__}.{kind.__qualname__} objects:"
                    " a copy in another process would synchronize nothing"
                )
            if kind is memoryview:
                func, args = _reduce_memoryview(obj)
                self.save_reduce(func, args, obj=obj)
                return
            super().save(obj, save_persistent_id)

    return _DillPickler


class DillSerializer(SerializerBase):
    """dill, the last resort: handles some objects cloudpickle refuses.

    Globals of functions are traced (``recurse=True``) so that only those a
    function uses travel with it. Locks are refused: dill would ship a new,
    unrelated lock.
    """

    identifier = b"03\n"

    def serialize(self, obj: Any) -> bytes:
        stream = io.BytesIO()
        self.write(obj, stream)
        return stream.getvalue()

    def write(self, obj: Any, stream: BinaryIO) -> None:
        stream.write(self.identifier)
        _dill_pickler_class()(stream, PROTOCOL, recurse=True).dump(obj)

    def deserialize(self, data: Bytes) -> Any:
        import dill

        return dill.load(io.BytesIO(self.payload(data)))


class DillCallableSerializer(DillSerializer):
    """dill for functions, remembering the output for the last ``maxsize`` functions.

    Sending the same function object again costs a dictionary lookup. Entries
    are keyed by ``id(func)`` and hold only a weak reference, checked on every
    lookup, so a dead function's id reused by a new object never hits, and the
    cache keeps no function alive. Objects that cannot be weakly referenced are
    not cached. The cache assumes a function does not change between sends
    (its defaults, closure or the globals it uses).
    """

    identifier = b"04\n"

    def __init__(self, maxsize: int = 256) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, not {maxsize}")
        self.maxsize = maxsize
        self._cache: collections.OrderedDict[int, tuple[weakref.ref[Any], bytes]] = collections.OrderedDict()
        self._lock = threading.Lock()

    @property
    def cache_size(self) -> int:
        """How many functions currently have a cached output."""
        return len(self._cache)

    def serialize(self, obj: Any) -> bytes:
        key = id(obj)
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None and entry[0]() is obj:
                self._cache.move_to_end(key)
                return entry[1]
        stream = io.BytesIO()
        DillSerializer.write(self, obj, stream)
        data = stream.getvalue()
        try:
            ref = weakref.ref(obj)
        except TypeError:
            return data
        with self._lock:
            self._cache[key] = (ref, data)
            self._cache.move_to_end(key)
            while len(self._cache) > self.maxsize:
                self._cache.popitem(last=False)
        return data

    def write(self, obj: Any, stream: BinaryIO) -> None:
        stream.write(self.serialize(obj))
