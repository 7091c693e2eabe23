"""The `metrics_chart` pane: a plotext line (or bar) chart of named metrics over the widget's
window. plotext is imported on the first chart with data, not at start: the first paint
does not wait for it. Building a plot costs milliseconds per hundred points, so series are
averaged down to the plot's horizontal resolution (two braille dots per cell), and the
chart is re-plotted (every `refresh_interval`) only when the newest sample moved by at least
one dot column; the legend under it follows the live reading every tick (on a dashboard
refreshed every second too, where every tick is a chart tick).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from textual.app import ComposeResult
from textual.containers import Container
from textual.widgets import Static

from l3tui.config.schema import MetricsChartWidget
from l3tui.dashboard.text import duration
from l3tui.dashboard.widgets.base import PaneBody, RefreshContext, TextLine
from l3tui.dashboard.widgets.resource_sparklines import LABELS, current_value, format_value

ANSI_COLORS = ("blue", "green", "red", "cyan", "magenta", "yellow")
THEME_COLORS = ("primary", "success", "warning", "error", "accent", "secondary")


def downsample(points: Sequence[tuple[float, float]], now: float, window_s: float,
               columns: int) -> Sequence[tuple[float, float]]:  # fmt: skip
    """Mean of the points falling in each of `columns` time buckets of the window."""
    if len(points) <= columns:
        return points
    start = now - window_s
    width = window_s / columns
    sums: dict[int, list[float]] = {}
    for at, value in points:
        bucket = min(int((at - start) / width), columns - 1)
        acc = sums.get(bucket)
        if acc is None:
            sums[bucket] = [value, 1.0]
        else:
            acc[0] += value
            acc[1] += 1.0
    return [(start + (b + 0.5) * width, total / count)
            for b, (total, count) in sorted(sums.items())]  # fmt: skip


class MetricsChart(Container, PaneBody):
    """One chart; a one-line legend with current values under it."""

    paced = True

    DEFAULT_CSS = """
    MetricsChart { height: 1fr; }
    MetricsChart > .chart--placeholder { height: 1fr; padding: 0 1; color: $text-muted; }
    MetricsChart > .chart--legend { height: 1; padding: 0 1; }
    """

    def __init__(self, config: MetricsChartWidget, **kwargs: str | None) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.config = config
        self._plot: Any = None
        self._signature: Any = None
        self._ctx: RefreshContext | None = None
        self._legend_text = ""
        self._legend_box = TextLine(classes="chart--legend")
        """The legend line: plain text (a metric's name is not markup); a new reading
        repaints the figures that moved."""
        self._first_frame = False
        """The first frame is drawn (or due): plotext may be imported and plotted now."""

    def compose(self) -> ComposeResult:
        names = ", ".join(self.config.metrics)
        yield Static(f"waiting for samples of {names}…", classes="chart--placeholder")
        yield self._legend_box

    def refresh_from(self, ctx: RefreshContext) -> None:
        self._ctx = ctx
        window_s = self.config.window / 1000
        series = {name: ctx.api.metric_series(name, window_s) for name in self.config.metrics}
        dots = self.dot_columns()
        step = window_s / dots
        newest = max((s[-1][0] for s in series.values() if s), default=0.0)
        signature = (dots, tuple(n for n, s in series.items() if s), int(newest // step))
        if signature == self._signature:
            if self._plot is not None:  # no new dot column to plot: the legend moves on
                self._legend(ctx, series)
            return
        self._signature = signature
        if not any(series.values()):
            return
        if self._plot is None:
            if not self._first_frame:
                # The samples were there before the console started (the Runtime ran
                # first): plot after the first frame, which must not wait for plotext.
                self._first_frame, self._signature = True, None
                self.call_after_refresh(self._plot_late)
                return
            from textual_plotext import PlotextPlot  # ~0.1 s: only once a chart has data

            self._plot = PlotextPlot(classes="chart--plot")
            self.query_one(".chart--placeholder").display = False
            self.mount(self._plot, before=0)
        self._draw({n: downsample(s, ctx.now, window_s, dots) for n, s in series.items()},
                   ctx.now, window_s)  # fmt: skip
        self._legend(ctx, series)

    def _plot_late(self) -> None:
        if self._ctx is not None and self.is_attached:
            self.refresh_from(self._ctx)

    def refresh_live(self, ctx: RefreshContext) -> None:
        """Between plots (every refresh_interval) the legend follows the live reading."""
        if self._plot is None:
            return
        window_s = self.config.window / 1000
        self._legend(ctx, {name: ctx.api.metric_series(name, window_s)
                           for name in self.config.metrics})  # fmt: skip

    def _legend(self, ctx: RefreshContext,
                series: Mapping[str, Sequence[tuple[float, float]]]) -> None:  # fmt: skip
        legend = "   ".join(f"{LABELS.get(n, n)} {format_value(n, current_value(ctx, n, s))}"
                           for n, s in series.items())  # fmt: skip
        if legend != self._legend_text:
            self._legend_text = legend
            self._legend_box.update(legend)

    def awaiting_data(self) -> bool:
        return self._plot is None

    def plot_pending(self) -> bool:
        """Samples are in, and the chart plots them once the first frame is drawn."""
        return self._first_frame and self._plot is None

    def dot_columns(self) -> int:
        """Horizontal resolution of the plot: two braille dots per cell, minus the axes."""
        return max((self.size.width - 8) * 2, 20)

    def on_resize(self) -> None:
        # Re-plot at the new resolution now, from the data last drawn, rather than show a
        # plot sized for the old width until the next refresh (30 s on the seed's main).
        self._signature = None
        if self._ctx is not None:
            self.call_after_refresh(self.refresh_from, self._ctx)

    def _colors(self) -> list[Any]:
        if self.app.current_theme.ansi:
            return list(ANSI_COLORS)
        from textual.color import Color

        variables = self.app.theme_variables
        return [Color.parse(variables[name]).rgb for name in THEME_COLORS if name in variables]

    def _draw(self, series: dict[str, Sequence[tuple[float, float]]], now: float,
              window_s: float) -> None:  # fmt: skip
        plot = self._plot
        plot.theme = "clear" if self.app.current_theme.ansi else "auto"
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        colors = self._colors()
        if self.config.chart_type == "bar":
            names = [LABELS.get(n, n) for n in series]
            values = [s[-1][1] if s else 0.0 for s in series.values()]
            plt.bar(names, values, color=colors[0] if colors else None)
        else:
            low = high = 0.0
            for n, (name, points) in enumerate(series.items()):
                if not points:
                    continue
                xs = [(at - now) / 60 for at, _ in points]
                ys = [value for _, value in points]
                low, high = min(low, *ys), max(high, *ys)
                plt.plot(xs, ys, label=LABELS.get(name, name), marker="braille",
                         color=colors[n % len(colors)] if colors else None)  # fmt: skip
            plt.xlim(-window_s / 60, 0)
            if low >= 0:
                # Counts and percentages: the axis starts at zero (plotext would centre a
                # flat line, so an idle queue read "-1.00 tasks/min" at the bottom).
                plt.ylim(0, high if high > 0 else 1)
            plt.xlabel(f"minutes (last {duration(window_s)})")
        plot.refresh()

    def summary(self) -> str:
        return f"last {duration(self.config.window / 1000)}"
