"""Read queries for the Resource Manager's history: reservations, bottleneck findings and
upgrade advice, time tasks waited per cause, each task's measured usage against what it
declared (right-sizing, efficiency) and the machine's CPU while ready work waited.

Plain functions over a read-only `sqlite3.Connection`, like `queries`; they never write.
What a task declared is read from the definition its execution ran (by content hash).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections import defaultdict
from typing import Any

from l3tui.engine.resources.reservations import Reservation
from l3tui.engine.resources.usage import Efficiency, MeasuredRun, task_efficiency
from l3tui.errors import UsageError

log = logging.getLogger(__name__)
Row = dict[str, Any]
RAN = ("succeeded", "failed", "timed_out")


def _rows(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
    cur = conn.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


# ------------------------------------------------------------------ reservations


def _reservation(row: Row) -> Reservation:
    pools = tuple((str(name), int(slots)) for name, slots in json.loads(row["pools"] or "[]"))
    return Reservation(row["id"], float(row["cpu"]), int(row["memory_mb"]), pools,
                       float(row["starts_at"]), float(row["ends_at"]), row["reason"],
                       row["actor"], float(row["created_at"]))  # fmt: skip


def open_reservations(conn: sqlite3.Connection) -> list[tuple[Reservation, str]]:
    """Reservations recorded as scheduled or in force, with that state (some may have ended
    since: the Runtime that loads them ends those at once). A row that does not read as one
    (edited by hand) is left out, with a warning, rather than stop l3tui from starting."""
    out = []
    for row in _rows(conn, "SELECT * FROM reservations WHERE state IN ('scheduled', 'active') "
                     "ORDER BY starts_at, id"):  # fmt: skip
        try:
            out.append((_reservation(row), str(row["state"])))
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("reservation %s in the store is unreadable, ignored: %s",
                        row.get("id"), exc)  # fmt: skip
    return out


def list_reservations(conn: sqlite3.Connection, now: float, *, every: bool = False,
                      limit: int = 200) -> list[Row]:  # fmt: skip
    """Newest window first. Without `every`, those still to come or in force. `state` is
    as of `now` (a reservation whose time ran out while no l3tui ran is `ended`)."""
    sql = "SELECT * FROM reservations"
    params: tuple[Any, ...] = ()
    if not every:
        sql += " WHERE state IN ('scheduled', 'active') AND ends_at > ?"
        params = (now,)
    out = _rows(conn, sql + f" ORDER BY starts_at DESC, id LIMIT {int(limit)}", params)
    for row in out:
        row["pools"] = {str(n): int(s) for n, s in json.loads(row["pools"] or "[]")}
        if row["state"] in ("scheduled", "active"):
            row["state"] = _reservation({**row, "pools": "[]"}).state(now)
    return out


def resolve_reservation(conn: sqlite3.Connection, prefix: str) -> Reservation:
    """A reservation still to come or in force, by id or unique prefix (UsageError else)."""
    wanted = prefix.strip()
    escaped = wanted.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    found = _rows(conn, "SELECT * FROM reservations WHERE state IN ('scheduled', 'active') "
                  "AND id LIKE ? ESCAPE '\\' LIMIT 6", (escaped + "%",))  # fmt: skip
    exact = [r for r in found if r["id"] == wanted]
    if exact:
        found = exact
    if not wanted or not found:
        raise UsageError(f"no reservation still to come or in force matches {wanted!r} "
                         "(see `l3tui reservations`)")  # fmt: skip
    if len(found) > 1:
        raise UsageError(f"{wanted!r} is ambiguous: {', '.join(r['id'] for r in found)}")
    return _reservation(found[0])


# ------------------------------------------------------------------ findings & waits


def findings(conn: sqlite3.Connection, *, since: float | None = None,
             active_only: bool = False) -> list[Row]:  # fmt: skip
    """Bottleneck findings and upgrade advice: active ones first, then those resolved
    since `since`, each with its evidence (a list of lines)."""
    sql = "SELECT * FROM findings"
    params: tuple[Any, ...] = ()
    if active_only:
        sql += " WHERE state = 'active'"
    elif since is not None:
        sql += " WHERE state = 'active' OR resolved_at >= ?"
        params = (since,)
    out = _rows(conn, sql + " ORDER BY state = 'resolved', last_seen DESC", params)
    for row in out:
        row["evidence"] = list(json.loads(row["evidence"] or "[]"))
    return out


def blocked_by_cause(conn: sqlite3.Connection, since: float) -> list[Row]:
    """Seconds tasks waited per cause since `since` (by the hour: the hour `since` falls in
    counts whole), most first."""
    hour = since - since % 3600
    return _rows(conn, "SELECT cause, sum(seconds) AS seconds FROM blocked_time "
                 "WHERE bucket >= ? GROUP BY cause ORDER BY seconds DESC", (hour,))


def blocked_hours(conn: sqlite3.Connection, since: float) -> list[tuple[str, float, float]]:
    return [(str(c), float(b), float(s)) for c, b, s in conn.execute(
        "SELECT cause, bucket, seconds FROM blocked_time WHERE bucket >= ?", (since,))]


def hourly_peaks(conn: sqlite3.Connection, since: float) -> list[tuple[str, float, float]]:
    """(metric, hour start, peak) of cpu_usage, load_avg and memory_usage since `since`."""
    return [(str(n), float(h), float(p)) for n, h, p in conn.execute(
        "SELECT name, bucket - bucket % 3600 AS hour, max(max) FROM resource_metrics "
        "WHERE bucket >= ? AND name IN ('cpu_usage', 'load_avg', 'memory_usage') "
        "GROUP BY name, hour", (since,))]  # fmt: skip


def busy_while_queued(conn: sqlite3.Connection, since: float) -> Row:
    """While ready tasks waited for admission: for how long, and the machine's mean CPU %
    (what stayed idle then is capacity the scheduling left unused)."""
    row = conn.execute(
        "SELECT sum(avg * n), sum(n) FROM resource_metrics WHERE name = 'busy_while_queued' "
        "AND bucket >= ?", (since,)).fetchone()  # fmt: skip
    queued = conn.execute(
        "SELECT sum(avg * n) FROM resource_metrics WHERE name = 'queued_interval_s' "
        "AND bucket >= ?", (since,)).fetchone()  # fmt: skip
    busy = row[0] / row[1] if row and row[1] else None
    return {"busy_pct": None if busy is None else round(busy, 1),
            "idle_pct": None if busy is None else round(100 - busy, 1),
            "queued_s": round(queued[0] or 0.0, 1) if queued else 0.0,
            "samples": int(row[1] or 0) if row else 0}  # fmt: skip


# ------------------------------------------------------------------ declared vs used


class Declared:
    """What each task of a stored definition declared, read once per definition."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._cache: dict[str, dict[str, tuple[float, int]]] = {}

    def __call__(self, definition_hash: str, task_id: str) -> tuple[float, int]:
        tasks = self._cache.get(definition_hash)
        if tasks is None:
            row = self.conn.execute("SELECT body FROM definitions WHERE hash = ?",
                                    (definition_hash,)).fetchone()  # fmt: skip
            tasks = {}
            if row is not None:
                try:
                    body = json.loads(row[0])
                except ValueError:
                    body = {}
                for task in body.get("tasks") or []:
                    needs = task.get("resources") or {}
                    tasks[str(task.get("id"))] = (float(needs.get("cpu") or 0),
                                                  int(needs.get("memory_mb") or 0))
            self._cache[definition_hash] = tasks
        return tasks.get(task_id, (0.0, 0))


