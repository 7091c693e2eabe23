"""The console's keys as data: one row per binding id, so the footer, the `?` help screen
and the command palette list them, and users can remap them (`L3TUI_KEYMAP=pause=P,...`).
It holds no behaviour: the app's `action_*` methods do the work.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding
from textual.keys import _character_to_key

from l3tui.errors import UsageError


@dataclass(frozen=True, slots=True)
class Key:
    id: str
    """Binding id users remap by."""
    keys: str
    action: str
    description: str
    group: str
    show: bool = True


KEYS: tuple[Key, ...] = (
    Key("pause", "p", "pause", "Pause", "Executions"),
    Key("resume", "r", "resume", "Resume", "Executions"),
    Key("cancel", "c", "cancel", "Cancel", "Executions"),
    Key("resume_interrupted", "R", "resume_interrupted", "Resume crashed", "Executions"),
    Key("run", "n", "run_workflow", "Run", "Executions"),
    Key("details", "enter", "details", "Details", "Executions"),
    Key("logs", "l", "logs", "Logs", "Executions"),
    Key("ack", "a", "ack_alert", "Ack", "Alerts & schedules"),
    Key("snooze", "z", "snooze_alert", "Snooze 30m", "Alerts & schedules", show=False),
    Key("schedule", "s", "toggle_schedule", "Schedule on/off", "Alerts & schedules"),
    Key("reserve", "v", "reserve", "Reserve", "Alerts & schedules"),
    Key("end_reservation", "x", "cancel_reservation", "End reservation", "Alerts & schedules"),
    Key("filter", "slash", "filter", "Filter", "View"),
    Key("freeze", "f", "freeze", "Freeze", "View"),
    *(
        Key(f"dashboard_{n}", str(n), f"dashboard({n - 1})", f"Dashboard {n}", "View", False)
        for n in range(1, 10)
    ),
    Key("help", "question_mark", "help", "Help", "Console"),
    Key("reload", "ctrl+r", "reload", "Reload config", "Console", show=False),
    Key("quit", "q", "quit", "Quit", "Console"),
)

VIEW_KEYS: tuple[Key, ...] = (
    # On the dashboard view, so they take precedence over the screen's focus cycling.
    Key("next_pane", "tab", "next_pane", "Next pane", "View", show=False),
    Key("prev_pane", "shift+tab", "prev_pane", "Previous pane", "View", show=False),
)
LIST_KEYS: tuple[Key, ...] = (
    # On every list pane (documented in the help screen).
    Key("cursor_up", "up,k", "cursor_up", "Up", "Lists", show=False),
    Key("cursor_down", "down,j", "cursor_down", "Down", "Lists", show=False),
    Key("page_up", "pageup", "page_up", "Page up", "Lists", show=False),
    Key("page_down", "pagedown", "page_down", "Page down", "Lists", show=False),
    Key("first", "home", "first", "First", "Lists", show=False),
    Key("last", "end", "last", "Last (log: follow)", "Lists", show=False),
    Key("expand", "space", "toggle_expand", "Expand/collapse", "Lists", show=False),
)
KEY_IDS = frozenset(k.id for k in (*KEYS, *VIEW_KEYS, *LIST_KEYS))
RESERVED: dict[str, str] = {
    "ctrl+p": "the command palette", "ctrl+q": "quit (Textual)", "ctrl+c": "quit (Textual)",
}  # fmt: skip
"""Keys Textual itself binds in every app; a binding of ours on them would hide them."""


def bindings(keys: tuple[Key, ...] = KEYS) -> list[Binding]:
    return [Binding(k.keys, k.action, k.description, show=k.show, id=k.id) for k in keys]


def parse_keymap(text: str) -> dict[str, str]:
    """`pause=P,cancel=ctrl+k` -> {'pause': 'P', 'cancel': 'ctrl+k'}; unknown ids are errors."""
    keymap: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        binding_id, sep, keys = part.partition("=")
        binding_id, keys = binding_id.strip(), keys.strip()
        if not sep or not keys:
            raise UsageError(f"L3TUI_KEYMAP: expected ID=KEY, got {part!r}")
        if binding_id not in KEY_IDS:
            known = ", ".join(sorted(KEY_IDS - {f"dashboard_{n}" for n in range(2, 10)}))
            raise UsageError(f"L3TUI_KEYMAP: unknown key id {binding_id!r} (known: {known})")
        keymap[binding_id] = keys
    _refuse_conflicts(keymap)
    return keymap


def _key_name(key: str) -> str:
    """`?` and `question_mark` are one key to Textual; so are `/` and `slash`."""
    key = key.strip()
    return _character_to_key(key) if len(key) == 1 else key


def _refuse_conflicts(keymap: dict[str, str]) -> None:
    """Every key must do one thing: a remap onto a key already in use (by default or by
    another remap) would silently take it from its binding, so it is refused, naming both.
    All three groups count: list and pane keys are live on the main view with the rest."""
    owner: dict[str, str] = dict(RESERVED)
    for key in (*KEYS, *VIEW_KEYS, *LIST_KEYS):
        for name in keymap.get(key.id, key.keys).split(","):
            name = _key_name(name)
            if name in owner:
                taken = owner[name]
                remapped = [i for i in (key.id, taken) if i in keymap]
                fix = f"; give {remapped[0]} another key" if remapped else ""
                raise UsageError(
                    f"L3TUI_KEYMAP: key {name!r} would do two things: {taken} and {key.id}{fix}"
                )
            owner[name] = key.id
