"""A shared-memory arena for large task arguments bound for worker pools on this machine.

Sent through the sockets, a 1 MiB argument is copied eight times on its way
from the executor to a worker (through the interchange and the pool), and each
hop lands it in freshly allocated memory. Faulting in fresh pages costs several
times the copy itself, most of all on virtual machines. Instead, the executor
copies a large payload into a slot of one tmpfs file that it keeps mapped, and
the task carries a short reference; a worker maps the same file once and
unpickles straight from the slot. The pages are faulted in once per run, not
once per task.

A slot::

    uint64 sequence | the payload

A reference, which travels in place of the payload::

    b"M1\\n" | uint64 offset | uint64 length | uint64 sequence | the arena's path (UTF-8)

Only the executor writes the arena. It frees a slot when the task is answered
(result, failure or cancellation), which comes after the worker has read it.
A reader that loses that race anyway (a pool given up for lost that still runs)
must not read another task's bytes: the writer zeroes the slot's sequence
before it writes and sets it after, and the reader checks the sequence before
and after it reads, failing the task with :class:`ArenaError` on a change.

The arena lives in an owner-only directory under ``/dev/shm``; its pages are
reserved when it is created, so a full ``/dev/shm`` is an error at creation
(large payloads then travel through the sockets) instead of a ``SIGBUS`` later.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import mmap
import os
import shutil
import struct
import tempfile
from collections.abc import Callable
from typing import Any, TypeVar

from flowlib.executors.high_throughput.parts import Parts, nbytes
from flowlib.serialize.errors import DeserializationError

logger = logging.getLogger(__name__)

REFERENCE_HEADER = b"M1\n"
"""The first bytes of a payload that is a reference into an arena."""
ARENA_SIZE = 32 << 20
"""Bytes of shared memory per executor: large payloads in flight at once, at most."""
SHM_ROOT = "/dev/shm"  # noqa: S108 - tmpfs; the arena's own directory is 0700
_DIR_PREFIX = "flowlib-arena-"
_SEQUENCE = struct.Struct("=Q")
_REFERENCE = struct.Struct("=QQQ")
_ALIGN = 64

T = TypeVar("T")


class ArenaError(DeserializationError):
    """A task's argument could not be read from the executor's shared-memory arena.

    The arena is gone (the executor shut down) or the task's slot was reused
    (the task had already been answered, e.g. its pool was given up for lost).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason, header=REFERENCE_HEADER)


def _align(size: int) -> int:
    return (size + _ALIGN - 1) // _ALIGN * _ALIGN


