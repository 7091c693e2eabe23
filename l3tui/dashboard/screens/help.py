"""The `?` screen: every key (as currently mapped, so remaps show), grouped, plus how the
panes refresh and how to remap. Built from the keymap data, so it cannot drift from it.
On a small terminal (80x24) its body scrolls (arrows, PgUp/PgDn, Home/End): nothing is cut.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from l3tui.dashboard import keymap
from l3tui.dashboard.screens.fitted import FittedModal
from l3tui.dashboard.widgets.footer import KeyFooter

NOTES = (
    "Keys act on the selected execution or task (task queue and workflow tree cursors); "
    "on a task row, p/r/c act on that task only; a/z on the highlighted alert. Results show "
    "as notifications; a dimmed key does not apply now, and pressing it says why.\n"
    "Live figures (top bar, lists, sparklines, ages, dialogs) follow the machine every "
    "second (two over SSH); history charts redraw at the dashboard's refresh_interval. "
    "f freezes the display; the engine keeps running.\n"
    "Remap keys with L3TUI_KEYMAP, e.g. L3TUI_KEYMAP='pause=P,cancel=ctrl+k'."
)

KEY_NAMES = {"question_mark": "?", "slash": "/", "space": "space", "pageup": "PgUp",
             "pagedown": "PgDn"}  # fmt: skip


def key_label(keys: str) -> str:
    return " ".join(KEY_NAMES.get(k.strip(), k.strip()) for k in keys.split(","))


class HelpScreen(FittedModal[None]):
    """Keys and notes; any of escape, ? or q closes it."""

    BINDINGS: ClassVar[list[Any]] = [
        Binding("escape,question_mark,q", "dismiss", "Close", id="help_close"),
    ]
    BODY = ".help-body"
    CHROME = 8
    BODY_MAX = 32

    def __init__(self, keymap_overrides: Mapping[str, str]) -> None:
        super().__init__()
        self.overrides = keymap_overrides

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog") as dialog:
            dialog.border_subtitle = "↑↓ PgUp PgDn scroll · esc closes"
            yield Static("l3tui keys", classes="dialog-title")
            with VerticalScroll(classes="help-body"):
                yield Static(self._table())
                yield Static(Text(NOTES, style="italic"), classes="field-label")
        yield KeyFooter()

    def on_mount(self) -> None:
        # focused, the body takes the scrolling keys (it is taller than an 80x24 screen)
        self.query_one(".help-body", VerticalScroll).focus()

    def _table(self) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(justify="right", style="bold", no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(justify="right", style="bold", no_wrap=True)
        table.add_column(no_wrap=True)
        rows: list[tuple[str, str]] = []
        groups: dict[str, list[keymap.Key]] = {}
        for key in (*keymap.KEYS, *keymap.VIEW_KEYS, *keymap.LIST_KEYS):
            if key.id.startswith("dashboard_") and key.id != "dashboard_1":
                continue
            groups.setdefault(key.group, []).append(key)
        for group, keys in groups.items():
            rows.append(("", f"— {group}"))
            for key in keys:
                if key.id == "dashboard_1":
                    rows.append(("1-9", "Switch dashboard"))
                    continue
                rows.append((key_label(self.overrides.get(key.id, key.keys)), key.description))
        half = (len(rows) + 1) // 2
        left, right = rows[:half], rows[half:]
        for n in range(half):
            a = left[n]
            b = right[n] if n < len(right) else ("", "")
            table.add_row(a[0], a[1], b[0], b[1])
        return table
