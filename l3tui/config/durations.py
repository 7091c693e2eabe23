"""Durations in config files: milliseconds as the seed writes them (`timeout: 300000`), or a
readable string (`"5m"`, `"1h30m"`, `"250ms"`). Pure parsing; no I/O."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration_ms(value: Any) -> Any:
    """Turn `"1h30m"` into 5_400_000; pass integers through for pydantic to check."""
    if isinstance(value, bool):
        raise ValueError("expected a duration in ms or like '30s', '5m', '2h', got a boolean")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, str):
        return value
    text = value.strip().replace(" ", "")
    if text.isdigit():
        return int(text)
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_MS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"expected a duration in ms or like '30s', '5m', '2h', got {value!r}")
    return int(total)


DurationMs = Annotated[int, BeforeValidator(parse_duration_ms)]
"""A duration in milliseconds; accepts `300000` or `"5m"`."""


def format_ms(ms: float) -> str:
    """Short human form: 850ms, 12.3s, 5m03s, 2h05m."""
    if ms < 1000:
        return f"{ms:.0f}ms"
    s = ms / 1000
    if s < 60:
        return f"{s:.1f}s"
    m, s = divmod(int(s), 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"
