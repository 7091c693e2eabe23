"""How `l3tui run` and `l3tui resume` print an execution as it goes: a live tree on a
terminal, timestamped lines otherwise, JSON lines with `--json`; then a summary with the
failed tasks' last log lines. Reads events and views only; it runs nothing."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from l3tui import textdir
from l3tui.config.durations import format_ms
from l3tui.engine import events as ev
from l3tui.engine.api import ExecutionView, TaskView
from l3tui.engine.bus import Subscription

ICONS = {
    "pending": ("·", "dim"), "waiting": ("…", "dim"), "queued": ("◌", "cyan"),
    "running": ("▶", "bold blue"), "paused": ("‖", "yellow"), "retrying": ("↻", "yellow"),
    "succeeded": ("✓", "green"), "failed": ("✗", "bold red"), "timed_out": ("⏱", "red"),
    "cancelled": ("⊘", "magenta"), "skipped": ("↷", "dim"), "interrupted": ("!", "red"),
}  # fmt: skip


def _duration(task: TaskView, now: float) -> str:
    if task.started_at is None:
        return ""
    return format_ms(task.elapsed(now) * 1000)


class Reporter:
    def __init__(self, rt: Any, exec_id: str, bidi: bool) -> None:
        self.rt = rt
        self.exec_id = exec_id
        self.bidi = bidi

    def show(self, text: str) -> str:
        return textdir.display(text, self.bidi)

    async def follow(self, sub: Subscription, done: asyncio.Future[Any]) -> None:
        while not done.done():
            waiter = asyncio.ensure_future(sub.get_batch_wait())
            await asyncio.wait([waiter, done], timeout=self.interval(),
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            if not waiter.done():
                waiter.cancel()
            self.handle(sub.drain())
        self.handle(sub.drain())

    def interval(self) -> float:
        return 1.0

    def handle(self, events: list[ev.Event]) -> None:
        pass

    def summary(self, view: ExecutionView) -> None:
        failed = [t for t in view.tasks if t.state in ("failed", "timed_out")]
        for task in failed:
            print(f"\n--- {task.task_id} ({task.state}: {task.reason}) "
                  f"log: {task.log_path or '-'}", file=sys.stderr)  # fmt: skip
            for line in _tail(task.log_path, 12):
                print(f"  {line}", file=sys.stderr)
        took = format_ms(
            ((view.finished_at or time.time()) - (view.started_at or view.created_at)) * 1000
        )
        counts = ", ".join(f"{n} {s}" for s, n in sorted(view.counts().items()))
        print(f"{view.workflow_id} {view.id}: {view.state} in {took} ({counts})"
              + (f"; {view.reason}" if view.reason and view.state != "succeeded" else ""),
              file=sys.stderr)  # fmt: skip


def _tail(path: str | None, count: int) -> list[str]:
    if not path:
        return []
    from l3tui.sanitize import split_lines

    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(size - 16384, 0))
            data = fh.read()
    except OSError:
        return []
    # split as the engine and the console split (a `\r` progress bar is one line)
    data = data.rstrip(b"\n")
    return split_lines(data)[-count:] if data else []


class PlainReporter(Reporter):
    """Timestamped lines for logs and CI."""

    def handle(self, events: list[ev.Event]) -> None:
        out = []
        for event in events:
            stamp = time.strftime("%H:%M:%S", time.localtime(event.at))
            if isinstance(event, ev.TaskOutput):
                out.extend(f"{stamp} [{event.task_id}] {line}" for line in event.lines)
            elif isinstance(event, ev.TaskStarted):
                out.append(
                    f"{stamp} {event.task_id}: started attempt {event.attempt}"
                    + (f" (pid {event.pid})" if event.pid else "")
                )
            elif isinstance(event, ev.TaskRetrying):
                out.append(
                    f"{stamp} {event.task_id}: attempt {event.attempt} failed "
                    f"({event.error}); retrying in {event.delay_s:g}s"
                )
            elif isinstance(event, ev.TaskFinished):
                extra = f" ({event.reason})" if event.reason else ""
                out.append(
                    f"{stamp} {event.task_id}: {event.state} after "
                    f"{format_ms(event.duration_s * 1000)}{extra}"
                )
            elif isinstance(event, ev.TaskMetric):
                out.append(f"{stamp} {event.task_id}: metric {event.name}={event.value:g}")
            elif isinstance(event, ev.ExecutionStarted):
                out.append(f"{stamp} execution {event.execution_id} started")
            elif isinstance(event, ev.DeadlineMissed):
                out.append(f"{stamp} deadline missed: {event.task_id or 'execution'}")
        if out:
            print("\n".join(out), flush=True)


class JsonReporter(Reporter):
    """One JSON object per event (resource samples left out)."""

    def handle(self, events: list[ev.Event]) -> None:
        out = [json.dumps(e.to_dict(), ensure_ascii=False, default=str) for e in events
               if not isinstance(e, ev.ResourceSampled)]  # fmt: skip
        if out:
            print("\n".join(out), flush=True)

    def summary(self, view: ExecutionView) -> None:
        pass


class LiveReporter(Reporter):
    """A live tree of the execution's tasks, redrawn a few times a second."""

    def __init__(self, rt: Any, exec_id: str, bidi: bool) -> None:
        super().__init__(rt, exec_id, bidi)
        from rich.console import Console
        from rich.live import Live

        self.view: ExecutionView | None = None
        """The newest view of the execution whose states the store has committed."""
        self._pending: asyncio.Future[None] | None = None
        self.console = Console(stderr=False, highlight=False)
        self.live = Live(console=self.console, refresh_per_second=8, transient=False,
                         get_renderable=self.render)  # fmt: skip

    def interval(self) -> float:
        return 0.25

    async def follow(self, sub: Subscription, done: asyncio.Future[Any]) -> None:
        with self.live:
            await super().follow(sub, done)
            await self._committed_view()
            self.live.refresh()

    def handle(self, events: list[ev.Event]) -> None:
        if self._pending is None or self._pending.done():
            self._pending = asyncio.ensure_future(self._committed_view())

    async def _committed_view(self) -> None:
        # A view taken now holds only states whose events are already published; once the
        # store has those, the view may be shown. (Attached to a daemon, the daemon's store
        # committed what it pushed: nothing to wait for here.)
        view = self.rt.execution(self.exec_id)
        await self.rt.bus.durable()
        self.view = view

    def render(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        view = self.view
        now = time.time()
        table = Table.grid(padding=(0, 1))
        table.add_column(width=1)
        table.add_column(no_wrap=True, max_width=34)
        table.add_column(no_wrap=True, justify="right", width=6)
        table.add_column(no_wrap=True, justify="right", width=7)
        table.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
        if view is None:
            return table
        done = view.done_tasks
        header = Text.assemble(
            (f"{view.workflow_id} ", "bold"), (self.show(view.workflow_name), "bold"),
            f"  {view.id}  ", (view.state, _style(view.state)),
            f"  {done}/{len(view.tasks)} tasks  ",
            format_ms((now - (view.started_at or now)) * 1000),
        )  # fmt: skip
        for task in view.tasks:
            icon, style = ICONS.get(task.state, ("?", ""))
            attempt = f"#{task.attempt}" if task.max_attempts > 1 and task.attempt else ""
            detail = (
                task.last_line
                if task.state in ("running", "paused")
                else (task.reason or task.last_line)
            )
            table.add_row(Text(icon, style=style), Text(self.show(task.name), style=style),
                          attempt, _duration(task, now), Text(detail, style="dim"))  # fmt: skip
        from rich.console import Group

        return Group(header, table)


def _style(state: str) -> str:
    return ICONS.get(state, ("", ""))[1]


REPORTERS: dict[str, type[Reporter]] = {
    "live": LiveReporter, "plain": PlainReporter, "json": JsonReporter,
}  # fmt: skip
