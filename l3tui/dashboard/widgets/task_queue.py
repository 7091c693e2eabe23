"""The `task_queue` pane: running tasks, then queued ones in dispatch order (priority, state,
workflow, task, why it waits, live CPU and RSS, elapsed). Rows are fetched a screenful at a
time with `queue_slice`, so 100,000 queued tasks paint as fast as ten.
"""

from __future__ import annotations

import re
import time
from typing import ClassVar

from l3tui.config.schema import TaskQueueWidget
from l3tui.dashboard.messages import SelectionChanged
from l3tui.dashboard.text import STATE_ICONS, duration, size
from l3tui.dashboard.widgets.base import STATE_CLASSES, Cell, Column, RefreshContext, RowList
from l3tui.engine.api import TERMINAL_TASK_STATES, QueueItemView, RuntimeAPI

WINDOW_MARGIN = 40
FILTER_DUTY = 20
"""A filtered queue is read again at most once per 20x the time the last read took: a
filter over a long, moving queue costs at most ~5 % of a core, its rows up to that much
older (0.6 s at 100,000 queued: refiltered every ~12 s instead of every second)."""


class TaskQueue(RowList):
    """Running and queued tasks; completed ones too with `show_completed`."""

    COMPONENT_CLASSES: ClassVar[set[str]] = STATE_CLASSES

    empty_text = "no tasks queued or running"
    COLUMNS: ClassVar[tuple[Column, ...]] = (
        Column("", 1),
        Column("prio", 4, "right"),
        Column("state", 9, drop=4),
        Column("workflow", 10, flex=1, drop=3),
        Column("task", 12, flex=2),
        Column("waiting on", 12, flex=2, drop=2),
        Column("cpu", 4, "right", drop=1),
        Column("rss", 6, "right", drop=1),
        Column("time", 6, "right"),
    )

    def __init__(self, config: TaskQueueWidget, **kwargs: str | None) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.config = config
        self.api: RuntimeAPI | None = None
        self.at = 0.0
        self.running: tuple[QueueItemView, ...] = ()
        self.completed: list[QueueItemView] = []
        self.queue_length = 0
        self.queue_version = -1
        self._window: tuple[int, int, list[QueueItemView]] = (-1, 0, [])
        self._filtered: list[QueueItemView] | None = None
        self._filtered_version = -1
        self._filter_due = 0.0

    def columns(self) -> tuple[Column, ...]:
        return self.COLUMNS

    # ------------------------------------------------------------------ data

    def refresh_from(self, ctx: RefreshContext) -> None:
        snap = ctx.snapshot
        self.api = ctx.api
        self.bidi = ctx.bidi
        signature = (snap.queue_version, snap.queue_length, snap.running,
                     tuple(map(id, snap.executions)) if self.config.show_completed else ())
        self.at = snap.at  # elapsed times move on even when the rows did not change
        refilter = (self.filter is not None and self._filtered_version != snap.queue_version
                    and time.monotonic() >= self._filter_due)  # fmt: skip
        if not refilter and self.unchanged(signature, ctx):
            return
        self._signature = signature
        self.running = snap.running
        if self.config.show_completed:
            self.completed = [
                QueueItemView(execution_id=e.id, task_id=t.task_id, workflow_id=e.workflow_id,
                              name=t.name, priority=t.priority, state=t.state, reason=t.reason,
                              since=t.finished_at or snap.at)
                for e in snap.executions for t in e.tasks
                if t.state in TERMINAL_TASK_STATES and t.finished_at is not None
            ]  # fmt: skip
            self.completed.sort(key=lambda q: -q.since)
            del self.completed[50:]
        if snap.queue_version != self.queue_version or snap.queue_length != self.queue_length:
            self._window = (-1, 0, [])
        self.queue_length = snap.queue_length
        self.queue_version = snap.queue_version
        if refilter:
            self._apply_filter()
        self.follow_selection(ctx.selection)
        self.set_row_count(self._total())

    def _queued_count(self) -> int:
        return len(self._filtered) if self._filtered is not None else self.queue_length

    def _rows_running(self) -> tuple[QueueItemView, ...] | list[QueueItemView]:
        if self.filter is None:
            return self.running
        return [q for q in self.running if self._matches(q)]

    def _rows_completed(self) -> list[QueueItemView]:
        if self.filter is None:
            return self.completed
        return [q for q in self.completed if self._matches(q)]

    def _total(self) -> int:
        total = len(self._rows_running()) + self._queued_count() + len(self._rows_completed())
        return min(total, self.config.max_items) if self.config.max_items else total

    def item(self, index: int) -> QueueItemView | None:
        running = self._rows_running()
        if index < len(running):
            return running[index]
        index -= len(running)
        queued = self._queued_count()
        if index < queued:
            return self._queued(index)
        index -= queued
        completed = self._rows_completed()
        return completed[index] if index < len(completed) else None

    def _queued(self, index: int) -> QueueItemView | None:
        if self._filtered is not None:
            return self._filtered[index] if index < len(self._filtered) else None
        start, count, items = self._window
        if not (start <= index < start + len(items)):
            if self.api is None:
                return None
            start = max(index - WINDOW_MARGIN, 0)
            count = self.scrollable_content_region.height + 2 * WINDOW_MARGIN
            items = list(self.api.queue_slice(start, count))
            self._window = (start, count, items)
        offset = index - start
        return items[offset] if 0 <= offset < len(items) else None

    # ------------------------------------------------------------------ filter

    def _matches(self, item: QueueItemView) -> bool:
        pattern = self.filter
        text = (f"{item.workflow_id} {item.task_id} {item.name} {item.state} {item.reason} "
                f"{item.execution_id}")  # fmt: skip
        return pattern is None or bool(pattern.search(text))

    def _apply_filter(self) -> None:
        if self.filter is None or self.api is None:
            self._filtered = None
            return
        started = time.monotonic()
        everything = self.api.queue_slice(0, self.queue_length)
        self._filtered = [q for q in everything if self._matches(q)]
        self._filtered_version = self.queue_version
        # A filter reads the whole queue (0.5 s of CPU at 100,000): while the queue keeps
        # moving, read it again only after FILTER_DUTY times what this read took.
        self._filter_due = time.monotonic() + FILTER_DUTY * (time.monotonic() - started)

    def set_filter(self, pattern: re.Pattern[str] | None) -> None:
        self.filter = pattern
        self._signature = None  # the next refresh redraws
        self._filtered_version = -1
        self._apply_filter()
        self.cursor = 0
        self.scroll_to(y=0, animate=False)
        self.set_row_count(self._total())

    # ------------------------------------------------------------------ drawing

    def row_cells(self, index: int) -> tuple[list[Cell], str]:
        item = self.item(index)
        if item is None:
            return [("", "")] * len(self.COLUMNS), ""
        state_cls = f"state--{item.state}"
        live = item.state in ("running", "paused")
        elapsed = duration(self.at - item.since) if item.since else ""
        row_cls = "rowlist--muted" if item.state in TERMINAL_TASK_STATES else ""
        cells: list[Cell] = [
            (STATE_ICONS.get(item.state, "?"), state_cls),
            (str(item.priority), ""),
            (item.state, state_cls),
            (item.workflow_id, ""),
            (self.bidi(item.name), ""),
            # A running task waits on nothing: where it runs, when that is a Dask worker.
            (item.reason or (self.bidi(f"on {item.worker}") if item.worker else ""),
             "rowlist--muted"),
            (f"{item.cpu_pct:.0f}%" if live else "", ""),
            (size(item.rss) if live and item.rss else "", ""),
            (elapsed, ""),
        ]
        return cells, row_cls

    def empty_message(self) -> str:
        return "no task matches the filter" if self.filter is not None else self.empty_text

    def summary(self) -> str:
        running = sum(1 for q in self.running if q.state == "running")
        paused = len(self.running) - running
        text = f"{running} running · " + (f"{paused} paused · " if paused else "")
        text += f"{self.queue_length:,} queued"
        if self.config.max_items and self._total() < (len(self.running) + self.queue_length):
            text += f" · first {self.config.max_items}"
        if self.filter is not None:
            text += f" · /{self.filter.pattern}/ {self._total():,}"
        return text

    def row_key(self, index: int) -> object:
        item = self.item(index)
        return (item.execution_id, item.task_id) if item is not None else None

    def find_key(self, key: object) -> int | None:
        """Running and completed rows are searched; a queued one only in the rows on screen
        (the queue may hold 100,000)."""
        running = self._rows_running()
        for index, item in enumerate(running):
            if key == (item.execution_id, item.task_id):
                return index
        top = round(self.scroll_offset.y)
        for index in range(max(top, len(running)), min(top + self._visible_rows(), self._count)):
            if self.row_key(index) == key:
                return index
        return None

    def cursor_moved(self, index: int) -> None:
        self.announce(index)
        item = self.item(index)
        if item is not None:
            self.post_message(SelectionChanged(item.execution_id, item.task_id))
