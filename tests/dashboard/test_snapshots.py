"""Snapshots of the console (pytest-textual-snapshot): every bundled dashboard at 120x40 and
80x24, the ANSI and light themes, the help screen, the cancel confirmation, Arabic names
with and without bidi shaping. Deterministic by construction: fixed clock, fixed readings
and executions (tests/dashboard/snapshot_app.py), fixed terminal sizes, no wall-clock text.

Update with `pytest tests/dashboard/test_snapshots.py --snapshot-update` on Python 3.11 only,
and look at every changed SVG before committing it."""

from __future__ import annotations

import asyncio
import sys

import pytest

from l3tui.config.schema import DashboardFile
from l3tui.dashboard.widgets.log_view import LogView
from l3tui.dashboard.widgets.metrics_chart import MetricsChart
from tests.dashboard.snapshot_app import build_app

SNAPSHOT_PYTHON = (3, 11)
SIZES = {"wide": (120, 40), "small": (80, 24)}


@pytest.fixture(autouse=True)
def _one_python_writes_snapshots(request: pytest.FixtureRequest) -> None:
    """Font metrics and Rich versions differ across Pythons: snapshots come from one."""
    if request.config.getoption("--snapshot-update", default=False) and (
        sys.version_info[:2] != SNAPSHOT_PYTHON
    ):
        pytest.fail(f"update snapshots on Python {SNAPSHOT_PYTHON[0]}.{SNAPSHOT_PYTHON[1]} only")


def settle(*keys: str):
    """run_before: press `keys`, then wait (bounded) until a dashboard shown for the first
    time is built and shown, log views finished loading, and charts whose samples were there
    before the console started have plotted them (after the first frame). On a busy machine
    the snapshot was taken before the one or the other."""

    def busy(screen) -> bool:
        return (any(view._loading for view in screen.query(LogView))
                or any(chart.plot_pending() for chart in screen.query(MetricsChart)))

    def building(app) -> bool:  # a dashboard shown for the first time is built first
        return any(w.group == "dashboard-build" and not w.is_finished for w in app.workers)

    async def quiet(pilot) -> None:
        app = pilot.app
        async with asyncio.timeout(30):
            while building(app) or any(busy(s) for s in app.screen_stack):
                await pilot.pause(0.02)
        await pilot.pause()
        # pause() lays out the top screen; a dashboard under a modal (`?`) is laid out by
        # its own update timer, which a busy machine fires late: the snapshot caught its
        # chart still "waiting for samples" although the plot was mounted. Lay it out now.
        for screen in app._background_screens:
            screen._on_timer_update()
        await pilot.pause()

    async def run_before(pilot) -> None:
        await pilot.press(*keys)
        await quiet(pilot)
        # What the next refresh tick would show (fixed clock and samples: the same picture),
        # so a dashboard laid out only after its first refresh is not caught half-filled.
        # On a busy machine that refresh may be the first a chart gets: it plots after the
        # next frame, so wait for that again (CI caught "waiting for samples" behind `?`).
        pilot.app.refresh_now(full=True)
        await quiet(pilot)

    return run_before


async def select_first_execution(pilot) -> None:
    """Focus the workflow tree: its first row, the running demo execution, is selected."""
    pilot.app.query_one("WorkflowStatus").focus()
    async with asyncio.timeout(30):
        while pilot.app.selection != ("260921-141000-a1b2", None):
            await pilot.pause(0.02)


class TestDashboards:
    """Each bundled dashboard, wide and on an 80x24 terminal (panes become tabs)."""

    @pytest.mark.parametrize("size", SIZES)
    @pytest.mark.parametrize("key", ["1", "2", "3"], ids=["main", "performance", "schedules"])
    def test_dashboard(self, snap_compare, key: str, size: str) -> None:
        """The dashboard behind number key `key`."""
        assert snap_compare(build_app(), run_before=settle(key), terminal_size=SIZES[size])

    def test_small_terminal_tab_moves_to_the_next_pane(self, snap_compare) -> None:
        """At 80x24 tab shows the next pane (the task queue) in place of the chart."""
        assert snap_compare(build_app(), run_before=settle("tab"), terminal_size=(80, 24))


