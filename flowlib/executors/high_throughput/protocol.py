"""The wire protocol between the executor client, the interchange and worker pools.

Every message is a ZeroMQ multipart message. Its first frame is a 4-byte header::

    b"FL" | protocol version (1 byte) | message kind (1 byte)

followed by the frames of that kind. Task ids travel as arrays of unsigned 64-bit
integers (one frame), per-task resource requests as one JSON frame, and task
payloads (serialized functions and results) as opaque frames, which the
interchange forwards without ever deserializing. A small payload is one frame;
a large one may be several (:mod:`.parts`, at most a few MiB each), and then a
*parts* frame says how many frames each payload of the message spans. When
every payload of a batch is small, they travel *packed*: joined into a few
frames of at most :data:`PACK_FRAME_BYTES`, with the parts frame ``b"P"`` plus
each payload's length. One frame per task would cost a ZeroMQ send, receive and
CurveZMQ encryption per task on every hop; packed, these are paid per batch.

A message that is not well formed — wrong magic, unknown kind, wrong number of
frames, ids that do not match the payloads, invalid JSON — raises
:class:`ProtocolError` from :func:`decode`; receivers log and drop it. When the
ids of a task or result batch could be read but its payloads cannot be
assembled (a part missing, counts that do not add up), the error is
:class:`MalformedBatch`, which carries the ids: receivers then fail those
tasks with a :class:`~.errors.MalformedPayload` instead of dropping them.

Compatibility: peers must speak the same ``PROTOCOL_VERSION``; flowlib and Python
patch releases may differ. A worker pool of another protocol version is refused
at registration with a REJECT message whose layout never changes. Optional
features are negotiated within a version: a REGISTERED answer is a JSON object
whose unknown keys a pool ignores (``resource_interval`` asks for RESOURCES
messages; a pool that does not know it sends none), and a REGISTER's optional
fields (``cpu_count``, ``total_memory``) may be absent.
"""

from __future__ import annotations

import enum
import json
import struct
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, Union

from flowlib.executors.high_throughput.parts import flatten, group

PROTOCOL_VERSION = 5
"""3: payloads may span several frames (the parts frame of TASKS, SUBMIT and RESULTS).
4: RELEASED and DIRECT: results of this machine's pools, and an idle executor's tasks, skip the interchange
(:mod:`.direct_results`).
5: the payloads of a batch may be packed (a parts frame starting with ``b"P"``)."""
MAGIC = b"FL"
_HEADER = struct.Struct("!2sBB")
HEADER_SIZE = _HEADER.size

Frame = Union[bytes, memoryview, Any]  # zmq.Frame is accepted too (it supports the buffer protocol)


class ProtocolError(Exception):
    """A message that does not follow this protocol; the receiver drops it."""


class MalformedBatch(ProtocolError):
    """A task or result batch whose ids are readable but whose payloads are not all there or do not add up.

    ``ids`` are the tasks of the batch: the receiver fails them (they cannot be
    run or answered) instead of letting them hang.
    """

    def __init__(self, message: str, ids: list[int]) -> None:
        super().__init__(message)
        self.ids = ids


class Kind(enum.IntEnum):
    """Message kinds. Direction: C client, I interchange, M manager (worker pool)."""

    SUBMIT = 1
    """C->I: tasks to run."""
    CANCEL = 2
    """C->I, I->M: cancel these task ids."""
    RESULTS = 3
    """M->I, I->C: outcomes of tasks (a status byte and a payload each)."""
    FAILURES = 4
    """I->C, M->I: tasks that failed outside user code (worker or manager lost, bad request)."""
    REGISTER = 5
    """M->I: a worker pool introduces itself."""
    REGISTERED = 6
    """I->M: registration accepted."""
    HEARTBEAT = 7
    """M<->I: liveness, when there is no other traffic."""
    TASKS = 8
    """I->M: tasks for a worker pool."""
    DRAIN = 10
    """I->M: finish running tasks, accept no more, then exit."""
    SHUTDOWN = 12
    """C->I, I->M: stop now."""
    COMMAND = 13
    """C->I: a query or control request."""
    COMMAND_REPLY = 14
    """I->C: the answer to COMMAND."""
    EVENT = 15
    """I->C: manager registered, lost or refused; authentication failures; resource samples."""
    RESOURCES = 16
    """M->I: resource samples of the pool's running tasks (JSON), sent only when REGISTERED asked for them."""
    RELEASED = 17
    """M->I: these task ids were answered to the executor directly (their RESULTS went to it, not through here)."""
    DIRECT = 18
    """C->I: these task ids go to a pool on this machine directly (ids frame, then the pool id in UTF-8)."""
    REJECT = 255
    """I->M: registration refused; the frame after the header is a UTF-8 reason."""


