"""The append-only, crash-safe checkpoint store.

One run writes one file, ``<run_dir>/checkpoint/tasks.ckpt``::

    +-----------------------+
    | b"FLOWLIB-CKPT 1\\n"   |  magic header, written atomically when the file is created
    +-----------------------+
    | length (4 bytes, BE)  |  record 1: length of the payload
    | crc32  (4 bytes, BE)  |            CRC32 of the payload
    | payload               |            pickle of (hashsum: str, result)
    +-----------------------+
    | ...                   |  record 2, 3, ...
    +-----------------------+

Records are only ever appended. Each batch of records goes to the operating
system in one write call, so a process killed at any moment (even by SIGKILL)
leaves at most the last record torn. The reader skips a torn tail, a record whose
CRC does not match and a record that does not unpickle, logging a warning for
each, and resynchronises after damage (it scans for the next whole frame with a
matching CRC), so a damaged record costs only itself.
"""

from __future__ import annotations

import logging
import mmap
import os
import pickle
import struct
import threading
import zlib
from collections.abc import Iterable
from typing import Any

from flowlib.dataflow.errors import BadCheckpoint

logger = logging.getLogger(__name__)

MAGIC = b"FLOWLIB-CKPT 1\n"
"""The first bytes of every checkpoint file; the digit is the format version."""

CHECKPOINT_FILENAME = "tasks.ckpt"
"""The name of the checkpoint file inside a checkpoint directory."""

_FRAME = struct.Struct(">II")  # payload length, CRC32 of the payload


