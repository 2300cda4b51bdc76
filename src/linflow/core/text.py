"""Numbers in printed text: a value that could not be measured is said in words, never "nan"/"inf"."""

from __future__ import annotations

import math


def words(x, fmt: str, missing: str) -> str:
    """``x`` formatted by ``fmt``, or the words ``missing`` when it is not a finite number."""
    return format(x, fmt) if x is not None and math.isfinite(x) else missing


def cell(x, fmt: str, missing: str) -> str:
    """:func:`words` right-aligned in the width that ``fmt`` gives (a table column), e.g. ``cell(x, "12.3e", "diverged")``."""
    return format(words(x, fmt, missing), f">{int(fmt.split('.')[0])}")