class TaskStatus(enum.IntEnum):
    """The outcome carried for each task in a RESULTS message."""

    OK = 0
    """The payload is the serialized return value."""
    EXCEPTION = 1
    """The payload is a serialized RemoteExceptionWrapper."""
    CANCELLED = 2
    """The task was cancelled; the payload is empty."""


_MAX_STATUS = max(TaskStatus)


def header(kind: Kind) -> bytes:
    """The first frame of a message of ``kind``."""
    return _HEADER.pack(MAGIC, PROTOCOL_VERSION, kind)


_HEADERS = {kind: header(kind) for kind in Kind}
_PARSED = {raw: (PROTOCOL_VERSION, kind) for kind, raw in _HEADERS.items()}


def parse_header(frame: Frame) -> tuple[int, Kind]:
    """Return ``(version, kind)`` of a message's first frame; ProtocolError if malformed."""
    raw = bytes(frame)
    known = _PARSED.get(raw)
    if known is not None:  # the common case: this version's headers, without building an enum each time
        return known
    if len(raw) != HEADER_SIZE:
        raise ProtocolError(f"header frame has {len(raw)} bytes, expected {HEADER_SIZE}")
    magic, version, kind = _HEADER.unpack(raw)
    if magic != MAGIC:
        raise ProtocolError(f"bad magic {magic!r}")
    try:
        return version, Kind(kind)
    except ValueError:
        raise ProtocolError(f"unknown message kind {kind}") from None


def pack_ids(ids: Sequence[int]) -> bytes:
    """Task ids as one frame of big-endian-neutral native uint64 values."""
    return array("Q", ids).tobytes()


def unpack_ids(frame: Frame) -> list[int]:
    """The task ids of an ids frame; ProtocolError if its length is not a multiple of 8."""
    raw = memoryview(frame).cast("B")
    if len(raw) % 8:
        raise ProtocolError(f"ids frame of {len(raw)} bytes is not a multiple of 8")
    ids = array("Q")
    ids.frombytes(raw)
    return ids.tolist()


def malformed_failures(ids: Sequence[int], error: Exception) -> dict[str, dict[str, str]]:
    """A FAILURES body failing each of ``ids`` with MalformedPayload, saying why."""
    message = f"the task's payload did not arrive whole: {error}"
    return {str(tid): {"error": "MalformedPayload", "message": message} for tid in ids}


def pack_parts(counts: Sequence[int] | None) -> bytes:
    """The parts frame: the number of frames of each payload, native uint32 (empty: one frame each)."""
    return array("I", counts).tobytes() if counts else b""


PACK_ITEM_BYTES = 64 * 1024
"""Payloads up to this size are packed; a batch holding a larger one (or a multi-frame one) is not."""
PACK_FRAME_BYTES = 1 << 20
"""Packed payloads fill frames up to this size (a payload is never split between two frames)."""
_PACKED = b"P"


