"""`v`: reserve CPU, memory or pool slots for a window, as `l3tui reserve` does: each field
is checked as it is typed (a size, NAME=SLOTS, a time, a length), and what is sent is
checked again by the Runtime (capacity, overlaps, the past), whose answer is the
notification.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Static

from l3tui.config import quantities
from l3tui.dashboard.screens.fitted import FittedModal
from l3tui.dashboard.widgets.footer import KeyFooter
from l3tui.engine.api import ReservationRequest

FIELDS: tuple[tuple[str, str, str, str], ...] = (
    ("cpu", "cores to hold", "e.g. 4", ""),
    ("memory", "memory to hold", "8G, 512M, or MB", ""),
    ("pools", "pool slots to hold, separated by spaces", "flutter_build=1", ""),
    ("from", "from", "now, +30m, 18:00, 2026-12-01T18:00", "now"),
    ("for", "for how long (or until a time: 20:00)", "2h, 90m, or 20:00", "1h"),
    ("reason", "why (waiting tasks' reasons name it)", "release build", ""),
)


def read_request(values: dict[str, str], now: float) -> tuple[ReservationRequest | None,
                                                              dict[str, str]]:  # fmt: skip
    """The request the fields describe, or the error of each field that is wrong."""
    errors: dict[str, str] = {}
    parsed: dict[str, Any] = {}

    def take(name: str, parse: Callable[[], Any]) -> None:
        try:
            parsed[name] = parse()
        except ValueError as exc:
            errors[name] = str(exc)

    cpu = values["cpu"].strip()
    take("cpu", lambda: _cores(cpu) if cpu else 0.0)
    memory = values["memory"].strip()
    take("memory", lambda: quantities.memory_mb(memory) if memory else 0)
    take("pools", lambda: quantities.pool_slots(values["pools"].split()))
    take("from", lambda: quantities.moment(values["from"] or "now", now))
    if "from" not in errors:
        start = parsed["from"] if parsed["from"] is not None else now
        length = values["for"].strip()
        if ":" in length:  # a time of day or a date-time: until then
            take("for", lambda: (quantities.moment(length, now, after=start) or now) - start)
        else:
            take("for", lambda: quantities.length_s(length))
    if errors:
        return None, errors
    if not (parsed["cpu"] or parsed["memory"] or parsed["pools"]):
        return None, {"cpu": "hold something: cores, memory or pool slots"}
    return ReservationRequest(cpu=parsed["cpu"], memory_mb=parsed["memory"],
                              pools=parsed["pools"], starts_at=parsed["from"],
                              duration_s=parsed["for"],
                              reason=values["reason"].strip()), {}  # fmt: skip


def _cores(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number of cores, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"expected a number of cores >= 0, got {text!r}")
    return value


class ReserveScreen(FittedModal[ReservationRequest | None]):
    """One field per part of the reservation; Reserve stays refused while one is wrong."""

    CHROME = 15
    BINDINGS: ClassVar[list[Any]] = [Binding("escape", "dismiss(None)", "Back",
                                             id="reserve_back")]  # fmt: skip

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("Reserve capacity (tasks that need it wait until it ends)",
                         classes="dialog-title", markup=False)  # fmt: skip
            with VerticalScroll(classes="dialog-body"):
                for name, label, hint, value in FIELDS:
                    yield Static(label, classes="field-label", markup=False)
                    yield Input(value=value, placeholder=hint, id=f"reserve-{name}")
                    yield Static("", id=f"reserve-error-{name}", classes="field-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Back", id="back")
                yield Button("Reserve", id="reserve", variant="primary")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#reserve-cpu", Input).focus()

    def _check(self) -> ReservationRequest | None:
        values = {name: self.query_one(f"#reserve-{name}", Input).value
                  for name, *_ in FIELDS}  # fmt: skip
        request, errors = read_request(values, time.time())
        for name, *_ in FIELDS:
            self.query_one(f"#reserve-error-{name}", Static).update(errors.get(name, ""))
        return request

    @on(Input.Changed)
    def _changed(self) -> None:
        self._check()

    @on(Input.Submitted)
    @on(Button.Pressed, "#reserve")
    def _reserve(self) -> None:
        request = self._check()
        if request is None:
            self.notify("a field needs fixing", severity="warning")
            return
        self.dismiss(request)

    @on(Button.Pressed, "#back")
    def _back(self) -> None:
        self.dismiss(None)
