"""Which console commands apply to what is selected, and the sentence a key says when it
does not (a dimmed key pressed, a refused palette command). Pure policy over a `Situation`
the app gathers (the Runtime's views, what the panes highlight): it sends nothing and
knows no widget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual.actions import parse as parse_action

from l3tui.config.schema import Dashboard
from l3tui.dashboard import keymap
from l3tui.engine.api import (
    TERMINAL_EXEC_STATES,
    TERMINAL_TASK_STATES,
    AlertView,
    ExecutionView,
    TaskView,
)

WRITE_ACTIONS = frozenset({
    "pause", "resume", "cancel", "resume_interrupted", "run_workflow", "start_workflow",
    "ack_alert", "snooze_alert", "toggle_schedule", "reserve", "cancel_reservation",
})  # fmt: skip
"""What a read-only dashboard refuses: everything that changes what runs or what is shown
as handled."""
EXEC_ACTIONS = frozenset({"pause", "resume", "cancel", "resume_interrupted", "details", "logs"})
NOTHING_SELECTED = ("nothing selected: pick an execution or a task in the workflow tree or "
                    "the task queue")  # fmt: skip
ALERT_OK = {"ack_alert": ("raised", "snoozed"), "snooze_alert": ("raised", "acknowledged")}
ALERT_VERB = {"ack_alert": "acknowledge", "snooze_alert": "snooze"}
ALREADY = {"acknowledged": "already acknowledged", "snoozed": "already snoozed",
           "resolved": "resolved"}  # fmt: skip
DESCRIPTIONS = {parse_action(k.action)[1]: k.description for k in keymap.KEYS} | {
    "start_workflow": "Run"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Situation:
    """What the keys are judged against, gathered by the app at one moment."""

    dashboard: Dashboard
    dashboard_name: str
    """As displayed."""
    dashboards: int
    view: ExecutionView | None
    """The selected execution."""
    task: TaskView | None
    """The selected task of it, if a task row was chosen."""
    alerts: Sequence[AlertView]
    highlighted_alert: str | None
    schedule_selected: bool
    focus_filterable: bool
    """The focused pane has a `/` filter."""
    on_dashboards: bool = True
    """No screen (details, a dialog) is on top of the dashboards."""
    reservation_selected: str | None = None
    """The reservation highlighted in the advice pane."""


def verdict(action: str, parameters: tuple[object, ...],
            now: Situation) -> tuple[bool | None, str]:  # fmt: skip
    """(check_action's answer, why not): True applies; None dimmed, pressing it says why;
    False not shown here at all (still with a reason, for the palette and a pressed key)."""
    why = _absent(action, parameters, now)
    if why:
        return False, why
    if action in WRITE_ACTIONS and now.dashboard.permissions.read_only:
        return None, read_only_refusal(now.dashboard_name, DESCRIPTIONS.get(action, action))
    why = _why_not(action, now)
    return (None, why) if why else (True, "")


def _has_pane(dashboard: Dashboard, kind: str) -> bool:
    return any(w.type == kind for w in dashboard.widgets)


def _absent(action: str, parameters: tuple[object, ...], now: Situation) -> str:
    """Why a key is not even shown here ('' when it is)."""
    if action == "resume_interrupted":
        if now.view is None or now.view.state != "interrupted":
            return execution_refusal(action, now.view, None)
    elif action == "toggle_schedule" and not _has_pane(now.dashboard, "schedules"):
        return "s toggles schedules: this dashboard has no schedules pane"
    elif action == "reserve" and not (_has_pane(now.dashboard, "schedules")
                                      or _has_pane(now.dashboard, "advice")):  # fmt: skip
        return "v reserves capacity on a dashboard with a schedules or advice pane"
    elif action == "cancel_reservation" and not _has_pane(now.dashboard, "advice"):
        return "x ends a reservation: this dashboard has no advice pane"
    elif action in ALERT_OK and not _has_pane(now.dashboard, "alerts"):
        return f"{DESCRIPTIONS[action]}: this dashboard has no alerts pane"
    elif action == "filter" and not now.on_dashboards:
        # A pane of a screen behind must not open its filter (the log screen has its own /).
        return "/ filters the dashboards' lists; this screen has its own keys"
    elif action == "dashboard":
        index = parameters[0] if parameters else 0
        if not isinstance(index, int) or not 0 <= index < now.dashboards:
            return f"there is no dashboard {index + 1 if isinstance(index, int) else index}"
    return ""


def _why_not(action: str, now: Situation) -> str:
    """Why a shown key does not apply to the selection now ('' when it does)."""
    if action in EXEC_ACTIONS:
        return execution_refusal(action, now.view, now.task)
    if action in ALERT_OK:
        return alert_choice(action, now.highlighted_alert, now.alerts)[1]
    if action == "toggle_schedule" and not now.schedule_selected:
        return "no schedule highlighted: Tab to the schedules pane and pick one"
    if action == "cancel_reservation" and not now.reservation_selected:
        return "no reservation highlighted: Tab to the advice pane and pick one"
    if action == "filter" and not now.focus_filterable:
        return "the focused pane has no filter: / filters lists and logs"
    return ""


def act_on(view: ExecutionView | None, task: TaskView | None) -> tuple[str, str | None] | None:
    """(execution, task or None) the execution keys act on: the task of a chosen task row,
    the whole execution when it is paused (resume it, not one of its tasks)."""
    if view is None:
        return None
    if task is None or view.state == "paused":
        return view.id, None
    return view.id, task.task_id


def target_label(view: ExecutionView | None, task: TaskView | None) -> str:
    """What the execution keys act on, in words (the palette's help text)."""
    target = act_on(view, task)
    if view is None or target is None:
        return "nothing selected"
    return f"{view.workflow_id} {view.id}" + (f" task {target[1]}" if target[1] else "")


def read_only_refusal(dashboard_name: str, description: str) -> str:
    return (f"{description}: dashboard {dashboard_name!r} is read-only "
            "(permissions: {read_only: true})")  # fmt: skip


def execution_refusal(action: str, view: ExecutionView | None, task: TaskView | None) -> str:
    """'' when `action` applies to the selected execution (or its task), else why not.
    On a paused execution the keys act on the execution, as `_act_on` does."""
    if view is None:
        return NOTHING_SELECTED
    name = f"{view.workflow_id} {view.id}"
    if action == "details":
        return ""
    if action == "logs":
        return "" if view.tasks else f"{name} has no tasks yet"
    if action == "resume_interrupted":
        return ("" if view.state == "interrupted"
                else f"{name} is {view.state}: R resumes interrupted executions")  # fmt: skip
    if task is None or view.state == "paused":
        return _execution_state_refusal(action, name, view.state)
    return _task_refusal(action, f"task {task.task_id} of {name}", task)


def _execution_state_refusal(action: str, name: str, state: str) -> str:
    if state in TERMINAL_EXEC_STATES:
        return f"{name} already {state}"
    if action == "pause":
        if state == "running":
            return ""
        return f"{name} is already paused" if state == "paused" else f"{name} is {state}"
    if action == "resume":
        return "" if state == "paused" else f"{name} is not paused ({state})"
    return ""  # cancel: anything not finished


def _task_refusal(action: str, name: str, task: TaskView) -> str:
    held = task.state == "queued" and "held" in task.reason
    if task.state in TERMINAL_TASK_STATES:
        return f"{name} already {task.state}"
    if action == "pause":
        if task.state in ("running", "queued") and not held:
            return ""
        if task.state == "paused" or held:
            return f"{name} is already {'held' if held else 'paused'}"
        return f"{name} is {task.state}: only running or queued tasks pause"
    if action == "resume":
        return "" if task.state == "paused" or held else f"{name} is not paused ({task.state})"
    return ""  # cancel


def alert_choice(
    action: str, highlighted: str | None, alerts: Sequence[AlertView]
) -> tuple[AlertView | None, str]:
    """(the alert `a` / `z` acts on, '') or (None, why not). The highlighted alert when one
    is; with none highlighted, the only alert the key applies to, never a guess among
    several."""
    allowed = ALERT_OK[action]
    verb = ALERT_VERB[action]
    if highlighted is not None:
        alert = next((a for a in alerts if a.id == highlighted), None)
        if alert is None:
            return None, "the highlighted alert is gone"
        if alert.state not in allowed:
            return None, f"alert {alert.name!r} is {ALREADY.get(alert.state, alert.state)}"
        return alert, ""
    candidates = [a for a in alerts if a.state in allowed]
    if len(candidates) == 1:
        return candidates[0], ""
    if not candidates:
        return None, f"no alert to {verb}"
    return None, (f"{len(candidates)} alerts could be {verb}d: highlight one in the alerts "
                  "pane first (Tab to it, then ↑ ↓)")  # fmt: skip
