"""The `resource_sparklines` pane: one compact line per metric (label, sparkline of the
recent samples, current value), plus one per CPU core with `per_core`. Drawn with the Line
API from `metric_series`; a live pane (asked every tick), it repaints only the lines a new
sample changed. The current value is the snapshot's reading, the same one the top bar shows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from l3tui.config.schema import ResourceSparklinesWidget
from l3tui.dashboard.text import fit, size
from l3tui.dashboard.widgets.base import PaneBody, RefreshContext

BLOCKS = " ▁▂▃▄▅▆▇█"
PERCENT = frozenset({"cpu_usage", "memory_usage", "swap_usage", "disk_usage", "error_rate",
                     "success_rate"})  # fmt: skip
RATES = frozenset({"net_in", "net_out"})
LABELS = {
    "cpu_usage": "cpu", "memory_usage": "mem", "swap_usage": "swap", "disk_usage": "disk",
    "load_avg": "load", "disk_iops": "iops", "net_in": "net in", "net_out": "net out",
    "net_connections": "conns", "queue_depth": "queue", "running_tasks": "running",
    "throughput": "tasks/m", "response_time": "p50", "error_rate": "errors",
    "success_rate": "ok", "queue_wait": "wait",
}  # fmt: skip
LABEL_W = 8
VALUE_W = 8
WINDOW_S = 600.0


def spark(values: list[float], width: int, top: float | None) -> str:
    """`values` squeezed (max per bucket) into `width` cells of block characters."""
    if width <= 0:
        return ""
    if not values:
        return " " * width
    if len(values) > width:
        step = len(values) / width
        values = [max(values[int(i * step): max(int((i + 1) * step), int(i * step) + 1)])
                  for i in range(width)]  # fmt: skip
    peak = top if top is not None else (max(values) or 1.0)
    cells = []
    for value in values:
        level = 0 if peak <= 0 else round(min(max(value / peak, 0.0), 1.0) * (len(BLOCKS) - 1))
        cells.append(BLOCKS[max(level, 1) if value > 0 else 0])
    return " " * (width - len(cells)) + "".join(cells)


def changed_cells(drawn: tuple[str, str, str, str] | None, parts: tuple[str, str, str, str],
                  width: int) -> tuple[int, int] | None:
    """The cells [start, end) of a line that differ between what is drawn and `parts`
    (label, sparkline, value, the value's style: see `ResourceSparklines._parts`), None when
    none do. The label is LABEL_W cells, the sparkline one cell per character, the value
    VALUE_W cells; a new style or label repaints the whole line."""
    if drawn == parts:
        return None
    if drawn is None or drawn[0] != parts[0] or drawn[3] != parts[3] or len(drawn[1]) != len(
            parts[1]):  # fmt: skip
        return 0, width
    graph_at = LABEL_W + 1
    value_at = graph_at + len(parts[1]) + 1
    moved = [graph_at + i for i, (was, now) in enumerate(zip(drawn[1], parts[1], strict=True))
             if was != now]  # fmt: skip
    if drawn[2] != parts[2]:
        moved += [value_at, value_at + VALUE_W - 1]
    start, end = min(moved), min(max(moved) + 1, width)
    return (start, end) if start < end else (0, width)  # (past a narrow pane's edge)


def current_value(ctx: RefreshContext, name: str,
                  series: Sequence[tuple[float, float]]) -> float | None:  # fmt: skip
    """The figure a pane shows as "now": the snapshot's resource reading when it has one
    (the one the top bar shows), else the newest point of the series."""
    reading = ctx.snapshot.resources.get(name)
    if isinstance(reading, int | float) and not isinstance(reading, bool):
        return float(reading)
    return series[-1][1] if series else None


def format_value(name: str, value: float | None) -> str:
    if value is None:
        return "—"
    if name in PERCENT:
        return f"{value:.0f}%"
    if name in RATES:
        return f"{size(value)}/s"
    if name == "load_avg":
        return f"{value:.2f}"
    if name in ("response_time", "queue_wait"):
        return f"{value:.1f}s"
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


class ResourceSparklines(Widget, PaneBody):
    """Label, sparkline, current value; one line each."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"spark--label", "spark--ok", "spark--warn",
                                             "spark--bad", "spark--muted"}  # fmt: skip
    DEFAULT_CSS = """
    ResourceSparklines { height: 1fr; }
    """

    def __init__(self, config: ResourceSparklinesWidget, **kwargs: str | None) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.config = config
        self.lines: list[tuple[str, str, list[float], float | None]] = []
        """(label, metric, values, current)."""
        self._cores: list[deque[float]] = []
        self._signature: Any = None
        self._last_sample: Any = None
        self._styles: dict[str, Style] = {}
        self._drawn: dict[int, tuple[str, str, str, str]] = {}
        """Line -> what render_line last drew there: a new sample repaints the lines it moved."""
        self._drawn_parts: dict[int, tuple[int, tuple[str, str, str, str]]] = {}
        """Line -> (width, its parts) while the line is unchanged (`_parts`)."""

    def refresh_from(self, ctx: RefreshContext) -> None:
        lines = []
        signature: list[Any] = []
        previous = dict(zip(self._signature or (), self.lines, strict=False))
        for name in self.config.metrics:
            series = ctx.api.metric_series(name, WINDOW_S)
            current = current_value(ctx, name, series)
            key = (name, len(series), series[-1] if series else None, current)
            signature.append(key)
            # A metric with no new sample and the same reading keeps its line as it was.
            line = previous.get(key)
            lines.append(line if line is not None else
                         (LABELS.get(name, name), name, [v for _, v in series], current))
        if self.config.per_core:
            sample = ctx.snapshot.resources
            per_core = sample.get("per_core") or sample.get("cpu_per_core") or []
            marker = sample.get("at", ctx.snapshot.at)
            if per_core and marker != self._last_sample:
                self._last_sample = marker
                while len(self._cores) < len(per_core):
                    self._cores.append(deque(maxlen=240))
                for history, value in zip(self._cores, per_core, strict=False):
                    history.append(float(value))
            for n, history in enumerate(self._cores):
                lines.append((f"core {n}", "cpu_usage", list(history),
                              history[-1] if history else None))  # fmt: skip
                signature.append((n, len(history), history[-1] if history else None))
        if signature != self._signature:
            self._signature = signature
            count = len(self.lines)
            old, self.lines = self.lines, lines
            self._drawn_parts = {y: parts for y, parts in self._drawn_parts.items()
                                 if y < count and y < len(lines) and old[y] is lines[y]}
            if len(lines) != count:
                self.refresh()
                return
            # A new sample moves the busy metrics' lines only: repaint those, and of each only
            # the cells that moved (over SSH every cell written crosses the link).
            width = self.size.width
            for y in range(len(lines)):
                span = changed_cells(self._drawn.get(y), self._parts(y, width), width)
                if span is not None:
                    self.refresh(Region(span[0], y, span[1] - span[0], 1))

    def _style(self, name: str) -> Style:
        style = self._styles.get(name)
        if style is None:
            style = self._styles[name] = (
                self.rich_style if name == "base"
                else self.get_component_rich_style(name, partial=True)
            )  # fmt: skip
        return style

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()

    def _value_style(self, metric: str, value: float | None) -> str:
        if value is None or metric not in PERCENT or metric == "success_rate":
            return "spark--muted" if value is None else "spark--ok"
        if value >= 90:
            return "spark--bad"
        if value >= 75:
            return "spark--warn"
        return "spark--ok"

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self._style("base")
        if y >= len(self.lines):
            if y == 0:
                text = fit(" waiting for the first resource samples…", width)
                return Strip([Segment(text, base + self._muted())], width)
            return Strip.blank(width, base)
        parts = self._drawn[y] = self._parts(y, width)
        label, graph, value, value_style = parts
        style = base + self._style(value_style)
        segments = [
            Segment(label, base + self._style("spark--label")),
            Segment(" ", base),
            Segment(graph, style),
            Segment(" ", base),
            Segment(value, style),
        ]  # fmt: skip
        return Strip(segments, width).crop_extend(0, width, base)

    def _parts(self, y: int, width: int) -> tuple[str, str, str, str]:
        """Line `y` as drawn at `width`: label, sparkline, value, the value's style. Worked
        out once per line and width while the line is the same (a refresh compares it with
        what is on screen, and render_line draws it)."""
        known = self._drawn_parts.get(y)
        if known is None or known[0] != width:
            known = self._drawn_parts[y] = (width, self._make_parts(y, width))
        return known[1]

    def _make_parts(self, y: int, width: int) -> tuple[str, str, str, str]:
        label, metric, values, current = self.lines[y]
        graph_w = max(width - LABEL_W - VALUE_W - 2, 0)
        top = 100.0 if metric in PERCENT else None
        return (fit(f" {label}", LABEL_W),
                spark(values[-graph_w * 2:] if graph_w else [], graph_w, top),
                fit(format_value(metric, current), VALUE_W, "right"),
                self._value_style(metric, current))  # fmt: skip

    def _muted(self) -> Style:
        return self._style("spark--muted")

    def summary(self) -> str:
        return "last 10 min"