def _encode_payloads(payloads: Sequence[Frame]) -> tuple[bytes, list[Frame]]:
    """The parts frame and the payload frames of a batch: packed when every payload is small."""
    frames, counts = flatten(payloads)
    if counts is not None or len(frames) < 2:
        return pack_parts(counts), frames
    sizes = [frame.nbytes if type(frame) is memoryview else len(frame) for frame in frames]
    if max(sizes) > PACK_ITEM_BYTES:
        return b"", frames
    lengths = _PACKED + array("I", sizes).tobytes()
    if sum(sizes) <= PACK_FRAME_BYTES:
        return lengths, [b"".join(frames)]
    packed: list[Frame] = []
    start = filled = 0
    for index, size in enumerate(sizes):
        if filled + size > PACK_FRAME_BYTES:
            packed.append(b"".join(frames[start:index]))
            start, filled = index, 0
        filled += size
    packed.append(b"".join(frames[start:]))
    return lengths, packed


def _unpack(frames: Sequence[Frame], raw: memoryview, ids: list[int], what: str) -> list[Frame]:
    """The payloads packed into ``frames``, as views; MalformedBatch if the lengths do not fit the frames."""
    if len(raw) != 1 + 4 * len(ids):
        raise MalformedBatch(f"{what} has a packed parts frame of {len(raw)} bytes for {len(ids)} tasks", ids)
    if not frames:
        raise MalformedBatch(f"{what} is packed but has no payload frame", ids)
    sizes = array("I")
    sizes.frombytes(raw[1:])
    views = [memoryview(frame).cast("B") for frame in frames]
    if len(views) == 1:  # the common case: one frame, sliced at the running sums of the lengths
        whole = views[0]
        ends = list(accumulate(sizes))
        total = ends[-1] if ends else 0
        if total != len(whole):
            raise MalformedBatch(f"{what}: the packed lengths add up to {total} bytes, not {len(whole)}", ids)
        return [whole[start:end] for start, end in zip([0, *ends], ends, strict=False)]
    payloads: list[Frame] = []
    current, used, offset = views[0], 0, 0
    for size in sizes:
        end = offset + size
        if end > len(current):
            used += 1
            if offset != len(current) or used == len(views) or size > len(views[used]):
                raise MalformedBatch(f"{what}: the packed lengths do not fit its {len(views)} payload frames", ids)
            current, offset, end = views[used], 0, size
        payloads.append(current[offset:end])
        offset = end
    if used != len(views) - 1 or offset != len(current):
        raise MalformedBatch(f"{what}: the packed lengths do not fit its {len(views)} payload frames", ids)
    return payloads


def _payloads(frames: Sequence[Frame], parts: Frame, ids: list[int], what: str) -> list[Frame]:
    """The payloads of a batch: its payload frames grouped by the parts frame; MalformedBatch if they do not match."""
    raw = memoryview(parts).cast("B")
    if len(raw) % 4 == 1 and raw[0] == _PACKED[0]:
        return _unpack(frames, raw, ids, what)
    if not len(raw):
        if len(frames) != len(ids):
            raise MalformedBatch(f"{what} has {len(ids)} ids but {len(frames)} payloads", ids)
        return list(frames)
    if len(raw) != 4 * len(ids):
        raise MalformedBatch(f"{what} has a parts frame of {len(raw)} bytes for {len(ids)} tasks", ids)
    counts = array("I")
    counts.frombytes(raw)
    try:
        return group(frames, counts)
    except ValueError as e:
        raise MalformedBatch(f"{what}: {e}", ids) from None


def pack_json(value: Any) -> bytes:
    """A JSON frame."""
    return json.dumps(value, separators=(",", ":")).encode()


def unpack_json(frame: Frame, expected: type = dict) -> Any:
    """Decode a JSON frame; ProtocolError if invalid or not of the ``expected`` type."""
    try:
        value = json.loads(bytes(frame))
    except (ValueError, UnicodeDecodeError) as e:
        raise ProtocolError(f"invalid JSON frame: {e}") from None
    if not isinstance(value, expected):
        raise ProtocolError(f"JSON frame is {type(value).__name__}, expected {expected.__name__}")
    return value


# --------------------------------------------------------------------------- records


