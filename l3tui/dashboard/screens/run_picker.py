"""`n`: pick a workflow or template to run; a template then asks for its params, checked as
they are typed (type, required, choices) before anything is started.

Typing filters the list, best match first (`rank`: an id, then a name, before a match that
only comes through a description or a type); arrows move the highlight without leaving the
filter box, enter runs the highlighted entry, tab goes to the list.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, OptionList, Static
from textual.widgets.option_list import Option

from l3tui.dashboard.screens.fitted import FittedModal
from l3tui.dashboard.text import Bidi
from l3tui.dashboard.widgets.footer import KeyFooter
from l3tui.engine.api import ParamInfo, WorkflowInfo

TRUE = {"1", "true", "yes", "on", "y"}
FALSE = {"0", "false", "no", "off", "n"}

RunRequest = tuple[str, dict[str, Any]]
PAGE = 10


def rank(workflow: WorkflowInfo, text: str) -> int | None:
    """Where `workflow` sorts for the filter `text`, lower first; None when it does not
    match. Every word of `text` must match; the weakest match decides: the exact id, an id
    prefix, a name prefix, a word of the id or name, inside the id or name, then only the
    description, last only the type (`backup_re` must not pick `backup_state` through its
    type `backup_restore` over the template `backup_restore` itself)."""
    worst = 0
    wf_id, name = workflow.id.lower(), workflow.name.lower()
    words = wf_id.replace("_", " ").split() + name.replace("_", " ").split()
    for term in text.lower().split():
        if wf_id == term:
            level = 0
        elif wf_id.startswith(term):
            level = 1
        elif name.startswith(term):
            level = 2
        elif any(word.startswith(term) for word in words):
            level = 3
        elif term in wf_id or term in name:
            level = 4
        elif term in workflow.description.lower():
            level = 5
        elif term in (workflow.type or "").lower():
            level = 6
        else:
            return None
        worst = max(worst, level)
    return worst


def check_param(info: ParamInfo, text: str) -> tuple[Any, str]:
    """(value, error): the typed value of `text` for `info`, or why it is not acceptable.
    An empty optional field gives (None, '') and is left out (the default applies)."""
    text = text.strip()
    if not text:
        return None, ("required" if info.required and info.default is None else "")
    value: Any
    try:
        if info.type == "integer":
            value = int(text)
        elif info.type == "number":
            value = float(text)
        elif info.type == "boolean":
            if text.lower() not in TRUE | FALSE:
                return None, "expected yes or no"
            value = text.lower() in TRUE
        else:
            value = text
    except ValueError:
        kind = "a whole number" if info.type == "integer" else "a number"
        return None, f"expected {kind}"
    if info.choices is not None and value not in info.choices:
        return None, "one of: " + ", ".join(map(str, info.choices))
    return value, ""


class ParamsScreen(FittedModal[dict[str, Any] | None]):
    """One field per template param; Run stays refused while any field is wrong."""

    CHROME = 15

    BINDINGS: ClassVar[list[Any]] = [Binding("escape", "dismiss(None)", "Back", id="params_back")]

    def __init__(self, workflow: WorkflowInfo, bidi: Bidi) -> None:
        super().__init__()
        self.workflow = workflow
        self.bidi = bidi

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"Run {self.bidi(self.workflow.name)} ({self.workflow.id})",
                         classes="dialog-title", markup=False)  # fmt: skip
            with VerticalScroll(classes="dialog-body"):
                for info in self.workflow.params:
                    need = "required" if info.required and info.default is None else "optional"
                    hint = f"{info.name} ({info.type}, {need})"
                    if info.description:
                        hint += f": {self.bidi(info.description)}"
                    if info.choices is not None:
                        hint += " — one of " + ", ".join(map(str, info.choices))
                    yield Static(hint, classes="field-label", markup=False)
                    default = "" if info.default is None else str(info.default)
                    yield Input(value=default, id=f"param-{info.name}",
                                placeholder=info.type)  # fmt: skip
                    yield Static("", id=f"error-{info.name}", classes="field-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Back", id="back")
                yield Button("Run", id="run", variant="primary")
        yield KeyFooter()

    def on_mount(self) -> None:
        inputs = self.query(Input)
        if inputs:
            inputs.first().focus()

    def _collect(self) -> tuple[dict[str, Any], int]:
        values: dict[str, Any] = {}
        errors = 0
        for info in self.workflow.params:
            text = self.query_one(f"#param-{info.name}", Input).value
            value, error = check_param(info, text)
            self.query_one(f"#error-{info.name}", Static).update(error)
            if error:
                errors += 1
            elif value is not None:
                values[info.name] = value
        return values, errors

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        self._collect()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self._run()

    @on(Button.Pressed, "#run")
    def _run_pressed(self) -> None:
        self._run()

    @on(Button.Pressed, "#back")
    def _back(self) -> None:
        self.dismiss(None)

    def _run(self) -> None:
        values, errors = self._collect()
        if errors:
            self.notify(f"{errors} param(s) need fixing", severity="warning")
            return
        self.dismiss(values)


class RunPickerScreen(FittedModal[RunRequest | None]):
    """Workflows and templates; type to narrow the list, arrows to move, enter to run."""

    BODY = "#picker-list"
    CHROME = 13
    BODY_MAX = 18

    BINDINGS: ClassVar[list[Any]] = [
        Binding("escape", "dismiss(None)", "Close", id="picker_close"),
        # From the filter box (which does not use them) the arrows move the list's highlight;
        # with the list focused its own bindings come first.
        Binding("down", "move(1)", "Move", key_display="↑↓", id="picker_down"),
        Binding("up", "move(-1)", "Up", show=False, id="picker_up"),
        Binding("pagedown", f"move({PAGE})", "Page down", show=False, id="picker_page_down"),
        Binding("pageup", f"move({-PAGE})", "Page up", show=False, id="picker_page_up"),
    ]

    def __init__(self, workflows: Sequence[WorkflowInfo], bidi: Bidi) -> None:
        super().__init__()
        self.workflows = list(workflows)
        self.bidi = bidi

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog picker") as dialog:
            dialog.border_subtitle = "↑↓ choose · enter runs it · tab: the list"
            yield Static("Run a workflow", classes="dialog-title")
            yield Input(placeholder="type to filter: id, name, description", id="picker-filter")
            yield OptionList(*self._options(""), id="picker-list")
        yield KeyFooter()

    def on_mount(self) -> None:
        options = self.query_one("#picker-list", OptionList)
        if options.option_count:
            options.highlighted = 0

    def _options(self, text: str) -> list[Option]:
        ranked = [(level, n, wf) for n, wf in enumerate(self.workflows)
                  if (level := rank(wf, text)) is not None]  # fmt: skip
        out = []
        for _level, _n, wf in sorted(ranked, key=lambda item: item[:2]):
            kind = "template" if wf.is_template else "workflow"
            label = Text(no_wrap=True, overflow="ellipsis")
            label.append(wf.id, "bold")
            label.append(f"  {self.bidi(wf.name)}  · {kind}, {wf.tasks} task"
                         + ("s" if wf.tasks != 1 else ""))  # fmt: skip
            out.append(Option(label, id=wf.id))
        return out

    @on(Input.Changed, "#picker-filter")
    def _filter(self, event: Input.Changed) -> None:
        options = self.query_one("#picker-list", OptionList)
        options.clear_options()
        options.add_options(self._options(event.value))
        if options.option_count:
            options.highlighted = 0

    def action_move(self, delta: int) -> None:
        options = self.query_one("#picker-list", OptionList)
        if not options.option_count:
            return
        current = options.highlighted if options.highlighted is not None else -1
        options.highlighted = max(0, min(current + delta, options.option_count - 1))

    @on(Input.Submitted, "#picker-filter")
    def _filter_submitted(self) -> None:
        options = self.query_one("#picker-list", OptionList)
        if not options.option_count:
            self.notify("nothing matches the filter", severity="warning")
            return
        if options.highlighted is None:
            options.highlighted = 0
        options.action_select()

    @on(OptionList.OptionSelected, "#picker-list")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        workflow = next(w for w in self.workflows if w.id == event.option.id)
        if workflow.is_template and workflow.params:

            def done(values: dict[str, Any] | None) -> None:
                if values is not None:
                    self.dismiss((workflow.id, values))

            self.app.push_screen(ParamsScreen(workflow, self.bidi), done)
        else:
            self.dismiss((workflow.id, {}))
