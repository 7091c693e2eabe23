"""ConsoleApp: composition and key routing. One view per dashboard in l3-dashboard.yml
(number keys and the tab bar switch), the refresh cadence, and the keys that turn into
Runtime commands. It talks to the Runtime only through `RuntimeAPI` (snapshots, one event
subscription, commands); pane behaviour lives in widgets/, dialogs in screens/.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import ContentSwitcher, Footer

from l3tui.config.schema import Dashboard, DashboardFile
from l3tui.dashboard import keymap
from l3tui.dashboard.cadence import Cadence, cadence, over_ssh
from l3tui.dashboard.feed import EngineFeed
from l3tui.dashboard.messages import (
    AlertSelected,
    EngineActivity,
    ScheduleSelected,
    SelectionChanged,
)
from l3tui.dashboard.screens.confirm import ConfirmScreen, cancel_text
from l3tui.dashboard.text import STATE_ICONS, Bidi, clean
from l3tui.dashboard.themes import load_themes, themes_dir
from l3tui.dashboard.views import DashboardView
from l3tui.dashboard.widgets.base import RefreshContext
from l3tui.dashboard.widgets.log_view import LogView, pick_task
from l3tui.dashboard.widgets.top_bar import TopBar
from l3tui.engine.api import (
    TERMINAL_EXEC_STATES,
    TERMINAL_TASK_STATES,
    AlertView,
    ExecutionView,
    OpResult,
    RuntimeAPI,
    RuntimeSnapshot,
    TaskView,
)

EXEC_ACTIONS = frozenset({"pause", "resume", "cancel", "resume_interrupted", "details", "logs"})
WRITE_ACTIONS = frozenset({"pause", "resume", "cancel", "resume_interrupted", "run_workflow"})
SNOOZE_S = 1800.0
DEFAULT_DASHBOARDS = DashboardFile.model_validate({"dashboards": {"main": {
    "name": "l3tui", "widgets": [
        {"type": "resource_sparklines", "title": "resources"},
        {"type": "task_queue", "title": "task queue"},
        {"type": "workflow_status", "title": "workflows"},
        {"type": "alerts", "title": "alerts"},
    ]}}})  # fmt: skip
"""Shown when the dashboard file defines none."""


class ConsoleApp(App[None]):
    """The l3tui console."""

    TITLE = "l3tui"
    BINDINGS: ClassVar[list[Any]] = keymap.bindings()
    frozen: reactive[bool] = reactive(False, bindings=True)

    def __init__(
        self,
        api: RuntimeAPI,
        *,
        theme: str = "l3-dark",
        bidi: bool = True,
        ssh: bool | None = None,
        in_process: bool = True,
        keymap_overrides: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        actor: str = "",
    ) -> None:
        super().__init__(css_path=[themes_dir() / "console.tcss"])
        self.api = api
        self.bidi = Bidi(bidi)
        self.ssh = over_ssh() if ssh is None else ssh
        self.in_process = in_process
        self.clock = clock
        self.actor = actor
        self.keymap_overrides = dict(keymap_overrides or {})
        for colours in load_themes():
            self.register_theme(colours)
        self.theme = theme
        self.dashboard_file = self._dashboards()
        self.current_dash = 0
        self.selection: tuple[str, str | None] | None = None
        self.selected_alert: str | None = None
        self.selected_schedule: tuple[str, bool] | None = None
        self.snapshot: RuntimeSnapshot | None = None
        self.executions: dict[str, ExecutionView] = {}
        self.feed = EngineFeed(api, self._notify_from_feed, self._poke)
        self.log_hub = self.feed
        self.pace: Cadence = cadence(1000, self.ssh)
        self._full_timer: Timer | None = None
        self._state_timer: Timer | None = None
        self._last_state = 0.0
        self._binding_state: Any = None
        self._view_list: list[DashboardView] = []
        if self.keymap_overrides:
            self.set_keymap(self.keymap_overrides)

    # ------------------------------------------------------------------ composition

    def _dashboards(self) -> DashboardFile:
        found = self.api.dashboards()
        return found if found.dashboards else DEFAULT_DASHBOARDS

    def _views(self) -> list[DashboardView]:
        dashes = self.dashboard_file.dashboards.items()
        return [DashboardView(dash_id, dash, self.bidi, i)
                for i, (dash_id, dash) in enumerate(dashes)]  # fmt: skip

    def compose(self) -> ComposeResult:
        yield TopBar(id="topbar")
        views = self._views()
        with ContentSwitcher(id="dashboards", initial=views[0].id):
            yield from views
        yield Footer()

    def on_mount(self) -> None:
        self.run_worker(self.feed.run(), name="engine-feed", group="feed", exit_on_error=False)
        self._switch(0)

    @property
    def dashboard(self) -> Dashboard:
        return list(self.dashboard_file.dashboards.values())[self.current_dash]

    def current_view(self) -> DashboardView:
        views = self._view_list
        if not views or not views[0].is_attached:
            views = self._view_list = list(self.query(DashboardView))
        return views[self.current_dash]

    def _switch(self, index: int) -> None:
        views = list(self.query(DashboardView))
        self.current_dash = index = max(0, min(index, len(views) - 1))
        view = views[index]
        self.query_one("#dashboards", ContentSwitcher).current = view.id
        self.pace = cadence(self.dashboard.refresh_interval, self.ssh)
        if self._full_timer is not None:
            self._full_timer.stop()
        self._full_timer = self.set_interval(self.pace.full_s, self._full_tick)
        self.refresh_now(full=True)
        self._show_tabs()
        target = view.first_focusable()
        if target is not None:
            target.focus()

    def on_resize(self) -> None:
        self._show_tabs()

    # ------------------------------------------------------------------ refresh

    def _full_tick(self) -> None:
        self.refresh_now(full=True)

    def _poke(self) -> None:
        self.post_message(EngineActivity())

    def on_engine_activity(self, message: EngineActivity) -> None:
        dirty = self.feed.dirty
        if dirty.config:
            dirty.config = False
            self.run_worker(self._apply_dashboards(), group="rebuild", exclusive=True,
                            exit_on_error=False)  # fmt: skip
        if not dirty.state or self._state_timer is not None:
            return
        wait = self.pace.state_s - (time.monotonic() - self._last_state)
        if wait <= 0:
            self.refresh_now(full=False)
        else:
            self._state_timer = self.set_timer(wait, self._state_due)

    def _state_due(self) -> None:
        self._state_timer = None
        if self.feed.dirty.state:
            self.refresh_now(full=False)

    def refresh_now(self, *, full: bool) -> None:
        """Take one snapshot and redraw the current dashboard's panes from it."""
        if self.frozen or not self.is_running:
            # Not running: shutting down. Its timers still fire while the widgets go away
            # (seen on a loaded machine as NoMatches for the top bar at exit).
            return
        snap = self.api.snapshot(recent=self._recent_needed())
        self.snapshot = snap
        self.executions = {e.id: e for e in snap.executions}
        self.feed.dirty.state = False
        self._last_state = time.monotonic()
        self._default_selection(snap)
        ctx = RefreshContext(snap, self.api, self.bidi, full, self.executions, self.selection)
        view = self.current_view()
        view.refresh_panes(ctx, state_only=not full)
        self.query_one(TopBar).show_status(snap, self.frozen)
        self._maybe_refresh_bindings()
        if full and self.pace.full_s > self.pace.state_s and view.awaiting_data():
            # A chart with nothing drawn yet: try again soon rather than a whole
            # refresh_interval later.
            self.set_timer(self.pace.state_s, self._full_tick)

    def _recent_needed(self) -> int:
        wanted = [getattr(w, "show_recent", 0) for w in self.dashboard.widgets]
        return max([20, *wanted])

    def _default_selection(self, snap: RuntimeSnapshot) -> None:
        if self.selection is not None:
            return
        for view in snap.executions:
            if view.state not in TERMINAL_EXEC_STATES:
                self.selection = (view.id, None)
                return
        if snap.executions:
            self.selection = (snap.executions[0].id, None)

    def _show_tabs(self) -> None:
        names = [self.bidi(d.name) for d in self.dashboard_file.dashboards.values()]
        self.query_one(TopBar).show_tabs(names, self.current_dash)

    def _maybe_refresh_bindings(self) -> None:
        view, task = self._target()
        alerts = tuple(a.state for a in self.snapshot.alerts[:3]) if self.snapshot else ()
        state = (view.state if view else None, task.state if task else None,
                 self.selected_alert, self.selected_schedule, self.frozen, alerts)  # fmt: skip
        if state != self._binding_state:
            self._binding_state = state
            self.refresh_bindings()

    async def _apply_dashboards(self) -> None:
        """A reloaded config changed the dashboard file: rebuild the views."""
        new = self._dashboards()
        if new == self.dashboard_file:
            return
        current_id = list(self.dashboard_file.dashboards)[self.current_dash]
        self.dashboard_file = new
        switcher = self.query_one("#dashboards", ContentSwitcher)
        await switcher.remove_children()
        await switcher.mount_all(self._views())
        self._view_list = []
        ids = list(new.dashboards)
        self._switch(ids.index(current_id) if current_id in ids else 0)

    # ------------------------------------------------------------------ selection

    def on_selection_changed(self, message: SelectionChanged) -> None:
        self.selection = (message.execution_id, message.task_id)
        if self.snapshot is not None:
            ctx = RefreshContext(self.snapshot, self.api, self.bidi, False, self.executions,
                                 self.selection)  # fmt: skip
            for pane in self.current_view().visible_panes():
                if isinstance(pane.body, LogView):
                    pane.refresh_from(ctx)
        self._maybe_refresh_bindings()

    def on_alert_selected(self, message: AlertSelected) -> None:
        self.selected_alert = message.alert_id
        self._maybe_refresh_bindings()

    def on_schedule_selected(self, message: ScheduleSelected) -> None:
        self.selected_schedule = (
            (message.schedule_id, message.enabled) if message.schedule_id else None
        )
        self._maybe_refresh_bindings()

    def _target(self) -> tuple[ExecutionView | None, TaskView | None]:
        if self.selection is None:
            return None, None
        exec_id, task_id = self.selection
        view = self.executions.get(exec_id) or self.api.execution(exec_id)
        if view is None or task_id is None:
            return view, None
        return view, next((t for t in view.tasks if t.task_id == task_id), None)

    def _alert_target(self) -> AlertView | None:
        alerts = self.snapshot.alerts if self.snapshot else ()
        chosen = next((a for a in alerts if a.id == self.selected_alert), None)
        return chosen or next((a for a in alerts if a.state == "raised"), None)

    # ------------------------------------------------------------------ which keys apply

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if isinstance(self.screen, ModalScreen) and action not in ("quit", "help"):
            return False
        if action in WRITE_ACTIONS and self.dashboard.permissions.read_only:
            return False
        if action == "resume_interrupted":
            view, _ = self._target()
            return view is not None and view.state == "interrupted"  # hidden unless it applies
        if action in EXEC_ACTIONS:
            view, task = self._target()
            return True if view is not None and self._applies(action, view, task) else None
        if action == "ack_alert":
            alert = self._alert_target()
            return True if alert and alert.state in ("raised", "snoozed") else None
        if action == "snooze_alert":
            alert = self._alert_target()
            return True if alert and alert.state in ("raised", "acknowledged") else None
        if action == "toggle_schedule":
            if not any(w.type == "schedules" for w in self.dashboard.widgets):
                return False
            return True if self.selected_schedule else None
        if action == "filter":
            pane = self.current_view().focused_pane() if self._views_ready() else None
            return True if pane is not None and pane.body.filterable else None
        if action == "dashboard":
            index = parameters[0] if parameters else 0
            return isinstance(index, int) and index < len(self.dashboard_file.dashboards)
        return True

    def _views_ready(self) -> bool:
        return bool(self._dom_ready) and bool(self.query(DashboardView))

    @staticmethod
    def _applies(action: str, view: ExecutionView, task: TaskView | None) -> bool:
        if action in ("details", "logs"):
            return action == "details" or bool(view.tasks)
        if action == "resume_interrupted":
            return view.state == "interrupted"
        if task is None or view.state == "paused":
            return {
                "pause": view.state == "running",
                "resume": view.state == "paused",
                "cancel": view.state not in TERMINAL_EXEC_STATES,
            }[action]
        return {
            "pause": task.state in ("running", "queued") and "held" not in task.reason,
            "resume": task.state == "paused" or (task.state == "queued" and "held" in task.reason),
            "cancel": task.state not in TERMINAL_TASK_STATES,
        }[action]

    # ------------------------------------------------------------------ commands

    def _report(self, result: OpResult) -> None:
        self.notify(clean(result.message),
                    severity="information" if result.applied else "warning", markup=False)
        self.feed.dirty.state = True
        self.refresh_now(full=False)

    def _act_on(self) -> tuple[str, str | None] | None:
        """(execution, task or None) the execution keys act on."""
        view, task = self._target()
        if view is None:
            return None
        if task is None or view.state == "paused":
            return view.id, None
        return view.id, task.task_id

    async def action_pause(self) -> None:
        target = self._act_on()
        if target is not None:
            self._report(await self.api.pause(*target, actor=self.actor))

    async def action_resume(self) -> None:
        target = self._act_on()
        if target is not None:
            self._report(await self.api.resume(*target, actor=self.actor))

    def action_cancel(self) -> None:
        target = self._act_on()
        if target is None:
            return
        # Fresh from the Runtime, not the last snapshot: the dialog names what will die.
        view = self.api.execution(target[0])
        if view is None:
            return
        title, body, yes = cancel_text(view, target[1], self.bidi)

        async def decided(confirmed: bool | None) -> None:
            if confirmed:
                self._report(await self.api.cancel(*target, actor=self.actor))

        self.push_screen(ConfirmScreen(title, body, yes=yes, no="Keep running"), decided)

    async def action_resume_interrupted(self) -> None:
        view, _ = self._target()
        if view is not None:
            result = await self.api.resume_interrupted(view.id, actor=self.actor)
            if result.execution_id:
                self.selection = (result.execution_id, None)
            self._report(result)

    def action_run_workflow(self) -> None:
        from l3tui.dashboard.screens.run_picker import RunPickerScreen, RunRequest

        async def picked(request: RunRequest | None) -> None:
            if request is None:
                return
            workflow_id, params = request
            result = await self.api.run_workflow(workflow_id, params or None, actor=self.actor)
            if result.execution_id:
                self.selection = (result.execution_id, None)
            self._report(result)

        self.push_screen(RunPickerScreen(self.api.workflows(), self.bidi), picked)

    def action_details(self) -> None:
        from l3tui.dashboard.screens.details import ExecutionScreen, TaskScreen

        view, task = self._target()
        if view is None:
            return
        if task is not None:
            self.push_screen(TaskScreen(self.api, view.id, task.task_id, self.bidi, self.clock))
        else:
            self.push_screen(ExecutionScreen(self.api, view.id, self.bidi, self.clock))

    def action_logs(self) -> None:
        from l3tui.dashboard.screens.details import TaskScreen

        view, task = self._target()
        if view is None or not view.tasks:
            return
        task = task or pick_task(view)
        self.push_screen(TaskScreen(self.api, view.id, task.task_id, self.bidi, self.clock))

    async def action_ack_alert(self) -> None:
        alert = self._alert_target()
        if alert is not None:
            self._report(await self.api.ack_alert(alert.id, actor=self.actor))

    async def action_snooze_alert(self) -> None:
        alert = self._alert_target()
        if alert is not None:
            self._report(await self.api.snooze_alert(alert.id, SNOOZE_S, actor=self.actor))

    async def action_toggle_schedule(self) -> None:
        if self.selected_schedule is None:
            return
        schedule_id, enabled = self.selected_schedule
        current = self.snapshot.schedules if self.snapshot is not None else ()
        enabled = next((s.enabled for s in current if s.id == schedule_id), enabled)
        result = await self.api.set_schedule_enabled(schedule_id, not enabled, actor=self.actor)
        if result.applied:
            self.selected_schedule = (schedule_id, not enabled)
        self._report(result)

    def action_filter(self) -> None:
        pane = self.current_view().focused_pane()
        if pane is not None and pane.body.filterable:
            pane.open_filter()

    def action_freeze(self) -> None:
        self.frozen = not self.frozen

    def watch_frozen(self, frozen: bool) -> None:
        if not self._views_ready():
            return
        for log in self.query(LogView):
            log.set_frozen(frozen)
        if frozen:
            if self.snapshot is not None:
                self.query_one(TopBar).show_status(self.snapshot, self.frozen)
            self.notify("display frozen; the engine keeps running (f to resume)")
        else:
            self.refresh_now(full=True)

    def action_dashboard(self, index: int) -> None:
        if index < len(self.dashboard_file.dashboards) and index != self.current_dash:
            self._switch(index)

    def action_show_pane(self, index: int) -> None:
        self.current_view().show_pane(index)

    def action_help(self) -> None:
        from l3tui.dashboard.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.keymap_overrides))

    async def action_reload(self) -> None:
        result = await self.api.reload_config(actor=self.actor)
        self.feed.skip_config_messages.add(result.message)
        self.notify(result.message, severity="information" if result.applied else "error",
                    markup=False, timeout=10 if not result.applied else 5)  # fmt: skip

    async def action_quit(self) -> None:
        snap = self.api.snapshot(recent=0)
        active = [e for e in snap.executions if e.state not in TERMINAL_EXEC_STATES]
        if not self.in_process or not active:
            self.exit()
            return

        def decided(confirmed: bool | None) -> None:
            if confirmed:
                self.exit()

        lines = [f"{len(active)} execution(s) run inside this console; quitting cancels them "
                 "(their processes get SIGTERM, then SIGKILL after the grace period):", ""]
        lines += [f"  {STATE_ICONS.get(e.state, '?')} {self.bidi(e.workflow_name)} "
                  f"({e.workflow_id} {e.id})" for e in active[:12]]  # fmt: skip
        if len(active) > 12:
            lines.append(f"  … and {len(active) - 12} more")
        self.push_screen(ConfirmScreen("Quit l3tui?", "\n".join(lines),
                                       yes="Cancel them and quit", no="Stay"), decided)  # fmt: skip

    # ------------------------------------------------------------------ notifications

    def _notify_from_feed(self, message: str, severity: str) -> None:
        if message in self.feed.skip_config_messages:
            self.feed.skip_config_messages.discard(message)
            return
        self.notify(clean(message), severity=severity,  # type: ignore[arg-type]
                    markup=False, timeout=10 if severity == "error" else 5)  # fmt: skip
