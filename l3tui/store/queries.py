"""Read queries for the console, the CLI and reports. Plain functions over a read-only
`sqlite3.Connection` (rows as dicts), so a CLI command calls them directly and the Store
runs them in a thread. They never write.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from l3tui.errors import UsageError
from l3tui.store.audit import AUDIT_COLUMNS, ChainedEntry, row_entry
from l3tui.store.rows import DERIVED, PACK_KIND, PACK_MOST, PACKED_KINDS, event_fields, unpack

Row = dict[str, Any]
FAILED = ("failed", "timed_out")


def _rows(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
    cur = conn.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def resolve_execution(conn: sqlite3.Connection, prefix: str) -> str:
    """An execution id from a unique prefix (like git); UsageError when none or several."""
    prefix = prefix.strip()
    if not prefix:
        raise UsageError("an execution id (or a unique prefix of one) is required")
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    found = [r[0] for r in conn.execute(
        "SELECT id FROM executions WHERE id LIKE ? ESCAPE '\\' ORDER BY created_at DESC "
        "LIMIT 6", (escaped + "%",))]  # fmt: skip
    if prefix in found:
        return prefix
    if not found:
        raise UsageError(f"no execution matches {prefix!r} (see `l3tui history`)")
    if len(found) > 1:
        more = ", ..." if len(found) > 5 else ""
        raise UsageError(f"{prefix!r} is ambiguous: {', '.join(found[:5])}{more}")
    return str(found[0])


_EXEC_SUMMARY = """
SELECT e.id, e.workflow_id, e.workflow_name, e.state, e.reason, e.trigger, e.parent_id,
       e.priority, e.definition_hash, e.created_at, e.started_at, e.finished_at, e.duration_s,
       (SELECT count(*) FROM task_runs t WHERE t.execution_id = e.id) AS tasks,
       (SELECT count(*) FROM task_runs t WHERE t.execution_id = e.id
          AND t.state = 'succeeded') AS succeeded,
       (SELECT count(*) FROM task_runs t WHERE t.execution_id = e.id
          AND t.state IN ('failed', 'timed_out')) AS failed
FROM executions e
"""


def list_executions(
    conn: sqlite3.Connection,
    *,
    workflow: str | None = None,
    state: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int | None = 50,
) -> list[Row]:
    """Newest first."""
    where: list[str] = []
    params: list[Any] = []
    if workflow:
        where.append("e.workflow_id = ?")
        params.append(workflow)
    if state:
        where.append("e.state = ?")
        params.append(state)
    if since is not None:
        where.append("e.created_at >= ?")
        params.append(since)
    if until is not None:
        where.append("e.created_at < ?")
        params.append(until)
    sql = _EXEC_SUMMARY + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY e.created_at DESC"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return _rows(conn, sql, tuple(params))


def get_execution(conn: sqlite3.Connection, execution_id: str) -> Row | None:
    """One execution with its tasks (each with its attempts), params and definition."""
    found = _rows(conn, _EXEC_SUMMARY + " WHERE e.id = ?", (execution_id,))
    if not found:
        return None
    execution = found[0]
    row = conn.execute("SELECT params FROM executions WHERE id = ?", (execution_id,)).fetchone()
    execution["params"] = json.loads(row[0]) if row and row[0] else {}
    definition = conn.execute("SELECT body FROM definitions WHERE hash = ?",
                              (execution["definition_hash"],)).fetchone()  # fmt: skip
    execution["definition"] = json.loads(definition[0]) if definition else None
    tasks = _rows(conn, "SELECT * FROM task_runs WHERE execution_id = ? ORDER BY position",
                  (execution_id,))  # fmt: skip
    attempts: dict[str, list[Row]] = defaultdict(list)
    for attempt in _rows(conn, "SELECT * FROM task_attempts WHERE execution_id = ? "
                         "ORDER BY task_id, attempt", (execution_id,)):  # fmt: skip
        attempt["command"] = json.loads(attempt["command"]) if attempt["command"] else []
        attempts[attempt["task_id"]].append(attempt)
    deps: dict[str, list[str]] = {}
    if execution["definition"]:
        for task in execution["definition"].get("tasks", []):
            deps[task["id"]] = list(task.get("dependencies") or [])
    for task in tasks:
        task["attempts"] = attempts.get(task["task_id"], [])
        task["dependencies"] = deps.get(task["task_id"], [])
    execution["tasks"] = tasks
    children = conn.execute("SELECT id FROM executions WHERE parent_id = ? ORDER BY created_at",
                            (execution_id,)).fetchall()  # fmt: skip
    execution["resumed_by"] = [c[0] for c in children]
    return execution


def _stored(conn: sqlite3.Connection, rows: Iterable[tuple[Any, ...]]
            ) -> Iterator[tuple[int, float, str, Row]]:  # fmt: skip
    """(sequence number, at, kind, fields) of each event in `events` rows (id, at, kind,
    data, n, times), a pack's events one by one, in order."""
    definitions: dict[str, list[list[str]]] = {}
    for event_id, at, kind, data, n, times in rows:
        if kind == PACK_KIND:
            yield from unpack(event_id, n, data, times)
            continue
        fields = event_fields(kind, data)
        derived = DERIVED.get(kind)
        if derived is not None and derived not in fields:
            fields[derived] = _derived(conn, kind, str(fields.get("execution_id")), definitions)
        yield event_id, at, kind, fields


