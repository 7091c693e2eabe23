"""`n`: pick a workflow or template to run; a template then asks for its params, checked as
they are typed (type, required, choices) before anything is started.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, OptionList, Static
from textual.widgets.option_list import Option

from l3tui.dashboard.text import Bidi
from l3tui.engine.api import ParamInfo, WorkflowInfo

TRUE = {"1", "true", "yes", "on", "y"}
FALSE = {"0", "false", "no", "off", "n"}

RunRequest = tuple[str, dict[str, Any]]


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


class ParamsScreen(ModalScreen[dict[str, Any] | None]):
    """One field per template param; Run stays refused while any field is wrong."""

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


class RunPickerScreen(ModalScreen[RunRequest | None]):
    """Workflows and templates; type to narrow the list, enter to pick."""

    BINDINGS: ClassVar[list[Any]] = [Binding("escape", "dismiss(None)", "Close", id="picker_close")]

    def __init__(self, workflows: Sequence[WorkflowInfo], bidi: Bidi) -> None:
        super().__init__()
        self.workflows = list(workflows)
        self.bidi = bidi

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("Run a workflow", classes="dialog-title")
            yield Input(placeholder="type to filter", id="picker-filter")
            yield OptionList(*self._options(""), id="picker-list")

    def _options(self, text: str) -> list[Option]:
        needle = text.strip().lower()
        out = []
        for wf in self.workflows:
            haystack = f"{wf.id} {wf.name} {wf.description} {wf.type or ''}".lower()
            if needle and needle not in haystack:
                continue
            kind = "template" if wf.is_template else "workflow"
            label = f"{self.bidi(wf.name)}  [{wf.id}] · {wf.tasks} tasks · {kind}"
            out.append(Option(Text(label, no_wrap=True, overflow="ellipsis"), id=wf.id))
        return out

    @on(Input.Changed, "#picker-filter")
    def _filter(self, event: Input.Changed) -> None:
        options = self.query_one("#picker-list", OptionList)
        options.clear_options()
        options.add_options(self._options(event.value))
        if options.option_count:
            options.highlighted = 0

    @on(Input.Submitted, "#picker-filter")
    def _filter_submitted(self) -> None:
        options = self.query_one("#picker-list", OptionList)
        if options.option_count:
            options.highlighted = options.highlighted or 0
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
