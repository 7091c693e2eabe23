"""`l3tui run WORKFLOW [-p k=v]`: run one workflow to the end, headless.

On a terminal a live tree (one line per task: state, name, attempt, duration, last output
line); otherwise plain timestamped lines (task output prefixed with the task id), or JSON
lines with `--json`. Exit 0 succeeded, 1 failed or cancelled, 130 interrupted. The first
Ctrl-C (or SIGTERM) cancels: every task's process group gets SIGTERM, then SIGKILL after
the grace period; a second Ctrl-C kills at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from l3tui import textdir
from l3tui.config import Config, load_config, resolve_config_dir, resolve_state_dir
from l3tui.config.durations import format_ms
from l3tui.engine import events as ev
from l3tui.engine.api import ExecutionView, OpResult, TaskView
from l3tui.engine.bus import Subscription
from l3tui.errors import UsageError

if TYPE_CHECKING:
    from l3tui.runtime import Runtime

ICONS = {
    "pending": ("·", "dim"), "waiting": ("…", "dim"), "queued": ("◌", "cyan"),
    "running": ("▶", "bold blue"), "paused": ("‖", "yellow"), "retrying": ("↻", "yellow"),
    "succeeded": ("✓", "green"), "failed": ("✗", "bold red"), "timed_out": ("⏱", "red"),
    "cancelled": ("⊘", "magenta"), "skipped": ("↷", "dim"), "interrupted": ("!", "red"),
}  # fmt: skip
EXIT_FOR = {"succeeded": 0, "failed": 1, "cancelled": 1, "interrupted": 130}


def parse_params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"-p expects KEY=VALUE, got {pair!r}")
        params[key.strip()] = value
    return params


def output_mode(args: argparse.Namespace) -> tuple[str, bool]:
    """(live | plain | json, whether to shape Arabic) for this stdout."""
    mode = "json" if args.json else ("live" if sys.stdout.isatty() else "plain")
    return mode, textdir.resolve(args.bidi) and mode == "live"


def run(args: argparse.Namespace) -> int:
    config = load_config(resolve_config_dir(args.config))
    for warning in config.warnings:
        print(warning, file=sys.stderr)
    params = parse_params(args.param)
    mode, bidi = output_mode(args)

    async def start(rt: Runtime) -> OpResult:
        # Through the Runtime's command, so the run is an audited operator action.
        return await rt.run_workflow(args.workflow, params, trigger="cli")

    return asyncio.run(start_and_follow(config, resolve_state_dir(args.state), start, mode, bidi))


async def start_and_follow(
    config: Config,
    state_dir: Path,
    start: Callable[[Runtime], Awaitable[OpResult]],
    mode: str,
    bidi: bool,
) -> int:
    """Open a Runtime, start an execution with `start`, follow it to the end; the exit code.

    The first Ctrl-C (or SIGTERM) cancels it: SIGTERM to every task's process group, SIGKILL
    after the grace period. A second Ctrl-C kills what is left at once."""
    from l3tui.runtime import Runtime

    loop = asyncio.get_running_loop()
    async with Runtime(config, state_dir) as rt:
        if rt.recovery is not None and rt.recovery.needed:
            print(f"l3tui: {rt.recovery.message()}", file=sys.stderr)
        sub = rt.subscribe("cli", maxsize=100_000)
        started = await start(rt)
        if not started.applied or started.execution_id is None:
            raise UsageError(started.message)
        exec_id = started.execution_id
        interrupted = False

        def on_signal(signum: int) -> None:
            nonlocal interrupted
            if interrupted:  # the second one: no more grace
                for execution in rt.engine.active():
                    for task in execution.tasks.values():
                        if task.pgid and not task.state.terminal:
                            try:
                                os.killpg(task.pgid, signal.SIGKILL)
                            except OSError:
                                pass
                return
            interrupted = True
            name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            print(f"\n{name}: cancelling {exec_id} (Ctrl-C again to kill at once)",
                  file=sys.stderr, flush=True)  # fmt: skip
            rt.engine.cancel(exec_id, actor=f"{rt.actor} ({name})")

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        reporter = {"live": LiveReporter, "plain": PlainReporter, "json": JsonReporter}[mode](
            rt, exec_id, bidi
        )
        done = asyncio.ensure_future(rt.wait(exec_id))
        try:
            await reporter.follow(sub, done)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
        state = done.result().value
        view = rt.execution(exec_id)
        if view is not None:
            reporter.summary(view)
    if interrupted:
        return 130
    return EXIT_FOR.get(state, 1)


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

        self.console = Console(stderr=False, highlight=False)
        self.live = Live(console=self.console, refresh_per_second=8, transient=False,
                         get_renderable=self.render)  # fmt: skip

    def interval(self) -> float:
        return 0.25

    async def follow(self, sub: Subscription, done: asyncio.Future[Any]) -> None:
        with self.live:
            await super().follow(sub, done)
            self.live.refresh()

    def render(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        view = self.rt.execution(self.exec_id)
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