def _derived(conn: sqlite3.Connection, kind: str, execution_id: str,
             waiting_by_hash: dict[str, list[list[str]]]) -> list[list[str]]:  # fmt: skip
    """The field of a creation or start event that its row leaves out (`rows.DERIVED`)."""
    if kind == "execution_created":  # (task id, name) in order: task_runs keep them as made
        return [[task_id, name] for task_id, name in conn.execute(
            "SELECT task_id, name FROM task_runs WHERE execution_id = ? ORDER BY position",
            (execution_id,))]  # fmt: skip
    found = conn.execute("SELECT d.hash, d.body FROM executions e JOIN definitions d "
                         "ON d.hash = e.definition_hash WHERE e.id = ?",
                         (execution_id,)).fetchone()  # fmt: skip
    if found is None:
        return []
    waiting = waiting_by_hash.get(found[0])
    if waiting is None:  # what the engine says at start (live.Shape): each task with deps
        tasks = json.loads(found[1]).get("tasks") or []
        waiting = waiting_by_hash[found[0]] = [
            [task["id"], f"waiting on {', '.join(task['dependencies'])}"]
            for task in tasks if task.get("dependencies")
        ]  # fmt: skip
    return waiting


def execution_events(
    conn: sqlite3.Connection, execution_id: str, kinds: tuple[str, ...] = (),
    limit: int | None = None,
) -> list[Row]:  # fmt: skip
    sql = "SELECT id, at, kind, data, n, times FROM events WHERE execution_id = ?"
    params: list[Any] = [execution_id]
    if kinds:
        stored = (*kinds, PACK_KIND) if set(kinds) & set(PACKED_KINDS) else kinds
        sql += f" AND kind IN ({','.join('?' for _ in stored)})"
        params.extend(stored)
    out: list[Row] = []
    if limit is not None and limit <= 0:
        return out
    for event_id, at, kind, row in _stored(conn, conn.execute(sql + " ORDER BY id", params)):
        if kinds and kind not in kinds:
            continue
        row.update(id=event_id, at=at, kind=kind)
        out.append(row)
        if len(out) == limit:
            break
    return out


def metric_series(
    conn: sqlite3.Connection, name: str, since: float, until: float | None = None
) -> list[Row]:
    """Downsampled resource metric buckets (bucket start, avg, max, min, samples)."""
    sql = "SELECT bucket, avg, max, min, n FROM resource_metrics WHERE name = ? AND bucket >= ?"
    params: list[Any] = [name, since]
    if until is not None:
        sql += " AND bucket < ?"
        params.append(until)
    return _rows(conn, sql + " ORDER BY bucket", tuple(params))


def resource_peaks(conn: sqlite3.Connection, since: float) -> list[Row]:
    return _rows(conn, "SELECT name, max(max) AS peak, sum(avg * n) / sum(n) AS avg, "
                 "sum(n) AS samples FROM resource_metrics WHERE bucket >= ? GROUP BY name "
                 "ORDER BY name", (since,))  # fmt: skip


def quantile(values: list[float], q: float) -> float | None:
    """Nearest-rank quantile of sorted values (what `p95` means in the report)."""
    if not values:
        return None
    index = min(len(values) - 1, max(0, round(q * len(values) + 0.5) - 1))
    return values[index]


def task_duration_stats(
    conn: sqlite3.Connection, since: float | None = None, workflow: str | None = None
) -> list[Row]:
    """p50/p95/max duration and mean queue wait per (workflow, task), over tasks that ran."""
    sql = ("SELECT e.workflow_id, t.task_id, t.duration_s, t.wait_s, t.state "
           "FROM task_runs t JOIN executions e ON e.id = t.execution_id "
           "WHERE t.state IN ('succeeded', 'failed', 'timed_out')")  # fmt: skip
    params: list[Any] = []
    if since is not None:
        sql += " AND e.created_at >= ?"
        params.append(since)
    if workflow:
        sql += " AND e.workflow_id = ?"
        params.append(workflow)
    groups: dict[tuple[str, str], list[tuple[float, float, str]]] = defaultdict(list)
    for wf, task, duration, wait, state in conn.execute(sql, params):
        groups[(wf, task)].append((duration or 0.0, wait or 0.0, state))
    out = []
    for (wf, task), items in sorted(groups.items()):
        durations = sorted(d for d, _, _ in items)
        waits = [w for _, w, _ in items]
        out.append({
            "workflow_id": wf, "task_id": task, "runs": len(items),
            "failures": sum(1 for _, _, s in items if s in FAILED),
            "p50_s": quantile(durations, 0.5), "p95_s": quantile(durations, 0.95),
            "max_s": durations[-1], "mean_wait_s": sum(waits) / len(waits),
        })  # fmt: skip
    return out


