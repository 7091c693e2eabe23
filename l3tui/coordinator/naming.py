"""Events as the outside world sees them: each has a dotted type (`execution.failed`,
`alert.raised`, `task.succeeded`) that sink `on:` globs and `l3tui events --type` match,
a JSON record, and a one-line summary for people. Pure functions of an event (or of a
stored event's kind and fields); they decide nothing.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from l3tui.engine import events as ev
from l3tui.sanitize import clean

_FIXED = {
    "execution_created": "execution.created", "execution_started": "execution.started",
    "execution_paused": "execution.paused", "execution_resumed": "execution.resumed",
    "attempt_opened": "task.spawning", "task_started": "task.started",
    "task_retrying": "task.retry_scheduled", "task_output": "task.output",
    "task_metric": "task.metric", "deadline_missed": "deadline.missed",
    "resource_sampled": "resource.sampled", "decision_rejected": "decision.rejected",
    "result_reported": "result.reported", "sink_dropped": "sinks.dropped",
}  # fmt: skip
_BY_FIELD = {
    "execution_finished": ("execution", "state"), "task_state": ("task", "state"),
    "task_finished": ("task", "state"), "operator_action": ("operator", "action"),
    "schedule_fired": ("schedule", "outcome"), "alert_changed": ("alert", "state"),
    "system_notice": ("notice", "topic"), "reservation": ("reservation", "change"),
}  # fmt: skip
_WORD = re.compile(r"[^a-z0-9_-]+")

TYPE_EXAMPLES = (
    "execution.created", "execution.started", "execution.succeeded", "execution.failed",
    "execution.cancelled", "execution.interrupted", "execution.paused", "execution.resumed",
    "task.queued", "task.started", "task.succeeded", "task.failed", "task.timed_out",
    "task.retry_scheduled", "task.output", "task.metric", "deadline.missed", "alert.raised",
    "alert.resolved", "operator.run", "schedule.started", "schedule.enabled",
    "bottleneck.found", "bottleneck.cleared", "resource.sampled", "notice.store",
    "decision.received", "decision.duplicate", "decision.rejected", "decision.acted",
    "decision.failed", "result.reported", "sinks.dropped", "reservation.made",
    "reservation.started", "reservation.ended", "reservation.cancelled",
)  # fmt: skip
"""Types a glob is usually written against (not every one that can occur)."""


def _word(value: Any) -> str:
    return _WORD.sub("_", str(value).lower()).strip("_") or "unknown"


def event_type(kind: str, data: Mapping[str, Any]) -> str:
    """The dotted type of an event of `kind` with fields `data`."""
    fixed = _FIXED.get(kind)
    if fixed is not None:
        return fixed
    by_field = _BY_FIELD.get(kind)
    if by_field is not None:
        return f"{by_field[0]}.{_word(data.get(by_field[1]))}"
    if kind == "schedule_changed":
        return "schedule.enabled" if data.get("enabled") else "schedule.disabled"
    if kind == "bottleneck":
        return "bottleneck.found" if data.get("active") else "bottleneck.cleared"
    if kind == "decision_received":
        return "decision.duplicate" if data.get("duplicate") else "decision.received"
    if kind == "decision_acted":
        return "decision.acted" if data.get("applied") else "decision.failed"
    return _word(kind).replace("_", ".", 1)


def fields_of(event: ev.Event) -> dict[str, Any]:
    """An event's fields as JSON-able values, without the definition an execution ran
    (kept once in the store, by hash)."""
    out: dict[str, Any] = {}
    for name in type(event).__dataclass_fields__:
        if name == "definition":
            continue
        value = getattr(event, name)
        out[name] = list(value) if isinstance(value, tuple) else value
    return out


def record(event: ev.Event) -> dict[str, Any]:
    """What a sink receives: `type`, `kind`, `at` and the event's fields."""
    data = fields_of(event)
    return {"type": event_type(event.kind, data), "kind": event.kind, **data}


class Matcher:
    """Whether an event type (or kind) matches any of some globs; remembers its answers."""

    def __init__(self, globs: Sequence[str]) -> None:
        self.globs = tuple(globs)
        self.everything = "*" in self.globs
        self._known: dict[str, bool] = {}

    def __call__(self, event_type_: str, kind: str = "") -> bool:
        if self.everything:
            return True
        key = f"{event_type_}|{kind}"
        hit = self._known.get(key)
        if hit is None:
            hit = any(fnmatch.fnmatchcase(event_type_, g) or (kind and fnmatch.fnmatchcase(
                kind, g)) for g in self.globs)  # fmt: skip
            if len(self._known) < 10_000:
                self._known[key] = hit
        return hit


@lru_cache(maxsize=64)
def matcher(globs: tuple[str, ...]) -> Matcher:
    return Matcher(globs)


def summary(kind: str, data: Mapping[str, Any]) -> str:
    """One line for people: what happened to what."""
    parts: list[str] = []
    for key in ("execution_id", "workflow_id", "task_id", "decision_id", "alert_id",
                "schedule_id", "reservation_id", "sink"):  # fmt: skip
        value = data.get(key)
        if value:
            parts.append(str(value) if key != "task_id" else f"/{value}")
    text = " ".join(parts).replace(" /", "/")
    detail = ""
    for key in ("reason", "message", "detail", "error", "summary"):
        value = data.get(key)
        if value:
            detail = str(value)
            break
    if kind == "task_metric":
        detail = f"{data.get('name')}={data.get('value')}"
    elif kind == "task_output":
        lines = data.get("lines") or []
        detail = str(lines[-1]) if lines else ""
    elif kind == "decision_acted" and data.get("execution_ids"):
        detail = f"{detail} ({', '.join(map(str, data['execution_ids']))})"
    elif kind == "sink_dropped":
        detail = f"{data.get('dropped')} dropped ({data.get('total')} in all)"
    line = f"{text}: {detail}" if text and detail else (text or detail)
    return clean(line).replace("\n", " ")[:300]