@dataclass
class TaskBatch:
    """SUBMIT (client to interchange) or TASKS (interchange to manager).

    Frames: header, ids, specs, parts, payload frames... ``specs`` maps the
    index of a task in the batch to its resource request; tasks without one are
    absent, so a plain batch carries ``{}``. A payload is one frame or
    :class:`~.parts.Parts`. The parts frame is packed lengths when every payload
    is small (see the module's docstring), else empty when every payload is one frame.
    """

    ids: list[int]
    payloads: list[Frame]
    specs: dict[int, dict[str, Any]] = field(default_factory=dict)

    def encode(self, kind: Kind) -> list[Frame]:
        specs = pack_json({str(k): v for k, v in self.specs.items()}) if self.specs else b""
        parts, frames = _encode_payloads(self.payloads)
        return [_HEADERS[kind], pack_ids(self.ids), specs, parts, *frames]

    @classmethod
    def decode(cls, frames: Sequence[Frame]) -> TaskBatch:
        if len(frames) < 4:
            raise ProtocolError(f"task batch has {len(frames)} frames, expected at least 4")
        ids = unpack_ids(frames[1])
        payloads = _payloads(frames[4:], frames[3], ids, "task batch")
        specs: dict[int, dict[str, Any]] = {}
        if len(memoryview(frames[2])):
            raw = unpack_json(frames[2])
            try:
                specs = {int(k): v for k, v in raw.items() if isinstance(v, dict)}
            except ValueError:
                raise ProtocolError("resource specification keys must be task indexes") from None
            if any(not 0 <= k < len(ids) for k in specs):
                raise ProtocolError("resource specification for a task index outside the batch")
        return cls(ids, payloads, specs)


@dataclass
class ResultBatch:
    """RESULTS: a status byte and a payload per task, and where and when each task ran.

    Frames: header, ids, statuses, times, pools, parts, payload frames... ``times`` is empty
    or two native float64 per task: when the worker pool gave the task to a
    worker and when its result came back (``time.time()`` on the pool's host;
    NaN when unknown). ``pools`` is empty or, run-length encoded in id order,
    which pool ran each task (``[[pool_id, count], ...]``, added by the
    interchange, which knows the sender). ``parts`` is as in :class:`TaskBatch`.
    """

    ids: list[int]
    statuses: bytes
    payloads: list[Frame]
    times: bytes = b""
    pools: list[list[Any]] = field(default_factory=list)

    def encode(self) -> list[Frame]:
        pools = pack_json(self.pools) if self.pools else b""
        parts, frames = _encode_payloads(self.payloads)
        return [_HEADERS[Kind.RESULTS], pack_ids(self.ids), self.statuses, self.times, pools, parts, *frames]

    @classmethod
    def decode(cls, frames: Sequence[Frame], pools: bool = True) -> ResultBatch:
        """The batch in ``frames``; with ``pools`` false its pools frame is not read (``pools`` stays empty)."""
        if len(frames) < 6:
            raise ProtocolError(f"result batch has {len(frames)} frames, expected at least 6")
        ids = unpack_ids(frames[1])
        statuses = bytes(frames[2])
        times = bytes(frames[3])
        if len(ids) != len(statuses):
            raise ProtocolError(f"result batch sizes differ: {len(ids)} ids, {len(statuses)} statuses")
        payloads = _payloads(frames[6:], frames[5], ids, "result batch")
        if times and len(times) != 16 * len(ids):
            raise ProtocolError(f"result batch has {len(times)} bytes of times for {len(ids)} tasks")
        if statuses and max(statuses) > _MAX_STATUS:
            raise ProtocolError("unknown task status in result batch")
        ran_on: list[list[Any]] = []
        if pools and len(memoryview(frames[4])):
            ran_on = unpack_json(frames[4], list)
            try:
                counted = sum(int(count) for _, count in ran_on)
            except (TypeError, ValueError):
                raise ProtocolError("result batch pools must be [pool_id, count] pairs") from None
            if counted != len(ids):
                raise ProtocolError(f"result batch pools cover {counted} tasks, not {len(ids)}")
        return cls(ids, statuses, payloads, times, ran_on)

    def task_times(self) -> list[float]:
        """``times`` as floats: start and end of task ``i`` at ``2*i`` and ``2*i + 1`` (empty when absent)."""
        values = array("d")
        values.frombytes(self.times)
        return values.tolist()