def failure_counts(conn: sqlite3.Connection, since: float | None = None) -> list[Row]:
    """Failed or timed-out tasks per (workflow, task), most failing first."""
    sql = ("SELECT e.workflow_id, t.task_id, count(*) AS failures FROM task_runs t "
           "JOIN executions e ON e.id = t.execution_id "
           "WHERE t.state IN ('failed', 'timed_out')")  # fmt: skip
    params: tuple[Any, ...] = ()
    if since is not None:
        sql += " AND e.created_at >= ?"
        params = (since,)
    sql += " GROUP BY e.workflow_id, t.task_id ORDER BY failures DESC, e.workflow_id, t.task_id"
    return _rows(conn, sql, params)


def task_metric_series(
    conn: sqlite3.Connection, since: float | None = None, name: str | None = None
) -> list[Row]:
    sql = "SELECT at, execution_id, workflow_id, task_id, name, value FROM task_metrics"
    where: list[str] = []
    params: list[Any] = []
    if since is not None:
        where.append("at >= ?")
        params.append(since)
    if name:
        where.append("name = ?")
        params.append(name)
    if where:
        sql += " WHERE " + " AND ".join(where)
    return _rows(conn, sql + " ORDER BY at", tuple(params))


def audit_entries(
    conn: sqlite3.Connection, since: float | None = None, limit: int | None = None
) -> list[ChainedEntry]:
    """Oldest first; with `limit`, the newest `limit` entries."""
    sql = f"SELECT {AUDIT_COLUMNS} FROM audit"
    params: tuple[Any, ...] = ()
    if since is not None:
        sql += " WHERE at >= ?"
        params = (since,)
    if limit is not None:
        sql = f"SELECT * FROM ({sql} ORDER BY seq DESC LIMIT {int(limit)})"
    return [row_entry(r) for r in conn.execute(sql + " ORDER BY seq", params)]


def all_audit_entries(conn: sqlite3.Connection) -> list[ChainedEntry]:
    return [row_entry(r) for r in conn.execute(f"SELECT {AUDIT_COLUMNS} FROM audit ORDER BY seq")]


def audit_head(conn: sqlite3.Connection) -> tuple[int, str]:
    row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    return (int(row[0]), str(row[1])) if row else (0, "0" * 64)


def alerts(conn: sqlite3.Connection, since: float | None = None) -> list[Row]:
    sql = "SELECT * FROM alerts"
    params: tuple[Any, ...] = ()
    if since is not None:
        sql += " WHERE updated_at >= ?"
        params = (since,)
    return _rows(conn, sql + " ORDER BY raised_at DESC", params)


def active_alerts(conn: sqlite3.Connection) -> list[Row]:
    """Alerts an earlier run left raised, acknowledged or snoozed, oldest first."""
    return _rows(conn, "SELECT * FROM alerts WHERE state IN ('raised', 'acknowledged', "
                 "'snoozed') ORDER BY raised_at")  # fmt: skip



def alert_ids(conn: sqlite3.Connection) -> list[str]:
    """Every alert id this state directory has used (new ones must not repeat them)."""
    return [str(row[0]) for row in conn.execute("SELECT id FROM alerts")]


def events_after(conn: sqlite3.Connection, after: int, limit: int = 5000,
                 before: int | None = None) -> list[Row]:  # fmt: skip
    """Stored events with ids after `after` (and before `before`), oldest first, each with
    `seq` (its id), `at`, `kind` and its fields."""
    # A row's id is its last event's sequence number (a pack's first is id - n + 1), so
    # each row found holds at least one event in the range: `limit` rows are enough.
    sql = "SELECT id, at, kind, data, n, times FROM events WHERE id > ?"
    params: list[Any] = [after]
    if before is not None:
        sql += " AND id < ? AND id - n + 1 < ?"
        params.extend((before + PACK_MOST, before))
    out: list[Row] = []
    if limit <= 0:
        return out
    rows = conn.execute(sql + f" ORDER BY id LIMIT {int(limit)}", params)
    for seq, at, kind, row in _stored(conn, rows):
        if seq <= after or (before is not None and seq >= before):
            continue
        row.update(seq=seq, at=at, kind=kind)
        out.append(row)
        if len(out) == limit:
            break
    return out


def event_bounds(conn: sqlite3.Connection) -> tuple[int, int]:
    """(lowest, highest) stored event sequence number; (0, 0) when there is none."""
    first = conn.execute("SELECT id - n + 1 FROM events ORDER BY id LIMIT 1").fetchone()
    last = conn.execute("SELECT max(id) FROM events").fetchone()
    return int(first[0] if first else 0), int(last[0] or 0)
