"""The `advice` pane: what the Resource Manager says, from the snapshot: reservations to
come and in force (`x` cancels the highlighted one, `v` makes one), bottlenecks now, upgrade
advice from the last day's waits, and right-sizing (declared `resources` against measured
peaks, with the suggested block), each followed by its evidence, dimmed.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import ClassVar

from l3tui.config.schema import AdviceWidget
from l3tui.dashboard.messages import ReservationSelected
from l3tui.dashboard.text import SEVERITY_ICONS, duration, one_line
from l3tui.dashboard.widgets.base import (
    SEVERITY_CLASSES,
    STATE_CLASSES,
    Cell,
    Column,
    RefreshContext,
    RowList,
)
from l3tui.engine.api import AdviceView, ReservationView

KIND_WORDS = {"bottleneck": "now", "upgrade": "upgrade", "rightsizing": "resize"}


def holds(r: ReservationView) -> str:
    parts = []
    if r.cpu:
        parts.append(f"{r.cpu:g} cpu")
    if r.memory_mb:
        parts.append(f"{r.memory_mb / 1024:.1f} GB" if r.memory_mb >= 1024 else
                     f"{r.memory_mb} MB")  # fmt: skip
    parts += [f"{name}={slots}" for name, slots in r.pools]
    return ", ".join(parts)


def clock(at: float, now: float) -> str:
    fmt = "%H:%M" if abs(at - now) < 20 * 3600 else "%m-%d %H:%M"
    return time.strftime(fmt, time.localtime(at))


@dataclass(frozen=True, slots=True)
class Row:
    """One line: a reservation, a piece of advice, or a line of its evidence."""

    reservation: ReservationView | None = None
    advice: AdviceView | None = None
    evidence: str = ""


class AdvicePane(RowList):
    """Reservations, then advice with its evidence."""

    COMPONENT_CLASSES: ClassVar[set[str]] = STATE_CLASSES | SEVERITY_CLASSES

    empty_text = "no reservations, nothing to advise"
    COLUMNS: ClassVar[tuple[Column, ...]] = (
        Column("", 1),
        Column("what", 8),
        Column("about", 18, flex=1),
        Column("advice", 24, flex=3),
        Column("suggestion / when", 22, flex=2, drop=1),
    )

    def __init__(self, config: AdviceWidget, **kwargs: str | None) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.config = config
        self.at = 0.0
        self.rows: list[Row] = []

    def columns(self) -> tuple[Column, ...]:
        return self.COLUMNS

    def refresh_from(self, ctx: RefreshContext) -> None:
        self.bidi = ctx.bidi
        self.at = ctx.snapshot.at
        snap = ctx.snapshot
        if self.unchanged((snap.reservations, snap.advice), ctx):
            return
        rows: list[Row] = []
        if self.config.show_reservations:
            rows += [Row(reservation=r) for r in snap.reservations]
        shown = [a for a in snap.advice if a.kind in self.config.kinds][: self.config.max_items]
        for advice in shown:
            rows.append(Row(advice=advice))
            if self.config.evidence:
                rows += [Row(advice=advice, evidence=line) for line in advice.evidence]
        if self.filter is not None:
            rows = [r for r in rows if self.filter.search(self._text(r))]
        self.rows = rows
        self.set_row_count(len(rows))

    def _text(self, row: Row) -> str:
        if row.reservation is not None:
            r = row.reservation
            return f"reserved {r.id} {r.reason} {holds(r)} {r.state}"
        a = row.advice
        assert a is not None
        return f"{a.kind} {a.subject} {a.summary} {a.suggestion} {row.evidence}"

    def set_filter(self, pattern: re.Pattern[str] | None) -> None:
        self.filter = pattern
        self._signature = None
        self.cursor = 0

    def row_cells(self, index: int) -> tuple[list[Cell], str]:
        row = self.rows[index]
        r = row.reservation
        if r is not None:
            when = (f"until {clock(r.ends_at, self.at)}" if r.state == "active" else
                    f"{clock(r.starts_at, self.at)}-{clock(r.ends_at, self.at)}")  # fmt: skip
            return [
                ("◆" if r.state == "active" else "◇",
                 "state--running" if r.state == "active" else "rowlist--muted"),
                ("reserved", ""), (f"{r.id} {self.bidi(r.reason)}".strip(), ""),
                (holds(r), ""), (when, "rowlist--muted" if r.state != "active" else ""),
            ], ""  # fmt: skip
        a = row.advice
        assert a is not None
        if row.evidence:
            return [("", ""), ("", ""), ("", ""), ("· " + one_line(row.evidence), ""),
                    ("", "")], "rowlist--muted"  # fmt: skip
        sev = f"sev--{'critical' if a.severity in ('critical', 'error') else a.severity}"
        since = f" · {duration(self.at - a.since)}" if a.since and a.kind == "bottleneck" else ""
        return [
            (SEVERITY_ICONS.get(a.severity, "ℹ"), sev),
            (KIND_WORDS.get(a.kind, a.kind), ""),
            (a.subject, ""),
            (self.bidi(one_line(a.summary)) + since, ""),
            (one_line(a.suggestion), ""),
        ], ""

    def selected_reservation(self) -> ReservationView | None:
        if self.cursor_lost or not 0 <= self.cursor < len(self.rows):
            return None
        return self.rows[self.cursor].reservation

    def summary(self) -> str:
        reserved = sum(1 for r in self.rows if r.reservation is not None)
        advice = sum(1 for r in self.rows if r.advice is not None and not r.evidence)
        return f"{reserved} reserved · {advice} advice"

    def row_key(self, index: int) -> object:
        if not 0 <= index < len(self.rows):
            return None
        row = self.rows[index]
        if row.reservation is not None:
            return ("reservation", row.reservation.id)
        assert row.advice is not None
        return ("advice", row.advice.kind, row.advice.subject, row.evidence)

    def cursor_moved(self, index: int) -> None:
        self.announce(index)
        r = self.selected_reservation()
        self.post_message(ReservationSelected(r.id if r is not None else None))
