"""Shell templates shipped with flowlib, filled in with ``@{name}`` placeholders.

Launcher shell lives in ``flowlib/launchers/templates/*.sh``. The placeholder
syntax is ``@{name}`` (and nothing else) so that the templates can use the
shell's own ``$var``, ``${var}`` and ``"$@"`` freely, with no escaping. Values
are inserted exactly once and never re-scanned, so a value that itself contains
``@{...}`` or ``$`` is left alone.
"""

from __future__ import annotations

import functools
import re
import string
from importlib import resources

# The only placeholder form, @{name}. The group names are the ones string.Template expects.
_PLACEHOLDER = r"""
@(?:
    (?P<escaped>(?!)) |                 # no escape form: a lone @ is plain text
    \{(?P<braced>[a-z_][a-z0-9_]*)\} |  # @{name}
    (?P<named>(?!)) |                   # no unbraced form
    (?P<invalid>\{)                     # @{ with a malformed name
)
"""


class ShellTemplate(string.Template):
    """A :class:`string.Template` whose only placeholder form is ``@{name}``.

    ``@`` not followed by ``{`` is ordinary text; ``@{`` followed by anything but
    a lower-case identifier and ``}`` is an error (a typo in a template).
    """

    delimiter = "@"
    pattern = _PLACEHOLDER  # type: ignore[assignment]  # string.Template compiles it
    flags = re.RegexFlag(0)  # names are lower case; no re.IGNORECASE


@functools.cache
def load(name: str) -> ShellTemplate:
    """The template ``templates/<name>``, read once from the installed package."""
    text = (resources.files(__package__) / "templates" / name).read_text(encoding="utf-8")
    return ShellTemplate(text)


def render(name: str, values: dict[str, str | int]) -> str:
    """Fill template ``name`` with ``values``; every placeholder must have a value.

    The result has no trailing newline, so that it reads like one command when
    a provider puts it into its submit script.
    """
    return load(name).substitute({key: str(value) for key, value in values.items()}).rstrip("\n")
