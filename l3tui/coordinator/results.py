"""A finished execution's result line (the seed's `reportToL2`), built from what the store
holds: the decision that started it, its outcome and times, failed tasks with exit codes and
the last lines of their logs, task-reported metrics and resource peaks. Runs on a read-only
connection in a thread (it reads log tails); it writes nothing.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from l3tui.sanitize import clean
from l3tui.store.coordination import TRIGGER_PREFIX, result_data

RESULT_VERSION = 1
LAST_LINES = 10
TAIL_BYTES = 8 * 1024
MAX_LISTED_TASKS = 1000
FAILED = ("failed", "timed_out", "cancelled", "interrupted")


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")  # fmt: skip


def decision_of(trigger: str) -> str | None:
    return trigger[len(TRIGGER_PREFIX):] if trigger.startswith(TRIGGER_PREFIX) else None


def last_lines(path: str | None, state_dir: Path, count: int = LAST_LINES) -> list[str]:
    """The last lines of a task's log (only a file under STATE/runs, never a symlink)."""
    if not path:
        return []
    runs = state_dir / "runs"
    try:
        resolved = Path(path)
        if not resolved.is_absolute() or ".." in resolved.parts or runs not in resolved.parents:
            return []
        fd = os.open(resolved, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return []
    try:
        size = os.fstat(fd).st_size
        data = os.pread(fd, TAIL_BYTES, max(size - TAIL_BYTES, 0))
    except OSError:
        return []
    finally:
        os.close(fd)
    text = data.decode("utf-8", "replace")
    lines = text.splitlines()
    if size > TAIL_BYTES and lines:
        lines = lines[1:]  # the first one is cut
    return [clean(line)[:500] for line in lines[-count:] if line.strip()]


def build(conn: sqlite3.Connection, execution_id: str, state_dir: Path,
          written_at: float) -> dict[str, Any] | None:  # fmt: skip
    """The result line of one finished execution, or None when the store has no such one."""
    data = result_data(conn, execution_id)
    if data is None:
        return None
    tasks = data["tasks"]
    counts: dict[str, int] = {}
    for task in tasks:
        counts[task["state"]] = counts.get(task["state"], 0) + 1
    failed = [{
        "task_id": t["task_id"], "name": t["name"], "state": t["state"],
        "exit_code": t["exit_code"], "attempts": t["attempt"], "reason": t["reason"],
        "last_lines": last_lines(t["log_path"], state_dir),
    } for t in tasks if t["state"] in FAILED]  # fmt: skip
    peak_cpu = max((t["peak_cpu_pct"] or 0.0 for t in tasks), default=0.0)
    peak_rss = max((t["peak_rss"] or 0 for t in tasks), default=0)
    workflow = str(data["workflow_id"])
    result: dict[str, Any] = {
        "v": RESULT_VERSION,
        "decision_id": decision_of(str(data["trigger"] or "")),
        "execution_id": data["id"],
        "workflow": workflow,
        "workflow_name": data["workflow_name"],
        "outcome": data["state"],
        "reason": data["reason"],
        "trigger": data["trigger"],
        "started_at": data["started_at"],
        "finished_at": data["finished_at"],
        "duration_s": data["duration_s"],
        "started": _iso(data["started_at"]),
        "finished": _iso(data["finished_at"]),
        "task_counts": counts,
        "failed_tasks": failed[:MAX_LISTED_TASKS],
        "metrics": data["metrics"],
        "resources": {
            "peak_cpu_pct": peak_cpu, "peak_rss_bytes": peak_rss,
            "by_task": {t["task_id"]: {"peak_cpu_pct": t["peak_cpu_pct"],
                                       "peak_rss_bytes": t["peak_rss"]}
                        for t in tasks[:MAX_LISTED_TASKS] if t["peak_rss"]},
        },
        "written_at": written_at,
    }  # fmt: skip
    if workflow.startswith(("task:", "batch:")):
        # A run_task or run_batch: every task's outcome (they are what was asked for).
        result["action"] = workflow.partition(":")[2] if workflow.startswith("task:") else None
        result["tasks"] = [{
            "task_id": t["task_id"], "state": t["state"], "exit_code": t["exit_code"],
            "duration_s": t["duration_s"], "attempts": t["attempt"],
        } for t in tasks[:MAX_LISTED_TASKS]]  # fmt: skip
    return result
