"""The :class:`File` object: a reference to a file by URL, plus where it sits locally.

A ``File`` names a file by URL (``file:`` by default, or ``http:``, ``ftp:``,
``zip:``, ``globus:``, ``rsync:`` ...). Staging plugins (see
:mod:`flowlib.data_provider.staging`) make a remote file available on the machine
that runs a task and record where through :attr:`File.local_path`; an app opens
the file through :attr:`File.filepath`, ``os.fspath(file)`` or ``open(file)``.

This module is imported by every app call, so it stays light: only :mod:`os`,
:mod:`copy` and :mod:`urllib.parse`.

Equality: ``File`` keeps identity semantics (no ``__eq__``/``__hash__`` override).
A ``File`` is mutable (staging sets ``local_path``), so hashing it by value would
break dictionaries and sets the moment it is staged. Compare ``a.url == b.url``
when two references to the same file are meant.
"""

from __future__ import annotations

import copy
import os
from urllib.parse import urlsplit

__all__ = ["File"]


class File:
    """A file named by URL, usable as a path once it is local.

    Args:
        url: a path (``"data/in.txt"``), a ``file://`` URL, a remote URL such as
            ``"https://host/data.csv"`` or ``"zip:/runs/out.zip/a/b.txt"``, or an
            ``os.PathLike`` (always taken as a local path, never parsed as a URL).
            Passing another ``File`` makes a clean copy of it.

    Attributes:
        url: the URL as given (a PathLike is converted with ``os.fspath``).
        scheme: the URL scheme, ``"file"`` when there is none.
        netloc: the authority part (``host:port``), ``""`` when there is none.
        path: the path part of the URL.
        filename: the last component of ``path``.
        local_path: where a staging plugin put the file for a task (``None``
            until then, as in Parsl; :attr:`filepath` falls back to ``path`` for
            a ``file`` URL). Only the task's own copy of a ``File`` gets one.

    Any string is accepted, as in Parsl: ``""`` and strings that do not parse as
    URLs are taken as a ``file`` path, the whole string being the path.

    Raises:
        TypeError: ``url`` is neither ``str`` nor ``os.PathLike``.
    """

    url: str
    scheme: str
    netloc: str
    path: str
    filename: str
    local_path: str | None

    def __init__(self, url: str | os.PathLike[str]) -> None:
        if isinstance(url, File):
            self.__dict__.update(url.cleancopy().__dict__)
            return
        if isinstance(url, str):
            text = url
            scheme, netloc, path = _split_url(text)
        elif isinstance(url, os.PathLike):
            text = os.fspath(url)
            if not isinstance(text, str):
                raise TypeError(f"File() needs a str path or URL; the PathLike {url!r} gave {type(text).__name__}")
            scheme, netloc, path = "file", "", text
        else:
            raise TypeError(f"File() takes a str URL or an os.PathLike, not {type(url).__name__}: {url!r}")
        self.url = text
        self.scheme = scheme
        self.netloc = netloc
        self.path = path
        self.filename = os.path.basename(path)
        self.local_path = None  # as in Parsl: set only where a file was staged (the task's copy)

    @property
    def filepath(self) -> str:
        """The path to open on this machine.

        ``local_path`` when set, else ``path`` for a ``file`` URL.

        Raises:
            ValueError: the file is remote and has not been staged in yet.
        """
        if self.local_path is not None:
            return self.local_path
        if self.scheme == "file":
            return self.path
        raise ValueError(
            f"No local_path set for {self!r}: a {self.scheme}: file has one only where it was staged "
            "(inside the app it is passed to)"
        )

    def __fspath__(self) -> str:
        return self.filepath

    def __str__(self) -> str:
        return self.filepath

    def __repr__(self) -> str:
        fields = f"url={self.url} scheme={self.scheme} netloc={self.netloc} path={self.path} filename={self.filename}"
        if self.local_path is not None:
            fields += f" local_path={self.local_path}"
        return f"<{type(self).__name__} at {id(self):#x} {fields}>"

    def cleancopy(self) -> File:
        """Return a new ``File`` for the same URL, without staging information."""
        new = copy.copy(self)
        new.local_path = None
        return new


def _split_url(text: str) -> tuple[str, str, str]:
    """``(scheme, netloc, path)`` of ``text``; a plain path (or anything unparsable) is a ``file`` path."""
    if ":" not in text:
        return "file", "", text  # keeps '?', '#' and ';' as part of a file name
    try:
        parsed = urlsplit(text)
    except ValueError:  # e.g. an unbalanced '[' in the authority
        return "file", "", text
    if not parsed.scheme:
        return "file", "", text
    return parsed.scheme, parsed.netloc, parsed.path


def task_copy(file: File) -> File:
    """The copy of ``file`` that one task gets (Parsl copies the File for each task).

    Staging plugins set ``local_path`` on the copy, so the caller's object never
    changes. A relative ``file`` path is made absolute against the submitting
    process's current directory: it names the same file in the app as in the script.
    """
    new = file.cleancopy()
    if new.scheme == "file" and new.path and not os.path.isabs(new.path):
        new.local_path = os.path.abspath(new.path)
    return new