def encode_json(kind: Kind, value: Any) -> list[Frame]:
    """A message of ``kind`` carrying one JSON frame (REGISTER, FAILURES, COMMAND, EVENT, ...)."""
    return [_HEADERS[kind], pack_json(value)]


def encode_ids(kind: Kind, ids: Sequence[int]) -> list[Frame]:
    """A message of ``kind`` carrying one ids frame (CANCEL)."""
    return [_HEADERS[kind], pack_ids(ids)]


def encode_direct(ids: Sequence[int], pool_id: str) -> list[Frame]:
    """A DIRECT notice: these tasks went to the pool ``pool_id`` straight from the executor."""
    return [_HEADERS[Kind.DIRECT], pack_ids(ids), pool_id.encode()]


def encode_empty(kind: Kind) -> list[Frame]:
    """A message of ``kind`` with no body (HEARTBEAT, DRAIN, SHUTDOWN)."""
    return [_HEADERS[kind]]


def encode_reject(reason: str) -> list[Frame]:
    """A REJECT message; its layout is the same in every protocol version."""
    return [_HEADERS[Kind.REJECT], reason.encode()]


def body_json(frames: Sequence[Frame], expected: type = dict) -> Any:
    """The JSON body of a one-JSON-frame message."""
    if len(frames) != 2:
        raise ProtocolError(f"expected 2 frames, got {len(frames)}")
    return unpack_json(frames[1], expected)


def body_ids(frames: Sequence[Frame]) -> list[int]:
    """The ids of a one-ids-frame message."""
    if len(frames) != 2:
        raise ProtocolError(f"expected 2 frames, got {len(frames)}")
    return unpack_ids(frames[1])


class BadRegistration(ProtocolError):
    """A REGISTER that is well formed but whose values are impossible; the interchange refuses the pool.

    The message names the field, the value and what is allowed.
    """


MAX_WORKERS = 1 << 16
"""Workers one pool may register at most."""
MAX_PREFETCH = 1 << 20
"""Prefetch capacity one pool may register at most."""
MAX_CORES = float(1 << 16)
"""Cores one pool may register at most."""
MAX_MEMORY_MB = float(1 << 32)
"""Memory (MB) one pool may register at most (4 PB)."""
MAX_ACCELERATORS = 1 << 12
"""Accelerators one pool may register at most."""
MAX_TEXT = 256
"""Characters at most in a registration's names (host, block, pool, versions, accelerators)."""

_REGISTRATION_INTS = {
    "protocol_version": (0, 255),
    "worker_count": (0, MAX_WORKERS),
    "prefetch_capacity": (0, MAX_PREFETCH),
    "pid": (1, (1 << 32) - 1),
}
_REGISTRATION_FLOATS = {"cores": (0.0, MAX_CORES), "memory_mb": (0.0, MAX_MEMORY_MB)}
_REGISTRATION_OPTIONAL_INTS = {"cpu_count": MAX_WORKERS, "total_memory": 1 << 62}
_REGISTRATION_TEXTS = ("flowlib_version", "python_version", "hostname", "block_id", "pool_id")


