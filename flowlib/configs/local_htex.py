"""flowlib's earlier name for :mod:`flowlib.configs.htex_local` (Parsl's name): the same ``config``, ``fresh_config``.

::

    from flowlib.configs.local_htex import config    # the same object as flowlib.configs.htex_local.config
"""

from __future__ import annotations

from flowlib.configs.htex_local import config, fresh_config

__all__ = ["config", "fresh_config"]
