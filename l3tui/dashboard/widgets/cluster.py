"""The `cluster` pane: each Dask cluster tasks run on (its state in one line) and its
workers, one row each: name, host, resources, threads, memory against its limit, CPU, our
attempts running there and how long since its last heartbeat. From `RuntimeAPI.cluster()`
(a daemon's client fetches it in the background).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

from l3tui.config.schema import ClusterWidget
from l3tui.dashboard.text import duration, size
from l3tui.dashboard.widgets.base import STATE_CLASSES, Cell, Column, RefreshContext, RowList
from l3tui.engine.api import ClusterView, WorkerView

Row = tuple[ClusterView, WorkerView | None]
"""A cluster's header row (no worker) or one of its workers."""
_STATE_CLASS = {"connected": "state--succeeded", "lost": "state--failed"}


class ClusterPane(RowList):
    """Dask clusters and their workers."""

    COMPONENT_CLASSES: ClassVar[set[str]] = STATE_CLASSES

    empty_text = "no Dask cluster (every task runs here; see executor: in l3-scheduling.yml)"
    COLUMNS: ClassVar[tuple[Column, ...]] = (
        Column("worker", 14, flex=1),
        Column("host", 15, drop=3),
        Column("resources", 16, flex=1, drop=1),
        Column("thr", 3, drop=4),
        Column("memory", 15, drop=2),
        Column("cpu", 5, drop=4),
        Column("running", 12, flex=2),
        Column("seen", 6),
    )

    def __init__(self, config: ClusterWidget, **kwargs: str | None) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.config = config
        self.at = 0.0
        self.rows: list[Row] = []
        self.views: Sequence[ClusterView] = ()

    def columns(self) -> tuple[Column, ...]:
        return self.COLUMNS

    def refresh_from(self, ctx: RefreshContext) -> None:
        self.at = ctx.snapshot.at  # "seen 3s ago" moves on when nothing else does
        self.bidi = ctx.bidi  # names and messages come from other machines: cleaned
        views = list(ctx.api.cluster())
        if self.unchanged(views, ctx):
            return
        self.views = views
        rows: list[Row] = []
        for view in views:
            rows.append((view, None))
            rows.extend((view, w) for w in view.workers if self._shown(w))
        self.rows = rows
        self.set_row_count(len(rows))

    def _shown(self, worker: WorkerView) -> bool:
        if self.filter is None:
            return True
        text = f"{worker.name} {worker.address} {worker.host} {' '.join(worker.running)} "
        return bool(self.filter.search(text + " ".join(k for k, _ in worker.resources)))

    def set_filter(self, pattern: re.Pattern[str] | None) -> None:
        self.filter = pattern
        self._signature = None
        self.cursor = 0

    def row_cells(self, index: int) -> tuple[list[Cell], str]:
        view, worker = self.rows[index]
        if worker is None:
            cls = _STATE_CLASS.get(view.state, "state--running")
            state = f"{view.state} {duration(self.at - view.since)}"
            return [(self.bidi(view.address), ""), (state, cls),
                    (self.bidi(view.message), "rowlist--muted"), ("", ""), ("", ""), ("", ""),
                    (f"{view.running} ours", ""), ("", "")], ""  # fmt: skip
        resources = " ".join(f"{k}={v:g}" for k, v in worker.resources) or "—"
        memory = size(worker.memory) + (f"/{size(worker.memory_limit)}"
                                        if worker.memory_limit else "")  # fmt: skip
        seen = self.at - worker.last_seen if worker.last_seen else None
        stale = seen is not None and seen > 10
        running = ", ".join(worker.running) or "idle"
        return [
            (self.bidi(worker.name), ""),
            (self.bidi(worker.host), "rowlist--muted"),
            (self.bidi(resources), ""),
            (str(worker.threads), "rowlist--muted"),
            (memory, ""),
            (f"{worker.cpu_pct:.0f}%", "rowlist--muted"),
            (self.bidi(running), "" if worker.running else "rowlist--muted"),
            (duration(max(seen, 0.0)) if seen is not None else "—",
             "state--failed" if stale else "rowlist--muted"),
        ], ""

    def summary(self) -> str:
        workers = sum(len(v.workers) for v in self.views)
        running = sum(v.running for v in self.views)
        states = ", ".join(v.state for v in self.views)
        return f"{workers} worker(s) · {running} running · {states or 'none'}"

    def row_key(self, index: int) -> object:
        if not 0 <= index < len(self.rows):
            return None
        view, worker = self.rows[index]
        return (view.address, worker.address if worker else None)
