"""Deterministic task keys: ``id_for_memo`` and ``function_identity``.

``id_for_memo`` turns an argument into bytes that are equal for equal values in
any process (it never uses ``hash()`` or ``id()``), and different for values that
differ in type or structure. Each encoding is self-delimiting: a one-byte tag,
an 8-byte big-endian length and the payload, so ``[[1], 2]`` and ``[1, [2]]`` or
``1``, ``"1"``, ``True`` and ``1.0`` never collide. Users add types with
``id_for_memo.register(MyType)``.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import inspect
import os
import pathlib
import types
from collections.abc import Callable
from typing import Any

__all__ = ["function_identity", "id_for_memo"]

# ----------------------------------------------------------------------------- keys


def _frame(tag: bytes, payload: bytes) -> bytes:
    return tag + len(payload).to_bytes(8, "big") + payload


def _typed(obj: object, base: type, tag: bytes, payload: bytes) -> bytes:
    """Frame ``payload``; a subclass of ``base`` (an IntEnum, ...) also carries its type name."""
    if type(obj) is base:
        return _frame(tag, payload)
    cls = type(obj)
    name = f"{cls.__module__}.{cls.__qualname__}".encode()
    return _frame(b"X", _frame(b"t", name) + _frame(tag, payload))


def _child(obj: object, output_ref: bool) -> bytes:
    key = id_for_memo(obj, output_ref=output_ref)
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        # Key functions written for Parsl often return a str (a hex digest, a path); its own tag
        # keeps such a key apart from any bytes key.
        return _frame(b"s", key.encode("utf-8", "surrogatepass"))
    if isinstance(key, (bytearray, memoryview)):
        return bytes(key)
    raise TypeError(
        f"the id_for_memo key function for {type(obj).__qualname__} returned "
        f"{type(key).__qualname__}, expected bytes (or str)"
    )


@functools.singledispatch
def id_for_memo(obj: object, output_ref: bool = False) -> bytes:
    """Return the memoization key of ``obj`` as bytes.

    ``output_ref`` is True while encoding the ``outputs`` keyword (files the task
    will write), so a key function may ignore content that does not exist yet.
    Raises ValueError for a type with no key function.
    """
    if _register_lazy_types():
        return id_for_memo(obj, output_ref=output_ref)
    cls = type(obj)
    raise ValueError(
        f"cannot compute a memoization key for an argument of type "
        f"{cls.__module__}.{cls.__qualname__}; register a key function with "
        f"@id_for_memo.register({cls.__qualname__}) returning bytes, or leave the "
        f"argument out with ignore_for_cache"
    )


def _scalar_key(base: type, tag: bytes, encode: Callable[[Any], bytes]) -> Callable[..., bytes]:
    def key(obj: Any, output_ref: bool = False) -> bytes:
        return _typed(obj, base, tag, encode(obj))

    key.__name__ = f"id_for_memo_{base.__name__}"
    return key


def _sequence_key(base: type, tag: bytes) -> Callable[..., bytes]:
    def key(obj: Any, output_ref: bool = False) -> bytes:
        return _typed(obj, base, tag, b"".join(_frame(b"e", _child(x, output_ref)) for x in obj))

    key.__name__ = f"id_for_memo_{base.__name__}"
    return key


_SCALARS: list[tuple[type, bytes, Callable[[Any], bytes]]] = [
    (type(None), b"N", lambda _: b""),
    (bool, b"B", lambda b: b"1" if b else b"0"),
    (int, b"I", lambda n: int(n).to_bytes((n.bit_length() + 8) // 8, "big", signed=True)),
    (float, b"F", lambda x: float(x).hex().encode()),
    (complex, b"C", lambda z: f"{z.real.hex()},{z.imag.hex()}".encode()),
    (str, b"S", lambda s: str(s).encode("utf-8", "surrogatepass")),
    (bytes, b"Y", bytes),
]
for _base, _tag, _encode in _SCALARS:
    id_for_memo.register(_base, _scalar_key(_base, _tag, _encode))
id_for_memo.register(list, _sequence_key(list, b"L"))
id_for_memo.register(tuple, _sequence_key(tuple, b"T"))


@id_for_memo.register(dict)
def _(obj: dict[Any, Any], output_ref: bool = False) -> bytes:
    items = sorted((_child(k, output_ref), _child(v, output_ref)) for k, v in obj.items())
    return _typed(obj, dict, b"D", b"".join(_frame(b"k", k) + _frame(b"v", v) for k, v in items))


@id_for_memo.register(set)
@id_for_memo.register(frozenset)
def _(obj: set[Any] | frozenset[Any], output_ref: bool = False) -> bytes:
    tag = b"Z" if isinstance(obj, frozenset) else b"E"
    base = frozenset if isinstance(obj, frozenset) else set
    elements = sorted(_child(x, output_ref) for x in obj)
    return _typed(obj, base, tag, b"".join(_frame(b"e", x) for x in elements))


@id_for_memo.register(pathlib.PurePath)
def _(obj: pathlib.PurePath, output_ref: bool = False) -> bytes:
    flavour = b"w" if isinstance(obj, pathlib.PureWindowsPath) else b"p"
    return _frame(b"P", flavour + str(obj).encode("utf-8", "surrogateescape"))


@id_for_memo.register(enum.Enum)
def _(obj: enum.Enum, output_ref: bool = False) -> bytes:
    cls = type(obj)
    return _frame(b"M", f"{cls.__module__}.{cls.__qualname__}.{obj.name}".encode())


@id_for_memo.register(types.FunctionType)
@id_for_memo.register(types.BuiltinFunctionType)
@id_for_memo.register(functools.partial)
def _(obj: Any, output_ref: bool = False) -> bytes:
    return _frame(b"f", function_identity(obj).encode())


def _id_for_file(obj: Any, output_ref: bool = False) -> bytes:
    # By URL only: an input file's content is not read (it may be large or remote).
    return _frame(b"U", str(obj.url).encode("utf-8", "surrogateescape"))


_lazy_done = False


def _register_lazy_types() -> bool:
    """Register key functions for flowlib types imported after this module; True if any added."""
    global _lazy_done
    if _lazy_done:
        return False
    try:
        from flowlib.data_provider.files import File
    except ImportError:
        return False
    _lazy_done = True
    id_for_memo.register(File, _id_for_file)
    return True


_register_lazy_types()

# ------------------------------------------------------------------------ functions


def function_identity(func: Any) -> str:
    """Return a stable hex digest of a callable's module, qualname and source.

    Editing the body of a function changes its identity, so memoized results of
    the old version are not reused. When the source is unavailable (a function
    built with ``exec``), the code object (bytecode, constants, names) is used.
    A ``functools.partial`` includes its wrapped function and bound arguments.
    """
    h = hashlib.sha256()
    for part in _identity_parts(func):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def _identity_parts(func: Any) -> list[bytes]:
    if isinstance(func, functools.partial):
        return [
            b"partial",
            function_identity(func.func).encode(),
            _key_or_token(func.args),
            _key_or_token(func.keywords),
        ]
    if isinstance(func, types.MethodType):
        return [b"method", function_identity(func.__func__).encode(), _key_or_token(func.__self__)]
    module = str(getattr(func, "__module__", None)).encode()
    qualname = str(getattr(func, "__qualname__", type(func).__qualname__)).encode()
    code = getattr(func, "__code__", None)
    if code is None:
        if callable(func) and not isinstance(func, (type, types.BuiltinFunctionType)):
            # a callable object: its class's __call__ and the instance's state
            return [b"object", function_identity(type(func).__call__).encode(), _key_or_token(func)]
        bound = getattr(func, "__self__", None)
        if bound is not None and not isinstance(bound, types.ModuleType):
            return [b"builtin method", module, qualname, _key_or_token(bound)]
        return [b"builtin", module, qualname]
    try:
        source = inspect.getsource(func).encode("utf-8", "surrogateescape")
    except (OSError, TypeError):
        source = _code_bytes(code)
    return [b"function", module, qualname, source]


def _code_bytes(code: types.CodeType) -> bytes:
    """Encode a code object deterministically (nested code objects included)."""
    parts = [code.co_code, repr(code.co_names).encode(), repr(code.co_varnames).encode()]
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            parts.append(_frame(b"c", _code_bytes(const)))
        elif const is Ellipsis:
            parts.append(_frame(b".", b""))
        else:
            parts.append(_frame(b"k", _key_or_token(const)))
    return b"".join(_frame(b"p", p) for p in parts)


def _key_or_token(obj: Any) -> bytes:
    """The memo key of ``obj``, or a token unique to this live object when it has none.

    The token makes a cache miss across processes, never a false hit.
    """
    try:
        return _frame(b"v", id_for_memo(obj))
    except (ValueError, TypeError, RecursionError):
        return _frame(b"o", f"{os.getpid()}:{id(obj)}".encode())
