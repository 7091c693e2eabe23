"""A dashboard as a view: its panes in the configured grid, or one at a time as tabs when
the terminal is too small for the grid (80x24); the pane frame (title, subtitle, `/` filter
box); the top bar with dashboard tabs and the status line. No engine calls happen here
other than handing each pane body its refresh context.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, TypeVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Vertical
from textual.markup import escape
from textual.widget import Widget
from textual.widgets import Input, Static

from l3tui.config.schema import Dashboard
from l3tui.dashboard import keymap
from l3tui.dashboard.messages import LogLinesArrived
from l3tui.dashboard.text import Bidi, fit
from l3tui.dashboard.widgets.advice import AdvicePane
from l3tui.dashboard.widgets.alerts import AlertsPane
from l3tui.dashboard.widgets.base import RefreshContext
from l3tui.dashboard.widgets.cluster import ClusterPane
from l3tui.dashboard.widgets.log_view import LogView
from l3tui.dashboard.widgets.metrics_chart import MetricsChart
from l3tui.dashboard.widgets.performance_metrics import PerformanceMetrics
from l3tui.dashboard.widgets.resource_sparklines import ResourceSparklines
from l3tui.dashboard.widgets.schedules import SchedulesPane
from l3tui.dashboard.widgets.task_queue import TaskQueue
from l3tui.dashboard.widgets.workflow_status import WorkflowStatus

BODIES: dict[str, Any] = {
    "metrics_chart": MetricsChart,
    "task_queue": TaskQueue,
    "workflow_status": WorkflowStatus,
    "performance_metrics": PerformanceMetrics,
    "alerts": AlertsPane,
    "resource_sparklines": ResourceSparklines,
    "schedules": SchedulesPane,
    "log_view": LogView,
    "advice": AdvicePane,
    "cluster": ClusterPane,
}
COMPACT_WIDTH = 100
BodyT = TypeVar("BodyT")
MIN_PANE_HEIGHT = 8


class Pane(Vertical, can_focus=True):
    """A bordered pane around one body; `/` opens its filter box. The pane itself takes
    focus only when its body cannot (charts), so tab reaches every pane."""

    BINDINGS: ClassVar[list[Any]] = [Binding("escape", "close_filter", "Clear filter", show=False)]

    def __init__(self, spec: Any, index: int, bidi: Bidi) -> None:
        super().__init__(classes=f"pane pane--{spec.type}")
        self.spec = spec
        self.index = index
        self.body: Any = BODIES[spec.type](spec, classes="pane-body")
        self.border_title = bidi(spec.title or spec.type.replace("_", " "))
        self._ctx: RefreshContext | None = None
        self.stale = True

    def compose(self) -> ComposeResult:
        yield self.body
        if self.body.filterable:
            box = Input(placeholder="regex filter: enter applies, esc clears",
                        classes="pane-filter")  # fmt: skip
            box.display = False
            yield box

    def on_focus(self) -> None:
        if self.body.can_focus:
            self.body.focus()

    def focus_target(self) -> Widget:
        return self.body if self.body.can_focus else self  # type: ignore[no-any-return]

    def refresh_from(self, ctx: RefreshContext) -> None:
        self._ctx = ctx
        self.stale = False
        self.body.refresh_from(ctx)
        self._subtitle(self.body.summary())

    def _subtitle(self, text: str) -> None:
        if text != self.border_subtitle:  # a border repaint only when it changed
            self.border_subtitle = text

    def redraw_last(self) -> None:
        if self._ctx is not None:
            self.refresh_from(self._ctx)

    # ------------------------------------------------------------------ filter

    def open_filter(self) -> None:
        box = self.query_one(".pane-filter", Input)
        box.display = True
        box.focus()

    def action_close_filter(self) -> None:
        if not self.body.filterable:
            return
        box = self.query_one(".pane-filter", Input)
        box.value = ""
        box.display = False
        self._apply(None)
        if self.body.can_focus:
            self.body.focus()

    @on(Input.Changed, ".pane-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        pattern = _compile(event.value)
        event.input.set_class(pattern is False, "-invalid")
        if pattern is not False:
            self._apply(pattern)

    @on(Input.Submitted, ".pane-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        pattern = _compile(event.value)
        if pattern is False:
            self.notify(f"not a regular expression: {event.value}", severity="error")
            return
        self._apply(pattern)
        if pattern is None:
            event.input.display = False
        if self.body.can_focus:
            self.body.focus()

    def _apply(self, pattern: re.Pattern[str] | None) -> None:
        self.body.set_filter(pattern)
        self.redraw_last()
        self._subtitle(self.body.summary())

    def on_log_lines_arrived(self, message: LogLinesArrived) -> None:
        self._subtitle(self.body.summary())


def _compile(text: str) -> re.Pattern[str] | bool | None:
    """The filter's pattern, None for no filter, False when `text` is not a regex."""
    if not text:
        return None
    try:
        return re.compile(text, re.IGNORECASE)
    except re.error:
        return False


def fill_spans(panes: list[Pane], columns: int) -> list[int]:
    """Column spans in order; the last pane widens to fill its row (no empty cell)."""
    spans = [min(p.spec.span, columns) for p in panes]
    if any(p.spec.row_span > 1 for p in panes):
        return spans  # rows are shared then: leave the placement to the grid
    used = 0
    for span in spans:
        used = span if used + span > columns else used + span
    if spans and used < columns:
        spans[-1] += columns - used
    return spans


