"""The executors of one Runtime and which one runs an attempt (implements `base.Executor`).

An attempt's `Placement.choices` (its task's `executor`, then its workflow's) are resolved
against `scheduling.executor`, the default: `local` runs it here (local.py), `dask` on the
cluster at the resolved address (dask.py, one executor per address, made on first use, so
l3tui never imports dask unless a task asks for it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from l3tui.config.schema import Scheduling
from l3tui.engine.api import ClusterView
from l3tui.engine.executors.base import (
    CommandJob,
    OnLines,
    OnMetric,
    Placement,
    SpawnError,
    TaskProcess,
)
from l3tui.engine.executors.local import LocalExecutor

if TYPE_CHECKING:
    from l3tui.engine.executors.dask import DaskExecutor, Notify


class ExecutorSet:
    """Routes each attempt to the executor its task, workflow or the default names."""

    def __init__(self, local: LocalExecutor, scheduling: Scheduling,
                 notify: Notify | None = None, identity: str = "") -> None:  # fmt: skip
        self.local = local
        self.scheduling = scheduling
        self.notify = notify
        self.identity = identity
        """Names this l3tui to a cluster across restarts (the host and state dir)."""
        self.dask: dict[str, DaskExecutor] = {}

    def configure(self, scheduling: Scheduling) -> None:
        """A reloaded config: new attempts follow its default; running ones keep theirs."""
        self.scheduling = scheduling

    def start(
        self, job: CommandJob, log_path: str | Path | None, on_lines: OnLines, on_metric: OnMetric,
        placement: Placement | None = None,
    ) -> TaskProcess:
        spec = self.scheduling.executor_for(*(placement.choices if placement else ()))
        if spec.kind == "local" or placement is None:
            return self.local.start(job, log_path, on_lines, on_metric)
        if spec.address is None:
            raise SpawnError("executor dask has no scheduler address: set scheduling.executor "
                             "to {kind: dask, address: ...}")  # fmt: skip
        return self.cluster(spec.address).start(job, log_path, on_lines, on_metric, placement)

    def cluster(self, address: str) -> DaskExecutor:
        """The executor for the scheduler at `address` (made, and connecting, on first use)."""
        executor = self.dask.get(address)
        if executor is None:
            from l3tui.engine.executors.dask import DaskExecutor

            ex = self.scheduling.execution
            executor = DaskExecutor(address, int(ex.log_cap_mb * 1024 * 1024),
                                    ex.grace_period / 1000, self.notify,
                                    self.identity)  # fmt: skip
            executor.warm()  # DaskMissing (a SpawnError) without the extra
            self.dask[address] = executor
        return executor

    def views(self) -> Sequence[ClusterView]:
        return [executor.view() for executor in self.dask.values()]

    async def close(self) -> None:
        """Every executor's `close`: remote attempts first, then local processes."""
        for executor in list(self.dask.values()):
            await executor.close()
        await self.local.close()
