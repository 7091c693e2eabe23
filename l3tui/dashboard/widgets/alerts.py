"""The `alerts` pane: active alerts (severity, age, state, source, message), then resolved
ones dimmed until they fade out. `a` acknowledges and `z` snoozes the highlighted alert
(`highlighted_id`); the app says why when there is none.
"""

from __future__ import annotations

import re
from typing import ClassVar

from l3tui.config.schema import AlertsWidget
from l3tui.dashboard.messages import AlertSelected
from l3tui.dashboard.text import SEVERITY_ICONS, duration, one_line
from l3tui.dashboard.widgets.base import SEVERITY_CLASSES, Cell, Column, RefreshContext, RowList
from l3tui.engine.api import AlertView


class AlertsPane(RowList):
    """Alerts, most severe and newest first."""

    COMPONENT_CLASSES: ClassVar[set[str]] = SEVERITY_CLASSES

    empty_text = "no alerts"
    COLUMNS: ClassVar[tuple[Column, ...]] = (
        Column("", 1),
        Column("alert", 16, flex=2),
        Column("age", 6, "right"),
        Column("state", 14, drop=2),
        Column("source", 14, flex=1, drop=3),
        Column("message", 16, flex=3, drop=1),
    )

    def __init__(self, config: AlertsWidget, **kwargs: str | None) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.config = config
        self.at = 0.0
        self.alerts: list[AlertView] = []

    def columns(self) -> tuple[Column, ...]:
        return self.COLUMNS

    def refresh_from(self, ctx: RefreshContext) -> None:
        self.bidi = ctx.bidi
        self.at = ctx.snapshot.at  # ages move on even when the alerts did not change
        if self.unchanged(ctx.snapshot.alerts, ctx):
            return
        selected = self.selected()
        alerts = [a for a in ctx.snapshot.alerts
                  if self.config.show_resolved or a.state != "resolved"]  # fmt: skip
        if self.filter is not None:
            alerts = [a for a in alerts if self.filter.search(
                f"{a.name} {a.rule} {a.severity} {a.state} {a.source} {a.message}")]  # fmt: skip
        self.alerts = alerts[: self.config.max_items]
        if selected is not None:
            for index, alert in enumerate(self.alerts):
                if alert.id == selected.id:
                    self.cursor = index
        self.set_row_count(len(self.alerts))

    def selected(self) -> AlertView | None:
        return self.alerts[self.cursor] if 0 <= self.cursor < len(self.alerts) else None

    def highlighted_id(self) -> str | None:
        """The alert under a visible cursor (what `a` and `z` act on); None when no row is
        highlighted (nothing chosen yet, or the chosen alert left the list)."""
        alert = None if self.cursor_lost else self.selected()
        return alert.id if alert is not None else None

    def set_filter(self, pattern: re.Pattern[str] | None) -> None:
        self.filter = pattern
        self._signature = None  # the next refresh redraws
        self.cursor = 0

    def row_cells(self, index: int) -> tuple[list[Cell], str]:
        alert = self.alerts[index]
        if alert.state == "resolved":
            sev_cls, row_cls = "sev--resolved", "rowlist--dim"
            state = f"resolved {duration(self.at - alert.updated_at)}"
        else:
            sev_cls = f"sev--{'critical' if alert.severity == 'error' else alert.severity}"
            row_cls = "" if alert.state == "raised" else "rowlist--muted"
            state = alert.state
        return [
            (SEVERITY_ICONS.get(alert.severity, "?"), sev_cls),
            (self.bidi(alert.name), sev_cls if alert.state == "raised" else ""),
            (duration(self.at - alert.raised_at), ""),
            (state, ""),
            (alert.source, "rowlist--muted"),
            (self.bidi(one_line(alert.message)), ""),
        ], row_cls

    def summary(self) -> str:
        raised = sum(1 for a in self.alerts if a.state == "raised")
        acked = sum(1 for a in self.alerts if a.state in ("acknowledged", "snoozed"))
        return f"{raised} raised · {acked} handled"

    def row_key(self, index: int) -> object:
        return self.alerts[index].id if 0 <= index < len(self.alerts) else None

    def cursor_moved(self, index: int) -> None:
        self.announce(index)
        alert = self.selected()
        self.post_message(AlertSelected(alert.id if alert else None))
