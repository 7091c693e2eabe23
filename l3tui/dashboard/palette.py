"""The command palette's l3tui commands (ctrl+p, next to Textual's own): run a workflow by
id, pause / resume / cancel the selection, resume an interrupted execution, switch
dashboard, pick a theme, reload the config, freeze, help. Only commands that apply now are
offered (a read-only dashboard offers no command that changes anything); choosing one runs
the same action as its key, through the console's `perform`, which checks again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from l3tui.config.schema import DashboardFile
from l3tui.dashboard.text import Bidi
from l3tui.engine.api import WorkflowInfo


@dataclass(frozen=True, slots=True)
class PaletteCommand:
    name: str
    """What the palette matches and shows."""
    help: str
    action: str
    """The console action it runs, as a binding names it (`pause`, `dashboard(1)`)."""


class PaletteHost(Protocol):
    """What the palette needs of the console app."""

    bidi: Bidi
    dashboard_file: DashboardFile
    current_dash: int
    frozen: bool

    def command_state(self, action: str, parameters: tuple[object, ...] = ()) -> bool | None:
        """True when the action applies now (check_action's answer outside dialogs)."""
        ...

    def selection_label(self) -> str:
        """The selected execution (and task), as the palette's help text names it."""
        ...

    def workflow_infos(self) -> Sequence[WorkflowInfo]: ...

    def theme_names(self) -> Sequence[str]: ...

    def perform(self, action: str) -> Awaitable[None]:
        """Run `action` as its key would, or say why it does not apply."""
        ...


SELECTION_COMMANDS = (
    ("pause", "Pause selection", "freeze its processes (SIGSTOP)"),
    ("resume", "Resume selection", "continue its processes (SIGCONT)"),
    ("cancel", "Cancel selection", "asks first; SIGTERM, then SIGKILL after the grace period"),
    ("resume_interrupted", "Resume interrupted execution", "run it again, keeping what "
     "succeeded"),
)  # fmt: skip


def console_commands(host: PaletteHost) -> list[PaletteCommand]:
    """The commands that apply now, in the order discovery lists them."""
    out: list[PaletteCommand] = []
    target = host.selection_label()
    for action, name, what in SELECTION_COMMANDS:
        if host.command_state(action) is True:
            out.append(PaletteCommand(name, f"{target}: {what}", action))
    for index, (dash_id, dash) in enumerate(host.dashboard_file.dashboards.items()):
        if index != host.current_dash:
            out.append(PaletteCommand(f"Dashboard {index + 1}: {dash_id}",
                                      host.bidi(dash.name), f"dashboard({index})"))  # fmt: skip
    out.append(PaletteCommand("Reload config", "re-read the four YAML files now", "reload"))
    out.append(PaletteCommand("Unfreeze display" if host.frozen else "Freeze display",
                              "the engine keeps running either way", "freeze"))  # fmt: skip
    out.append(PaletteCommand("Show l3tui keys", "every key, as currently bound", "help"))
    for theme in host.theme_names():
        out.append(PaletteCommand(f"Theme: {theme}", "l3tui colour theme",
                                  f"set_theme({theme!r})"))  # fmt: skip
    if host.command_state("start_workflow", ("",)) is True:  # many: listed last
        for wf in host.workflow_infos():
            kind = "template (asks for its params)" if wf.is_template else "workflow"
            tasks = f"{wf.tasks} task" + ("s" if wf.tasks != 1 else "")
            out.append(PaletteCommand(f"Run workflow {wf.id}",
                                      f"{host.bidi(wf.name)} · {kind}, {tasks}",
                                      f"start_workflow({wf.id!r})"))  # fmt: skip
    return out


class ConsoleCommands(Provider):
    """l3tui's commands for Textual's command palette."""

    def _commands(self) -> list[tuple[PaletteCommand, Callable[[], Awaitable[None]]]]:
        host = cast(PaletteHost, self.app)
        return [(command, partial(host.perform, command.action))
                for command in console_commands(host)]  # fmt: skip

    async def discover(self) -> Hits:
        for command, run in self._commands():
            yield DiscoveryHit(command.name, run, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command, run in self._commands():
            score = matcher.match(command.name)
            if score > 0:
                yield Hit(score, matcher.highlight(command.name), run, help=command.help)
