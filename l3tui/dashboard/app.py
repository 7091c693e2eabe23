"""ConsoleApp: composition and key routing. One view per dashboard in l3-dashboard.yml
(number keys and the tab bar switch), the refresh timers (live figures every second,
history charts at `refresh_interval`: cadence.py), and the keys and palette commands that
turn into Runtime commands. It talks to the Runtime only through `RuntimeAPI` (snapshots,
one event subscription, commands); which command applies and why not is applies.py's,
pane behaviour lives in widgets/, dialogs in screens/.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from textual import events
from textual.actions import ActionParseResult
from textual.actions import parse as parse_action
from textual.app import App, ComposeResult
from textual.dom import DOMNode
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen
from textual.timer import Timer
from textual.widgets import ContentSwitcher

from l3tui.config.schema import Dashboard, DashboardFile
from l3tui.dashboard import keymap
from l3tui.dashboard.applies import Situation, act_on, alert_choice, target_label, verdict
from l3tui.dashboard.cadence import Cadence, cadence, over_ssh
from l3tui.dashboard.feed import EngineFeed
from l3tui.dashboard.messages import (
    AlertSelected,
    EngineActivity,
    ReservationSelected,
    ScheduleSelected,
    SelectionChanged,
)
from l3tui.dashboard.palette import ConsoleCommands
from l3tui.dashboard.screens.confirm import ConfirmScreen, Wording, cancel_text, quit_text
from l3tui.dashboard.text import Bidi, clean
from l3tui.dashboard.themes import load_themes, themes_dir
from l3tui.dashboard.views import DashboardView
from l3tui.dashboard.widgets.advice import AdvicePane, holds
from l3tui.dashboard.widgets.alerts import AlertsPane
from l3tui.dashboard.widgets.base import RefreshContext
from l3tui.dashboard.widgets.footer import KeyFooter
from l3tui.dashboard.widgets.log_view import LogView, pick_task
from l3tui.dashboard.widgets.top_bar import TopBar
from l3tui.engine.api import (
    TERMINAL_EXEC_STATES,
    AlertView,
    ExecutionView,
    OpResult,
    ReservationRequest,
    RuntimeAPI,
    RuntimeSnapshot,
    TaskView,
    WorkflowInfo,
)

SNOOZE_S = 1800.0
CONSOLE_ACTIONS = frozenset(
    {parse_action(k.action)[1] for k in keymap.KEYS} | {"start_workflow", "set_theme"}
)
"""The app's own actions; anything else (Textual's focus_next, command_palette) is not
gated here."""
DEFAULT_DASHBOARDS = DashboardFile.model_validate({"dashboards": {"main": {
    "name": "l3tui", "widgets": [
        {"type": "resource_sparklines", "title": "resources"},
        {"type": "task_queue", "title": "task queue"},
        {"type": "workflow_status", "title": "workflows"},
        {"type": "alerts", "title": "alerts"},
    ]}}})  # fmt: skip
"""Shown when the dashboard file defines none."""


class DashboardsScreen(Screen[None]):
    """The screen under the dialogs: the top bar, the dashboards, the footer. What takes
    focus first is a pane body (`_switch` then focuses the dashboard's first focusable one,
    usually the same): Textual's default picked the first pane frame, which handed focus to
    its body, which `_switch` moved again, three restyles of the first paint's panes."""

    AUTO_FOCUS = ".pane-body"
    _resumed = False

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        # Called before Screen's own handler. The first resume follows the compose, which
        # styled every widget as it mounted: Textual's restyle of the whole screen then was
        # the first paint's largest (~15 ms). Later resumes (a dialog closed) restyle.
        if not self._resumed:
            self._resumed = True
            event.refresh_styles = False


