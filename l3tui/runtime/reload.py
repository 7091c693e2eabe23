"""Live configuration: watch the four config files (polling their stat stamps), re-validate
the whole directory when one changes, and apply a valid config or report why not.

Nothing changes until the whole directory validates, and a file still being written is
given one poll interval to settle first. Running executions keep the definition they
started with (the engine only uses new definitions for new executions).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from l3tui.config.errors import ConfigError
from l3tui.config.loader import FILE_NAMES, Config, load_config
from l3tui.engine import events as ev
from l3tui.engine.api import OpResult
from l3tui.engine.bus import EventBus

Stamp = tuple[tuple[int, int, int] | None, ...]


def describe_changes(old: Config, new: Config) -> str:
    """`workflows +nightly ~demo_pipeline; alert rules +disk_full` (or 'no effective change')."""
    parts = []
    pairs: list[tuple[str, Mapping[str, object], Mapping[str, object]]] = [
        ("workflows", old.workflows.workflows, new.workflows.workflows),
        ("templates", old.workflows.templates, new.workflows.templates),
        ("schedules", {r.id: r for r in old.scheduling.recurring_tasks},
         {r.id: r for r in new.scheduling.recurring_tasks}),
        ("alert rules", {r.id: r for r in old.dashboard.alerts},
         {r.id: r for r in new.dashboard.alerts}),
        ("dashboards", old.dashboard.dashboards, new.dashboard.dashboards),
        ("actions", old.actions.actions, new.actions.actions),
    ]  # fmt: skip
    for label, before, after in pairs:
        added = [k for k in after if k not in before]
        removed = [k for k in before if k not in after]
        changed = [k for k in after if k in before and after[k] != before[k]]
        marks = [f"+{k}" for k in added] + [f"-{k}" for k in removed] + [f"~{k}" for k in changed]
        if marks:
            shown = " ".join(marks[:6]) + (f" (+{len(marks) - 6} more)" if len(marks) > 6 else "")
            parts.append(f"{label} {shown}")
    if old.scheduling.model_dump(exclude={"recurring_tasks"}) != new.scheduling.model_dump(
        exclude={"recurring_tasks"}
    ):
        parts.append("scheduling settings")
    return "; ".join(parts) or "no effective change"


class ConfigReloader:
    """Polls the config files; `reload()` re-validates and applies (or reports) on demand."""

    def __init__(
        self,
        current: Config,
        apply: Callable[[Config], None],
        bus: EventBus,
        now: Callable[[], float],
        *,
        interval_s: float = 1.0,
        loader: Callable[[Path], Config] = load_config,
    ) -> None:
        self.current = current
        self.directory = current.directory
        self.apply = apply
        self.bus = bus
        self._now = now
        self.interval_s = interval_s
        self.loader = loader
        self.reloads = 0
        self._lock = asyncio.Lock()
        self._seen = self.stamp()
        """Stamps as of the config in force: an edit made before watching starts counts."""

    def stamp(self) -> Stamp:
        """(mtime_ns, size, inode) of each file; editors that replace files change the inode."""
        out: list[tuple[int, int, int] | None] = []
        for name in FILE_NAMES.values():
            try:
                st = os.stat(self.directory / name)
            except OSError:
                out.append(None)
            else:
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(out)

    async def watch(self) -> None:
        """Reload when a file changed and then stayed unchanged for one interval."""
        settling: Stamp | None = None
        while True:
            await asyncio.sleep(self.interval_s)
            now_stamp = self.stamp()
            if now_stamp == self._seen:
                settling = None
            elif now_stamp != settling:
                settling = now_stamp  # changed: give the writer one interval to finish
            else:
                settling = None
                self._seen = now_stamp
                await self.reload(actor="", trigger="file change")

    async def reload(self, *, actor: str = "", trigger: str = "manual") -> OpResult:
        """Load and check the directory; apply it if valid. The result says what happened."""
        async with self._lock:
            stamp = self.stamp()
            try:
                config = await asyncio.to_thread(self.loader, self.directory)
            except ConfigError as exc:
                errors = [i for i in exc.issues if i.severity == "error"]
                shown = "; ".join(str(i) for i in errors[:3])
                more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
                message = (f"config not applied ({trigger}): {len(errors)} error(s): "
                           f"{shown}{more}")  # fmt: skip
                self._notice(message, "error")
                return self._record(OpResult(False, message), actor)
            self._seen = stamp
            if config.digest == self.current.digest:
                return self._record(OpResult(True, "config unchanged"), actor)
            summary = describe_changes(self.current, config)
            self.apply(config)
            self.current = config
            self.reloads += 1
            message = f"config reloaded ({trigger}): {summary}"
            self._notice(message, "info")
            return self._record(OpResult(True, message), actor)

    def _notice(self, message: str, severity: str) -> None:
        self.bus.publish(ev.SystemNotice(at=self._now(), topic="config", message=message,
                                         severity=severity))  # fmt: skip

    def _record(self, result: OpResult, actor: str) -> OpResult:
        """Every reload is one operator action (its one audit entry); a file-change reload
        has no actor of its own and is recorded under the one running this l3tui."""
        self.bus.publish(ev.OperatorAction(at=self._now(), action="config.reload",
                                           execution_id=None, task_id=None,
                                           applied=result.applied, detail=result.message,
                                           actor=actor))  # fmt: skip
        return result
