"""A dashboard shown for the first time (number keys) is built then, and shows every pane
filled from that moment: not only the pane the refresh happened to find visible, with the
others empty until the next refresh tick."""

from __future__ import annotations

import asyncio

import pytest
from textual.widgets import ContentSwitcher

from tests.dashboard.snapshot_app import build_app, screen_text
from tests.dashboard.test_keys import until


async def test_a_dashboard_shown_first_on_a_busy_machine_has_every_pane_filled(monkeypatch):
    """On a busy machine a frame may be laid out between the new dashboard's mount and its
    first refresh: with the old dashboard still beside it, the new one had half the height,
    took the one-pane-at-a-time layout, filled only its current pane, then got the whole
    height back and showed the other panes empty. No refresh tick comes here (the timers are
    held), so what shows is what the first show itself drew."""
    app = build_app()
    app._start_timers = lambda: None  # type: ignore[method-assign]
    laid_out = asyncio.Event()
    mount = ContentSwitcher.mount

    def busy_mount(self, *widgets, **kwargs):
        mounted = mount(self, *widgets, **kwargs)

        async def then_a_frame() -> None:
            await mounted
            self.screen._on_timer_update()  # the frame a busy machine lays out first
            laid_out.set()

        return then_a_frame()

    monkeypatch.setattr(ContentSwitcher, "mount", busy_mount)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        for timer in (app._chart_timer, app._live_timer):
            if timer is not None:
                timer.stop()
        await pilot.press("3")  # the schedules dashboard: four panes in three rows
        await until(lambda: laid_out.is_set() and app.current_dash == 2)

        def filled() -> bool:
            text = screen_text(app)
            return all(shown in text for shown in (
                "log_rotation",  # the schedules
                "Riverpod State Man",  # the recent executions
                "lint: step 1/4",  # the log of the selected task
                "nightly backup",  # the reservations
            ))  # fmt: skip

        try:
            await until(filled)
        except TimeoutError:
            pytest.fail(f"panes left empty on the first show:\n{screen_text(app)}")
        view = app.current_view()
        assert not view.compact
        assert all(not pane.stale for pane in view.panes)