class ConsoleApp(App[None]):
    """The l3tui console."""

    TITLE = "l3tui"
    BINDINGS: ClassVar[list[Any]] = keymap.bindings()
    COMMANDS = App.COMMANDS | {ConsoleCommands}
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
        themes = load_themes()
        self.l3_themes = [colours.name for colours in themes]
        """What the palette's Theme commands offer."""
        for colours in themes:
            self.register_theme(colours)
        self.theme = theme
        self.dashboard_file = self._dashboards()
        self.current_dash = 0
        self.selection: tuple[str, str | None] | None = None
        self.selected_schedule: tuple[str, bool] | None = None
        self.snapshot: RuntimeSnapshot | None = None
        self.executions: dict[str, ExecutionView] = {}
        self.feed = EngineFeed(api, self._notify_from_feed, self._poke)
        self.log_hub = self.feed
        self.pace: Cadence = cadence(1000, self.ssh)
        self._chart_timer: Timer | None = None
        self._live_timer: Timer | None = None
        self._last_refresh = 0.0
        self._top_bar: TopBar | None = None
        self._binding_state: Any = None
        self._view_list: list[DashboardView] = []
        if self.keymap_overrides:
            self.set_keymap(self.keymap_overrides)

    # ------------------------------------------------------------------ composition

    def get_default_screen(self) -> Screen[None]:
        return DashboardsScreen(id="_default")

    def _dashboards(self) -> DashboardFile:
        found = self.api.dashboards()
        return found if found.dashboards else DEFAULT_DASHBOARDS

    def _views(self) -> list[DashboardView]:
        dashes = self.dashboard_file.dashboards.items()
        return [DashboardView(dash_id, dash, self.bidi, i)
                for i, (dash_id, dash) in enumerate(dashes)]  # fmt: skip

    def compose(self) -> ComposeResult:
        yield TopBar(id="topbar")
        views = self._view_list = self._views()
        with ContentSwitcher(id="dashboards", initial=views[0].id):
            yield views[0]  # the others are built when first shown: the first paint waits
            # for one dashboard's panes, not for every dashboard's
        yield KeyFooter()

    def on_mount(self) -> None:
        self.run_worker(self.feed.run(), name="engine-feed", group="feed", exit_on_error=False)
        self._switch(0)

    @property
    def top_bar(self) -> TopBar:
        """The top bar (found once: a DOM query every second was ~5 % of a refresh)."""
        if self._top_bar is None:
            self._top_bar = self.query_one(TopBar)
        return self._top_bar

    @property
    def dashboard(self) -> Dashboard:
        return list(self.dashboard_file.dashboards.values())[self.current_dash]

    def current_view(self) -> DashboardView:
        return self._view_list[self.current_dash]

    def _switch(self, index: int) -> None:
        views = self._view_list
        index = max(0, min(index, len(views) - 1))
        view = views[index]
        switcher = self.query_one("#dashboards", ContentSwitcher)
        if view.parent is None:  # never shown yet: build it, then show it
            # Hidden until shown (as ContentSwitcher.add_content does): laid out beside the
            # current one it got half the height (a frame on a busy machine), and the
            # current one a layout and a restyle for nothing.
            view.display = False
            mounted = switcher.mount(view)

            async def built() -> None:
                await mounted
                if view.is_attached and view is self._view_list[index]:
                    self._switch(index)

            self.run_worker(built(), group="dashboard-build", exit_on_error=False)
            return
        if not view.is_mounted:
            return  # being built: it is shown once it is
        self.current_dash = index
        switcher.current = view.id
        self.pace = cadence(self.dashboard.refresh_interval, self.ssh)
        self._start_timers()
        self.refresh_now(full=True)
        self._show_tabs()
        target = view.first_focusable()
        if target is not None:
            target.focus()

    def on_resize(self) -> None:
        self._show_tabs()

    # ------------------------------------------------------------------ refresh

    def _start_timers(self) -> None:
        """Charts every `full_s`; live figures every `live_s` in between (one timer when
        the dashboard's own refresh is already that fast)."""
        for timer in (self._chart_timer, self._live_timer):
            if timer is not None:
                timer.stop()
        self._chart_timer = self.set_interval(self.pace.full_s, self._chart_tick)
        self._live_timer = None
        if self.pace.full_s > self.pace.live_s:
            self._live_timer = self.set_interval(self.pace.live_s, self._live_tick)

    def _chart_tick(self) -> None:
        self.refresh_now(full=True)

    def _live_tick(self) -> None:
        self.refresh_now(full=False)

    def _poke(self) -> None:
        self.post_message(EngineActivity())

    def on_engine_activity(self, message: EngineActivity) -> None:
        dirty = self.feed.dirty
        if dirty.config:
            dirty.config = False
            self.run_worker(self._apply_dashboards(), group="rebuild", exclusive=True,
                            exit_on_error=False)  # fmt: skip
        # A quiet console shows a change at once; a busy one at its next live tick.
        if dirty.state and time.monotonic() - self._last_refresh >= self.pace.live_s:
            self.refresh_now(full=False)

    def refresh_now(self, *, full: bool) -> None:
        """Take one snapshot and redraw from it: the top bar and the live panes always, the
        history charts too when `full`. One snapshot: one reading, shown the same in the
        top bar, the sparklines and the chart legends."""
        if self.frozen or not self.is_running or not self._has_views():
            return  # (not running: shutting down, its widgets are being taken apart)
        # What the console shows as done is on disk (a picture the store has confirmed).
        view = self.current_view()
        snap = self.api.snapshot(recent=view.recent_needed, committed=True)
        self.snapshot = snap
        self.executions = {e.id: e for e in snap.executions}
        self.feed.dirty.state = False
        self._last_refresh = time.monotonic()
        self._default_selection(snap)
        ctx = RefreshContext(snap, self.api, self.bidi, full, self.executions, self.selection)
        view.refresh_panes(ctx)
        self.top_bar.show_status(snap, self.frozen)
        self._maybe_refresh_bindings()

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
        self.top_bar.show_tabs(names, self.current_dash)

    def _maybe_refresh_bindings(self) -> None:
        """Refresh the footer when a key's state (shown, dimmed, hidden) changed."""
        now = self._situation()
        state = (self.frozen, *(verdict(a, (), now)[0] for a in sorted(CONSOLE_ACTIONS)
                                if a not in ("dashboard", "start_workflow", "set_theme")))
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
        ids = list(new.dashboards)
        index = ids.index(current_id) if current_id in ids else 0
        self._view_list = self._views()
        await switcher.mount(self._view_list[index])
        self.current_dash = index
        self._switch(index)

    # ------------------------------------------------------------------ selection

    def on_selection_changed(self, message: SelectionChanged) -> None:
        self.selection = (message.execution_id, message.task_id)
        if self.snapshot is not None and self._views_ready():
            ctx = RefreshContext(self.snapshot, self.api, self.bidi, False, self.executions,
                                 self.selection)  # fmt: skip
            for pane in self.current_view().visible_panes():
                if isinstance(pane.body, LogView):
                    pane.refresh_from(ctx)
        self._maybe_refresh_bindings()

    def on_alert_selected(self, message: AlertSelected) -> None:
        self._maybe_refresh_bindings()

    def on_reservation_selected(self, message: ReservationSelected) -> None:
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

    def _alert_choice(self, action: str) -> tuple[AlertView | None, str]:
        """The alert `a` / `z` acts on (the one highlighted in the alerts pane), or why
        there is none."""
        now = self._situation()
        return alert_choice(action, now.highlighted_alert, now.alerts)

    def selection_label(self) -> str:
        return target_label(*self._target())

    def workflow_infos(self) -> Sequence[WorkflowInfo]:
        return self.api.workflows()

    def theme_names(self) -> Sequence[str]:
        return self.l3_themes

    # ------------------------------------------------------------------ which keys apply

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action not in CONSOLE_ACTIONS:  # Textual's own: tab in a dialog, the palette
            return True
        if isinstance(self.screen, ModalScreen):  # a dialog's keys are its own
            return False
        return self.command_state(action, parameters)

    def command_state(self, action: str, parameters: tuple[object, ...] = ()) -> bool | None:
        """True: applies now; None: dimmed (pressing it says why); False: not shown."""
        return self._verdict(action, parameters)[0]

    def _verdict(self, action: str, parameters: tuple[object, ...]) -> tuple[bool | None, str]:
        return verdict(action, parameters, self._situation())

    def _situation(self) -> Situation:
        """What the keys are judged against now (applies.py judges)."""
        view, task = self._target()
        current = self.current_view() if self._views_ready() else None
        alerts_pane = current.body_of(AlertsPane) if current is not None else None
        advice_pane = current.body_of(AdvicePane) if current is not None else None
        reservation = advice_pane.selected_reservation() if advice_pane else None
        focused = current.focused_pane() if current is not None else None
        return Situation(
            dashboard=self.dashboard, dashboard_name=self.bidi(self.dashboard.name),
            dashboards=len(self.dashboard_file.dashboards), view=view, task=task,
            alerts=self.snapshot.alerts if self.snapshot is not None else (),
            highlighted_alert=alerts_pane.highlighted_id() if alerts_pane else None,
            schedule_selected=self.selected_schedule is not None,
            focus_filterable=focused is not None and focused.body.filterable,
            on_dashboards=current is not None and current.screen.is_active,
            reservation_selected=reservation.id if reservation is not None else None,
        )  # fmt: skip

    def _views_ready(self) -> bool:
        return bool(self._dom_ready) and self._has_views()

    def _has_views(self) -> bool:
        """The current dashboard is built and mounted (the others are built when first
        shown; a config reload replaces them)."""
        views = self._view_list
        return bool(views) and views[self.current_dash].is_attached and views[
            self.current_dash].is_mounted  # fmt: skip

    async def run_action(self, action: str | ActionParseResult,
                         default_namespace: DOMNode | None = None,
                         namespaces: Mapping[str, DOMNode] | None = None) -> bool:  # fmt: skip
        """As Textual's, except that a console key that does not apply says why rather than
        doing nothing in silence (a dimmed `a` on an alert already acknowledged)."""
        if await super().run_action(action, default_namespace, namespaces):
            return True
        if (not isinstance(action, str) or default_namespace not in (None, self)
                or isinstance(self.screen, ModalScreen)):  # fmt: skip
            return False
        namespace, name, parameters = parse_action(action)
        why = self._verdict(name, parameters)[1] if not namespace else ""
        if name in CONSOLE_ACTIONS and why:
            self.notify(why, severity="warning", markup=False)
            return True
        return False

    async def perform(self, action: str) -> None:
        """Run a console action as its key would (the palette's commands), or say why not."""
        _namespace, name, parameters = parse_action(action)
        state, why = self._verdict(name, parameters)
        if state is not True:
            self.notify(why or f"{name}: does not apply now", severity="warning", markup=False)
            return
        result = getattr(self, f"action_{name}")(*parameters)
        if inspect.isawaitable(result):
            await result

    # ------------------------------------------------------------------ commands

    def _report(self, result: OpResult) -> None:
        self.notify(clean(result.message),
                    severity="information" if result.applied else "warning", markup=False)
        self.feed.dirty.state = True
        self.refresh_now(full=False)

    def _act_on(self) -> tuple[str, str | None] | None:
        return act_on(*self._target())

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

        def wording() -> Wording:
            # Fresh from the Runtime, and again every live tick while the dialog is open:
            # it names what will die now, not what was running when it opened.
            view = self.api.execution(target[0])
            if view is None:
                return Wording(f"Cancel {target[0]}?", "It is gone: nothing to cancel.", "OK")
            return cancel_text(view, target[1], self.bidi)

        async def decided(confirmed: bool | None) -> None:
            if confirmed:
                self._report(await self.api.cancel(*target, actor=self.actor))

        first = wording()
        self.push_screen(ConfirmScreen(first.title, first.body, yes=first.yes, no="Keep running",
                                       follow=wording, every=self.pace.live_s),
                         decided)  # fmt: skip

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
            if request is not None:
                await self._start(*request)

        self.push_screen(RunPickerScreen(self.api.workflows(), self.bidi), picked)

    async def action_start_workflow(self, workflow_id: str) -> None:
        """Run one workflow by id (the palette); a template asks for its params first."""
        from l3tui.dashboard.screens.run_picker import ParamsScreen

        info = next((w for w in self.api.workflows() if w.id == workflow_id), None)
        if info is None:
            self.notify(f"no workflow {workflow_id!r}", severity="warning", markup=False)
        elif info.is_template and info.params:

            async def given(values: dict[str, Any] | None) -> None:
                if values is not None:
                    await self._start(workflow_id, values)

            self.push_screen(ParamsScreen(info, self.bidi), given)
        else:
            await self._start(workflow_id, {})

    async def _start(self, workflow_id: str, params: dict[str, Any]) -> None:
        result = await self.api.run_workflow(workflow_id, params or None, actor=self.actor)
        if result.execution_id:
            self.selection = (result.execution_id, None)
        self._report(result)

    def action_details(self) -> None:
        from l3tui.dashboard.screens.details import ExecutionScreen, TaskScreen

        view, task = self._target()
        if view is None:
            return
        every = self.pace.live_s
        if task is not None:
            self.push_screen(TaskScreen(self.api, view.id, task.task_id, self.bidi, self.clock,
                                        every=every))  # fmt: skip
        else:
            self.push_screen(ExecutionScreen(self.api, view.id, self.bidi, self.clock,
                                             every=every))  # fmt: skip

    def action_logs(self) -> None:
        from l3tui.dashboard.screens.details import TaskScreen

        view, task = self._target()
        if view is None or not view.tasks:
            return
        task = task or pick_task(view)
        self.push_screen(TaskScreen(self.api, view.id, task.task_id, self.bidi, self.clock,
                                    every=self.pace.live_s))  # fmt: skip

    async def action_ack_alert(self) -> None:
        alert, why = self._alert_choice("ack_alert")
        if alert is None:
            self.notify(why, severity="warning", markup=False)
        else:
            self._report(await self.api.ack_alert(alert.id, actor=self.actor))

    async def action_snooze_alert(self) -> None:
        alert, why = self._alert_choice("snooze_alert")
        if alert is None:
            self.notify(why, severity="warning", markup=False)
        else:
            self._report(await self.api.snooze_alert(alert.id, SNOOZE_S, actor=self.actor))

    async def action_toggle_schedule(self) -> None:
        if self.selected_schedule is None:
            return
        schedule_id, enabled = self.selected_schedule
        # The state now, not the picture on screen (it waits for the store to confirm it):
        # two quick presses must toggle twice.
        current = self.api.snapshot(recent=0).schedules
        enabled = next((s.enabled for s in current if s.id == schedule_id), enabled)
        result = await self.api.set_schedule_enabled(schedule_id, not enabled, actor=self.actor)
        if result.applied:
            self.selected_schedule = (schedule_id, not enabled)
        self._report(result)

    def action_reserve(self) -> None:
        from l3tui.dashboard.screens.reserve import ReserveScreen

        async def given(request: ReservationRequest | None) -> None:
            if request is not None:
                self._report(await self.api.reserve(request, actor=self.actor))

        self.push_screen(ReserveScreen(), given)

    def action_cancel_reservation(self) -> None:
        current = self.current_view().body_of(AdvicePane)
        chosen = current.selected_reservation() if current is not None else None
        if chosen is None:
            return

        async def decided(confirmed: bool | None) -> None:
            if confirmed:
                self._report(await self.api.cancel_reservation(chosen.id, actor=self.actor))

        reason = f" ({self.bidi(chosen.reason)})" if chosen.reason else ""
        until = time.strftime("%Y-%m-%d %H:%M", time.localtime(chosen.ends_at))
        self.push_screen(ConfirmScreen(
            f"End reservation {chosen.id}{reason}?",
            f"It holds {holds(chosen)} until {until}. Ended now, tasks waiting for that "
            "capacity may start at once.", yes="End it", no="Keep it"), decided)  # fmt: skip

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
                self.top_bar.show_status(self.snapshot, self.frozen)
            self.notify("display frozen; the engine keeps running (f to resume)")
        else:
            self.refresh_now(full=True)

    def action_dashboard(self, index: int) -> None:
        if index < len(self.dashboard_file.dashboards) and index != self.current_dash:
            self._switch(index)

    def action_show_pane(self, index: int) -> None:
        self.current_view().show_pane(index)

    def action_set_theme(self, name: str) -> None:
        self.theme = name

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
        def active() -> list[ExecutionView]:
            return [e for e in self.api.snapshot(recent=0).executions
                    if e.state not in TERMINAL_EXEC_STATES]  # fmt: skip

        if not self.in_process or not active():  # nothing runs in here: nothing to ask
            self.exit()
            return

        def decided(confirmed: bool | None) -> None:
            if confirmed:
                self.exit()

        first = quit_text(active(), self.bidi)
        self.push_screen(ConfirmScreen(first.title, first.body, yes=first.yes, no="Stay",
                                       follow=lambda: quit_text(active(), self.bidi),
                                       every=self.pace.live_s), decided)  # fmt: skip

    def quit_now(self) -> None:
        """Leave without asking (SIGHUP: the terminal went away, no one to ask; SIGTERM);
        whoever runs the console has cancelled what runs."""
        self.exit(return_code=130)

    # ------------------------------------------------------------------ notifications

    def _notify_from_feed(self, message: str, severity: str) -> None:
        if message in self.feed.skip_config_messages:
            self.feed.skip_config_messages.discard(message)
            return
        self.notify(clean(message), severity=severity,  # type: ignore[arg-type]
                    markup=False, timeout=10 if severity == "error" else 5)  # fmt: skip
