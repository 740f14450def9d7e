"""``globus:`` URLs: a seam for Globus transfers (not implemented in flowlib yet).

:class:`GlobusStaging` accepts the constructor keywords scripts use and claims
``globus`` URLs, so configurations load and plugin selection behaves as it will
once transfers exist. Staging a file through it raises: first
:class:`~flowlib.errors.OptionalModuleMissing` when the ``globus_sdk`` package is
not installed, otherwise ``NotImplementedError``. To move Globus files today,
subclass :class:`GlobusStaging` (or :class:`~flowlib.data_provider.staging.Staging`)
and implement ``stage_in``/``stage_out`` with the Globus SDK.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from flowlib.data_provider.files import File
from flowlib.data_provider.staging import Staging
from flowlib.errors import OptionalModuleMissing

if TYPE_CHECKING:
    from flowlib.app.futures import DataFuture
    from flowlib.data_provider.data_manager import DataManager

__all__ = ["GlobusStaging"]


def _require_globus_sdk() -> None:
    try:
        import globus_sdk  # noqa: F401
    except ImportError:
        raise OptionalModuleMissing(
            ["globus_sdk"],
            "GlobusStaging needs the Globus SDK to move globus:// files; install it with 'pip install globus-sdk'",
        ) from None


class GlobusStaging(Staging):
    """Claims ``globus`` URLs; staging them is a seam (see the module docstring).

    Args:
        endpoint_uuid: the Globus endpoint (collection) that the executor's
            workers can read and write.
        endpoint_path: the path on that endpoint that corresponds to
            ``local_path`` (``None``: the same path).
        local_path: the local directory that ``endpoint_path`` maps to.

    Raises:
        TypeError: an argument is not a string (or ``None`` where allowed).
    """

    def __init__(
        self,
        endpoint_uuid: str,
        endpoint_path: str | None = None,
        local_path: str | None = None,
    ) -> None:
        if not isinstance(endpoint_uuid, str):
            raise TypeError(f"endpoint_uuid must be a str, not {type(endpoint_uuid).__name__}")
        for name, value in (("endpoint_path", endpoint_path), ("local_path", local_path)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a str or None, not {type(value).__name__}")
        self.endpoint_uuid = endpoint_uuid
        self.endpoint_path = endpoint_path
        self.local_path = local_path

    def can_stage_in(self, file: File) -> bool:
        """True for the ``globus`` scheme."""
        return file.scheme == "globus"

    def can_stage_out(self, file: File) -> bool:
        """True for the ``globus`` scheme."""
        return file.scheme == "globus"

    def stage_in(self, dm: DataManager, executor: str, file: File, parent_fut: Future[Any] | None) -> DataFuture | None:
        """Not implemented; raises (``OptionalModuleMissing`` without ``globus_sdk``)."""
        _require_globus_sdk()
        raise NotImplementedError(
            f"Cannot stage in {file.url!r}: flowlib does not implement Globus transfers yet; "
            "subclass GlobusStaging and implement stage_in with the Globus SDK"
        )

    def stage_out(self, dm: DataManager, executor: str, file: File, app_fu: Future[Any]) -> Future[Any] | None:
        """Not implemented; raises (``OptionalModuleMissing`` without ``globus_sdk``)."""
        _require_globus_sdk()
        raise NotImplementedError(
            f"Cannot stage out {file.url!r}: flowlib does not implement Globus transfers yet; "
            "subclass GlobusStaging and implement stage_out with the Globus SDK"
        )

    def __repr__(self) -> str:
        return (
            f"GlobusStaging(endpoint_uuid={self.endpoint_uuid!r}, "
            f"endpoint_path={self.endpoint_path!r}, local_path={self.local_path!r})"
        )
