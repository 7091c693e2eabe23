"""What every pane body shares: the refresh context handed out on each tick, and `RowList`,
a Line-API list with a sticky header and a cursor that renders only the rows on screen
(so 100,000 rows cost what 30 do), and `TextLine`, one line of text that repaints only the
cells that changed. Pane bodies never call the engine outside `refresh_from`
and their own `api` reads; they never touch engine internals.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget

from l3tui.dashboard import keymap
from l3tui.dashboard.text import Bidi, fit
from l3tui.engine.api import ExecutionView, RuntimeAPI, RuntimeSnapshot


@dataclass(slots=True)
class RefreshContext:
    """One tick's view of the world, shared by every pane redrawn on that tick."""

    snapshot: RuntimeSnapshot
    api: RuntimeAPI
    bidi: Bidi
    full: bool
    """Charts redraw too (every `refresh_interval`); live panes redraw on every tick."""
    executions: dict[str, ExecutionView] = field(default_factory=dict)
    selection: tuple[str, str | None] | None = None
    """The console's selected (execution, task)."""

    @property
    def now(self) -> float:
        return self.snapshot.at


class PaneBody:
    """Mixin of every pane body: what the app calls on a refresh tick."""

    paced: ClassVar[bool] = False
    """A history chart: redrawn every `refresh_interval` only (`refresh_live` in between).
    Every other pane shows live figures and redraws on each live tick (about 1 s)."""
    filterable: ClassVar[bool] = False

    def refresh_from(self, ctx: RefreshContext) -> None:
        raise NotImplementedError

    def refresh_live(self, ctx: RefreshContext) -> None:
        """A paced pane between its redraws: bring its current figures (a legend) up to
        the tick's reading, so one reading is shown the same everywhere."""

    def summary(self) -> str:
        """Short text for the pane's border subtitle."""
        return ""

    def awaiting_data(self) -> bool:
        """True while the pane has nothing to show yet: the app then redraws it at the state
        pace instead of waiting out a long refresh_interval (30 s on the seed's main)."""
        return False

    def set_filter(self, pattern: re.Pattern[str] | None) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Column:
    title: str
    width: int
    align: str = "left"
    flex: int = 0
    """Share of the leftover width (0: fixed)."""
    drop: int = 0
    """Dropped first when the pane is narrow: higher drops earlier (0: never)."""


STATE_CLASSES = {
    "state--pending", "state--waiting", "state--queued", "state--running", "state--paused",
    "state--retrying", "state--succeeded", "state--failed", "state--timed_out",
    "state--cancelled", "state--skipped", "state--interrupted",
}  # fmt: skip
"""Component classes of a list showing task or execution states (`state--<state>`)."""
SEVERITY_CLASSES = {"sev--critical", "sev--warning", "sev--info", "sev--resolved"}
"""Component classes of a list showing alert severities (`sev--<severity>`)."""
Cell = tuple[str, str]
"""(text, component class) of one cell; '' means the row's base style."""
_UNSEEN = object()


