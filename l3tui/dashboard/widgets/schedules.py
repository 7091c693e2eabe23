"""The `schedules` pane: recurring tasks with cron, timezone, next fire (in the schedule's
own timezone, and how long until then), last outcome and whether enabled; `s` toggles the
one under the cursor.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from l3tui.config.schema import SchedulesWidget
from l3tui.dashboard.messages import ScheduleSelected
from l3tui.dashboard.text import duration
from l3tui.dashboard.widgets.base import STATE_CLASSES, Cell, Column, RefreshContext, RowList
from l3tui.engine.api import ScheduleView


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def wall(at: float, tz: str) -> str:
    """`Sun 03:00` in the schedule's timezone (the machine's when it names none)."""
    return datetime.fromtimestamp(at, _zone(tz)).strftime("%a %d %H:%M")


class SchedulesPane(RowList):
    """Recurring tasks."""

    COMPONENT_CLASSES: ClassVar[set[str]] = STATE_CLASSES

    empty_text = "no recurring tasks"
    COLUMNS: ClassVar[tuple[Column, ...]] = (
        Column("on", 2),
        Column("schedule", 16, flex=2),
        Column("cron", 11),
        Column("timezone", 13, drop=2),
        Column("next fire", 22),
        Column("last", 14, flex=1, drop=1),
        Column("workflow", 14, flex=1, drop=3),
    )

    def __init__(self, config: SchedulesWidget, **kwargs: str | None) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.config = config
        self.at = 0.0
        self.schedules: list[ScheduleView] = []

    def columns(self) -> tuple[Column, ...]:
        return self.COLUMNS

    def refresh_from(self, ctx: RefreshContext) -> None:
        self.bidi = ctx.bidi
        self.at = ctx.snapshot.at  # "in 3h" counts down even when nothing changed
        if self.unchanged(ctx.snapshot.schedules, ctx):
            return
        schedules = list(ctx.snapshot.schedules)
        if self.filter is not None:
            schedules = [s for s in schedules if self.filter.search(
                f"{s.id} {s.name} {s.workflow_id} {s.cron} {s.last_outcome}")]  # fmt: skip
        self.schedules = schedules
        self.set_row_count(len(schedules))

    def selected(self) -> ScheduleView | None:
        return self.schedules[self.cursor] if 0 <= self.cursor < len(self.schedules) else None

    def set_filter(self, pattern: re.Pattern[str] | None) -> None:
        self.filter = pattern
        self._signature = None  # the next refresh redraws
        self.cursor = 0

    def row_cells(self, index: int) -> tuple[list[Cell], str]:
        s = self.schedules[index]
        if s.enabled and s.next_fire is not None:
            nxt = f"{wall(s.next_fire, s.timezone)} in {duration(s.next_fire - self.at)}"
        else:
            nxt = "—"
        last = s.last_outcome or "never"
        last_cls = {"failed": "state--failed", "succeeded": "state--succeeded"}.get(
            s.last_outcome, "rowlist--muted")  # fmt: skip
        return [
            ("●" if s.enabled else "○", "state--succeeded" if s.enabled else "rowlist--muted"),
            (self.bidi(s.name or s.id), ""),
            (s.cron, ""),
            (s.timezone or "local", "rowlist--muted"),
            (nxt, ""),
            (last, last_cls),
            (s.workflow_id, "rowlist--muted"),
        ], "" if s.enabled else "rowlist--muted"

    def summary(self) -> str:
        on = sum(1 for s in self.schedules if s.enabled)
        return f"{on} enabled · {len(self.schedules) - on} disabled"

    def row_key(self, index: int) -> object:
        return self.schedules[index].id if 0 <= index < len(self.schedules) else None

    def cursor_moved(self, index: int) -> None:
        self.announce(index)
        s = self.selected()
        self.post_message(ScheduleSelected(s.id if s else None, s.enabled if s else True))
