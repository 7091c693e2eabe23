"""Right-to-left text for terminals without bidi support: shape and reorder for display.

Applied when drawing only; stored data is never changed (shaping merges lam-alef into one
cell and drops diacritics). `auto` turns it on unless the terminal is known to do its own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Literal

BidiMode = Literal["auto", "on", "off"]

_RTL = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]")


def has_rtl(text: str) -> bool:
    return bool(_RTL.search(text))


def terminal_does_bidi(env: Mapping[str, str] | None = None) -> bool:
    """Konsole, mlterm and VTE >= 0.58 (GNOME Terminal, Tilix) reorder by themselves."""
    env = os.environ if env is None else env
    if env.get("KONSOLE_VERSION") or env.get("TERM_PROGRAM", "").lower() == "mlterm":
        return True
    try:
        return int(env.get("VTE_VERSION", "0")) >= 5800
    except ValueError:
        return False


def resolve(mode: BidiMode, env: Mapping[str, str] | None = None) -> bool:
    """Whether to shape and reorder RTL text for display."""
    if mode == "auto":
        return not terminal_does_bidi(env)
    return mode == "on"


@lru_cache(maxsize=4096)
def _visual(text: str) -> str:
    import arabic_reshaper
    from bidi import get_display

    return str(get_display(arabic_reshaper.reshape(text)))


def display(text: str, enabled: bool = True) -> str:
    """`text` as it should be drawn: visual order, joined letters, when it holds RTL."""
    if not enabled or not text or not has_rtl(text):
        return text
    return _visual(text)
