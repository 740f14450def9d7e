"""``NoOpFileStaging``: ``file:`` URLs on a filesystem that every worker shares."""

from __future__ import annotations

from flowlib.data_provider.files import File
from flowlib.data_provider.staging import Staging

__all__ = ["NoOpFileStaging"]


class NoOpFileStaging(Staging):
    """Claims ``file`` URLs in and out and moves nothing.

    The app opens the path as given, so the submitting process and the workers
    must see the same filesystem. Without a shared filesystem, list
    :class:`~flowlib.data_provider.rsync.RSyncStaging` before it in the
    executor's ``storage_access``.
    """

    def can_stage_in(self, file: File) -> bool:
        """True for the ``file`` scheme."""
        return file.scheme == "file"

    def can_stage_out(self, file: File) -> bool:
        """True for the ``file`` scheme."""
        return file.scheme == "file"