def task_usage(conn: sqlite3.Connection, *, runs: int = 10, since: float | None = None,
               workflow: str | None = None) -> list[Row]:  # fmt: skip
    """Per (workflow, task) that ran: its last `runs` runs' measured figures (newest first)
    and what its newest run's definition declares."""
    where = [f"t.state IN {RAN}", "t.finished_at IS NOT NULL"]
    params: list[Any] = []
    if since is not None:
        where.append("e.created_at >= ?")
        params.append(since)
    if workflow:
        where.append("e.workflow_id = ?")
        params.append(workflow)
    sql = (
        "SELECT * FROM (SELECT e.workflow_id, t.task_id, t.execution_id, e.definition_hash, "
        "t.finished_at, t.duration_s, t.peak_cpu_pct, t.peak_rss, t.cpu_s, row_number() OVER "
        "(PARTITION BY e.workflow_id, t.task_id ORDER BY t.finished_at DESC) AS n "
        "FROM task_runs t JOIN executions e ON e.id = t.execution_id WHERE "
        + " AND ".join(where) + ") WHERE n <= ? ORDER BY workflow_id, task_id, n"
    )  # fmt: skip
    declared = Declared(conn)
    grouped: dict[tuple[str, str], Row] = {}
    for r in _rows(conn, sql, (*params, runs)):
        key = (r["workflow_id"], r["task_id"])
        entry = grouped.get(key)
        if entry is None:
            cpu, memory = declared(r["definition_hash"], r["task_id"])
            entry = grouped[key] = {"workflow_id": key[0], "task_id": key[1],
                                    "declared_cpu": cpu, "declared_memory_mb": memory,
                                    "runs": []}  # fmt: skip
        entry["runs"].append(MeasuredRun(
            r["execution_id"], float(r["finished_at"]), float(r["duration_s"] or 0.0),
            float(r["peak_cpu_pct"] or 0.0), int(r["peak_rss"] or 0),
            None if r["cpu_s"] is None else float(r["cpu_s"])))  # fmt: skip
    return list(grouped.values())


def efficiency_by_workflow(conn: sqlite3.Connection, since: float) -> dict[str, Efficiency]:
    """Allocated against used CPU-seconds and MB-seconds, per workflow, over the tasks that
    ran in executions created since `since`."""
    declared = Declared(conn)
    out: dict[str, Efficiency] = defaultdict(Efficiency)
    for wf, definition, task_id, duration, cpu_s, avg_rss in conn.execute(
        "SELECT e.workflow_id, e.definition_hash, t.task_id, t.duration_s, t.cpu_s, t.avg_rss "
        f"FROM task_runs t JOIN executions e ON e.id = t.execution_id WHERE t.state IN {RAN} "
        "AND e.created_at >= ?", (since,)):  # fmt: skip
        cpu, memory = declared(definition, task_id)
        out[wf] = out[wf] + task_efficiency(cpu, memory, float(duration or 0.0), cpu_s, avg_rss)
    return dict(out)


def execution_efficiency(execution: Row) -> tuple[Efficiency, dict[str, Efficiency]]:
    """An execution as `queries.get_execution` returns it: the whole, and per task."""
    needs: dict[str, tuple[float, int]] = {}
    for task in (execution.get("definition") or {}).get("tasks") or []:
        resources = task.get("resources") or {}
        needs[str(task.get("id"))] = (float(resources.get("cpu") or 0),
                                      int(resources.get("memory_mb") or 0))  # fmt: skip
    per_task: dict[str, Efficiency] = {}
    whole = Efficiency()
    for task in execution["tasks"]:
        if task["state"] not in RAN:
            continue
        cpu, memory = needs.get(task["task_id"], (0.0, 0))
        part = task_efficiency(cpu, memory, float(task["duration_s"] or 0.0), task.get("cpu_s"),
                               task.get("avg_rss"))  # fmt: skip
        per_task[task["task_id"]] = part
        whole = whole + part
    return whole, per_task
