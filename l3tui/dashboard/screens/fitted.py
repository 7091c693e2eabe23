"""FittedModal: a dialog whose scrolling body is never taller than the terminal leaves it,
so on 80x24 its buttons and last lines stay on screen (the body scrolls instead of the
dialog being cut off at the bottom).
"""

from __future__ import annotations

from typing import ClassVar, TypeVar

from textual import events
from textual.screen import ModalScreen
from textual.widget import Widget

ResultT = TypeVar("ResultT")


class FittedModal(ModalScreen[ResultT]):
    """Subclasses name their body (a widget that scrolls) and the rows around it."""

    BODY: ClassVar[str] = ".dialog-body"
    CHROME: ClassVar[int] = 14
    """Terminal rows the body cannot use: the dialog's border, padding, title, buttons, the
    footer, and the dialog's 90 % height limit."""
    BODY_MAX: ClassVar[int] = 20

    def on_mount(self) -> None:
        self.fit_body(self.app.size.height)

    def on_resize(self, event: events.Resize) -> None:
        self.fit_body(event.size.height)

    def fit_body(self, height: int) -> None:
        for body in self.query(self.BODY).results(Widget):
            body.styles.max_height = max(min(height - self.CHROME, self.BODY_MAX), 3)
