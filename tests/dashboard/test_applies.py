"""Which console keys apply, and what a key says when it does not (applies.py): pure policy
over views, checked without a terminal."""

from __future__ import annotations

from l3tui.config.schema import DashboardFile
from l3tui.dashboard.applies import Situation, alert_choice, execution_refusal, verdict
from tests.dashboard.snapshot_app import ALERTS, _executions

DASHBOARDS = DashboardFile.model_validate({"dashboards": {
    "ops": {"name": "ops", "widgets": [{"type": "task_queue"}, {"type": "alerts"}]},
    "wall": {"name": "wall", "permissions": {"read_only": True},
             "widgets": [{"type": "schedules"}, {"type": "alerts"}]},
}})  # fmt: skip
RUNNING, PAUSED, FAILED, _ = _executions()


def situation(dash: str = "ops", **changes: object) -> Situation:
    fields: dict[str, object] = dict(
        dashboard=DASHBOARDS.dashboards[dash], dashboard_name=dash, dashboards=2,
        view=RUNNING, task=None, alerts=ALERTS, highlighted_alert=None,
        schedule_selected=False, focus_filterable=True,
    )  # fmt: skip
    fields.update(changes)
    return Situation(**fields)  # type: ignore[arg-type]


def test_execution_keys_say_why_they_do_not_apply() -> None:
    assert execution_refusal("pause", RUNNING, None) == ""
    assert execution_refusal("pause", PAUSED, None).endswith("is already paused")
    assert execution_refusal("resume", RUNNING, None).endswith("is not paused (running)")
    assert execution_refusal("cancel", FAILED, None).endswith("already failed")
    lint = next(t for t in RUNNING.tasks if t.task_id == "lint")
    assert execution_refusal("pause", RUNNING, lint) == ""
    done = next(t for t in RUNNING.tasks if t.state == "succeeded")
    assert "task checkout" in execution_refusal("pause", RUNNING, done)
    assert execution_refusal("pause", None, None).startswith("nothing selected")
    # on a paused execution the keys act on the execution, whatever task row is chosen
    frozen_task = PAUSED.tasks[0]
    assert execution_refusal("resume", PAUSED, frozen_task) == ""


def test_alert_keys_act_on_the_highlighted_alert_or_the_only_one() -> None:
    raised, acknowledged, resolved = ALERTS
    assert alert_choice("ack_alert", raised.id, ALERTS) == (raised, "")
    assert alert_choice("ack_alert", acknowledged.id, ALERTS)[1].endswith(
        "is already acknowledged")  # fmt: skip
    assert alert_choice("snooze_alert", resolved.id, ALERTS)[1].endswith("is resolved")
    assert alert_choice("ack_alert", None, ALERTS) == (raised, "")  # the only raised one
    two = alert_choice("snooze_alert", None, ALERTS)  # raised and acknowledged: which?
    assert two[0] is None and "highlight one" in two[1]
    assert alert_choice("ack_alert", None, ()) == (None, "no alert to acknowledge")


def test_a_read_only_dashboard_dims_every_write_key_and_says_so() -> None:
    wall = situation("wall", schedule_selected=True)
    for action in ("pause", "cancel", "run_workflow", "start_workflow", "toggle_schedule",
                   "ack_alert", "snooze_alert"):
        state, why = verdict(action, (), wall)
        assert state is None and "read-only" in why, action
    assert verdict("details", (), wall) == (True, "")
    assert verdict("freeze", (), wall) == (True, "")


def test_keys_a_dashboard_has_no_pane_for_are_not_shown() -> None:
    ops = situation("ops")
    state, why = verdict("toggle_schedule", (), ops)
    assert state is False and "no schedules pane" in why
    assert verdict("dashboard", (5,), ops)[0] is False
    assert verdict("dashboard", (1,), ops) == (True, "")
    assert verdict("resume_interrupted", (), ops)[0] is False
    assert verdict("filter", (), situation(focus_filterable=False))[0] is None
