"""The console's keys as data: one row per binding id, so the footer, the `?` help screen
and the command palette list them, and users can remap them (`L3TUI_KEYMAP=pause=P,...`).
It holds no behaviour: the app's `action_*` methods do the work.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding

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
    return keymap