class FreeList:
    """First-fit allocation of byte ranges in ``[0, size)``, with neighbours merged on release."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._starts: list[int] = [0]
        self._lengths: list[int] = [size]

    @property
    def free_bytes(self) -> int:
        return sum(self._lengths)

    def allocate(self, length: int) -> int | None:
        """The start of a free range of ``length`` bytes, now taken; None when no range is that long."""
        for index, free in enumerate(self._lengths):
            if free >= length:
                start = self._starts[index]
                if free == length:
                    del self._starts[index], self._lengths[index]
                else:
                    self._starts[index] += length
                    self._lengths[index] -= length
                return start
        return None

    def release(self, start: int, length: int) -> None:
        """Give back a range that :meth:`allocate` returned."""
        index = bisect.bisect_left(self._starts, start)
        starts, lengths = self._starts, self._lengths
        if index < len(starts) and starts[index] < start + length:
            raise ValueError(f"range {start}+{length} overlaps free range {starts[index]}+{lengths[index]}")
        if index > 0 and starts[index - 1] + lengths[index - 1] > start:
            raise ValueError(f"range {start}+{length} is already free")
        if index > 0 and starts[index - 1] + lengths[index - 1] == start:
            index -= 1
            lengths[index] += length
        else:
            starts.insert(index, start)
            lengths.insert(index, length)
        if index + 1 < len(starts) and starts[index] + lengths[index] == starts[index + 1]:
            lengths[index] += lengths.pop(index + 1)
            del starts[index + 1]


def make_arena_dir(root: str = SHM_ROOT) -> str | None:
    """A new owner-only directory for an arena under ``root``; None when ``root`` is not usable.

    Directories left by executors that died without cleaning up (same user, process gone) are removed first.
    """
    if not (os.path.isdir(root) and os.access(root, os.W_OK | os.X_OK)):
        return None
    remove_stale_arenas(root)
    try:
        return tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{os.getpid()}-", dir=root)
    except OSError as e:
        logger.info("no shared-memory arena: cannot create a directory in %s: %s", root, e)
        return None


def remove_stale_arenas(root: str = SHM_ROOT) -> list[str]:
    """Remove the arena directories of this user's executors that no longer run; return their paths."""
    removed: list[str] = []
    try:
        names = os.listdir(root)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(_DIR_PREFIX):
            continue
        pid_text = name[len(_DIR_PREFIX) :].split("-", 1)[0]
        path = os.path.join(root, name)
        try:
            if not pid_text.isdigit() or os.lstat(path).st_uid != os.getuid() or pid_alive(int(pid_text)):
                continue
        except OSError:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ArenaWriter:
    """The executor's side: copies payloads into slots and frees them when their tasks are answered.

    The file is created on first use. If that fails (no room in ``/dev/shm``),
    :attr:`failed` says why and :meth:`put` always returns None.
    """

    def __init__(self, directory: str, size: int = ARENA_SIZE) -> None:
        self.directory = directory
        self.size = size
        self.path = os.path.join(directory, "arena")
        self.failed: str | None = None
        self._map: mmap.mmap | None = None
        self._free = FreeList(size)
        self._sequence = 0
        self._path_bytes = self.path.encode()

    @property
    def free_bytes(self) -> int:
        return self._free.free_bytes

    def fits(self, length: int) -> bool:
        """Whether a payload of ``length`` bytes goes through the arena (at most half of it, so others fit too)."""
        return self.failed is None and _SEQUENCE.size + length <= self.size // 2

    def _mapping(self) -> mmap.mmap | None:
        if self._map is None and self.failed is None:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
                try:
                    os.posix_fallocate(fd, 0, self.size)  # reserve the pages now: no SIGBUS on a full tmpfs later
                    self._map = mmap.mmap(fd, self.size)
                finally:
                    os.close(fd)
            except OSError as e:
                self.failed = f"cannot create the {self.size >> 20} MiB arena {self.path}: {e}"
                logger.warning("%s; large arguments go through the sockets instead", self.failed)
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
        return self._map

    def put(self, payload: Any) -> tuple[bytes, tuple[int, int]] | None:
        """Copy ``payload`` (a buffer or :class:`~.parts.Parts`) into a free slot.

        Return the reference and the slot, or None when there is no room.
        """
        length = nbytes(payload)
        if not self.fits(length):
            return None
        mapping = self._mapping()
        if mapping is None:
            return None
        need = _align(_SEQUENCE.size + length)
        start = self._free.allocate(need)
        if start is None:
            return None
        self._sequence += 1
        _SEQUENCE.pack_into(mapping, start, 0)  # being written: a late reader sees the change
        body = start + _SEQUENCE.size
        if isinstance(payload, Parts):
            position = body
            for part in payload:
                size = nbytes(part)
                mapping[position : position + size] = part
                position += size
        else:
            mapping[body : body + length] = payload
        _SEQUENCE.pack_into(mapping, start, self._sequence)
        reference = REFERENCE_HEADER + _REFERENCE.pack(body, length, self._sequence) + self._path_bytes
        return reference, (start, need)

    def free(self, slot: tuple[int, int]) -> None:
        """Give back a slot that :meth:`put` returned (its task was answered)."""
        start, need = slot
        if self._map is not None:
            _SEQUENCE.pack_into(self._map, start, 0)
        self._free.release(start, need)

    def close(self) -> None:
        """Unmap and remove the arena file (readers that still map it keep their pages until they unmap)."""
        self.failed = "the arena was closed"  # never created again
        if self._map is not None:
            with contextlib.suppress(BufferError):
                self._map.close()
            self._map = None
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def is_reference(payload: Any) -> bool:
    """Whether a task payload is a reference into an arena (and not the apply message itself)."""
    return payload[:3] == REFERENCE_HEADER  # bytes and memoryviews compare by content


class ArenaReader:
    """A worker's (or the interchange's) side: maps each arena once and reads slots from it."""

    def __init__(self) -> None:
        self._maps: dict[bytes, mmap.mmap] = {}

    def _mapping(self, path: bytes) -> mmap.mmap:
        mapping = self._maps.get(path)
        if mapping is None:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            except OSError as e:
                raise ArenaError(f"cannot open the executor's arena {path.decode(errors='replace')}: {e}") from e
            try:
                mapping = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
            except (OSError, ValueError) as e:
                raise ArenaError(f"cannot map the executor's arena {path.decode(errors='replace')}: {e}") from e
            finally:
                os.close(fd)
            self._maps[path] = mapping
        return mapping

    def load(self, reference: Any, use: Callable[[memoryview], T]) -> T:
        """Call ``use`` with a view of the referenced payload; return what it returns.

        The view is valid only during the call. Raises :class:`ArenaError` when
        the reference is malformed, the arena cannot be mapped, or the slot was
        rewritten before or while it was read.
        """
        raw = memoryview(reference).cast("B") if not isinstance(reference, memoryview) else reference.cast("B")
        head = len(REFERENCE_HEADER)
        if len(raw) <= head + _REFERENCE.size or bytes(raw[:head]) != REFERENCE_HEADER:
            raise ArenaError(f"malformed arena reference ({len(raw)} bytes)")
        body, length, sequence = _REFERENCE.unpack_from(raw, head)
        mapping = self._mapping(bytes(raw[head + _REFERENCE.size :]))
        start = body - _SEQUENCE.size
        if start < 0 or body + length > len(mapping):
            raise ArenaError(f"arena reference {body}+{length} is outside the arena ({len(mapping)} bytes)")

        def check(when: str) -> None:
            found = _SEQUENCE.unpack_from(mapping, start)[0]
            if found != sequence:
                raise ArenaError(
                    f"the task's argument was replaced in the arena {when} it was read "
                    f"(slot sequence {found}, expected {sequence}): the task had already been answered"
                )

        check("before")
        view = memoryview(mapping)[body : body + length]
        try:
            result = use(view)
        finally:
            with contextlib.suppress(BufferError):  # something kept a slice; it goes with the garbage
                view.release()
        check("while")
        return result

    def close(self) -> None:
        for mapping in self._maps.values():
            with contextlib.suppress(BufferError):
                mapping.close()
        self._maps.clear()
