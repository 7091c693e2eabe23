"""EngineFeed: drains the console's event subscription in batches. It only marks what
changed (the app redraws from a snapshot on its own cadence, never per event), tells the log
views following a task that it printed (they read its log file: the lines in the event are
not handed on), and turns notices into notifications.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from l3tui.engine import events as ev
from l3tui.engine.api import RuntimeAPI

if TYPE_CHECKING:
    from l3tui.dashboard.widgets.log_view import LogView, TaskKey

STATE_EVENTS = (
    ev.ExecutionCreated, ev.ExecutionStarted, ev.ExecutionPaused, ev.ExecutionResumed,
    ev.ExecutionFinished, ev.TaskStateChanged, ev.TaskStarted, ev.TaskRetrying,
    ev.TaskFinished, ev.ScheduleFired, ev.ScheduleChanged, ev.AlertChanged,
)  # fmt: skip


@dataclass(slots=True)
class Dirty:
    """What changed since the last redraw."""

    state: bool = False
    config: bool = False

    def any(self) -> bool:
        return self.state or self.config


Notify = Callable[[str, str], None]
"""notify(message, severity) with severity information / warning / error."""


class EngineFeed:
    """The app's one event subscription, and the hub log views follow tasks through."""

    def __init__(self, api: RuntimeAPI, notify: Notify, poke: Callable[[], None]) -> None:
        self.api = api
        self.notify = notify
        self.poke = poke
        """Called after a batch that changed something (posts a coalescing message)."""
        self.dirty = Dirty()
        self.followers: dict[TaskKey, set[LogView]] = {}
        self._following: dict[int, TaskKey] = {}
        self.events = 0
        self.dropped = 0
        self.skip_config_messages: set[str] = set()
        """Config notices the app already showed (the result of a manual reload)."""

    # ------------------------------------------------------------------ log hub

    def follow(self, view: LogView, key: TaskKey | None) -> None:
        old = self._following.pop(id(view), None)
        if old is not None:
            views = self.followers.get(old)
            if views is not None:
                views.discard(view)
                if not views:
                    del self.followers[old]
        if key is not None:
            self.followers.setdefault(key, set()).add(view)
            self._following[id(view)] = key

    # ------------------------------------------------------------------ events

    async def run(self) -> None:
        sub = self.api.subscribe("console", maxsize=20_000, committed=True)
        try:
            while True:
                try:
                    batch = await sub.get_batch(5000)
                except StopAsyncIteration:
                    return
                self.dropped = sub.dropped
                self.absorb(batch)
        finally:
            sub.close()

    def absorb(self, batch: Sequence[ev.Event]) -> None:
        changed = False
        printed: dict[TaskKey, int] = {}
        for event in batch:
            self.events += 1
            if isinstance(event, ev.TaskOutput):
                key = (event.execution_id, event.task_id)
                printed[key] = max(printed.get(key, 0), event.attempt)
                # the workflow tree shows each running task's last line
                self.dirty.state = changed = True
            elif isinstance(event, STATE_EVENTS):
                self.dirty.state = changed = True
                if isinstance(event, ev.AlertChanged) and event.state == "raised":
                    severity = "error" if event.severity in ("critical", "error") else "warning"
                    self.notify(f"alert: {event.message}", severity)
            elif isinstance(event, ev.SystemNotice):
                self._notice(event)
                changed = True
        for key, attempt in printed.items():  # one poke per task per batch
            for view in tuple(self.followers.get(key, ())):
                view.output_arrived(attempt)
        if changed:
            self.poke()

    def _notice(self, event: ev.SystemNotice) -> None:
        if event.topic == "config":
            self.dirty.config = True
            self.dirty.state = True
            self.notify(event.message, "error" if event.severity == "error" else "information")
        elif event.topic == "daemon":  # the link to the daemon changed: the top bar says so
            self.dirty.state = True
            self.notify(event.message, "error" if event.severity == "error" else "information")
        elif event.severity in ("warning", "error", "critical"):
            self.notify(f"{event.topic}: {event.message}",
                        "warning" if event.severity == "warning" else "error")  # fmt: skip
