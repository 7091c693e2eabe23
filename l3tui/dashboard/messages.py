"""Messages between the console's panes and the app: small dataclasses, one line each.
High-rate ones implement `can_replace`, so a burst of engine activity collapses into one.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


@dataclass
class SelectionChanged(Message):
    """A pane's cursor now points at an execution (and maybe one of its tasks)."""

    execution_id: str
    task_id: str | None = None


@dataclass
class AlertSelected(Message):
    """The alerts pane's cursor now points at this alert."""

    alert_id: str | None


@dataclass
class ScheduleSelected(Message):
    """The schedules pane's cursor now points at this recurring task."""

    schedule_id: str | None
    enabled: bool = True


@dataclass
class ReservationSelected(Message):
    """The advice pane's cursor now points at this reservation (None: at something else)."""

    reservation_id: str | None


@dataclass
class EngineActivity(Message):
    """Something happened in the engine since the last redraw (what is in `App.dirty`)."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, EngineActivity)


@dataclass
class LogLinesArrived(Message):
    """New output for a followed task is in its LogBuffer."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, LogLinesArrived)