CUSTOM = DashboardFile.model_validate({"dashboards": {
    "wall": {"name": "wall", "columns": 3, "widgets": [
        {"type": "metrics_chart", "title": "now", "metrics": ["cpu_usage", "memory_usage",
                                                             "disk_usage"], "chart_type": "bar",
         "span": 2},
        {"type": "resource_sparklines", "title": "cores", "per_core": True,
         "metrics": ["cpu_usage", "net_in", "queue_depth"], "row_span": 2},
        {"type": "performance_metrics", "title": "all figures",
         "metrics": ["response_time", "throughput", "error_rate", "success_rate",
                     "queue_wait"]},
        {"type": "task_queue", "title": "queue"},
    ]},
    "stack": {"name": "stack", "layout": "rows", "widgets": [
        {"type": "alerts", "title": "alerts", "show_resolved": False},
        {"type": "workflow_status", "title": "failed only", "show_active": False},
    ]},
}})  # fmt: skip


class TestLayouts:
    def test_three_columns_with_spans_bar_chart_and_per_core_sparklines(self, snap_compare):
        """A dashboard file of one's own: grid of 3 with spans, a bar chart, per-core lines."""
        app = build_app(dashboards=CUSTOM)
        assert snap_compare(app, run_before=settle(), terminal_size=(120, 40))

    def test_rows_layout_without_resolved_alerts(self, snap_compare):
        """layout: rows stacks the panes; show_resolved: false hides the resolved alert."""
        app = build_app(dashboards=CUSTOM)
        assert snap_compare(app, run_before=settle("2"), terminal_size=(120, 40))


class TestThemes:
    def test_ansi_theme(self, snap_compare) -> None:
        """The 16-colour theme: only ANSI colours, the terminal's palette decides."""
        app = build_app(theme="l3-ansi")
        assert snap_compare(app, run_before=settle(), terminal_size=(120, 40))

    def test_light_theme(self, snap_compare) -> None:
        """The light theme on the schedules dashboard."""
        app = build_app(theme="l3-light")
        assert snap_compare(app, run_before=settle("3"), terminal_size=(120, 40))


class TestScreens:
    def test_help_screen(self, snap_compare) -> None:
        """`?` lists every key by group."""
        assert snap_compare(build_app(), run_before=settle("question_mark"),
                            terminal_size=(120, 40))  # fmt: skip

    def test_help_screen_on_a_small_terminal(self, snap_compare) -> None:
        """`?` at 80x24: the keys in two columns, the body scrolls (its scrollbar shows),
        the dialog's own footer says how to close it."""
        assert snap_compare(build_app(), run_before=settle("question_mark"),
                            terminal_size=(80, 24))  # fmt: skip

    def test_cancel_confirmation_names_what_dies(self, snap_compare) -> None:
        """`c` on the running execution: its running tasks with their processes, the queued
        and waiting ones, and a safe default."""

        async def run_before(pilot) -> None:
            await select_first_execution(pilot)
            await settle("c")(pilot)

        assert snap_compare(build_app(), run_before=run_before, terminal_size=(120, 40))

    def test_execution_details(self, snap_compare) -> None:
        """enter on an execution: tasks, attempts, exit codes, waits, processes, hash."""

        async def run_before(pilot) -> None:
            await select_first_execution(pilot)
            await settle("enter")(pilot)

        assert snap_compare(build_app(), run_before=run_before, terminal_size=(120, 40))


    def test_task_details_with_its_log(self, snap_compare) -> None:
        """enter on a task: its figures, resource peaks and its log (escape sequences gone)."""

        async def run_before(pilot) -> None:
            pilot.app.query_one("TaskQueue").focus()
            async with asyncio.timeout(30):
                while pilot.app.selection != ("260921-141000-a1b2", "lint"):
                    await pilot.pause(0.02)
            await settle("enter")(pilot)

        assert snap_compare(build_app(), run_before=run_before, terminal_size=(120, 40))


class TestArabic:
    def test_arabic_names_shaped_for_terminals_without_bidi(self, snap_compare) -> None:
        """--bidi on: names read right to left with joined letters (main at 80x24 shows
        the workflow tree pane)."""
        app = build_app(bidi=True)
        assert snap_compare(app, run_before=settle("tab", "tab"), terminal_size=(80, 24))

    def test_arabic_names_left_alone_for_terminals_that_do_bidi(self, snap_compare) -> None:
        """--bidi off: the text goes out in logical order for the terminal to reorder."""
        app = build_app(bidi=False)
        assert snap_compare(app, run_before=settle("tab", "tab"), terminal_size=(80, 24))
