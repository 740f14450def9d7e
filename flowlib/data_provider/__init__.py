"""Files and data staging.

* :mod:`flowlib.data_provider.files` -- :class:`~flowlib.data_provider.files.File`,
  a file named by URL.
* :mod:`flowlib.data_provider.staging` -- the
  :class:`~flowlib.data_provider.staging.Staging` plugin interface.
* :mod:`flowlib.data_provider.data_manager` -- the kernel's
  :class:`~flowlib.data_provider.data_manager.DataManager` and ``default_staging``.
* Plugins: ``file_noop`` (shared filesystem), ``zip``, ``http``, ``ftp``,
  ``rsync``, ``globus`` (a seam).

Importing this package imports nothing else; the submodules are imported where used.
"""
