"""A yes/no dialog that names what the answer will do (cancel: which tasks and processes
die; quit: which executions get cancelled), and keeps naming it while it is open: given a
`follow` function it re-reads the live state every `every` seconds, so a task that finished
meanwhile is no longer listed as one that "will not run". Focus starts on the safe button.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NamedTuple

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Static

from l3tui.dashboard.screens.fitted import FittedModal
from l3tui.dashboard.text import STATE_ICONS, Bidi
from l3tui.dashboard.widgets.footer import KeyFooter
from l3tui.engine.api import TERMINAL_EXEC_STATES, TERMINAL_TASK_STATES, ExecutionView

QUIT_LISTED = 12


class Wording(NamedTuple):
    """What a dialog says: its title, its body and the label of the yes button."""

    title: str
    body: str
    yes: str


class ConfirmScreen(FittedModal[bool]):
    """Dismisses with True (yes) or False (no, escape). A long body scrolls."""

    BINDINGS: ClassVar[list[Any]] = [
        Binding("y", "answer(True)", "Yes", id="confirm_yes"),
        Binding("escape,n", "answer(False)", "No", id="confirm_no"),
    ]

    def __init__(self, title: str, body: str, *, yes: str, no: str, danger: bool = True,
                 follow: Callable[[], Wording] | None = None,
                 every: float = 1.0) -> None:  # fmt: skip
        super().__init__(classes="confirm")
        self.wording = Wording(title, body, yes)
        self.no = no
        self.danger = danger
        self.follow = follow
        """Re-reads the live state; the dialog shows what it returns."""
        self.every = every

    def compose(self) -> ComposeResult:
        title, body, yes = self.wording
        with Vertical(classes="dialog" + (" -danger" if self.danger else "")):
            yield Static(title, classes="dialog-title", markup=False)
            with VerticalScroll(classes="dialog-body"):
                yield Static(body, classes="dialog-text", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.no} (n)", id="no")
                yield Button(f"{yes} (y)", id="yes",
                             variant="error" if self.danger else "primary")  # fmt: skip
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()
        if self.follow is not None:
            self.set_interval(self.every, self.follow_state)

    def follow_state(self) -> None:
        """Show what the answer would do now."""
        if self.follow is None:
            return
        wording = self.follow()
        if wording == self.wording:
            return
        self.wording = wording
        self.query_one(".dialog-title", Static).update(wording.title)
        self.query_one(".dialog-text", Static).update(wording.body)
        self.query_one("#yes", Button).label = f"{wording.yes} (y)"

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


def cancel_text(view: ExecutionView, task_id: str | None, bidi: Bidi) -> Wording:
    """The cancel dialog: it names every task and process that the cancel ends."""
    what = f"task {task_id} of " if task_id else ""
    title = f"Cancel {what}{bidi(view.workflow_name)} ({view.workflow_id} {view.id})?"
    yes = "Cancel task" if task_id else "Cancel execution"
    if view.state in TERMINAL_EXEC_STATES:
        return Wording(title, f"It already {view.state}: nothing is left to cancel.", yes)
    tasks = [t for t in view.tasks if t.state not in TERMINAL_TASK_STATES
             and (task_id is None or t.task_id == task_id)]  # fmt: skip
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
    if not lines and task_id:
        state = next((t.state for t in view.tasks if t.task_id == task_id), "gone")
        lines.append(f"  task {task_id} already {state}: nothing to cancel")
    elif not lines:
        lines.append("  nothing is left to run; the execution ends as cancelled")
    return Wording(title, "These end:\n" + "\n".join(lines), yes)


def quit_text(active: Sequence[ExecutionView], bidi: Bidi) -> Wording:
    """The quit dialog: the executions quitting would cancel (those running in-process)."""
    if not active:
        return Wording("Quit l3tui?", "Nothing runs any more: quitting cancels nothing.",
                       "Quit")  # fmt: skip
    lines = [f"{len(active)} execution(s) run inside this console; quitting cancels them "
             "(their processes get SIGTERM, then SIGKILL after the grace period):", ""]
    lines += [f"  {STATE_ICONS.get(e.state, '?')} {bidi(e.workflow_name)} "
              f"({e.workflow_id} {e.id})" for e in active[:QUIT_LISTED]]  # fmt: skip
    if len(active) > QUIT_LISTED:
        lines.append(f"  … and {len(active) - QUIT_LISTED} more")
    return Wording("Quit l3tui?", "\n".join(lines), "Cancel them and quit")
