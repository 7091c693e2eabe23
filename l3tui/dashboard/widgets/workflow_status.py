"""The `workflow_status` pane: a tree of executions and their tasks, with state icons,
attempts, durations and a progress summary per execution (`show_active`, `show_recent`).
Active executions start expanded; `space` folds or unfolds the one under the cursor.
"""

from __future__ import annotations

import re
from typing import ClassVar

from l3tui.config.schema import WorkflowStatusWidget
from l3tui.dashboard.messages import SelectionChanged
from l3tui.dashboard.text import STATE_ICONS, duration, one_line
from l3tui.dashboard.widgets.base import STATE_CLASSES, Cell, Column, RefreshContext, RowList
from l3tui.engine.api import TERMINAL_EXEC_STATES, ExecutionView, TaskView

BAR = 8


def progress_bar(done: int, total: int, width: int = BAR) -> str:
    filled = round(width * done / total) if total else 0
    return "▰" * filled + "▱" * (width - filled)


def exec_elapsed(view: ExecutionView, now: float) -> float:
    start = view.started_at or view.created_at
    return (view.finished_at or now) - start


def task_elapsed(task: TaskView, now: float) -> float | None:
    if task.started_at is None:
        return None
    return task.elapsed(now)


class WorkflowStatus(RowList):
    """Executions -> tasks."""

    COMPONENT_CLASSES: ClassVar[set[str]] = STATE_CLASSES

    empty_text = "no executions yet (n runs a workflow)"
    COLUMNS: ClassVar[tuple[Column, ...]] = (
        Column("execution / task", 20, flex=3),
        Column("state", 11),
        Column("progress", 14, drop=2),
        Column("time", 7, "right"),
        Column("detail", 12, flex=2, drop=1),
    )

    def __init__(self, config: WorkflowStatusWidget, **kwargs: str | None) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.config = config
        self.at = 0.0
        self.executions: list[ExecutionView] = []
        self.rows: list[tuple[int, int]] = []
        """(execution index, task index or -1) per visible row."""
        self.expanded: dict[str, bool] = {}

    def columns(self) -> tuple[Column, ...]:
        return self.COLUMNS

    def refresh_from(self, ctx: RefreshContext) -> None:
        self.bidi = ctx.bidi
        self.at = ctx.snapshot.at
        active, recent = [], []
        for view in ctx.snapshot.executions:
            if view.state in TERMINAL_EXEC_STATES:
                recent.append(view)
            else:
                active.append(view)
        chosen = (active if self.config.show_active else []) + recent[: self.config.show_recent]
        if self.filter is not None:
            chosen = [v for v in chosen if self._matches(v)]
        if self.unchanged(tuple(map(id, chosen)), ctx):  # views are reused while unchanged
            return
        self.executions = chosen
        self._build_rows()
        self.follow_selection(ctx.selection)
        self.set_row_count(len(self.rows))

    def _matches(self, view: ExecutionView) -> bool:
        assert self.filter is not None
        text = f"{view.id} {view.workflow_id} {view.workflow_name} {view.state} " + " ".join(
            f"{t.task_id} {t.name} {t.state}" for t in view.tasks
        )
        return bool(self.filter.search(text))

    def _is_expanded(self, view: ExecutionView) -> bool:
        return self.expanded.get(view.id, view.state not in TERMINAL_EXEC_STATES)

    def _build_rows(self) -> None:
        rows: list[tuple[int, int]] = []
        for i, view in enumerate(self.executions):
            rows.append((i, -1))
            if self._is_expanded(view):
                rows.extend((i, j) for j in range(len(view.tasks)))
        self.rows = rows

    def _selected_key(self) -> tuple[str, str | None] | None:
        if not (0 <= self.cursor < len(self.rows)) or not self.executions:
            return None
        i, j = self.rows[self.cursor]
        if i >= len(self.executions):
            return None
        view = self.executions[i]
        return view.id, (view.tasks[j].task_id if j >= 0 and j < len(view.tasks) else None)

    def set_filter(self, pattern: re.Pattern[str] | None) -> None:
        self.filter = pattern
        self._signature = None  # the next refresh redraws
        self.cursor = 0

    def action_toggle_expand(self) -> None:
        if not self.rows:
            return
        i, _ = self.rows[self.cursor]
        view = self.executions[i]
        self.expanded[view.id] = not self._is_expanded(view)
        self._build_rows()
        for index, (ri, rj) in enumerate(self.rows):
            if ri == i and rj < 0:
                self.cursor = index
        self.set_row_count(len(self.rows))

    def row_cells(self, index: int) -> tuple[list[Cell], str]:
        i, j = self.rows[index]
        view = self.executions[i]
        if j < 0:
            marker = "▾" if self._is_expanded(view) else "▸"
            done, total = view.done_tasks, len(view.tasks)
            detail = view.reason if view.state != "running" and view.reason else view.id
            state_cls = f"state--{view.state}"
            return [
                (f"{marker} {STATE_ICONS.get(view.state, '?')} {self.bidi(view.workflow_name)}",
                 state_cls if view.state in ("failed", "interrupted") else ""),
                (view.state, state_cls),
                (f"{progress_bar(done, total)} {done}/{total}", ""),
                (duration(exec_elapsed(view, self.at)), ""),
                (one_line(detail), "rowlist--muted"),
            ], ""  # fmt: skip
        task = view.tasks[j]
        branch = "└" if j == len(view.tasks) - 1 else "├"
        state_cls = f"state--{task.state}"
        attempt = (f"attempt {task.attempt}/{task.max_attempts}"
                   if task.max_attempts > 1 and task.attempt else "")  # fmt: skip
        detail = task.last_line if task.state in ("running", "paused") else task.reason
        if task.exit_code not in (None, 0) and task.state in ("failed", "timed_out"):
            detail = f"exit {task.exit_code}" + (f": {detail}" if detail else "")
        return [
            (f"  {branch} {STATE_ICONS.get(task.state, '?')} {self.bidi(task.name)}", ""),
            (task.state, state_cls),
            (attempt, "rowlist--muted"),
            (duration(task_elapsed(task, self.at)), ""),
            (one_line(detail or ""), "rowlist--muted"),
        ], "rowlist--muted" if task.state in ("skipped", "pending") else ""

    def summary(self) -> str:
        active = sum(1 for v in self.executions if v.state not in TERMINAL_EXEC_STATES)
        text = f"{active} active · {len(self.executions) - active} recent"
        if self.filter is not None:
            text += f" · /{self.filter.pattern}/"
        return text

    def row_key(self, index: int) -> object:
        if not 0 <= index < len(self.rows):
            return None
        i, j = self.rows[index]
        view = self.executions[i]
        return view.id, (view.tasks[j].task_id if 0 <= j < len(view.tasks) else None)

    def cursor_moved(self, index: int) -> None:
        self.announce(index)
        key = self._selected_key()
        if key is not None:
            self.post_message(SelectionChanged(key[0], key[1]))