def allocate(columns: Sequence[Column], width: int) -> list[int]:
    """Cell widths for `columns` in `width` (0 for dropped columns); one space between."""
    active = list(range(len(columns)))
    while True:
        fixed = sum(columns[i].width for i in active) + max(len(active) - 1, 0)
        if fixed <= width or not any(columns[i].drop for i in active):
            break
        worst = max(active, key=lambda i: (columns[i].drop, i))
        active.remove(worst)
    widths = [0] * len(columns)
    for i in active:
        widths[i] = columns[i].width
    spare = width - (sum(widths) + max(len(active) - 1, 0))
    flexes = [i for i in active if columns[i].flex]
    total_flex = sum(columns[i].flex for i in flexes)
    if spare > 0 and total_flex:
        given = 0
        for n, i in enumerate(flexes):
            share = (spare - given if n == len(flexes) - 1
                     else spare * columns[i].flex // total_flex)  # fmt: skip
            widths[i] += share
            given += share
    elif spare < 0 and flexes:
        for i in reversed(flexes):
            cut = min(-spare, max(widths[i] - 3, 0))
            widths[i] -= cut
            spare += cut
    return widths


class RowList(ScrollView, PaneBody, can_focus=True):
    """A list pane: sticky header, cursor, and `render_line` for the visible rows only."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "rowlist--header", "rowlist--cursor", "rowlist--cursor-blurred", "rowlist--dim",
        "rowlist--muted", "rowlist--empty", "rowlist--match",
    }  # fmt: skip
    """Each list adds STATE_CLASSES and/or SEVERITY_CLASSES as its cells use them: every
    component class is styled on every restyle of the list (a stylesheet pass each)."""
    BINDINGS: ClassVar[list[Any]] = keymap.bindings(keymap.LIST_KEYS)
    DEFAULT_CSS = """
    RowList { height: 1fr; }
    """
    show_header: ClassVar[bool] = True
    empty_text: ClassVar[str] = "nothing to show"
    filterable = True

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.cursor = 0
        self._count = 0
        self._columns: tuple[Column, ...] = ()
        self._widths: tuple[int, list[int]] = (-1, [])
        self.filter: re.Pattern[str] | None = None
        self.bidi = Bidi(False)
        self._announced: object = None
        self.cursor_lost = True
        """No row here is the one chosen (nothing chosen yet, or it left the list): no
        highlight until the user moves the cursor."""
        self._styles: dict[str, Style] = {}
        self._signature: object = None
        self._painted: dict[int, object] = {}
        """Row index -> the key of what render_line last drew there (`repaint_changed`)."""

    # ------------------------------------------------------------------ subclass API

    def columns(self) -> tuple[Column, ...]:
        return self._columns

    def row_cells(self, index: int) -> tuple[list[Cell], str]:
        """Cells of row `index` and the row's base component class ('' for none)."""
        raise NotImplementedError

    def cursor_moved(self, index: int) -> None:
        """The cursor now points at row `index` (post a selection message)."""

    def empty_message(self) -> str:
        return self.empty_text

    def row_key(self, index: int) -> object:
        """Identity of row `index` (what a selection message names)."""
        return None

    def find_key(self, key: object) -> int | None:
        """The row showing `key` (the cursor stays on it). Lists of huge size override this
        with a bounded search."""
        for index in range(self._count):
            if self.row_key(index) == key:
                return index
        return None

    def follow_selection(self, selection: object) -> None:
        """Put the cursor on the console's current selection when this list shows it (a run
        just started, or a row chosen in another pane)."""
        if selection is None or selection == self._announced:
            return
        index = self.find_key(selection)
        if index is not None:
            self.cursor, self._announced, self.cursor_lost = index, selection, False

    # ------------------------------------------------------------------ data

    def unchanged(self, signature: object, ctx: RefreshContext) -> bool:
        """True when a refresh brings no new rows (same views, same order): the pane keeps
        its row list and repaints only the rows on screen whose text moved on (an age, an
        elapsed time); an idle pane repaints nothing and writes nothing to the terminal."""
        if signature == self._signature:
            self.repaint_changed()
            return True
        self._signature = signature
        return False

    def _line_key(self, index: int) -> object:
        """What row `index` shows (its cells, and its highlight when it has the cursor),
        or the placeholder text of an empty list: a line is repainted when this moved."""
        if index >= self._count:
            return ("empty", self.empty_message()) if index == 0 else None
        cells, row_class = self.row_cells(index)
        return self._key_of(index, cells, row_class)

    def _key_of(self, index: int, cells: list[Cell], row_class: str) -> object:
        cursor = index == self.cursor and not self.cursor_lost
        return cells, row_class, (self.has_focus if cursor else None)

    def repaint_changed(self) -> None:
        """Repaint the rows on screen whose key differs from what was last drawn (rows
        never drawn count as changed); everything when most of them moved."""
        shown = self._painted
        rows = self._visible_rows()
        if len(shown) > 4 * rows + 64:  # scrolled far: forget rows long off screen
            shown.clear()
        header = 1 if self.show_header else 0
        top = round(self.scroll_offset.y)
        changed = [index for index in range(top, min(top + rows, max(self._count, 1)))
                   if shown.get(index, _UNSEEN) != self._line_key(index)]  # fmt: skip
        if len(changed) * 2 > rows:
            self.refresh()
            return
        for index in changed:
            self.refresh_line(index + header)

    @property
    def row_total(self) -> int:
        return self._count

    def set_row_count(self, count: int) -> None:
        """The rows changed: resize the scroll area, keep the cursor in range, repaint."""
        old, self._count = self._count, count
        header = 1 if self.show_header else 0
        self.virtual_size = Size(self.size.width, max(count, 1) + header)
        # Rows moved under the cursor. A refresh never changes what is selected (keys act on
        # what the user chose): the cursor follows that row, or shows none if it left.
        if self._announced is not None:
            index = self.find_key(self._announced)
            if index is not None:
                self.cursor, self.cursor_lost = index, False
            else:
                self.cursor_lost = True
        if self.cursor >= count:
            self.cursor = max(count - 1, 0)
        if count != old:
            self.refresh()  # rows came or went: the scrollbar and the blank tail move too
        else:
            self.repaint_changed()  # same number of rows: repaint the ones that moved

    # ------------------------------------------------------------------ cursor

    def _visible_rows(self) -> int:
        header = 1 if self.show_header else 0
        return max(self.scrollable_content_region.height - header, 1)

    def move_cursor(self, index: int, *, notify: bool = True) -> None:
        if not self._count:
            return
        index = max(0, min(index, self._count - 1))
        changed = index != self.cursor or self.cursor_lost
        self.cursor = index
        self.cursor_lost = False
        top = round(self.scroll_offset.y)
        visible = self._visible_rows()
        if index < top:
            self.scroll_to(y=index, animate=False)
        elif index >= top + visible:
            self.scroll_to(y=index - visible + 1, animate=False)
        self.refresh()
        if notify and (changed or self.has_focus):
            self.cursor_moved(index)

    def action_cursor_up(self) -> None:
        # Without a highlight, the first key shows (and selects) the row under the cursor.
        self.move_cursor(self.cursor - (0 if self.cursor_lost else 1))

    def action_cursor_down(self) -> None:
        self.move_cursor(self.cursor + (0 if self.cursor_lost else 1))

    def action_page_up(self) -> None:
        self.move_cursor(self.cursor - self._visible_rows())

    def action_page_down(self) -> None:
        self.move_cursor(self.cursor + self._visible_rows())

    def action_first(self) -> None:
        self.move_cursor(0)

    def action_last(self) -> None:
        self.move_cursor(self._count - 1)

    def action_toggle_expand(self) -> None:
        pass

    def on_focus(self) -> None:
        self.refresh()
        if self._count:
            self.cursor_lost = False
            self.cursor_moved(self.cursor)

    def announce(self, index: int) -> None:
        """Remember what the last selection message named (see `set_row_count`)."""
        self._announced = self.row_key(index)

    def on_blur(self) -> None:
        self.refresh()

    def on_click(self, event: events.Click) -> None:
        header = 1 if self.show_header else 0
        if event.y >= header:
            self.move_cursor(round(self.scroll_offset.y) + event.y - header)

    def on_resize(self) -> None:
        self.set_row_count(self._count)
        self.refresh()  # new column widths: every line is drawn again

    # ------------------------------------------------------------------ drawing

    def _style(self, name: str) -> Style:
        style = self._styles.get(name)
        if style is None:
            if name == "":
                style = Style()
            elif name == "base":
                style = self.rich_style
            else:
                style = self.get_component_rich_style(name, partial=True)
            self._styles[name] = style
        return style

    def _column_widths(self, width: int) -> list[int]:
        if self._widths[0] != width:
            self._widths = (width, allocate(self.columns(), width))
        return self._widths[1]

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self._style("base")
        header = 1 if self.show_header else 0
        if header and y == 0:
            widths = self._column_widths(width)
            cells = [(c.title, "") for c in self.columns()]
            return self._strip(cells, widths, base + self._style("rowlist--header"), width)
        index = round(self.scroll_offset.y) + y - header
        if index >= self._count:
            if index == 0 and y == header:
                self._painted[0] = ("empty", self.empty_message())
                text = fit(" " + self.empty_message(), width)
                return Strip([Segment(text, base + self._style("rowlist--empty"))], width)
            return Strip.blank(width, base)
        cells, row_class = self.row_cells(index)
        self._painted[index] = self._key_of(index, cells, row_class)
        row_style = base + self._style(row_class)
        if index == self.cursor and not self.cursor_lost:
            row_style += self._style(
                "rowlist--cursor" if self.has_focus else "rowlist--cursor-blurred"
            )
        return self._strip(cells, self._column_widths(width), row_style, width)

    def _strip(self, cells: list[Cell], widths: list[int], row_style: Style, width: int) -> Strip:
        segments: list[Segment] = []
        columns = self.columns()
        used = 0
        for (text, cls), col, w in zip(cells, columns, widths, strict=False):
            if not w:
                continue
            if segments:
                segments.append(Segment(" ", row_style))
                used += 1
            style = row_style + self._style(cls) if cls else row_style
            segments.append(Segment(fit(text, w, col.align), style))
            used += w
        if used < width:
            segments.append(Segment(" " * (width - used), row_style))
        return Strip(segments, width)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()
        self.refresh()


class TextLine(Widget):
    """One line of plain text in the widget's style, drawn as a `Static` without markup
    draws it, that repaints only the cells a new text changed: a status or a legend whose
    one figure moves each second sends those few cells to the terminal (over SSH), not the
    whole line again. `fits_text`: the widget is as wide as its text (`width: auto`), so a
    text of another length lays the screen out again."""

    DEFAULT_CSS = """
    TextLine { height: 1; }
    """

    def __init__(self, text: str = "", *, fits_text: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._text = text
        self._fits_text = fits_text

    @property
    def text(self) -> str:
        return self._text

    def update(self, text: str) -> None:
        old, self._text = self._text, text
        if text == old:
            return
        if len(text) != len(old) or cell_len(text) != len(text) or cell_len(old) != len(old):
            # Cells do not line up with characters: the whole line.
            self.refresh(layout=self._fits_text and cell_len(text) != cell_len(old))
            return
        changed = [i for i, (was, now) in enumerate(zip(old, text, strict=True)) if was != now]
        self.refresh(Region(changed[0], 0, changed[-1] - changed[0] + 1, 1))

    def render(self) -> str:
        return self._text

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return cell_len(self._text)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        style = self.rich_style
        if y or not self._text:
            return Strip.blank(width, style)
        # As a Static draws it: the text alone (the rest of the line is filled with the
        # background by Textual), cut at the width.
        strip = Strip([Segment(self._text, style)], cell_len(self._text))
        return strip if strip.cell_length <= width else strip.crop(0, width)
