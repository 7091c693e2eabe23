"""Detail screens: an execution (every task with attempts, exit codes, durations, waiting
reasons, processes, and the definition hash it ran) and a task (state, timings, resource
peaks, reported metrics, and its log following, with its own `/` filter). Both re-read
their view at the console's live cadence (once a second, slower over SSH).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static

from l3tui.dashboard.text import STATE_ICONS, Bidi, duration, one_line, size
from l3tui.dashboard.widgets.footer import KeyFooter
from l3tui.dashboard.widgets.log_view import LogView
from l3tui.dashboard.widgets.workflow_status import exec_elapsed, task_elapsed
from l3tui.engine.api import ExecutionView, RuntimeAPI, TaskView

REFRESH_S = 1.0


def _grid(rows: list[tuple[str, str]], columns: int = 2) -> Table:
    table = Table.grid(padding=(0, 2))
    for _ in range(columns):
        table.add_column(style="dim", no_wrap=True)
        table.add_column(no_wrap=True)
    per = -(-len(rows) // columns)
    for n in range(per):
        cells: list[str] = []
        for c in range(columns):
            index = c * per + n
            cells.extend(rows[index] if index < len(rows) else ("", ""))
        table.add_row(*cells)
    return table


class DetailScreen(Screen[None]):
    """Base: a header and a body re-read from the Runtime once a second."""

    BINDINGS: ClassVar[list[Any]] = [Binding("escape", "app.pop_screen", "Back", id="back")]

    def __init__(self, api: RuntimeAPI, execution_id: str, bidi: Bidi,
                 now: Callable[[], float], *, every: float = REFRESH_S) -> None:  # fmt: skip
        super().__init__()
        self.every = every
        """Re-read period: the console's live cadence (slower over SSH)."""
        self.now = now
        self.api = api
        self.execution_id = execution_id
        self.bidi = bidi

    def on_mount(self) -> None:
        self.reload()
        self.set_interval(self.every, self.reload)

    def reload(self) -> None:
        view = self.api.execution(self.execution_id)
        if view is not None:
            self.show(view, self.now())

    def show(self, view: ExecutionView, now: float) -> None:
        raise NotImplementedError


class ExecutionScreen(DetailScreen):
    """One execution and all its tasks; enter opens the task under the cursor."""

    COLUMNS = ("", "task", "name", "state", "attempt", "exit", "time", "waited", "pid",
               "peak cpu", "peak rss", "after", "reason")  # fmt: skip

    def compose(self) -> ComposeResult:
        yield Static("", classes="detail-header")
        table: DataTable[Any] = DataTable(cursor_type="row", zebra_stripes=True)
        table.add_columns(*self.COLUMNS)
        yield table
        yield KeyFooter()

    def show(self, view: ExecutionView, now: float) -> None:
        header = Text.assemble(
            (f"{self.bidi(view.workflow_name)}", "bold"), f"  {view.workflow_id}  ",
            (f"{STATE_ICONS.get(view.state, '?')} {view.state}", "bold"),
            f"  {view.done_tasks}/{len(view.tasks)} tasks done",
        )  # fmt: skip
        rows = [
            ("execution", view.id), ("trigger", view.trigger),
            ("priority", str(view.priority)), ("resumes", view.parent_id or "—"),
            ("running for" if view.finished_at is None else "took",
             duration(exec_elapsed(view, now))),
            ("created", f"{duration(now - view.created_at)} ago"),
            ("definition", view.definition_hash), ("reason", one_line(view.reason) or "—"),
        ]  # fmt: skip
        static = self.query_one(".detail-header", Static)
        static.update(_stack(header, _grid(rows)))
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        for task in view.tasks:
            table.add_row(*self._cells(task, now), key=task.task_id)
        if view.tasks:
            table.move_cursor(row=min(cursor, len(view.tasks) - 1))

    def _cells(self, task: TaskView, now: float) -> list[str | Text]:
        attempt = f"{task.attempt}/{task.max_attempts}" if task.attempt else "—"
        return [
            STATE_ICONS.get(task.state, "?"), task.task_id, self.bidi(task.name), task.state,
            attempt, "" if task.exit_code is None else str(task.exit_code),
            duration(task_elapsed(task, now)), duration(task.wait_s) if task.wait_s else "",
            str(task.pid) if task.pid and task.state in ("running", "paused")
            else self.bidi(task.worker),  # a Dask worker's name where it ran elsewhere
            f"{task.peak_cpu_pct:.0f}%" if task.peak_cpu_pct else "",
            size(task.peak_rss) if task.peak_rss else "", ", ".join(task.dependencies),
            Text(one_line(task.reason or task.last_line), no_wrap=True, overflow="ellipsis"),
        ]  # fmt: skip

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        task_id = event.row_key.value
        if task_id is not None:
            self.app.push_screen(
                TaskScreen(self.api, self.execution_id, task_id, self.bidi, self.now)
            )


