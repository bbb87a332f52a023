"""The one lookup of a name in a table, and the one wording of a name outside it.

Every extension point of the project is a table (``UPSAMPLERS``, ``TERMS``, ``METRICS``,
a grid's variants, ``Config``'s fields...): a name outside it is refused before any work,
always in the same words, with the choices read from the table itself (so an entry added
to a table is among the choices at once) and the close match of a typo:

    upsampler must be one of pixelshuffle, nearest, ..., got 'nearst' (did you mean 'nearest'?)
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from typing import TypeVar

V = TypeVar("V")


def unknown(what: str, value: object, choices: Collection) -> str:
    """``'<what> must be one of <choices>, got <value>'`` and, for a misspelt name, its
    close match; ``choices`` in their table's order."""
    names = [str(c) for c in choices]
    close = difflib.get_close_matches(str(value), names, n=1) if isinstance(value, str) else []
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{what} must be one of {', '.join(names)}, got {value!r}{hint}"


def check_choice(what: str, value: object, choices: Collection) -> None:
    """``ValueError`` (``unknown``) unless ``value`` is one of ``choices`` (a bool is never
    a choice, though ``True == 1``)."""
    if isinstance(value, bool) or value not in choices:
        raise ValueError(unknown(what, value, choices))


def lookup(table: Mapping[str, V], name: str, what: str) -> V:
    """``table[name]``, or ``ValueError`` (``unknown``) listing the table's names."""
    check_choice(what, name, table)
    return table[name]
