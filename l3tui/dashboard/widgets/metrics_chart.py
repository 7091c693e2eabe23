"""The `metrics_chart` pane: a plotext line (or bar) chart of named metrics over the widget's
window. plotext is imported on the first chart with data, not at start: the first paint
does not wait for it. The chart is re-plotted only when its series gained a sample.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Container
from textual.widgets import Static

from l3tui.config.schema import MetricsChartWidget
from l3tui.dashboard.text import duration
from l3tui.dashboard.widgets.base import PaneBody, RefreshContext
from l3tui.dashboard.widgets.resource_sparklines import LABELS, format_value

ANSI_COLORS = ("blue", "green", "red", "cyan", "magenta", "yellow")
THEME_COLORS = ("primary", "success", "warning", "error", "accent", "secondary")


class MetricsChart(Container, PaneBody):
    """One chart; a one-line legend with current values under it."""

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

    def compose(self) -> ComposeResult:
        names = ", ".join(self.config.metrics)
        yield Static(f"waiting for samples of {names}…", classes="chart--placeholder")
        yield Static("", classes="chart--legend")

    def refresh_from(self, ctx: RefreshContext) -> None:
        window_s = self.config.window / 1000
        series = {name: list(ctx.api.metric_series(name, window_s))
                  for name in self.config.metrics}  # fmt: skip
        signature = tuple((n, len(s), s[-1] if s else None) for n, s in series.items())
        if signature == self._signature:
            return
        self._signature = signature
        if not any(series.values()):
            return
        if self._plot is None:
            from textual_plotext import PlotextPlot  # ~0.1 s: only once a chart has data

            self._plot = PlotextPlot(classes="chart--plot")
            self.query_one(".chart--placeholder").display = False
            self.mount(self._plot, before=0)
        self._draw(series, ctx.now, window_s)
        legend = "   ".join(f"{LABELS.get(n, n)} {format_value(n, s[-1][1] if s else None)}"
                           for n, s in series.items())  # fmt: skip
        self.query_one(".chart--legend", Static).update(legend)

    def _colors(self) -> list[Any]:
        if self.app.current_theme.ansi:
            return list(ANSI_COLORS)
        from textual.color import Color

        variables = self.app.theme_variables
        return [Color.parse(variables[name]).rgb for name in THEME_COLORS if name in variables]

    def _draw(self, series: dict[str, list[tuple[float, float]]], now: float,
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
            for n, (name, points) in enumerate(series.items()):
                if not points:
                    continue
                xs = [(at - now) / 60 for at, _ in points]
                ys = [value for _, value in points]
                plt.plot(xs, ys, label=LABELS.get(name, name), marker="braille",
                         color=colors[n % len(colors)] if colors else None)  # fmt: skip
            plt.xlim(-window_s / 60, 0)
            plt.xlabel(f"minutes (last {duration(window_s)})")
        plot.refresh()

    def summary(self) -> str:
        return f"last {duration(self.config.window / 1000)}"