class DashboardView(Vertical):
    """One dashboard: a grid of panes, or pane tabs on small terminals."""

    BINDINGS: ClassVar[list[Any]] = keymap.bindings(keymap.VIEW_KEYS)

    def __init__(self, dash_id: str, dashboard: Dashboard, bidi: Bidi, index: int) -> None:
        super().__init__(id=f"dash-{dash_id}", classes="dashboard")
        self.dash_id = dash_id
        self.dashboard = dashboard
        self.index = index
        self.bidi = bidi
        self.panes = [Pane(spec, i, bidi) for i, spec in enumerate(dashboard.widgets)]
        self.current = 0
        self.compact = False
        self.recent_needed = max([20, *(getattr(w, "show_recent", 0) for w in dashboard.widgets)])
        """How many finished executions the snapshot must hold for this dashboard's panes
        (worked out once: asking the config models for a field most lack costs ~0.1 ms)."""

    def compose(self) -> ComposeResult:
        # The layout the app's size implies (the top bar and the footer take a line each),
        # decided before the panes are mounted: found only at the first layout, it restyled
        # the panes of the first paint. A resize corrects a wrong guess.
        width, height = self.app.size
        self.compact = self._compact_at(width, height - 2)
        self.set_class(self.compact, "-compact")
        for pane in self.panes:
            pane.set_class(pane.index == self.current, "-current", update=False)
            pane.display = not self.compact or pane.index == self.current
        yield Static(self._tabs_markup(width) if self.compact else "", classes="pane-tabs")
        grid = Container(*self.panes, classes=f"panes -layout-{self.dashboard.layout}")
        if self.dashboard.layout == "grid":
            columns = min(self.dashboard.columns, max(len(self.panes), 1))
            grid.styles.grid_size_columns = columns
            for pane, span in zip(self.panes, fill_spans(self.panes, columns), strict=True):
                pane.styles.column_span = span
                pane.styles.row_span = pane.spec.row_span
        yield grid

    def grid_rows(self) -> int:
        if self.dashboard.layout == "columns":
            return 1
        if self.dashboard.layout == "rows":
            return len(self.panes)
        columns = min(self.dashboard.columns, max(len(self.panes), 1))
        cells = sum(min(p.spec.span, columns) * p.spec.row_span for p in self.panes)
        return max(-(-cells // columns), 1)

    def on_resize(self) -> None:
        self.update_compact()

    def _compact_at(self, width: int, height: int) -> bool:
        """Panes one at a time (tabs) at this size: too narrow, or too low for the rows."""
        return (width < COMPACT_WIDTH and len(self.panes) > 2) or (
            height / self.grid_rows() < MIN_PANE_HEIGHT and len(self.panes) > 1
        )

    def update_compact(self) -> None:
        width, height = self.size.width, self.size.height
        if not width or not height:
            return
        compact = self._compact_at(width, height)
        if compact != self.compact:
            self.compact = compact
            self.set_class(compact, "-compact")
            self._show_current()
            if not compact:  # panes hidden until now missed the refreshes: draw the last one
                for pane in self.panes:
                    if pane.stale:
                        pane.redraw_last()
            if compact and self.display and self.focused_pane() is not self.panes[self.current]:
                self.panes[self.current].focus_target().focus()
        else:
            self._show_current()

    def _show_current(self) -> None:
        for pane in self.panes:
            pane.set_class(pane.index == self.current, "-current")
            pane.display = (not self.compact) or pane.index == self.current
        if self.compact:
            self.query_one(".pane-tabs", Static).update(self._tabs_markup(self.size.width))

    def _tabs_markup(self, width: int) -> str:
        parts = []
        budget = max(width // max(len(self.panes), 1) - 3, 6)
        for pane in self.panes:
            title = fit(str(pane.border_title or ""), budget).rstrip()
            label = f" {escape(title)} "
            if pane.index == self.current:
                parts.append(f"[reverse]{label}[/reverse]")
            else:
                parts.append(f"[@click=app.show_pane({pane.index})]{label}[/]")
        return "│".join(parts)

    def visible_panes(self) -> list[Pane]:
        return [p for p in self.panes if not self.compact or p.index == self.current]

    def show_pane(self, index: int, *, focus: bool = True) -> None:
        self.current = index % len(self.panes)
        self._show_current()
        pane = self.panes[self.current]
        if pane.stale:
            pane.redraw_last()
        if focus:
            pane.focus_target().focus()

    def focused_pane(self) -> Pane | None:
        focused = self.screen.focused
        node: Widget | None = focused
        while node is not None and node is not self:
            if isinstance(node, Pane):
                return node
            node = node.parent if isinstance(node.parent, Widget) else None
        return None

    def _step(self, delta: int) -> None:
        current = self.focused_pane()
        start = current.index if current is not None else self.current
        self.show_pane((start + delta) % len(self.panes))

    def action_next_pane(self) -> None:
        self._step(1)

    def action_prev_pane(self) -> None:
        self._step(-1)

    def refresh_panes(self, ctx: RefreshContext) -> None:
        """Redraw the visible panes from one snapshot: live panes always, history charts
        on a full (chart) tick or while they wait for their first data; between plots a
        chart's legend follows the live reading."""
        for pane in self.panes:
            visible = not self.compact or pane.index == self.current
            if not visible:
                pane.stale = True
                pane._ctx = ctx
                continue
            body = pane.body
            if body.paced and not ctx.full and not body.awaiting_data():
                body.refresh_live(ctx)
                continue
            pane.refresh_from(ctx)

    def body_of(self, kind: type[BodyT]) -> BodyT | None:
        """The first pane body of type `kind` on this dashboard (visible or not)."""
        return next((p.body for p in self.panes if isinstance(p.body, kind)), None)

    def first_focusable(self) -> Widget | None:
        for pane in self.visible_panes():
            if pane.body.can_focus:
                return pane.body  # type: ignore[no-any-return]
        panes = self.visible_panes()
        return panes[0] if panes else None
