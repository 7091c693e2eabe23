"""AlertManager: alert rules on metric series plus the built-in alerts raised from events
(execution failed, task timed out, deadline missed, interrupted by a crash, resource
bottleneck, store write failing, event hook failed). Each alert is raised, acknowledged,
snoozed or resolved, and every change is published as an `AlertChanged` event (the store
persists and audits them). Headless: it never imports Textual, and it never blocks
(listeners stay tiny).

Ids (`RULE-N`) are unique in a state directory, not only in one process: a manager made with
`hold=True` keeps the events it is given until `restore` hands it the alerts still active
from earlier runs and the last number used, so an alert raised during crash recovery cannot
take the id (and the stored row) of an older one.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from l3tui.config.schema import AlertRule
from l3tui.engine import events as ev
from l3tui.engine.api import AlertView, OpResult
from l3tui.engine.bus import EventBus

SEVERITY_ORDER = {"critical": 0, "error": 0, "warning": 1, "info": 2}
ACTIVE_STATES = frozenset({"raised", "acknowledged", "snoozed"})
OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}  # fmt: skip

BUILTIN_RULES: dict[str, tuple[str, str]] = {
    # rule id: (display name, severity)
    "execution_failed": ("Execution failed", "warning"),
    "task_timed_out": ("Task timed out", "warning"),
    "deadline_missed": ("Deadline missed", "warning"),
    "execution_interrupted": ("Execution interrupted by a crash", "critical"),
    "resource_bottleneck": ("Resource bottleneck", "warning"),
    "store_write_failing": ("Store writes failing", "critical"),
    "event_hook_failed": ("Event hook failed", "warning"),
}
"""Alerts that need no rule in the dashboard file."""


class SeriesSource(Protocol):
    """Where metric values come from (the MetricsCollector)."""

    def series(
        self, name: str, window_s: float, now: float | None = None
    ) -> list[tuple[float, float]]: ...


@dataclass(slots=True)
class Alert:
    """One alert and where it stands; `key` tells repeats of the same problem apart."""

    id: str
    rule: str
    key: str
    name: str
    severity: str
    state: str
    message: str
    source: str
    raised_at: float
    updated_at: float
    snoozed_until: float | None = None
    count: int = 1

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Alert:
        """An alert as the store kept it (a row of `alerts`)."""
        return cls(id=row["id"], rule=row["rule"], key=row["alert_key"],
                   name=row["name"] or BUILTIN_RULES.get(row["rule"], (row["rule"], ""))[0],
                   severity=row["severity"], state=row["state"], message=row["message"],
                   source=row["source"], raised_at=row["raised_at"],
                   updated_at=row["updated_at"], snoozed_until=row["snoozed_until"],
                   count=row["count"])  # fmt: skip

    def view(self) -> AlertView:
        return AlertView(id=self.id, rule=self.rule, name=self.name, severity=self.severity,
                         state=self.state, message=self.message, source=self.source,
                         raised_at=self.raised_at, updated_at=self.updated_at)  # fmt: skip


class AlertManager:
    """Raises, acknowledges, snoozes and resolves alerts; publishes each change."""

    def __init__(
        self,
        bus: EventBus,
        now: Callable[[], float],
        rules: Sequence[AlertRule],
        series: SeriesSource,
        *,
        fade_s: float = 600.0,
        keep: int = 500,
        hold: bool = False,
    ) -> None:
        self.bus = bus
        self._now = now
        self.rules: tuple[AlertRule, ...] = tuple(rules)
        self.series = series
        self.fade_s = fade_s
        """Resolved alerts stay visible (dimmed) this long."""
        self.keep = keep
        self._alerts: dict[str, Alert] = {}
        self._active: dict[tuple[str, str], Alert] = {}
        self._seq = 0
        self._workflow_of: dict[str, str] = {}
        self._parent_of: dict[str, str] = {}
        self._held: list[ev.Event] | None = [] if hold else None
        """Events that arrived before `restore` (crash recovery publishes while the store
        opens); None once restored, or when nothing is to be restored."""

    def restore(self, alerts: Iterable[Alert], used_ids: Iterable[str]) -> None:
        """Take over the alerts still active from earlier runs and number new ones after
        every id in `used_ids`; then handle the events held until now, in order."""
        self._seq = max([self._seq, *(alert_seq(i) for i in used_ids)])
        for alert in alerts:
            if alert.state in ACTIVE_STATES and alert.key:  # no key: stored before v4
                self._seq = max(self._seq, alert_seq(alert.id))
                if (alert.rule, alert.key) not in self._active:
                    self._alerts[alert.id] = alert
                    self._active[(alert.rule, alert.key)] = alert
        self.set_rules(self.rules)  # an alert of a rule deleted since then resolves
        held, self._held = self._held, None
        for event in held or ():
            self.on_event(event)

    # ------------------------------------------------------------------ rules

    def set_rules(self, rules: Iterable[AlertRule]) -> None:
        """New rules from a reloaded dashboard file; alerts of removed rules resolve."""
        self.rules = tuple(rules)
        kept = {rule.id for rule in self.rules} | set(BUILTIN_RULES)
        for (rule, key), alert in list(self._active.items()):
            if rule not in kept:
                self._resolve(rule, key, "rule removed from the dashboard file")
            elif alert.rule not in BUILTIN_RULES:
                current = next(r for r in self.rules if r.id == rule)
                alert.name = current.name or current.id
                alert.severity = current.severity

    def evaluate(self, now: float | None = None) -> None:
        """Check every metric rule against its series; call about once a second."""
        now = self._now() if now is None else now
        for rule in self.rules:
            self._evaluate_rule(rule, now)
        self._wake_snoozed(now)
        self._prune(now)

    def _evaluate_rule(self, rule: AlertRule, now: float) -> None:
        hold_s = rule.for_ / 1000
        points = self.series.series(rule.metric, hold_s + 120.0, now)
        if not points:
            return
        compare = OPS[rule.op]
        latest_at, latest = points[-1]
        if not compare(latest, rule.threshold):
            if (rule.id, rule.metric) in self._active:
                self._resolve(rule.id, rule.metric,
                              f"{rule.metric} {latest:g} back within {rule.op} {rule.threshold:g}")
            return  # fmt: skip
        since = latest_at
        for at, value in reversed(points):
            if not compare(value, rule.threshold):
                break
            since = at
        if latest_at - since < hold_s:
            return
        held = f" for {_span(latest_at - since)}" if hold_s else ""
        self.raise_alert(
            rule.id, rule.metric,
            message=f"{rule.metric} {latest:g} {rule.op} {rule.threshold:g}{held}"
            + (f": {rule.description}" if rule.description else ""),
            source=f"metric {rule.metric}", name=rule.name or rule.id, severity=rule.severity,
            at=now, repeat=False,
        )  # fmt: skip

    # ------------------------------------------------------------------ built-ins

    LISTENS = (ev.ExecutionCreated, ev.ExecutionFinished, ev.TaskFinished, ev.DeadlineMissed,
               ev.BottleneckChanged, ev.SystemNotice)
    """The events `on_event` looks at (`EventBus.add_listener(..., kinds=LISTENS)`)."""

    def on_event(self, event: ev.Event) -> None:
        """Bus listener: the built-in alerts (of the `LISTENS` events; others are ignored)."""
        if self._held is not None:
            self._held.append(event)
            return
        if isinstance(event, ev.ExecutionCreated):
            self._workflow_of[event.execution_id] = event.workflow_id
            if event.parent_id:
                self._parent_of[event.execution_id] = event.parent_id
        elif isinstance(event, ev.ExecutionFinished):
            self._execution_finished(event)
        elif isinstance(event, ev.TaskFinished) and event.state == "timed_out":
            workflow = self._workflow_of.get(event.execution_id, event.execution_id)
            self.raise_alert(
                "task_timed_out", f"{workflow}/{event.task_id}",
                message=f"{workflow}/{event.task_id} timed out in {event.execution_id}"
                + (f": {event.reason}" if event.reason else ""),
                source=f"execution {event.execution_id}", at=event.at,
            )  # fmt: skip
        elif isinstance(event, ev.DeadlineMissed):
            what = event.task_id or "execution"
            self.raise_alert(
                "deadline_missed", f"{event.execution_id}/{what}",
                message=f"{what} of {event.execution_id} is past its deadline",
                source=f"execution {event.execution_id}", at=event.at,
            )  # fmt: skip
        elif isinstance(event, ev.BottleneckChanged):
            self._bottleneck(event)
        elif isinstance(event, ev.SystemNotice):
            self._notice(event)

    def _execution_finished(self, event: ev.ExecutionFinished) -> None:
        exec_id, workflow = event.execution_id, event.workflow_id
        parent = self._parent_of.pop(exec_id, None)
        self._workflow_of.pop(exec_id, None)
        for rule, key in list(self._active):
            if rule == "deadline_missed" and key.startswith(f"{exec_id}/"):
                self._resolve(rule, key, f"execution ended ({event.state})", event.at)
        if event.state == "failed":
            self.raise_alert(
                "execution_failed", workflow,
                message=f"{workflow} {exec_id} failed"
                + (f": {event.reason}" if event.reason else ""),
                source=f"execution {exec_id}", at=event.at,
            )  # fmt: skip
        elif event.state == "interrupted":
            self.raise_alert(
                "execution_interrupted", exec_id,
                message=f"{workflow} {exec_id} was interrupted"
                + (f": {event.reason}" if event.reason else "")
                + " (R resumes it)",
                source=f"execution {exec_id}", at=event.at,
            )  # fmt: skip
        elif event.state == "succeeded":
            why = f"{workflow} succeeded in {exec_id}"
            self._resolve("execution_failed", workflow, why, event.at)
            for rule, key in list(self._active):
                if rule == "task_timed_out" and key.startswith(f"{workflow}/"):
                    self._resolve(rule, key, why, event.at)
            if parent is not None:
                self._resolve("execution_interrupted", parent, f"resumed as {exec_id}", event.at)

    def _bottleneck(self, event: ev.BottleneckChanged) -> None:
        """A finding of the resource manager: raised while active, resolved when it clears.
        Upgrade suggestions are alerts of severity info (they carry their evidence too)."""
        if not event.active:
            self._resolve("resource_bottleneck", event.finding, "cleared", event.at)
            return
        details = "; ".join(event.evidence[:2])
        message = event.summary + (f" ({details})" if details else "")
        if event.suggestion:
            message += f" — {event.suggestion}"
        severity = "info" if event.finding.startswith("upgrade_") else _severity(
            event.severity, "resource_bottleneck")  # fmt: skip
        self.raise_alert("resource_bottleneck", event.finding, message=message,
                         source="resource manager", at=event.at, severity=severity,
                         name=f"Bottleneck: {event.finding.replace('_', ' ')}",
                         repeat=False)  # fmt: skip

    def _notice(self, event: ev.SystemNotice) -> None:
        if event.topic == "sinks":
            self._hook_notice(event)
            return
        rule = {"recovery": "execution_interrupted", "bottleneck": "resource_bottleneck",
                "store": "store_write_failing"}.get(event.topic)  # fmt: skip
        if rule is None:
            return
        bad = event.severity in ("warning", "error", "critical")
        if rule == "execution_interrupted":
            if bad:
                self.raise_alert(rule, f"recovery:{event.message}", message=event.message,
                                 source="crash recovery", at=event.at)  # fmt: skip
            return
        key = event.topic
        if rule == "resource_bottleneck":
            # findings arrive as "kind: evidence"; one alert per kind of bottleneck
            key = event.message.split(":", 1)[0].strip() or event.topic
        if bad:
            self.raise_alert(rule, key, message=event.message, source=event.topic,
                             at=event.at, severity=_severity(event.severity, rule))  # fmt: skip
        elif rule == "resource_bottleneck" and key == event.topic:
            for active_rule, active_key in list(self._active):
                if active_rule == rule:
                    self._resolve(rule, active_key, event.message, event.at)
        else:
            self._resolve(rule, key, event.message, event.at)

    def _hook_notice(self, event: ev.SystemNotice) -> None:
        """An event hook failed (one alert per sink, raised once: a hook on `alert.raised`
        that fails must not feed itself), or works again (resolved)."""
        sink = event.message.split(":", 1)[0].strip() or "sinks"
        if event.severity in ("warning", "error", "critical"):
            self.raise_alert("event_hook_failed", sink, message=event.message,
                             source="event sinks", at=event.at, repeat=False)  # fmt: skip
        else:
            self._resolve("event_hook_failed", sink, event.message, event.at)

    # ------------------------------------------------------------------ state changes

    def raise_alert(
        self,
        rule: str,
        key: str,
        *,
        message: str,
        source: str,
        at: float | None = None,
        name: str | None = None,
        severity: str | None = None,
        repeat: bool = True,
    ) -> Alert:
        """Raise an alert, or count a repeat of one that is still active."""
        at = self._now() if at is None else at
        default_name, default_severity = BUILTIN_RULES.get(rule, (rule, "warning"))
        existing = self._active.get((rule, key))
        if existing is not None:
            if repeat:
                existing.count += 1
                existing.message = f"{message} ({existing.count} times)"
                existing.updated_at = at
                self._publish(existing, at)
            return existing
        self._seq += 1
        alert = Alert(id=f"{rule}-{self._seq}", rule=rule, key=key, name=name or default_name,
                      severity=severity or default_severity, state="raised", message=message,
                      source=source, raised_at=at, updated_at=at)  # fmt: skip
        self._alerts[alert.id] = alert
        self._active[(rule, key)] = alert
        self._publish(alert, at)
        return alert

    def resolve(self, rule: str, key: str, why: str = "") -> bool:
        return self._resolve(rule, key, why)

    def _resolve(self, rule: str, key: str, why: str, at: float | None = None) -> bool:
        alert = self._active.pop((rule, key), None)
        if alert is None:
            return False
        at = self._now() if at is None else at
        alert.state = "resolved"
        alert.snoozed_until = None
        alert.updated_at = at
        if why:
            alert.message = f"{alert.message} — resolved: {why}"
        self._publish(alert, at)
        return True

    def ack(self, alert_id: str, actor: str) -> OpResult:
        alert = self._alerts.get(alert_id)
        if alert is None:
            result = OpResult(False, f"no alert {alert_id}")
        elif alert.state in ("raised", "snoozed"):
            alert.state = "acknowledged"
            alert.snoozed_until = None
            alert.updated_at = self._now()
            self._publish(alert, alert.updated_at)
            result = OpResult(True, f"alert acknowledged: {alert.name}")
        else:
            result = OpResult(False, f"alert {alert.name} is {alert.state}")
        return self._record("alert.ack", alert_id, result, actor)

    def snooze(self, alert_id: str, seconds: float, actor: str) -> OpResult:
        alert = self._alerts.get(alert_id)
        if alert is None:
            result = OpResult(False, f"no alert {alert_id}")
        elif seconds <= 0:
            result = OpResult(False, "snooze needs a positive duration")
        elif alert.state in ACTIVE_STATES:
            now = self._now()
            alert.state = "snoozed"
            alert.snoozed_until = now + seconds
            alert.updated_at = now
            self._publish(alert, now)
            result = OpResult(True, f"alert snoozed for {_span(seconds)}: {alert.name}")
        else:
            result = OpResult(False, f"alert {alert.name} is {alert.state}")
        return self._record("alert.snooze", alert_id, result, actor)

    def _wake_snoozed(self, now: float) -> None:
        for alert in self._active.values():
            if alert.state == "snoozed" and (alert.snoozed_until or 0) <= now:
                alert.state = "raised"
                alert.snoozed_until = None
                alert.updated_at = now
                self._publish(alert, now)

    def _prune(self, now: float) -> None:
        stale = [a.id for a in self._alerts.values()
                 if a.state == "resolved" and now - a.updated_at > self.fade_s]  # fmt: skip
        for alert_id in stale:
            del self._alerts[alert_id]
        if len(self._alerts) > self.keep:
            oldest = sorted(self._alerts.values(), key=lambda a: (a.state != "resolved",
                                                                  a.updated_at))  # fmt: skip
            for alert in oldest[: len(self._alerts) - self.keep]:
                if alert.state == "resolved":
                    del self._alerts[alert.id]

    def _publish(self, alert: Alert, at: float) -> None:
        self.bus.publish(ev.AlertChanged(at=at, alert_id=alert.id, rule=alert.rule,
                                         state=alert.state, severity=alert.severity,
                                         message=alert.message, source=alert.source,
                                         key=alert.key, name=alert.name, count=alert.count,
                                         snoozed_until=alert.snoozed_until))  # fmt: skip

    def _record(self, action: str, alert_id: str, result: OpResult, actor: str) -> OpResult:
        self.bus.publish(ev.OperatorAction(at=self._now(), action=action, execution_id=None,
                                           task_id=None, target=alert_id,
                                           applied=result.applied, detail=result.message,
                                           actor=actor))  # fmt: skip
        return result

    # ------------------------------------------------------------------ views

    def get(self, alert_id: str) -> Alert | None:
        return self._alerts.get(alert_id)

    def active(self) -> list[Alert]:
        return list(self._active.values())

    def views(self, now: float | None = None) -> tuple[AlertView, ...]:
        """Active alerts (most severe, then newest first), then recently resolved ones."""
        now = self._now() if now is None else now
        live = sorted(self._active.values(),
                      key=lambda a: (a.state != "raised", SEVERITY_ORDER.get(a.severity, 3),
                                     -a.raised_at))  # fmt: skip
        resolved = sorted((a for a in self._alerts.values()
                           if a.state == "resolved" and now - a.updated_at <= self.fade_s),
                          key=lambda a: -a.updated_at)  # fmt: skip
        return tuple(a.view() for a in [*live, *resolved])


def alert_seq(alert_id: str) -> int:
    """The number of an alert id (`execution_failed-12` -> 12); 0 when it has none."""
    tail = alert_id.rpartition("-")[2]
    return int(tail) if tail.isdigit() else 0


def _severity(notice_severity: str, rule: str) -> str:
    if notice_severity in ("error", "critical"):
        return "critical"
    return BUILTIN_RULES[rule][1] if notice_severity != "warning" else "warning"


def _span(value: float) -> str:
    seconds = round(value)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m" + (f"{seconds % 60:02d}s" if seconds % 60 else "")
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
