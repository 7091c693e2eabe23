"""Helpers shared by the commands that read the store (history, show, logs, report, audit):
opening it read-only, `--since`, times and durations, plain-text tables.

They never take the state lock and never write (not even SQLite's shared-memory file: on
a read-only state directory or filesystem the database is read as immutable), so they work
while another l3tui runs and on a read-only copy; they never import Textual.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from l3tui import textdir
from l3tui.config import resolve_state_dir
from l3tui.config.durations import format_ms, parse_duration_ms
from l3tui.errors import UsageError
from l3tui.store.database import connect_readonly, db_path


def open_store(args: argparse.Namespace) -> sqlite3.Connection:
    """The state database, read-only (StateError with the reason when it cannot be read)."""
    return connect_readonly(db_path(resolve_state_dir(getattr(args, "state", None))))


def parse_since(text: str | None, now: float | None = None) -> float | None:
    """`7d`, `12h`, `30m` (ago), or an ISO date/time (`2026-11-20`, `2026-11-20T08:00`)."""
    if not text:
        return None
    now = time.time() if now is None else now
    try:
        return now - parse_duration_ms(text) / 1000
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--since expects an age like 7d, 12h, 30m or an ISO date such as "
                         f"2026-11-20, got {text!r}") from None  # fmt: skip
    return moment.timestamp()


def fmt_time(ts: float | None, with_date: bool = True) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S", time.localtime(ts))


def fmt_duration(seconds: float | None) -> str:
    return "-" if seconds is None else format_ms(seconds * 1000)


def bidi_enabled(args: argparse.Namespace) -> bool:
    return textdir.resolve(getattr(args, "bidi", "auto")) and sys.stdout.isatty()


def _width(text: str) -> int:
    from rich.cells import cell_len

    return cell_len(text)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces; the last column is not padded."""
    if not rows:
        return "  ".join(headers)
    widths = [max(_width(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        cells = [str(c) for c in row]
        padded = [c + " " * (widths[i] - _width(c)) for i, c in enumerate(cells[:-1])]
        lines.append("  ".join([*padded, cells[-1]]).rstrip())
    return "\n".join(lines)


def print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))