def _checked_registration(raw: dict[str, Any]) -> dict[str, Any]:
    """The registration's fields, type- and range-checked; BadRegistration naming the first bad one."""
    who = ""
    if isinstance(raw.get("pool_id"), str) and isinstance(raw.get("hostname"), str):
        who = f" from pool {raw['pool_id'][:MAX_TEXT]!r} on {raw['hostname'][:MAX_TEXT]!r}"

    def bad(name: str, allowed: str) -> BadRegistration:
        shown = repr(raw[name]) if name in raw else "nothing"
        if len(shown) > 80:
            shown = shown[:77] + "..."
        return BadRegistration(f"bad registration{who}: {name} must be {allowed}, got {shown}")

    values: dict[str, Any] = {}
    value: Any
    for name, (low, high) in _REGISTRATION_INTS.items():
        value = raw.get(name)
        if type(value) is not int or not low <= value <= high:
            raise bad(name, f"an integer from {low} to {high}")
        values[name] = value
    for name, (low_f, high_f) in _REGISTRATION_FLOATS.items():
        value = raw.get(name)
        if type(value) not in (int, float) or not low_f <= value <= high_f:  # NaN fails every comparison
            raise bad(name, f"a number from {low_f:.0f} to {high_f:.0f}")
        values[name] = float(value)
    for name in _REGISTRATION_TEXTS:
        value = raw.get(name)
        if type(value) is not str or len(value) > MAX_TEXT:
            raise bad(name, f"a string of at most {MAX_TEXT} characters")
        values[name] = value
    accelerators = raw.get("accelerators")
    if (
        type(accelerators) is not list
        or len(accelerators) > MAX_ACCELERATORS
        or not all(type(a) is str and len(a) <= MAX_TEXT for a in accelerators)
    ):
        raise bad("accelerators", f"a list of at most {MAX_ACCELERATORS} strings")
    values["accelerators"] = list(accelerators)
    for name, high in _REGISTRATION_OPTIONAL_INTS.items():
        value = raw.get(name)
        if value is not None and (type(value) is not int or not 0 <= value <= high):
            raise bad(name, f"absent or an integer from 0 to {high}")
        values[name] = value
    return values


@dataclass(frozen=True)
class Registration:
    """What a worker pool says about itself when it registers."""

    protocol_version: int
    flowlib_version: str
    python_version: str
    hostname: str
    block_id: str
    pool_id: str
    worker_count: int
    prefetch_capacity: int
    cores: float
    memory_mb: float
    accelerators: list[str]
    pid: int
    cpu_count: int | None = None
    """Logical CPUs of the node (absent from older pools)."""
    total_memory: int | None = None
    """Total memory of the node in bytes (absent from older pools)."""

    def encode(self) -> list[Frame]:
        return encode_json(Kind.REGISTER, self.__dict__)

    @classmethod
    def decode(cls, frames: Sequence[Frame]) -> Registration:
        """The registration in a REGISTER message.

        ProtocolError for a message that is not a JSON object; BadRegistration
        (a ProtocolError too) for one whose fields have the wrong type or an
        absurd value (10^12 workers, NaN cores, negative memory): the
        interchange refuses that pool, naming the field.
        """
        return cls(**_checked_registration(body_json(frames)))


MAX_SAMPLES = 1 << 16
"""Resource samples one RESOURCES message may carry at most."""


def decode_resources(frames: Sequence[Frame]) -> list[dict[str, Any]]:
    """The samples of a RESOURCES message (a JSON object ``{"samples": [{...}, ...]}``).

    ProtocolError if it is not that shape; the values inside each sample are
    checked by the monitoring router, which writes them.
    """
    body = body_json(frames)
    samples = body.get("samples")
    if type(samples) is not list or len(samples) > MAX_SAMPLES or not all(type(s) is dict for s in samples):
        raise ProtocolError(f"RESOURCES must carry a list of at most {MAX_SAMPLES} sample objects")
    return samples


def encode_resources(samples: list[dict[str, Any]]) -> list[Frame]:
    """A RESOURCES message."""
    return encode_json(Kind.RESOURCES, {"samples": samples})


RESOURCE_KEYS = frozenset(
    {"priority", "cores", "memory", "gpus", "running_time", "num_nodes", "ranks_per_node", "num_ranks"}
)
"""Resource-specification keys the high-throughput executors understand."""
