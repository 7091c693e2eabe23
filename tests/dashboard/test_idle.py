"""What an idle console does once a second, counted rather than timed: a sparkline line is
worked out once per new sample (not again when it is drawn, nor on refreshes that bring no
new sample), and a chart on a dashboard refreshed every second keeps its plot while its
legend follows the reading, and a line of text (the status, a legend) repaints only the cells
a new text changed. Real Runtime; the readings come from a fake sampler, and new
samples are taken by the test (the sampler's own interval is an hour)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from textual.app import App, ComposeResult
from textual.geometry import Region

from l3tui.dashboard.app import ConsoleApp
from l3tui.dashboard.widgets import resource_sparklines
from l3tui.dashboard.widgets.base import TextLine
from l3tui.dashboard.widgets.metrics_chart import MetricsChart
from l3tui.dashboard.widgets.resource_sparklines import (
    LABEL_W,
    VALUE_W,
    ResourceSparklines,
    changed_cells,
)
from l3tui.dashboard.widgets.resource_sparklines import spark as spark_line
from tests.dashboard.test_keys import until
from tests.dashboard.test_live_numbers import FakeSampler

FAST_DASHBOARD = """
dashboards:
  main:
    name: main
    refresh_interval: 1000
    widgets:
      - {type: metrics_chart, title: chart, metrics: [cpu_usage, memory_usage],
         window: 86400000}
      - {type: resource_sparklines, title: now, metrics: [cpu_usage, memory_usage, disk_usage]}
"""
SCHEDULING = "scheduling:\n  sampler: {interval: 3600s}\n"


def idle_config(make_config: Any) -> Any:
    config = make_config("workflows: {}\n", dashboard=FAST_DASHBOARD)
    (config / "l3-scheduling.yml").write_text(SCHEDULING, encoding="utf-8")
    return config


async def settle(app: ConsoleApp, pilot: Any) -> None:
    """One refresh from the Runtime now, drawn."""
    app.refresh_now(full=True)
    await pilot.pause()
    await pilot.pause()


async def test_a_sparkline_line_is_worked_out_once_per_new_sample(make_config, runtime_for,
                                                                  monkeypatch):
    sampler = FakeSampler(cpu=12.0)
    async with runtime_for(idle_config(make_config), sampler=sampler) as rt:
        app = ConsoleApp(rt, theme="l3-dark", bidi=False, ssh=False)
        async with app.run_test(size=(120, 40)) as pilot:
            spark = app.query_one(ResourceSparklines)
            await until(lambda: len(spark.lines) == 3 and spark.lines[0][3] == 12.0)
            await settle(app, pilot)
            made: Counter[str] = Counter()

            def counted(values: list[float], width: int, top: float | None) -> str:
                made["lines"] += 1
                return spark_line(values, width, top)

            monkeypatch.setattr(resource_sparklines, "spark", counted)
            for _ in range(3):  # no new sample: nothing is worked out again
                await settle(app, pilot)
            assert made["lines"] == 0
            await rt.resources.sample_once()  # the same readings, one more point each
            await settle(app, pilot)
            await settle(app, pilot)
            # every line got a new point: each worked out once, for the comparison with
            # what is on screen and the drawing both
            assert made["lines"] == 3
            sampler.values["cpu_usage"] = 55.0
            await rt.resources.sample_once()

            async def shown() -> str:
                await settle(app, pilot)
                return spark._drawn[0][2].strip()

            async with asyncio.timeout(30):
                while await shown() != "55%":
                    pass


async def test_a_chart_refreshed_every_second_keeps_its_plot_while_the_legend_follows(
    make_config, runtime_for
):
    sampler = FakeSampler(cpu=12.0)
    async with runtime_for(idle_config(make_config), sampler=sampler) as rt:
        app = ConsoleApp(rt, theme="l3-dark", bidi=False, ssh=False)
        async with app.run_test(size=(120, 40)) as pilot:
            chart = app.query_one(MetricsChart)
            await until(lambda: chart._plot is not None and "cpu 12%" in chart._legend_text)
            plotted = Counter[str]()
            real = chart._draw

            def counted(*args: Any) -> None:
                plotted["draw"] += 1
                real(*args)

            chart._draw = counted  # type: ignore[method-assign]
            sampler.values["cpu_usage"] = 77.0
            await rt.resources.sample_once()
            # A new sample inside the same dot column of a day-long plot (864 s each): the
            # plot stays, the legend under it says what the machine reads now (once the
            # store confirmed the picture the reading is in).
            async with asyncio.timeout(30):
                while "cpu 77%" not in chart._legend_text:
                    await settle(app, pilot)
            assert "cpu 77%" in str(chart._legend_box.render())
            assert plotted["draw"] == 0
            await app.run_action("app.set_theme('l3-light')")  # something else to redraw
            await settle(app, pilot)
            assert plotted["draw"] == 0


class OneLine(App[None]):
    def compose(self) -> ComposeResult:
        yield TextLine("cpu 12%   mem 30%", id="line")


async def test_a_text_line_repaints_only_the_cells_a_new_text_changed():
    """The status and the chart legend: one figure moved, those cells are all that is
    rendered and sent; a text of another length, the whole line."""
    app = OneLine()
    async with app.run_test(size=(40, 3)) as pilot:
        await pilot.pause()
        line = app.query_one(TextLine)
        compositor = app.screen._compositor
        sent: list[set[Region]] = []
        real = compositor.render_update

        def spy(*args: Any, **kwargs: Any) -> Any:
            sent.append(set(compositor._dirty_regions))
            return real(*args, **kwargs)

        compositor.render_update = spy  # type: ignore[method-assign]
        line.update("cpu 13%   mem 30%")
        await pilot.pause()
        assert sent == [{Region(5, 0, 1, 1)}]
        line.update("cpu 13%   mem 30%")  # the same text: nothing
        await pilot.pause()
        assert len(sent) == 1
        line.update("cpu 9%   mem 30%")
        await pilot.pause()
        assert Region(0, 0, 40, 1) in sent[-1]
        assert app.screen._compositor.render_strips()[0].text.rstrip() == "cpu 9%   mem 30%"


def test_a_sparkline_line_repaints_the_cells_that_moved():
    label, graph = " cpu    ", "▁▂▃▄▅"
    at = LABEL_W + 1  # the sparkline's first cell; the value starts one after its last
    drawn = (label, graph, "     12%", "spark--ok")
    assert changed_cells(drawn, drawn, 40) is None
    assert changed_cells(drawn, (label, "▁▂█▄▅", "     12%", "spark--ok"), 40) == (at + 2, at + 3)
    assert changed_cells(drawn, (label, graph, "     13%", "spark--ok"), 40) == (
        at + 6, at + 6 + VALUE_W)
    assert changed_cells(drawn, (label, "▂▂▃▄▅", "     13%", "spark--ok"), 40) == (
        at, at + 6 + VALUE_W)
    assert changed_cells(drawn, (label, graph, "     95%", "spark--bad"), 40) == (0, 40)
    assert changed_cells(None, drawn, 40) == (0, 40)
    assert changed_cells(drawn, (label, graph, "     13%", "spark--ok"), 10) == (0, 10)
