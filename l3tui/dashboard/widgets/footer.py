"""KeyFooter: Textual's footer, except that when the keys do not fit (80 columns) it shows
the ones that matter most rather than cutting the row at "/ Fil": `?` and `q` always, a
screen's own keys (esc Back), then keys that apply now before dimmed ones, in `RANK` order.
It decides only what is shown; the bindings and what they do stay where they are declared.
"""

from __future__ import annotations

from typing import ClassVar

from rich.cells import cell_len
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey  # not re-exported; Textual is pinned exactly

NARROW = 100
"""Below this many columns the footer uses Textual's compact spacing."""
ALWAYS = ("help", "quit")
RANK: tuple[str, ...] = (
    "resume_interrupted", "run", "pause", "resume", "cancel", "details", "logs", "ack",
    "schedule", "snooze", "filter", "freeze", "reload",
)  # fmt: skip
"""Binding ids (keymap.py) from most to least worth a place on a narrow footer."""

Shown = tuple[Binding, bool, str]
"""(binding, enabled, tooltip)."""


class KeyFooter(Footer):
    """The footer of every l3tui screen."""

    DEFAULT_CSS: ClassVar[str] = """
    KeyFooter FooterKey.-command-palette { dock: right; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._composed_width = -1
        self._composed_keys: list[tuple[Binding, bool, str, bool]] = []
        self._pending = False

    def _width(self) -> int:
        return self.size.width or self.app.size.width

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            return
        self._composed_width = self._width()
        keys = self._composed_keys = self._keys()
        for binding, enabled, tooltip, palette in keys:
            display = self.app.get_key_display(binding)
            if palette:
                yield FooterKey(binding.key, display, binding.description, binding.action,
                                classes="-command-palette", disabled=not enabled,
                                tooltip=tooltip)  # fmt: skip
            else:
                yield FooterKey(binding.key, display, binding.description, binding.action,
                                disabled=not enabled,
                                tooltip=tooltip).data_bind(compact=Footer.compact)  # fmt: skip

    def _keys(self) -> list[tuple[Binding, bool, str, bool]]:
        """(binding, enabled, tooltip, is the palette key) of each key shown, in order."""
        active = self.screen.active_bindings
        shown: dict[str, Shown] = {}
        for _node, binding, enabled, tooltip in active.values():
            if binding.show and binding.action not in shown:  # one entry per action
                shown[binding.action] = (binding, enabled, tooltip)
        palette = None
        if self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE:
            palette = active.get(self.app.COMMAND_PALETTE_BINDING)
        budget = self._width() - (self._palette_cost(palette[1]) if palette else 0)
        keys = [(binding, enabled, tooltip, False)
                for binding, enabled, tooltip in self.fitting(list(shown.values()), budget)]
        if palette is not None:
            _node, binding, enabled, _tooltip = palette
            keys.append((binding, enabled, binding.tooltip or binding.description, True))
        return keys

    def bindings_changed(self, screen: Screen[object]) -> None:
        """As Footer's, except that a burst of binding updates (focus moving, a key's state
        changing, a refresh) recomposes once, and only when a key shown changed: Footer
        recomposed on each one (seven times, ~0.25 s, while the console starts)."""
        self._bindings_ready = True
        if screen.app.app_focus and self.is_attached and screen is self.screen:
            self._recompose_soon()

    def _recompose_soon(self) -> None:
        if not self._pending:
            self._pending = True
            self.call_after_refresh(self._recompose_if_changed)

    async def _recompose_if_changed(self) -> None:
        self._pending = False
        if not self.is_attached:
            return
        if self._width() != self._composed_width or self._keys() != self._composed_keys:
            await self.recompose()

    def _cost(self, binding: Binding) -> int:
        """Cells one key takes (FooterKey's padding, and its margin when compact)."""
        key = cell_len(self.app.get_key_display(binding))
        return key + cell_len(binding.description) + (2 if self.compact else 3)

    def _palette_cost(self, binding: Binding) -> int:
        """The palette key docked right: its border and padding take three cells, compact
        or not."""
        key = cell_len(self.app.get_key_display(binding))
        return key + cell_len(binding.description) + 3

    def fitting(self, keys: list[Shown], budget: int) -> list[Shown]:
        """`keys` in their order, leaving out the least important ones until they fit."""
        costs = [self._cost(binding) for binding, _, _ in keys]
        if sum(costs) <= budget:
            return keys

        def importance(index: int) -> tuple[int, int, int]:
            binding, enabled, _ = keys[index]
            if binding.id in ALWAYS:
                return (0, 0, 0)
            if binding.id not in RANK:  # the screen's own keys (esc Back, y Yes)
                return (1, 0, 0)
            return (2, 0 if enabled else 1, RANK.index(binding.id))

        kept: set[int] = set()
        used = 0
        for index in sorted(range(len(keys)), key=importance):
            if used + costs[index] <= budget or importance(index)[0] == 0:
                kept.add(index)
                used += costs[index]
        return [key for index, key in enumerate(keys) if index in kept]

    def on_mount(self) -> None:
        self.compact = self._width() < NARROW

    def on_resize(self, event: events.Resize) -> None:
        self.compact = event.size.width < NARROW
        if self._bindings_ready and event.size.width != self._composed_width:
            self._recompose_soon()
