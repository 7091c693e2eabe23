"""Quantities as people type them for a reservation, on the command line or in the console:
memory sizes (`8G`, `512M`, `2048` MB), pool slots (`flutter_build=1`), times (`now`, `+30m`,
`18:00`, an ISO date-time) and lengths of time (`2h`, `90m`). Pure parsing: errors are
ValueError with a sentence that names what was expected.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import datetime, timedelta

from l3tui.config.durations import parse_duration_ms

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(k|m|g|t)?(?:i?b)?\s*$", re.IGNORECASE)
_MB_PER = {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")


def memory_mb(text: str) -> int:
    """`8G`, `512M`, `1.5GiB`, `2048` (MB) -> whole MB, rounded up."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"expected a size like 8G, 512M or 2048 (MB), got {text!r}")
    mb = float(match.group(1)) * _MB_PER[(match.group(2) or "m").lower()]
    return max(math.ceil(mb - 1e-9), 0)


def pool_slots(items: Iterable[str]) -> tuple[tuple[str, int], ...]:
    """`flutter_build=1` (or `flutter_build`: one slot) each; the same pool twice adds up."""
    pools: dict[str, int] = {}
    for item in items:
        name, sep, slots = item.strip().partition("=")
        name = name.strip()
        try:
            count = int(slots) if sep else 1
        except ValueError:
            count = 0
        if not name or count < 1:
            raise ValueError(f"expected NAME=SLOTS with SLOTS >= 1, got {item.strip()!r}")
        pools[name] = pools.get(name, 0) + count
    return tuple(pools.items())


def length_s(text: str) -> float:
    """`2h`, `90m`, `1h30m` -> seconds (a unit is required: a bare number is ambiguous)."""
    try:
        value = parse_duration_ms(text)
    except ValueError:
        value = None
    if not isinstance(value, int) or text.strip().isdigit() or value <= 0:
        raise ValueError(f"expected a duration with a unit like 90m, 2h or 1h30m, got {text!r}")
    return value / 1000


def moment(text: str, now: float, after: float | None = None) -> float | None:
    """`now` (None), `+30m`, `18:00` (the next time the clock shows it: after `after` when
    given, else from a minute ago, so `18:00` typed at 18:00:20 is now), or an ISO
    date-time (`2026-12-01T18:00`; local time when it names no offset)."""
    text = text.strip()
    if text.lower() == "now":
        return None
    if text.startswith("+"):
        return now + length_s(text[1:])
    clock = _CLOCK.fullmatch(text)
    if clock:
        hour, minute = int(clock.group(1)), int(clock.group(2))
        if hour > 23 or minute > 59:
            raise ValueError(f"expected a time of day like 18:00, got {text!r}")
        base = after if after is not None else now
        at = datetime.fromtimestamp(base).replace(hour=hour, minute=minute, second=0,
                                                  microsecond=0)  # fmt: skip
        if at.timestamp() < (base if after is not None else now - 60):
            at += timedelta(days=1)
        return at.timestamp()
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ValueError(f"expected now, +30m, a time like 18:00 or an ISO date-time like "
                         f"2026-12-01T18:00, got {text!r}") from None  # fmt: skip