def encode_record(hashsum: str, result: Any) -> bytes:
    """Return the framed bytes of one record.

    Tries :mod:`pickle` first and falls back to cloudpickle (for results that hold
    functions or classes defined in ``__main__``). Raises the serializer's error
    when neither can serialize the result.
    """
    try:
        payload = pickle.dumps((hashsum, result), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        import cloudpickle

        payload = cloudpickle.dumps((hashsum, result), protocol=pickle.HIGHEST_PROTOCOL)
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def checkpoint_file(path: str | os.PathLike[str]) -> str:
    """Return ``path/tasks.ckpt`` when ``path`` is a directory, else ``path`` itself."""
    p = os.fspath(path)
    return os.path.join(p, CHECKPOINT_FILENAME) if os.path.isdir(p) else p


class CheckpointWriter:
    """Appends records to ``<directory>/tasks.ckpt``.

    The directory is created if needed. A new file gets its header atomically (a
    temporary file renamed into place); an existing file is appended to, after
    cutting off a torn last record left by a crash, so that new records stay
    readable. Thread-safe: concurrent :meth:`append` calls are serialized.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = os.fspath(directory)
        self.path = os.path.join(self.directory, CHECKPOINT_FILENAME)
        self._lock = threading.Lock()
        os.makedirs(self.directory, exist_ok=True)
        if not os.path.exists(self.path):
            self._create()
        end = _scan_valid_end(self.path)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        if end < os.fstat(self._fd).st_size:
            logger.warning("checkpoint %s: cutting a torn record at offset %d before appending", self.path, end)
            os.ftruncate(self._fd, end)

    def _create(self) -> None:
        tmp = f"{self.path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, MAGIC)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        _fsync_dir(self.directory)

    def append(self, records: Iterable[tuple[str, Any]]) -> list[tuple[str, Exception]]:
        """Append ``(hashsum, result)`` records in one write.

        Returns the ``(hashsum, error)`` pairs of records that could not be
        serialized; those are not written and the others are. Raises ValueError
        when the writer is closed.
        """
        chunks: list[bytes] = []
        failed: list[tuple[str, Exception]] = []
        for hashsum, result in records:
            try:
                chunks.append(encode_record(hashsum, result))
            except Exception as e:
                failed.append((hashsum, e))
        if chunks:
            self.append_encoded(b"".join(chunks))
        return failed

    def append_encoded(self, data: bytes) -> None:
        """Append bytes already framed by :func:`encode_record` (one or more records)."""
        with self._lock:
            if self._fd is None:
                raise ValueError(f"checkpoint writer for {self.path} is closed")
            _write_all(self._fd, data)

    def flush(self, fsync: bool = False) -> None:
        """Make appended records durable.

        Records are handed to the operating system by :meth:`append` itself, so they
        already survive the death of this process; ``fsync=True`` also makes them
        survive a crash of the machine.
        """
        with self._lock:
            if self._fd is not None and fsync:
                os.fsync(self._fd)

    def close(self) -> None:
        """fsync and close the file. Idempotent."""
        with self._lock:
            if self._fd is None:
                return
            fd, self._fd = self._fd, None
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._fd is None


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint file (or a checkpoint directory) into ``{hashsum: result}``.

    Damaged records are skipped with a warning naming the file and offset: a torn
    last record, a CRC mismatch, a payload that does not unpickle. A later record
    for the same hashsum replaces an earlier one. Raises
    :class:`~flowlib.dataflow.errors.BadCheckpoint` when the file is missing or
    does not start with the flowlib checkpoint header.
    """
    fname = checkpoint_file(path)
    results: dict[str, Any] = {}
    for offset, payload in _iter_frames(fname):
        try:
            record = pickle.loads(payload)
        except Exception as e:
            logger.warning("checkpoint %s: skipping record at offset %d: %r", fname, offset, e)
            continue
        if not (isinstance(record, tuple) and len(record) == 2 and isinstance(record[0], str)):
            logger.warning("checkpoint %s: skipping malformed record at offset %d", fname, offset)
            continue
        results[record[0]] = record[1]
    return results


def _iter_frames(fname: str) -> Iterable[tuple[int, bytes]]:
    """Yield ``(offset, payload)`` for every record with a good CRC.

    After a damaged record (a flipped length or CRC byte, garbage) the reader
    resynchronises: it scans forward for the next offset where a whole frame with a
    matching CRC starts, so one damaged record costs only itself.
    """
    try:
        f = open(fname, "rb")
    except FileNotFoundError:
        raise BadCheckpoint(f"checkpoint {fname} does not exist") from None
    except OSError as e:
        raise BadCheckpoint(f"checkpoint {fname} cannot be opened: {e}") from e
    with f:
        size = os.fstat(f.fileno()).st_size
        header = f.read(len(MAGIC))
        if header != MAGIC:
            if MAGIC.startswith(header):  # torn while being created (not by CheckpointWriter)
                logger.warning("checkpoint %s: header is incomplete; no records", fname)
                return
            raise BadCheckpoint(f"{fname} is not a flowlib checkpoint (bad header {header[:32]!r})")
        if size == len(MAGIC):
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            offset = len(MAGIC)
            while offset < size:
                payload = _frame_at(data, offset, size)
                if payload is not None:
                    yield offset, payload
                    offset += _FRAME.size + len(payload)
                    continue
                found = _next_frame(data, offset + 1, size)
                if found is None:
                    logger.warning(
                        "checkpoint %s: damaged or torn data from offset %d to the end skipped", fname, offset
                    )
                    return
                logger.warning(
                    "checkpoint %s: damaged record (bad length or CRC) at offset %d skipped (%d bytes); resume at %d",
                    fname,
                    offset,
                    found - offset,
                    found,
                )
                offset = found


def _frame_at(data: mmap.mmap, offset: int, size: int) -> bytes | None:
    """The payload of the frame at ``offset`` if it is whole and its CRC matches, else None."""
    if offset + _FRAME.size > size:
        return None
    length, crc = _FRAME.unpack_from(data, offset)
    start = offset + _FRAME.size
    if start + length > size:
        return None
    payload = data[start : start + length]
    return payload if zlib.crc32(payload) == crc else None


def _next_frame(data: mmap.mmap, offset: int, size: int) -> int | None:
    """The first offset at or after ``offset`` where a whole frame with a good CRC starts."""
    for candidate in range(offset, size - _FRAME.size + 1):
        if _frame_at(data, candidate, size) is not None:
            return candidate
    return None


def _scan_valid_end(fname: str) -> int:
    """Return the offset just past the last good record of ``fname`` (records after damage included)."""
    with open(fname, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise BadCheckpoint(f"{fname} is not a flowlib checkpoint; refusing to append to it")
    end = len(MAGIC)
    for offset, payload in _iter_frames(fname):
        end = offset + _FRAME.size + len(payload)
    return end


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
