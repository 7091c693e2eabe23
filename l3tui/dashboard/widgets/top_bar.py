"""The console's top line: the dashboards as tabs (click or 1-9) and a status summary
(running, queued, paused, alerts, CPU and memory), narrower on small terminals."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.markup import escape
from textual.widgets import Static

from l3tui.dashboard.text import fit
from l3tui.dashboard.widgets.base import TextLine
from l3tui.engine.api import RuntimeSnapshot

NARROW = 100
"""Below this many columns the status uses symbols only."""
SLACK = 3
"""A status this many cells shorter than the one shown is padded to its width instead:
figures changing digit count (cpu 10% -> 9%) must not cost a layout of the whole screen."""


def status_text(snap: RuntimeSnapshot, frozen: bool, narrow: bool) -> str:
    """Tasks running, queued and paused (a frozen task holds a slot but does not run), or
    the paused executions when none of their tasks was running, alerts, CPU and memory."""
    running = sum(1 for item in snap.running if item.state == "running")
    paused = len(snap.running) - running
    paused_label = "paused"
    if not paused:
        paused = sum(1 for e in snap.executions if e.state == "paused")
        paused_label = "paused run" + ("s" if paused != 1 else "")
    raised = sum(1 for a in snap.alerts if a.state == "raised")
    if narrow:
        parts = [f"▶{running}", f"◌{snap.queue_length:,}"]
    else:
        parts = [f"▶ {running} running", f"◌ {snap.queue_length:,} queued"]
    if paused:
        parts.append(f"‖{paused}" if narrow else f"‖ {paused} {paused_label}")
    parts.append(f"⚠{raised}" if narrow else f"⚠ {raised} alert{'s' if raised != 1 else ''}")
    for name, label in (("cpu_usage", "cpu"), ("memory_usage", "mem")):
        value = snap.resources.get(name)
        if isinstance(value, int | float):
            parts.append(f"{label} {value:.0f}%")
    if snap.health:
        parts.append(snap.health if narrow else f"health {snap.health}")
    text = (" " if narrow else " · ").join(parts)
    if snap.connection:
        lost = not snap.connection.startswith("attached")
        if narrow:
            text = ("✗ DAEMON LOST " if lost else "⇄ ") + text
        else:
            text = (f"✗ {snap.connection} · " if lost
                    else f"⇄ {_short(snap.connection)} · ") + text  # fmt: skip
    if frozen:
        text = ("❄ FROZEN " if narrow else "❄ FROZEN (f resumes) · ") + text
    return text


def _short(connection: str) -> str:
    """`attached to daemon pid 4242 on build-01 since 08:00` -> `daemon 4242@build-01`."""
    words = connection.split()
    try:
        return f"daemon {words[words.index('pid') + 1]}@{words[words.index('on') + 1]}"
    except (ValueError, IndexError):
        return connection


class TopBar(Horizontal):
    """Tabs on the left, status on the right."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._status_text = ""

    def compose(self) -> ComposeResult:
        yield Static("", id="dash-tabs")
        yield TextLine(id="status", fits_text=True)

    def show_status(self, snap: RuntimeSnapshot, frozen: bool) -> None:
        text = status_text(snap, frozen, self.app.size.width < NARROW)
        status = self.query_one("#status", TextLine)
        shown = self._status_text
        if 0 < len(shown) - len(text) <= SLACK:
            text = text.rjust(len(shown))  # cpu 10% -> 9%: keep the width, no layout pass
        if text != shown:
            # A layout pass (the whole screen repainted and sent) only when the status grows
            # or shrinks by more than a digit or two.
            status.update(text)  # only the cells that changed are sent
            self._status_text = text
        status.set_class(frozen, "-frozen")

    def show_tabs(self, names: Sequence[str], current: int) -> None:
        """`names` are already shaped for display."""
        width = self.app.size.width - 2 - len(self._status_text)
        budget = max(width // max(len(names), 1) - 4, 4)
        parts = []
        for i, name in enumerate(names):
            label = escape(f" {i + 1} {fit(name, budget).rstrip()} ")
            if i == current:
                parts.append(f"[reverse]{label}[/reverse]")
            else:
                parts.append(f"[@click=app.dashboard({i})]{label}[/]")
        self.query_one("#dash-tabs", Static).update("".join(parts))
