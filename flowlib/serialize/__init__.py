"""Turning objects, and app invocations, into bytes for another process.

Wire format: every output is ``header + payload``. The header is a few bytes
ending in ``b"\\n"`` that names the method which wrote the payload (see
:mod:`flowlib.serialize.concretes`), so :func:`deserialize` needs no other
context. :func:`serialize` tries stdlib pickle first (fastest), and falls back
to cloudpickle when the object refers to code defined in ``__main__`` (a script
or a notebook) or pickle fails, then to dill; see :mod:`flowlib.serialize.facade`
for the rule and for the framing of apply messages.

Importing this package imports neither cloudpickle nor dill; they are loaded
the first time they are needed.
"""

from flowlib.serialize.errors import DeserializationError, SerializationError
from flowlib.serialize.facade import (
    deserialize,
    pack_apply_message,
    pack_res_spec_apply_message,
    serialize,
    serialize_function,
    unpack_apply_message,
    unpack_res_spec_apply_message,
)

__all__ = [
    "DeserializationError",
    "SerializationError",
    "deserialize",
    "pack_apply_message",
    "pack_res_spec_apply_message",
    "serialize",
    "serialize_function",
    "unpack_apply_message",
    "unpack_res_spec_apply_message",
]
