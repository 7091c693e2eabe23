"""The `log_view` pane, and the log on a task's screen: one task's output, following.

The task's log file is the one source of lines. The view reads it in a thread, from the end:
never more than `TAIL_BYTES` at a time, whatever `log_cap_mb` let the file grow to, and then
what was appended each time the task prints (a `TaskOutput` event pokes it; at most one read
every `READ_INTERVAL_S`, however fast the task writes). What it jumps over, on opening a big
file or behind a flood, it says in a line where the output is missing. Lines are split and
cleaned by `l3tui.sanitize.split_lines`, as the engine does, so a progress bar is one line in
its last state here, in the workflow tree and in `l3tui logs`; the line still being written
shows as it stands. `/` filters (regex, case-insensitive) and highlights matches; scrolling
up stops following, `End` (or scrolling back to the bottom) resumes.
It never reads a file on the UI thread, and the events it gets carry no lines it would draw.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget

from l3tui.config.schema import LogViewWidget
from l3tui.dashboard import keymap
from l3tui.dashboard.messages import LogLinesArrived
from l3tui.dashboard.text import Bidi, size
from l3tui.dashboard.widgets.base import PaneBody, RefreshContext
from l3tui.engine.api import ExecutionView, RuntimeAPI, TaskView
from l3tui.sanitize import clean, split_lines

TAIL_BYTES = 2 * 1024 * 1024
"""The most one read takes from a log file (its tail; what lies before is skipped)."""
READ_BYTES_PER_LINE = 512
"""A view keeping N lines reads at most N * this (up to TAIL_BYTES)."""
READ_INTERVAL_S = 0.25
MAX_LINE = 64 * 1024
"""As the engine: a line without end longer than this is shown in pieces."""
MAX_WIDTH = 2000
LIVE_STATES = ("running", "paused")

TaskKey = tuple[str, str]


class LogHub(Protocol):
    """Who tells the log views following a task that it printed (the app's feed)."""

    def follow(self, view: LogView, key: TaskKey | None) -> None: ...


class Notice(str):
    """A line the view writes itself (output skipped, a new attempt): drawn dimmed."""

    __slots__ = ()


@dataclass(slots=True)
class LogRead:
    """What one read of a log file found past `offset`."""

    lines: list[str]
    partial: str
    """The last line as it stands, its end not written yet (cleaned)."""
    skipped: int
    """Bytes jumped over before `lines` (not shown)."""
    offset: int
    """Where the next read starts: after the last whole line taken."""
    read: int
    """Bytes read from the file."""
    error: str = ""
    restarted: bool = False
    """The file was shorter than `offset` (truncated): read from its start."""


def read_log(path: str, offset: int, max_lines: int, *, final: bool = False,
             budget: int = TAIL_BYTES) -> LogRead:  # fmt: skip
    """The whole lines of `path` past `offset`: at most its last `budget` bytes and last
    `max_lines` lines, cleaned. `final`: the task writes no more, so a last line without
    its end is taken too. Runs in a thread; reads what the file holds when it starts."""
    restarted = False
    try:
        with open(path, "rb") as fh:
            end_of_file = os.fstat(fh.fileno()).st_size
            if end_of_file < offset:
                offset, restarted = 0, True
            start = max(offset, end_of_file - budget)
            behind = 1 if start > offset else 0  # the byte before: does a line start here?
            fh.seek(start - behind)
            data = fh.read(end_of_file - start + behind)
    except FileNotFoundError:
        if not os.path.isdir(os.path.dirname(path) or "."):
            return LogRead([], "", 0, offset, 0, error=f"the log file is gone: {path}")
        return LogRead([], "", 0, offset, 0)  # created with the first byte of output
    except OSError as exc:
        return LogRead([], "", 0, offset, 0, error=f"log not readable: {exc.strerror or exc}")
    before, data = data[:behind], data[behind:]
    read, at = len(data), start  # at: file position of data[0]
    if behind and before != b"\n":
        cut = data.find(b"\n")  # the first line is cut: start at the next one
        if cut >= 0:
            data = data[cut + 1 :]
            at += cut + 1
    last = data.rfind(b"\n")
    whole, rest = (data[:last], data[last + 1 :]) if last >= 0 else (b"", data)
    if rest and (final or len(rest) > MAX_LINE):
        whole, rest, last = (rest if last < 0 else data), b"", len(data)
    lines: list[str] = []
    if last >= 0:
        keep = max_lines - 1 if at > offset else max_lines  # room for the line saying so
        parts = whole.rsplit(b"\n", keep)
        if len(parts) > keep:  # more lines than the view keeps: skip the oldest too
            at += len(parts[0]) + 1
            whole = whole[len(parts[0]) + 1 :]
        lines = split_lines(whole)
        if len(whole) > MAX_LINE and max(map(len, lines)) > MAX_LINE:
            lines = [line[n : n + MAX_LINE] for line in lines
                     for n in range(0, max(len(line), 1), MAX_LINE)]  # fmt: skip
    partial = clean(rest.decode("utf-8", "replace")) if rest else ""
    return LogRead(lines, partial, at - offset, start + read - len(rest), read,
                   restarted=restarted)  # fmt: skip


def amount(n: int) -> str:
    """Bytes for a sentence: 512 bytes, 3.2 KiB, 1.9 GiB."""
    if n < 1024:
        return f"{n} bytes"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


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
        if not isinstance(lines, (list, tuple)):
            lines = list(lines)
        maxlen = self.lines.maxlen or 0
        if len(lines) > maxlen:
            self.dropped += len(lines) - maxlen  # never kept: count them all the same
            self.first += len(lines) - maxlen
            lines = lines[-maxlen:]
        overflow = max(len(self.lines) + len(lines) - maxlen, 0)
        self.lines.extend(lines)
        self.dropped += overflow
        self.first += overflow
        if lines:
            longest = max(lines, key=len)
            if len(longest) > self.widest:
                self.widest = min(cell_len(longest), MAX_WIDTH)
        return overflow

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
        self.budget = min(self.config.max_lines * READ_BYTES_PER_LINE, TAIL_BYTES)
        self.pinned = pinned
        self.key: TaskKey | None = None
        self.task_name = ""
        self.log_path = log_path
        self.attempt = 0
        self.live = True
        """The task may still write to `log_path` (its last line may be unfinished)."""
        self.following = True
        self.filter: re.Pattern[str] | None = None
        self.matches: deque[int] = deque()
        self.skipped_bytes = 0
        """Bytes of the file(s) not shown: before the tail read, or jumped over."""
        self.bytes_read = 0
        """Bytes read from log files since this view started following its task."""
        self.partial = ""
        self.error = ""
        self.bidi = Bidi(False)
        self.frozen = False
        self._loading = False
        self._offset = 0
        self._generation = 0
        self._finishing: tuple[str, int, int, int] | None = None
        """(path, offset, next attempt, generation) of an attempt's file still to be read to
        its end before the next one's."""
        self._dirty = False
        self._urgent = False
        self._reading = False
        self._last_read = 0.0

    # ------------------------------------------------------------------ which task

    def on_mount(self) -> None:
        if getattr(self.app, "frozen", False):  # a dashboard built while the display is frozen
            self.frozen = True
        if self.pinned is not None:
            self.follow(self.pinned, self.log_path, self.pinned[1])
        # A line still being written (a progress bar) raises no event, and a view behind
        # another screen skipped its reads: look again each second.
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        if self._dirty or (self.live and self.log_path is not None):
            self.poke()

    def refresh_from(self, ctx: RefreshContext) -> None:
        self.bidi = ctx.bidi
        if self.pinned is not None:
            return
        target = self._target(ctx)
        if target is None:
            return
        view, task = target
        self.follow((view.id, task.task_id), task.log_path, task.name, attempt=task.attempt,
                    live=task.state in LIVE_STATES)  # fmt: skip

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

    def follow(self, key: TaskKey, log_path: str | None, name: str, *, attempt: int = 0,
               live: bool = True) -> None:  # fmt: skip
        """Show task `key` (attempt `attempt`, whose output is `log_path`): the tail of its
        log, then what it appends. Cheap when nothing changed: call it on every refresh."""
        self.task_name = name
        if key == self.key and self.log_path is not None and (
            log_path is None or attempt < self.attempt
        ):
            # An older picture of the same task: the committed snapshot a refresh reads can
            # lag the live view the output hub asked. Going back would read the file again
            # under a rule for an attempt that is already shown.
            self.poke()
            return
        self.live = live
        if key != self.key:
            hub: LogHub | None = getattr(self.app, "log_hub", None)
            if hub is not None:
                hub.follow(self, key)
            self.key, self.log_path, self.attempt = key, log_path, attempt
            self._restart()
        elif log_path != self.log_path:  # a new attempt writes a new file
            if self.log_path is not None:
                self._finishing = (self.log_path, self._offset, attempt, self._generation + 1)
            self.log_path, self.attempt = log_path, attempt
            self._offset, self.partial = 0, ""
            self._generation += 1
            self._urgent = True
        else:
            self.attempt = attempt or self.attempt
        self.poke()

    def _restart(self) -> None:
        self._generation += 1
        self.buffer.clear()
        self.matches.clear()
        self.skipped_bytes = self.bytes_read = self._offset = 0
        self.partial = self.error = ""
        self._finishing = None
        self.following = True
        self._loading = self.log_path is not None
        self._urgent = True
        self._update_size()

    def on_unmount(self) -> None:
        hub: LogHub | None = getattr(self.app, "log_hub", None)
        if hub is not None:
            hub.follow(self, None)

    # ------------------------------------------------------------------ reading

    def output_arrived(self, attempt: int) -> None:
        """The hub: the followed task printed (its lines are in the file by now). A file
        this view does not know yet (the task started, or a new attempt did since the last
        refresh, which may be 30 s away) is looked up at once."""
        if (self.log_path is None or attempt != self.attempt) and self.key is not None:
            api: RuntimeAPI | None = getattr(self.app, "api", None)
            view = api.execution(self.key[0]) if api is not None else None
            task = next((t for t in view.tasks if t.task_id == self.key[1]), None) if view else None
            if task is not None:
                self.follow(self.key, task.log_path, self.task_name, attempt=task.attempt,
                            live=task.state in LIVE_STATES)  # fmt: skip
                return
        self.poke()

    def poke(self) -> None:
        """Read what the log file gained: soon, in a thread, one read at a time, paced; not
        while frozen, behind another screen, or hidden (a pane of a dashboard not shown, a
        pane the tabs hide): the refresh that shows it again pokes again."""
        self._dirty = True
        if (self._reading or self.frozen or not self.is_mounted or not self.screen.is_current
                or not self._displayed()):  # fmt: skip
            return
        if self.log_path is None and self._finishing is None:
            if self._loading:
                self._loading = False
                self._changed()
            return
        self._reading = True
        self.run_worker(self._read_loop(), group="log-read", exit_on_error=False)

    def _displayed(self) -> bool:
        node: object = self
        while isinstance(node, Widget):
            if not node.display:
                return False
            node = node.parent
        return True

    async def _read_loop(self) -> None:
        try:
            while self._dirty and not self.frozen:
                if not self._urgent:
                    wait = self._last_read + READ_INTERVAL_S - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)  # a flood: its tail 4 times a second
                self._dirty = self._urgent = False
                await self._read_once()
                self._last_read = time.monotonic()
        finally:
            self._reading = False

    async def _read_once(self) -> None:
        max_lines, budget = self.config.max_lines, self.budget
        if self._finishing is not None:  # the rest of the previous attempt, then a rule
            old_path, old_offset, attempt, generation = self._finishing
            done = await asyncio.to_thread(read_log, old_path, old_offset, max_lines,
                                           final=True, budget=budget)  # fmt: skip
            if self._finishing is None or self._finishing[3] != generation:
                self._dirty = self._urgent = True  # switched again meanwhile
                return
            self._finishing = None
            self._apply(done, from_start=False)
            self._append([Notice(f"── attempt {attempt} ──")])
        path, generation, offset = self.log_path, self._generation, self._offset
        if path is None:
            return
        found = await asyncio.to_thread(read_log, path, offset, max_lines,
                                        final=not self.live, budget=budget)  # fmt: skip
        if generation != self._generation:
            self._dirty = self._urgent = True  # switched task or file meanwhile: read that
            return
        self._apply(found, from_start=offset == 0 and not found.restarted)
        self._offset = found.offset
        self.partial = found.partial
        self._changed()

    def _apply(self, found: LogRead, *, from_start: bool) -> None:
        if self._loading and self.attempt > 1 and self.key is not None:
            self._append([Notice(f"── attempt {self.attempt} (all attempts: "
                                 f"`l3tui logs {self.key[0]} {self.key[1]}`) ──")])  # fmt: skip
        self._loading = False
        self.bytes_read += found.read
        if found.error != self.error:
            self.error = found.error
            if found.error:
                self._append([Notice(found.error)])
        if found.restarted:
            self._append([Notice("── the log file was truncated; read again from its start ──")])
        if found.skipped:
            self.skipped_bytes += found.skipped
            exec_id, task_id = self.key or ("EXEC", "TASK")
            what = ("earlier output not shown" if from_start
                    else "not shown (printed faster than this view reads)")  # fmt: skip
            self._append([Notice(f"… {amount(found.skipped)} {what}; "
                                 f"`l3tui logs {exec_id} {task_id}` for all of it")])  # fmt: skip
        self._append(found.lines)

    def _changed(self) -> None:
        if not self.frozen:
            self._update_size()
        self.post_message(LogLinesArrived())

    def _append(self, lines: Sequence[str]) -> None:
        if not lines:
            return
        start = self.buffer.end
        dropped = self.buffer.extend(lines)
        while self.matches and self.matches[0] < self.buffer.first:
            self.matches.popleft()
        if self.filter is not None:
            pattern = self.filter
            kept = range(max(self.buffer.first - start, 0), len(lines))
            self.matches.extend(start + n for n in kept if pattern.search(lines[n]))
        if dropped and not self.following and self.filter is None:
            self.scroll_to(y=max(self.scroll_offset.y - dropped, 0), animate=False)

    def set_frozen(self, frozen: bool) -> None:
        self.frozen = frozen
        if not frozen:
            self._update_size()
            if self._dirty:
                self.poke()

    # ------------------------------------------------------------------ filter & follow

    def set_filter(self, pattern: re.Pattern[str] | None) -> None:
        self.filter = pattern
        self.matches.clear()
        if pattern is not None:
            self.matches.extend(self.buffer.first + n for n, line in enumerate(self.buffer.lines)
                                if pattern.search(line))  # fmt: skip
        self._update_size()

    def _shows_partial(self) -> bool:
        if not self.partial:
            return False
        return self.filter is None or self.filter.search(self.partial) is not None

    def _row_count(self) -> int:
        rows = len(self.matches) if self.filter is not None else len(self.buffer.lines)
        return rows + self._shows_partial()

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
        rows = self._row_count()
        if index >= rows:
            if index == 0:
                text = self._empty_text()
                style = base + self.get_component_rich_style("log--empty", partial=True)
                return Strip([Segment(text, style)]).crop_extend(0, width, base)
            return Strip.blank(width, base)
        if index == rows - 1 and self._shows_partial():
            raw = self.partial
        elif self.filter is not None:
            raw = self.buffer.at(self.matches[index])
        else:
            raw = self.buffer.at(self.buffer.first + index)
        line = self.bidi(raw)
        if isinstance(raw, Notice):
            style = base + self.get_component_rich_style("log--notice", partial=True)
            segments = [Segment(line, style)]
        else:
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
            parts.append(f"{size(self.skipped_bytes)} not shown")
        if self.filter is not None:
            parts.append(f"/{self.filter.pattern}/ {len(self.matches):,}")
        parts.append("following" if self.following else "paused (End follows)")
        return " · ".join(parts)


def pick_task(view: ExecutionView) -> TaskView:
    """The task whose output matters now: a running one, else the last that started."""
    for task in view.tasks:
        if task.state in LIVE_STATES:
            return task
    started = [t for t in view.tasks if t.started_at is not None]
    if started:
        return max(started, key=lambda t: t.started_at or 0.0)
    return view.tasks[0]
