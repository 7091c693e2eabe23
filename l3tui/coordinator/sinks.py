"""Event sinks (`events: sinks:` in l3-scheduling.yml): each committed event whose type
matches a sink's `on:` globs is offered to it; a file sink appends it as one JSON line, a
hook sink runs its command once per event with the event on stdin.

Each sink has its own bounded queue and worker, so a slow disk or a hung hook holds neither
the engine nor another sink: past the bound an event is dropped and counted, and drops are
reported at most once a second per sink as a `SinkDropped` event. A hook that fails (exit
status, timeout, cannot start) is a notice that raises the `event_hook_failed` alert, which
resolves when that hook works again; it is never a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from l3tui.config.events_schema import EventsSettings, Sink, sink_name
from l3tui.coordinator.hooks import run_hook
from l3tui.coordinator.naming import event_type, fields_of, matcher
from l3tui.engine import events as ev
from l3tui.engine.bus import EventBus, Subscription

log = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, Any], str], asyncio.Task[Any]]
REPORT_EVERY_S = 1.0


def _encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"),
                      default=str).encode() + b"\n"  # fmt: skip


class _Sink:
    """A bounded queue of encoded events and what was dropped from it."""

    def __init__(self, name: str, settings: Sink) -> None:
        self.name = name
        self.settings = settings
        self.matches = matcher(tuple(settings.on))
        self.queue: deque[tuple[str, str, bytes]] = deque()
        """(type, kind, JSON line) waiting."""
        self.dropped_since = 0
        self.dropped_total = 0
        self.delivered = 0
        self.busy = False
        self.wake = asyncio.Event()

    def offer(self, etype: str, kind: str, line: bytes) -> None:
        if len(self.queue) >= self.settings.queue:
            self.dropped_since += 1
            self.dropped_total += 1
            return
        self.queue.append((etype, kind, line))
        self.wake.set()

    async def run(self) -> None:
        raise NotImplementedError


class FileSink(_Sink):
    """Appends each event as a JSON line; rotated past `max_mb` (FILE.1 ...)."""

    def __init__(self, name: str, settings: Sink, state_dir: Path) -> None:
        super().__init__(name, settings)
        assert settings.file is not None
        path = Path(settings.file).expanduser()
        self.path = path if path.is_absolute() else state_dir / path
        self._fd: int | None = None
        self.failing: str | None = None

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.queue:
                batch = [self.queue.popleft()[2] for _ in range(min(len(self.queue), 1000))]
                self.busy = True
                try:
                    await asyncio.to_thread(self._write, b"".join(batch))
                    self.delivered += len(batch)
                    self.failing = None
                except OSError as exc:
                    why = f"{self.path}: {exc.strerror or exc}"
                    if self.failing != why:
                        log.error("event sink %s cannot write %s", self.name, why)
                        self.failing = why
                    self.dropped_since += len(batch)
                    self.dropped_total += len(batch)
                finally:
                    self.busy = False

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
                               | os.O_CLOEXEC, 0o600)  # fmt: skip
        size = os.fstat(self._fd).st_size
        if size and size + len(data) > self.settings.max_mb * 1024 * 1024:
            os.close(self._fd)
            self._fd = None
            for index in range(self.settings.keep, 0, -1):
                source = self.path if index == 1 else Path(f"{self.path}.{index - 1}")
                with contextlib.suppress(FileNotFoundError):
                    os.replace(source, f"{self.path}.{index}")
            self._write(data)
            return
        done = 0
        while done < len(data):
            done += os.write(self._fd, data[done:])

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


class HookSink(_Sink):
    """Runs its command once per event, one at a time, each bounded by its timeout."""

    def __init__(self, name: str, settings: Sink, notice: Callable[[str, str], None]) -> None:
        super().__init__(name, settings)
        self.notice = notice
        self.failed = False
        self.runs = 0

    async def run(self) -> None:
        assert self.settings.command is not None
        argv = list(self.settings.command)
        timeout_s = self.settings.timeout / 1000
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.queue:
                etype, kind, line = self.queue.popleft()
                env = {**os.environ, "L3_EVENT_TYPE": etype, "L3_EVENT_KIND": kind,
                       "L3_SINK": self.name}  # fmt: skip
                self.busy = True
                try:
                    outcome = await run_hook(argv, line, timeout_s, env)
                finally:
                    self.busy = False
                self.runs += 1
                self.delivered += 1
                if not outcome.ok:
                    log.warning("event hook %s (%s) failed: %s", self.name, etype, outcome.detail)
                    self.failed = True
                    self.notice(f"{self.name}: {argv[0]} on {etype}: {outcome.detail}", "error")
                elif self.failed:
                    self.failed = False
                    self.notice(f"{self.name}: {argv[0]} works again", "info")


class EventSinks:
    """Every sink of the config, fed from one committed subscription."""

    def __init__(self, settings: EventsSettings, bus: EventBus, state_dir: Path,
                 now: Callable[[], float]) -> None:  # fmt: skip
        self.bus = bus
        self.now = now
        self.sinks: list[_Sink] = []
        for index, sink in enumerate(settings.sinks):
            name = sink_name(sink, index)
            if sink.file is not None:
                self.sinks.append(FileSink(name, sink, state_dir))
            else:
                self.sinks.append(HookSink(name, sink, self._notice))
        self._sub: Subscription | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._lost_reported = 0

    def start(self, spawn: Spawn) -> None:
        if not self.sinks:
            return
        sinks = self.sinks

        def wanted(event: ev.Event) -> bool:
            etype = event_type(event.kind, _cheap_fields(event))
            return any(s.matches(etype, event.kind) for s in sinks)

        self._sub = self.bus.subscribe("sinks", maxsize=100_000, committed=True, accepts=wanted)
        self._tasks.append(spawn(self._pump(self._sub), "sinks-pump"))
        for sink in sinks:
            self._tasks.append(spawn(sink.run(), f"sink-{sink.name}"))
        self._tasks.append(spawn(self._report_drops(), "sinks-drops"))

    async def _pump(self, sub: Subscription) -> None:
        while True:
            try:
                batch = await sub.get_batch(1000)
            except StopAsyncIteration:
                return
            for event in batch:
                data = fields_of(event)
                etype = event_type(event.kind, data)
                line: bytes | None = None
                for sink in self.sinks:
                    if sink.matches(etype, event.kind):
                        if line is None:
                            line = _encode({"type": etype, "kind": event.kind, **data})
                        sink.offer(etype, event.kind, line)

    async def _report_drops(self) -> None:
        while True:
            await asyncio.sleep(REPORT_EVERY_S)
            self.report_drops()

    def report_drops(self) -> None:
        for sink in self.sinks:
            if sink.dropped_since:
                count, sink.dropped_since = sink.dropped_since, 0
                self.bus.publish(ev.SinkDropped(at=self.now(), sink=sink.name, dropped=count,
                                                total=sink.dropped_total))  # fmt: skip
        lost = self._sub.dropped if self._sub is not None else 0
        if lost > self._lost_reported:
            self.bus.publish(ev.SinkDropped(at=self.now(), sink="*", dropped=lost
                                            - self._lost_reported, total=lost))  # fmt: skip
            self._lost_reported = lost

    def _notice(self, message: str, severity: str) -> None:
        self.bus.publish(ev.SystemNotice(at=self.now(), topic="sinks", message=message,
                                         severity=severity))  # fmt: skip

    async def drain(self, within_s: float = 5.0) -> None:
        """Until what is queued has gone out (bounded: l3tui is stopping)."""
        deadline = time.monotonic() + within_s
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.bus.durable(), within_s)
        while time.monotonic() < deadline and (
            (self._sub is not None and self._sub.pending())
            or any(s.queue or s.busy for s in self.sinks)
        ):
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        if self._sub is not None:
            self._sub.close()
            self._sub = None
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self.report_drops()
        for sink in self.sinks:
            if isinstance(sink, FileSink):
                sink.close()


def _cheap_fields(event: ev.Event) -> dict[str, Any]:
    """The fields an event's type depends on (state, action, outcome, topic, ...)."""
    return {name: getattr(event, name) for name in ("state", "action", "outcome", "topic",
                                                    "enabled", "active", "duplicate",
                                                    "applied") if hasattr(event, name)}
