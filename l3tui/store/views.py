"""Stored executions as the Runtime's public views, and what resuming one needs.

Read-only; the Runtime turns a `ResumePlan` into a new execution.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from l3tui.engine.api import ExecutionView, TaskView
from l3tui.errors import UsageError
from l3tui.store import queries

RESUMABLE = frozenset({"interrupted", "failed", "cancelled"})


def execution_view(row: dict[str, Any]) -> ExecutionView:
    """An ExecutionView from `queries.get_execution`."""
    tasks = []
    for t in row["tasks"]:
        tasks.append(TaskView(
            execution_id=row["id"], task_id=t["task_id"], name=t["name"], state=t["state"],
            attempt=t["attempt"], max_attempts=max(t["attempt"], 1), priority=row["priority"],
            reason=t["reason"], dependencies=tuple(t["dependencies"]),
            started_at=t["started_at"], finished_at=t["finished_at"],
            active_s=t["duration_s"] or 0.0, wait_s=t["wait_s"] or 0.0,
            exit_code=t["exit_code"], last_line="", log_path=t["log_path"],
            peak_cpu_pct=t["peak_cpu_pct"] or 0.0, peak_rss=t["peak_rss"] or 0,
        ))  # fmt: skip
    return ExecutionView(
        id=row["id"], workflow_id=row["workflow_id"], workflow_name=row["workflow_name"],
        state=row["state"], trigger=row["trigger"], parent_id=row["parent_id"],
        priority=row["priority"], created_at=row["created_at"], started_at=row["started_at"],
        finished_at=row["finished_at"], reason=row["reason"],
        definition_hash=row["definition_hash"], tasks=tuple(tasks),
    )  # fmt: skip


def recent_views(conn: sqlite3.Connection, limit: int) -> list[ExecutionView]:
    """The newest finished executions, newest first."""
    out = []
    for summary in queries.list_executions(conn, limit=limit):
        row = queries.get_execution(conn, summary["id"])
        if row is not None:
            out.append(execution_view(row))
    return out


@dataclass(frozen=True, slots=True)
class ResumePlan:
    execution_id: str
    workflow_id: str
    definition: dict[str, Any]
    params: dict[str, Any]
    keep: tuple[str, ...]
    """Tasks that succeeded and are carried over."""
    rerun: tuple[str, ...]
    why: tuple[str, ...] = ()
    """For each task in `rerun`, why it runs again: the store never saw it end well."""


def plan_resume(conn: sqlite3.Connection, prefix: str) -> ResumePlan:
    """What a resume of execution `prefix` keeps and reruns; UsageError when it cannot."""
    exec_id = queries.resolve_execution(conn, prefix)
    row = queries.get_execution(conn, exec_id)
    if row is None:
        raise UsageError(f"no execution {exec_id}")
    if row["state"] not in RESUMABLE:
        if row["state"] == "succeeded":
            raise UsageError(f"execution {exec_id} succeeded; there is nothing to resume")
        raise UsageError(f"execution {exec_id} is {row['state']}; only an interrupted, failed "
                         "or cancelled execution can be resumed")  # fmt: skip
    if not row["definition"]:
        raise UsageError(f"the definition execution {exec_id} ran is not in the store")
    keep = tuple(t["task_id"] for t in row["tasks"] if t["state"] == "succeeded")
    again = [t for t in row["tasks"] if t["state"] != "succeeded"]
    return ResumePlan(exec_id, row["workflow_id"], row["definition"], row["params"], keep,
                      tuple(t["task_id"] for t in again), tuple(_why(t) for t in again))


def _why(task: dict[str, Any]) -> str:
    """Why a task of a resumed execution runs again, in the store's words."""
    state, reason = task["state"], task["reason"] or ""
    if state != "interrupted":
        return str(state)  # failed, cancelled, skipped...: it ended, but not well
    if reason.startswith("never started"):
        return "never started"
    if reason.startswith("stopped while starting"):
        return "interrupted while starting; no end recorded"
    return "interrupted; no end recorded"
