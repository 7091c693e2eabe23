"""The `log_view` pane: one task's output, following. History comes from the task's log
file (read in a thread), new lines from `TaskOutput` events; the buffer is bounded and says
how much it dropped. `/` filters by regex and highlights matches; scrolling up stops
following, `End` (or scrolling back to the bottom) resumes. Every line is cleaned of control
sequences before it is drawn.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Protocol

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from l3tui.config.schema import LogViewWidget
from l3tui.dashboard import keymap
from l3tui.dashboard.messages import LogLinesArrived
from l3tui.dashboard.text import Bidi, clean, size
from l3tui.dashboard.widgets.base import PaneBody, RefreshContext
from l3tui.engine.api import ExecutionView, TaskView

READ_BYTES_PER_LINE = 512
READ_CAP = 8 * 1024 * 1024
MAX_WIDTH = 2000

TaskKey = tuple[str, str]


class LogHub(Protocol):
    """Who routes `TaskOutput` events to the log views following a task (the app's feed)."""

    def follow(self, view: LogView, key: TaskKey | None) -> None: ...

    def recent_lines(self, key: TaskKey) -> list[str]: ...


def read_tail(path: str, max_lines: int) -> tuple[list[str], int]:
    """The last `max_lines` lines of a log file, cleaned, and the bytes left unread before."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            total = fh.tell()
            start = max(total - min(max_lines * READ_BYTES_PER_LINE, READ_CAP), 0)
            fh.seek(start)
            data = fh.read()
    except FileNotFoundError:
        return [], 0  # created with the first byte of output: none yet
    except OSError as exc:
        return [f"(log not readable: {exc.strerror or exc})"], 0
    lines = data.decode("utf-8", "replace").splitlines()
    if start and lines:
        lines = lines[1:]  # the first one is cut
    skipped = start
    if len(lines) > max_lines:
        lines = lines[-max_lines:]
    return [clean(line) for line in lines], skipped


def merge_overlap(history: Sequence[str], live: Sequence[str]) -> list[str]:
    """History from the file, then the live lines that are not already at its end."""
    longest = min(len(history), len(live))
    for k in range(longest, 0, -1):
        if history[-k] == live[0] and list(history[-k:]) == list(live[:k]):
            return [*history, *live[k:]]
    return [*history, *live]


class LogBuffer:
    """The last `max_lines` lines; counts what it had to drop."""

    def __init__(self, max_lines: int) -> None:
        self.lines: deque[str] = deque(maxlen=max_lines)
        self.dropped = 0
        self.first = 0
        """Absolute number of the oldest line kept."""
        self.widest = 0

    def extend(self, lines: Iterable[str]) -> int:
        """Append; returns how many old lines fell off the front."""
        before = self.dropped
        maxlen = self.lines.maxlen or 0
        for line in lines:
            if len(self.lines) == maxlen:
                self.dropped += 1
                self.first += 1
            self.lines.append(line)
            if len(line) > self.widest:
                self.widest = min(cell_len(line), MAX_WIDTH)
        return self.dropped - before

    def clear(self) -> None:
        self.lines.clear()
        self.dropped = 0
        self.first = 0
        self.widest = 0

    @property
    def end(self) -> int:
        return self.first + len(self.lines)

    def at(self, absolute: int) -> str:
        return self.lines[absolute - self.first]


class LogView(ScrollView, PaneBody, can_focus=True):
    """Output of one task; follows the console's selection unless pinned to a task."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"log--match", "log--notice", "log--empty"}
    BINDINGS: ClassVar[list[Any]] = keymap.bindings(keymap.LIST_KEYS)
    DEFAULT_CSS = """
    LogView { height: 1fr; }
    """
    filterable = True

    def __init__(self, config: LogViewWidget | None = None, *, pinned: TaskKey | None = None,
                 log_path: str | None = None, **kwargs: str | None) -> None:  # fmt: skip
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.config = config or LogViewWidget(type="log_view")
        self.buffer = LogBuffer(self.config.max_lines)
        self.pinned = pinned
        self.key: TaskKey | None = None
        self.task_name = ""
        self.log_path = log_path
        self.following = True
        self.filter: re.Pattern[str] | None = None
        self.matches: deque[int] = deque()
        self.skipped_bytes = 0
        self.bidi = Bidi(False)
        self.frozen = False
        self._loading = False
        self._pending: list[str] = []
        self._attempt = 0

    # ------------------------------------------------------------------ which task

    def on_mount(self) -> None:
        if self.pinned is not None:
            self.follow(self.pinned, self.log_path, self.pinned[1])

    def refresh_from(self, ctx: RefreshContext) -> None:
        self.bidi = ctx.bidi
        if self.pinned is not None:
            return
        target = self._target(ctx)
        if target is None:
            return
        view, task = target
        key = (view.id, task.task_id)
        if key != self.key or (self.log_path is None and task.log_path):
            self.follow(key, task.log_path, task.name)

    def _target(self, ctx: RefreshContext) -> tuple[ExecutionView, TaskView] | None:
        selection = ctx.selection
        if selection is None:
            return None
        view = ctx.executions.get(selection[0]) or ctx.api.execution(selection[0])
        if view is None or not view.tasks:
            return None
        if selection[1] is not None:
            task = next((t for t in view.tasks if t.task_id == selection[1]), None)
            return (view, task) if task is not None else None
        return view, pick_task(view)

    def follow(self, key: TaskKey, log_path: str | None, name: str) -> None:
        """Show task `key`: its log file's tail, then its live output."""
        hub: LogHub | None = getattr(self.app, "log_hub", None)
        seen = hub.recent_lines(key) if hub is not None else []
        if hub is not None:
            hub.follow(self, key)
        changed = key != self.key
        self.key, self.log_path, self.task_name = key, log_path, name
        if changed:
            self.buffer.clear()
            self.matches.clear()
            self.skipped_bytes = 0
            self.following = True
            self._attempt = 0
            self._append(seen)
        self._pending = list(self.buffer.lines) if log_path else []
        if log_path:
            self._loading = True
            self.run_worker(self._load(log_path), group="log-load", exclusive=True,
                            exit_on_error=False)  # fmt: skip
        self._update_size()

    async def _load(self, path: str) -> None:
        lines, skipped = await asyncio.to_thread(read_tail, path, self.config.max_lines)
        self._loading = False
        merged = merge_overlap(lines, self._pending)
        self._pending = []
        self.buffer.clear()
        self.matches.clear()
        self.skipped_bytes = skipped
        self._append(merged)
        self._update_size()
        self.post_message(LogLinesArrived())

    def on_unmount(self) -> None:
        hub: LogHub | None = getattr(self.app, "log_hub", None)
        if hub is not None:
            hub.follow(self, None)

    # ------------------------------------------------------------------ new output

    def receive(self, lines: Sequence[str], attempt: int) -> None:
        """Called by the hub for each `TaskOutput` batch of the followed task."""
        if self._attempt and attempt != self._attempt:
            lines = [f"── attempt {attempt} ──", *lines]
        self._attempt = attempt
        if self._loading:
            self._pending.extend(lines)
            return
        self._append(lines)
        self.post_message(LogLinesArrived())

    def _append(self, lines: Sequence[str]) -> None:
        start = self.buffer.end
        dropped = self.buffer.extend(lines)
        while self.matches and self.matches[0] < self.buffer.first:
            self.matches.popleft()
        if self.filter is not None:
            for n, line in enumerate(lines):
                absolute = start + n
                if absolute >= self.buffer.first and self.filter.search(line):
                    self.matches.append(absolute)
        if dropped and not self.following and self.filter is None:
            self.scroll_to(y=max(self.scroll_offset.y - dropped, 0), animate=False)

    def on_log_lines_arrived(self, message: LogLinesArrived) -> None:
        if not self.frozen:
            self._update_size()

    def set_frozen(self, frozen: bool) -> None:
        self.frozen = frozen
        if not frozen:
            self._update_size()

    # ------------------------------------------------------------------ filter & follow

    def set_filter(self, pattern: re.Pattern[str] | None) -> None:
        self.filter = pattern
        self.matches.clear()
        if pattern is not None:
            self.matches.extend(self.buffer.first + n for n, line in enumerate(self.buffer.lines)
                                if pattern.search(line))  # fmt: skip
        self._update_size()

    def _row_count(self) -> int:
        return len(self.matches) if self.filter is not None else len(self.buffer.lines)

    def _update_size(self) -> None:
        self.virtual_size = Size(max(self.buffer.widest, self.size.width), self._row_count())
        if self.following:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self.following = new_value >= self.max_scroll_y - 0.5

    def action_last(self) -> None:
        self.following = True
        self.scroll_end(animate=False)

    def action_first(self) -> None:
        self.following = False
        self.scroll_home(animate=False)

    def action_cursor_up(self) -> None:
        self.scroll_up(animate=False)

    def action_cursor_down(self) -> None:
        self.scroll_down(animate=False)

    def action_page_up(self) -> None:
        self.scroll_page_up(animate=False)

    def action_page_down(self) -> None:
        self.scroll_page_down(animate=False)

    def action_toggle_expand(self) -> None:
        pass

    # ------------------------------------------------------------------ drawing

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        base = self.rich_style
        index = scroll_y + y
        if index >= self._row_count():
            if index == 0:
                text = self._empty_text()
                style = base + self.get_component_rich_style("log--empty", partial=True)
                return Strip([Segment(text, style)]).crop_extend(0, width, base)
            return Strip.blank(width, base)
        absolute = self.matches[index] if self.filter is not None else self.buffer.first + index
        line = self.bidi(self.buffer.at(absolute))
        segments = self._segments(line, base)
        return Strip(segments).crop_extend(scroll_x, scroll_x + width, base)

    def _segments(self, line: str, base: Style) -> list[Segment]:
        if self.filter is None:
            return [Segment(line, base)]
        match_style = base + self.get_component_rich_style("log--match", partial=True)
        out: list[Segment] = []
        pos = 0
        for found in self.filter.finditer(line):
            if found.start() == found.end():
                continue
            if found.start() > pos:
                out.append(Segment(line[pos:found.start()], base))
            out.append(Segment(line[found.start():found.end()], match_style))
            pos = found.end()
        out.append(Segment(line[pos:], base))
        return out

    def _empty_text(self) -> str:
        if self.key is None:
            return " select a task (task queue or workflow tree) to see its output"
        if self._loading:
            return " loading…"
        if self.filter is not None:
            return f" no line matches /{self.filter.pattern}/"
        return " no output yet"

    def summary(self) -> str:
        if self.key is None:
            return ""
        parts = [f"{self.bidi(self.task_name or self.key[1])} · {len(self.buffer.lines):,} lines"]
        if self.buffer.dropped:
            parts.append(f"{self.buffer.dropped:,} dropped")
        if self.skipped_bytes:
            parts.append(f"{size(self.skipped_bytes)} earlier in file")
        if self.filter is not None:
            parts.append(f"/{self.filter.pattern}/ {len(self.matches):,}")
        parts.append("following" if self.following else "paused (End follows)")
        return " · ".join(parts)


def pick_task(view: ExecutionView) -> TaskView:
    """The task whose output matters now: a running one, else the last that started."""
    for task in view.tasks:
        if task.state in ("running", "paused"):
            return task
    started = [t for t in view.tasks if t.started_at is not None]
    if started:
        return max(started, key=lambda t: t.started_at or 0.0)
    return view.tasks[0]
