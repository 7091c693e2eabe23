"""A yes/no dialog that names what the answer will do (cancel: which tasks and processes
die; quit: which executions get cancelled). Focus starts on the safe button.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from l3tui.dashboard.text import STATE_ICONS, Bidi
from l3tui.engine.api import TERMINAL_TASK_STATES, ExecutionView


class ConfirmScreen(ModalScreen[bool]):
    """Dismisses with True (yes) or False (no, escape)."""

    BINDINGS: ClassVar[list[Any]] = [
        Binding("y", "answer(True)", "Yes", id="confirm_yes"),
        Binding("escape,n", "answer(False)", "No", id="confirm_no"),
    ]

    def __init__(self, title: str, body: str, *, yes: str, no: str, danger: bool = True) -> None:
        super().__init__(classes="confirm")
        self.title_text = title
        self.body = body
        self.yes = yes
        self.no = no
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog" + (" -danger" if self.danger else "")):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            yield Static(self.body, classes="dialog-body", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.no} (n)", id="no")
                yield Button(f"{self.yes} (y)", id="yes",
                             variant="error" if self.danger else "primary")  # fmt: skip

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


def cancel_text(view: ExecutionView, task_id: str | None, bidi: Bidi) -> tuple[str, str, str]:
    """(title, body, yes label) of the cancel dialog: it names every task and process that
    the cancel ends."""
    tasks = [t for t in view.tasks if t.state not in TERMINAL_TASK_STATES
             and (task_id is None or t.task_id == task_id)]  # fmt: skip
    what = f"task {task_id} of " if task_id else ""
    title = f"Cancel {what}{bidi(view.workflow_name)} ({view.workflow_id} {view.id})?"
    lines = []
    for task in tasks:
        icon = STATE_ICONS.get(task.state, "?")
        name = f"{icon} {bidi(task.name)} ({task.task_id}, {task.state})"
        if task.state in ("running", "paused") and task.pid:
            fate = f"process {task.pid} and its process group: SIGTERM, then SIGKILL after grace"
        elif task.state in ("running", "paused"):
            fate = "stopped"
        elif task.state == "queued":
            fate = "taken out of the queue"
        else:
            fate = "will not run"
        lines.append(f"  {name}\n      {fate}")
    if not lines:
        lines.append("  nothing is left to run; the execution ends as cancelled")
    body = "These end:\n" + "\n".join(lines)
    return title, body, "Cancel task" if task_id else "Cancel execution"
