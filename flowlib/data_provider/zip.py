"""``zip:`` URLs: files kept as members of a zip archive, staged inside the task.

A URL ``zip:/runs/out.zip/results/a.txt`` names the member ``results/a.txt`` of
the archive ``/runs/out.zip``; the archive is the first path component that ends
in ``.zip`` (see :func:`zip_path_split`). A ``zip:`` URL has no authority part:
``zip://host/...`` raises :class:`ZipAuthorityError`.

Stage out: the app writes an ordinary local file at ``outputs[i].filepath``
(``<working_dir>/flowlib_staging/<hash>/<name>``); once the app returns, the
wrapper appends that file to the archive (creating the archive and its directory
if needed). Stage in: the wrapper extracts the member to the same kind of local
path before the app runs. The archive must be on a filesystem the workers share.

Writers take an exclusive ``flock`` on a sidecar file ``<archive>.lock``, readers
a shared one, so tasks in any number of threads or processes of one host may
append to one archive at once. (``flock`` across hosts depends on the shared
filesystem; the lock file is left in place.) Appending is in place; writing a
member that is already present (a retried task) rewrites the archive without the
old copy, atomically.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from flowlib.data_provider.files import File
from flowlib.data_provider.staging import (
    Staging,
    StagingError,
    StagingWrapper,
    executor_working_dir,
    local_path_for,
    prepare_output_step,
    set_local_path,
    write_atomically,
)
from flowlib.errors import FlowlibError

if TYPE_CHECKING:
    from flowlib.data_provider.data_manager import DataManager

__all__ = ["ZipAuthorityError", "ZipFileStaging", "zip_path_split"]


class ZipAuthorityError(FlowlibError):
    """A ``zip:`` URL has an authority (``zip://host/...``); zip URLs are local paths.

    Raised by :class:`ZipFileStaging` when the task is submitted. ``file`` is the
    offending :class:`File`.
    """

    def __init__(self, file: File) -> None:
        self.file = file
        super().__init__(file)

    def __str__(self) -> str:
        return (
            f"zip: URL {self.file.url!r} has an authority part {self.file.netloc!r}; "
            "write zip: URLs without one, as zip:/path/to/archive.zip/member/path"
        )


def zip_path_split(path: str) -> tuple[str, str]:
    """Split a ``zip:`` URL path into ``(archive path, member path)``.

    The archive is everything up to the first path component that ends in
    ``.zip``; the member is the rest, without empty components.
    ``zip_path_split("/a/b.zip/c/d.txt") == ("/a/b.zip", "c/d.txt")``.

    Raises:
        ValueError: no component ends in ``.zip``, or nothing follows it.
    """
    parts = path.split("/")
    for i, part in enumerate(parts):
        if part.endswith(".zip"):
            archive = "/".join(parts[: i + 1])
            member = "/".join(p for p in parts[i + 1 :] if p)
            if not member:
                raise ValueError(f"zip path {path!r} names the archive {archive!r} but no member inside it")
            return archive, member
    raise ValueError(f"zip path {path!r} has no component ending in '.zip'")


@contextlib.contextmanager
def _archive_lock(archive: str, exclusive: bool) -> Iterator[None]:
    import fcntl

    fd: int | None
    try:
        fd = os.open(archive + ".lock", os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        if exclusive:
            raise
        fd = None  # a reader in a read-only place goes without the lock
    try:
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


def _rewrite_replacing(archive: str, member: str, local_path: str) -> None:
    import zipfile

    def write(out: Any) -> None:
        with (
            zipfile.ZipFile(archive) as src,
            zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst,
        ):
            for info in src.infolist():
                if info.filename == member:
                    continue
                new = zipfile.ZipInfo(info.filename, info.date_time)
                new.compress_type = info.compress_type
                new.external_attr = info.external_attr
                new.comment = info.comment
                with src.open(info) as r, dst.open(new, "w") as w:
                    shutil.copyfileobj(r, w)
            dst.write(local_path, arcname=member)

    write_atomically(archive, write)


def append_to_zip(url: str, archive: str, member: str, local_path: str) -> None:
    """Add the file at ``local_path`` to ``archive`` as ``member``, under the archive lock.

    Raises:
        StagingError: ``local_path`` does not exist (the app did not write it).
    """
    import zipfile

    if not os.path.isfile(local_path):
        raise StagingError(url, f"the app did not create its output file {local_path!r}")
    parent = os.path.dirname(archive)
    if parent:
        os.makedirs(parent, exist_ok=True)
    with _archive_lock(archive, exclusive=True):
        with zipfile.ZipFile(archive, "a", compression=zipfile.ZIP_DEFLATED) as zf:
            try:
                zf.getinfo(member)
                present = True
            except KeyError:
                present = False
                zf.write(local_path, arcname=member)
        if present:
            _rewrite_replacing(archive, member, local_path)


def extract_from_zip(url: str, archive: str, member: str, local_path: str) -> None:
    """Copy ``member`` of ``archive`` to ``local_path`` (atomically), under a shared lock.

    Raises:
        StagingError: the archive is missing or invalid, or has no such member.
    """
    import zipfile

    if not os.path.exists(archive):
        raise StagingError(url, f"archive {archive!r} does not exist")
    with _archive_lock(archive, exclusive=False):
        try:
            zf = zipfile.ZipFile(archive)
        except zipfile.BadZipFile as exc:
            raise StagingError(url, f"{archive!r} is not a valid zip archive ({exc})") from None
        with zf:
            try:
                info = zf.getinfo(member)
            except KeyError:
                raise StagingError(url, f"archive {archive!r} has no member {member!r}") from None
            with zf.open(info) as src:
                write_atomically(local_path, partial(shutil.copyfileobj, src))


def _stage_in_step(
    url: str,
    archive: str,
    member: str,
    local_path: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    extract_from_zip(url, archive, member, local_path)
    set_local_path(url, local_path, args, kwargs)


def _stage_out_step(
    url: str,
    archive: str,
    member: str,
    local_path: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    append_to_zip(url, archive, member, local_path)


def _split_url(file: File) -> tuple[str, str]:
    if file.netloc:
        raise ZipAuthorityError(file)
    return zip_path_split(file.path)


class ZipFileStaging(Staging):
    """Stages ``zip:`` URLs in and out inside the task (see the module docstring).

    Raises (when the task is submitted):
        ZipAuthorityError: the URL has an authority part.
        ValueError: the URL path names no archive or no member.
    """

    def can_stage_in(self, file: File) -> bool:
        """True for the ``zip`` scheme."""
        return file.scheme == "zip"

    def can_stage_out(self, file: File) -> bool:
        """True for the ``zip`` scheme."""
        return file.scheme == "zip"

    def replace_task(
        self, dm: DataManager, executor: str, file: File, func: Callable[..., Any]
    ) -> Callable[..., Any] | None:
        """Wrap ``func`` to extract the member to a local file before it runs."""
        archive, member = _split_url(file)
        local = local_path_for(file, executor_working_dir(dm, executor))
        return StagingWrapper(func, before=partial(_stage_in_step, file.url, archive, member, local))

    def replace_task_stage_out(
        self, dm: DataManager, executor: str, file: File, func: Callable[..., Any]
    ) -> Callable[..., Any] | None:
        """Wrap ``func`` to append the file it writes to the archive after it returns.

        Sets ``file.local_path`` to the local path the app must write.
        """
        archive, member = _split_url(file)
        local = local_path_for(file, executor_working_dir(dm, executor))
        file.local_path = local
        return StagingWrapper(
            func,
            before=partial(prepare_output_step, file.url, local),
            after=partial(_stage_out_step, file.url, archive, member, local),
        )