class TaskScreen(DetailScreen):
    """One task: its figures on top, its log below (following). `/` filters the log's lines
    (case-insensitive regex; text that is not a regex matches as written); Escape clears the
    filter, and with no filter goes back."""

    BINDINGS: ClassVar[list[Any]] = [
        Binding("escape", "back", "Back", id="back"),
        Binding("slash", "filter", "Filter", id="filter"),
    ]

    def __init__(self, api: RuntimeAPI, execution_id: str, task_id: str, bidi: Bidi,
                 now: Callable[[], float], *, every: float = REFRESH_S) -> None:  # fmt: skip
        super().__init__(api, execution_id, bidi, now, every=every)
        self.task_id = task_id

    def compose(self) -> ComposeResult:
        yield Static("", classes="detail-header")
        view = self.api.execution(self.execution_id)
        task = _task(view, self.task_id) if view else None
        log = LogView(pinned=(self.execution_id, self.task_id),
                      log_path=task.log_path if task else None, classes="detail-log")  # fmt: skip
        log.bidi = self.bidi
        log.border_title = f"log of {self.task_id}"
        yield log
        box = Input(placeholder="filter the log: text or regex, enter applies, esc clears",
                    classes="log-filter")  # fmt: skip
        box.display = False
        yield box
        yield KeyFooter()

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(LogView).focus()

    def show(self, view: ExecutionView, now: float) -> None:
        task = _task(view, self.task_id)
        if task is None:
            return
        live = task.state in ("running", "paused")
        header = Text.assemble(
            (self.bidi(task.name), "bold"), f"  {task.task_id} of {view.workflow_id} {view.id}  ",
            (f"{STATE_ICONS.get(task.state, '?')} {task.state}", "bold"),
        )  # fmt: skip
        rows = [
            ("attempt", f"{task.attempt}/{task.max_attempts}"),
            ("exit code", "—" if task.exit_code is None else str(task.exit_code)),
            ("ran", duration(task_elapsed(task, now)) or "—"),
            ("waited", duration(task.wait_s) or "—"),
            ("priority", str(task.priority)),
            ("depends on", ", ".join(task.dependencies) or "—"),
            ("process", f"pid {task.pid} (own process group)" if task.pid and live else "—"),
            *([("worker", self.bidi(task.worker) + " (Dask)")] if task.worker else []),
            ("cpu now", f"{task.cpu_pct:.0f}%" if live else "—"),
            ("peak cpu", f"{task.peak_cpu_pct:.0f}%" if task.peak_cpu_pct else "—"),
            ("rss now", size(task.rss) if live and task.rss else "—"),
            ("peak rss", size(task.peak_rss) if task.peak_rss else "—"),
            ("reason", one_line(task.reason) or "—"),
        ]
        rows += [(f"metric {k}", f"{v:g}") for k, v in task.metrics]
        rows.append(("log", task.log_path or "—"))
        self.query_one(".detail-header", Static).update(_stack(header, _grid(rows)))
        log = self.query_one(LogView)
        # named by its id, as its title: the header above gives the name
        log.follow((view.id, task.task_id), task.log_path, task.task_id,
                   attempt=task.attempt, live=live)  # fmt: skip
        log.border_subtitle = log.summary()

    def on_log_lines_arrived(self) -> None:
        log = self.query_one(LogView)
        log.border_subtitle = log.summary()

    # ------------------------------------------------------------------ filter

    def action_filter(self) -> None:
        box = self.query_one(".log-filter", Input)
        box.display = True
        box.focus()

    def action_back(self) -> None:
        box = self.query_one(".log-filter", Input)
        if box.display or self.query_one(LogView).filter is not None:
            self._clear_filter()
        else:
            self.app.pop_screen()

    def _clear_filter(self) -> None:
        box = self.query_one(".log-filter", Input)
        box.value = ""
        box.display = False
        self._apply(None)
        self.query_one(LogView).focus()

    @on(Input.Changed, ".log-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._apply(log_filter(event.value))

    @on(Input.Submitted, ".log-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        pattern = log_filter(event.value)
        self._apply(pattern)
        if pattern is None:
            event.input.display = False
        self.query_one(LogView).focus()

    def _apply(self, pattern: re.Pattern[str] | None) -> None:
        log = self.query_one(LogView)
        log.set_filter(pattern)
        log.border_subtitle = log.summary()


def log_filter(text: str) -> re.Pattern[str] | None:
    """What the log's filter box means: nothing for no text; a case-insensitive regex; text
    that is not a regex (`[error`, `a(b`) as itself."""
    if not text:
        return None
    try:
        return re.compile(text, re.IGNORECASE)
    except re.error:
        return re.compile(re.escape(text), re.IGNORECASE)


def _task(view: ExecutionView | None, task_id: str) -> TaskView | None:
    if view is None:
        return None
    return next((t for t in view.tasks if t.task_id == task_id), None)


def _stack(*renderables: Any) -> Table:
    table = Table.grid()
    table.add_column()
    for item in renderables:
        table.add_row(item)
    return table
