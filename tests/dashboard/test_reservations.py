"""The console's side of reservations: on the schedules dashboard `v` opens a dialog whose
fields are checked as they are typed and whose request reaches the Runtime; `x` ends the
reservation highlighted in the advice pane after a confirmation, and says why not when the
highlighted row is not a reservation. The advice pane lists reservations, then advice with
its evidence."""

from __future__ import annotations

import asyncio

from textual.widgets import Input, Static

from l3tui.dashboard.screens.confirm import ConfirmScreen
from l3tui.dashboard.screens.reserve import ReserveScreen
from l3tui.dashboard.widgets.advice import AdvicePane
from l3tui.engine.api import ReservationRequest
from tests.dashboard.snapshot_app import build_app, screen_text


async def until(predicate, pilot) -> None:
    async with asyncio.timeout(10):
        while not predicate():
            await pilot.pause(0.02)


async def test_v_reserves_with_fields_checked_as_typed() -> None:
    app = build_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3", "v")
        await until(lambda: isinstance(app.screen, ReserveScreen), pilot)
        await pilot.press("2", "tab", "8", "Q")  # cpu 2, memory "8Q"
        await until(lambda: "expected a size" in str(
            app.screen.query_one("#reserve-error-memory", Static).render()), pilot)
        app.screen.query_one("#reserve-memory", Input).value = "8G"
        app.screen.query_one("#reserve-pools", Input).value = "flutter_build=1"
        app.screen.query_one("#reserve-for", Input).value = "2h"
        app.screen.query_one("#reserve-reason", Input).value = "بناء الإصدار"
        await pilot.click("#reserve")
        await until(lambda: any(name == "reserve" for name, _ in app.api.calls), pilot)
        [(_name, (request,))] = app.api.calls
        assert request == ReservationRequest(cpu=2.0, memory_mb=8192,
                                             pools=(("flutter_build", 1),), starts_at=None,
                                             duration_s=7200.0, reason="بناء الإصدار")
        assert not isinstance(app.screen, ReserveScreen)


async def test_x_ends_the_highlighted_reservation_after_asking() -> None:
    app = build_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")
        pane = app.query_one(AdvicePane)
        pane.focus()  # the cursor shows its first row: the reservation in force
        await until(lambda: pane.selected_reservation() is not None, pilot)
        text = screen_text(app)
        assert "reserved r3f2a91" in text and "4 cpu, 8.0 GB, flutter_build=1" in text
        assert "· RSS peak p95 3100 MB" in text  # advice comes with its evidence
        await pilot.press("x")
        await until(lambda: isinstance(app.screen, ConfirmScreen), pilot)
        await pilot.press("y")
        await until(lambda: app.api.calls, pilot)
        assert app.api.calls == [("cancel_reservation", ("r3f2a91",))]
        await pilot.press("end")  # an evidence line of the last advice: not a reservation
        await until(lambda: pane.selected_reservation() is None, pilot)
        await pilot.press("x")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("no reservation highlighted" in str(n.message)
                   for n in app._notifications)  # fmt: skip
