"""The coordinator's tables (schema v4): decisions recorded before anything acts on them,
result lines written to the outbox (so none is written twice), the coordinator's bookmarks,
and the reads a result line is built from.

Functions taking the writer connection run inside `Store.transact` (one transaction per
call); the others take a read-only connection. Nothing here decides anything.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

TRIGGER_PREFIX = "decision:"
"""An execution started by a decision has the trigger `decision:<id>`: that link is what
tells, after a crash, that a recorded decision had already acted."""

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """A validated decision as it is recorded."""

    id: str
    kind: str
    body: str
    """Canonical JSON of the validated decision (what acts after a restart)."""
    digest: str
    source: str
    via: str
    received_at: float
    not_before: float | None


@dataclass(frozen=True, slots=True)
class Recorded:
    """What the store holds for a decision id."""

    id: str
    kind: str
    body: str
    digest: str
    source: str
    via: str
    state: str
    """received (not acted on yet), acted, cancelled (withdrawn before it acted)."""
    received_at: float
    not_before: float | None
    acted_at: float | None
    applied: bool | None
    message: str
    executions: tuple[str, ...]


_COLUMNS = ("id, kind, body, digest, source, via, state, received_at, not_before, acted_at, "
            "applied, message, executions")  # fmt: skip


def _recorded(row: Sequence[Any]) -> Recorded:
    return Recorded(str(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4]),
                    str(row[5]), str(row[6]), float(row[7]), row[8], row[9],
                    None if row[10] is None else bool(row[10]), str(row[11]),
                    tuple(json.loads(row[12] or "[]")))  # fmt: skip


# ------------------------------------------------------------------ writer side


def record_decisions(conn: sqlite3.Connection,
                     records: Sequence[DecisionRecord]) -> list[Recorded | None]:  # fmt: skip
    """Insert each decision not seen before (state `received`). For each, None when it is
    new, else what was already recorded under its id (a repeat in the same call counts)."""
    out: list[Recorded | None] = []
    for rec in records:
        row = conn.execute(f"SELECT {_COLUMNS} FROM decisions WHERE id = ?",
                           (rec.id,)).fetchone()  # fmt: skip
        if row is not None:
            out.append(_recorded(row))
            continue
        conn.execute(
            "INSERT INTO decisions (id, kind, body, digest, source, via, state, received_at, "
            "not_before) VALUES (?, ?, ?, ?, ?, ?, 'received', ?, ?)",
            (rec.id, rec.kind, rec.body, rec.digest, rec.source, rec.via, rec.received_at,
             rec.not_before),
        )  # fmt: skip
        out.append(None)
    return out


def mark_acted(conn: sqlite3.Connection,
               acts: Sequence[tuple[str, bool, str, Sequence[str], float]]) -> None:  # fmt: skip
    """(decision id, applied, message, execution ids, when) for each decision acted on."""
    conn.executemany(
        "UPDATE decisions SET state = 'acted', applied = ?, message = ?, executions = ?, "
        "acted_at = ? WHERE id = ? AND state = 'received'",
        [(int(applied), message, json.dumps(list(ids)), at, decision_id)
         for decision_id, applied, message, ids, at in acts],
    )  # fmt: skip


def mark_cancelled(conn: sqlite3.Connection, decision_id: str, message: str, at: float) -> bool:
    """Withdraw a decision that has not acted yet; False when it already had."""
    cur = conn.execute(
        "UPDATE decisions SET state = 'cancelled', applied = 0, message = ?, acted_at = ? "
        "WHERE id = ? AND state = 'received'", (message, at, decision_id))  # fmt: skip
    return cur.rowcount > 0


def book_results(conn: sqlite3.Connection,
                 rows: Sequence[tuple[str, str | None, str, float, str, int]]) -> None:  # fmt: skip
    """(execution id, decision id, outcome, written at, file, offset) of lines written."""
    conn.executemany("INSERT OR IGNORE INTO outbox (execution_id, decision_id, outcome, "
                     "written_at, file, file_offset) VALUES (?, ?, ?, ?, ?, ?)",
                     rows)  # fmt: skip


def set_value(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT INTO coordinator_state VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                 "SET value = excluded.value", (key, value))  # fmt: skip


# ------------------------------------------------------------------ reader side


def get_value(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM coordinator_state WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def decision(conn: sqlite3.Connection, decision_id: str) -> Recorded | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM decisions WHERE id = ?",
                       (decision_id,)).fetchone()  # fmt: skip
    return None if row is None else _recorded(row)


def open_decisions(conn: sqlite3.Connection) -> list[Recorded]:
    """Decisions recorded but not acted on yet, oldest first."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM decisions WHERE state = 'received' "
                        "ORDER BY received_at").fetchall()  # fmt: skip
    return [_recorded(r) for r in rows]


def executions_started_by(conn: sqlite3.Connection, since: float) -> dict[str, list[str]]:
    """Execution ids by the decision that started them, among executions created since."""
    out: dict[str, list[str]] = {}
    for exec_id, trigger in conn.execute(
        "SELECT id, trigger FROM executions WHERE created_at >= ? AND trigger LIKE ? "
        "ORDER BY created_at", (since, TRIGGER_PREFIX + "%"),
    ):  # fmt: skip
        out.setdefault(str(trigger)[len(TRIGGER_PREFIX):], []).append(str(exec_id))
    return out


def reservations_made(conn: sqlite3.Connection, ids: Iterable[str]) -> set[str]:
    """Which of these reservation ids the store holds, in whatever state (a reserve
    decision's reservation is named after it)."""
    wanted = list(ids)
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        marks = ",".join("?" for _ in chunk)
        found.update(r[0] for r in conn.execute(
            f"SELECT id FROM reservations WHERE id IN ({marks})", chunk))
    return found


def booked(conn: sqlite3.Connection, execution_ids: Iterable[str]) -> set[str]:
    """Which of these executions already have their result line."""
    ids = list(execution_ids)
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ",".join("?" for _ in chunk)
        found.update(r[0] for r in conn.execute(
            f"SELECT execution_id FROM outbox WHERE execution_id IN ({marks})", chunk))
    return found


def unreported(conn: sqlite3.Connection, since: float, limit: int = 1000) -> list[str]:
    """Executions that ended at or after `since` and have no result line yet, in order."""
    rows = conn.execute(
        "SELECT e.id FROM executions e WHERE e.finished_at >= ? AND e.state IN "
        "('succeeded', 'failed', 'cancelled', 'interrupted') AND NOT EXISTS "
        "(SELECT 1 FROM outbox o WHERE o.execution_id = e.id) ORDER BY e.finished_at "
        f"LIMIT {int(limit)}", (since,)).fetchall()  # fmt: skip
    return [str(r[0]) for r in rows]


def result_data(conn: sqlite3.Connection, execution_id: str) -> Row | None:
    """An execution, its tasks (with each one's last attempt's log path) and the metrics its
    tasks reported: what its result line is made of."""
    cur = conn.execute(
        "SELECT id, workflow_id, workflow_name, state, reason, trigger, params, created_at, "
        "started_at, finished_at, duration_s FROM executions WHERE id = ?", (execution_id,))
    names = [d[0] for d in cur.description]
    row = cur.fetchone()
    if row is None:
        return None
    data: Row = dict(zip(names, row, strict=True))
    data["params"] = json.loads(data["params"] or "{}")
    cur = conn.execute(
        "SELECT t.task_id, t.name, t.state, t.attempt, t.reason, t.exit_code, t.duration_s, "
        "t.wait_s, t.peak_cpu_pct, t.peak_rss, t.started_at, t.finished_at, "
        "(SELECT a.log_path FROM task_attempts a WHERE a.execution_id = t.execution_id "
        " AND a.task_id = t.task_id ORDER BY a.attempt DESC LIMIT 1) AS log_path "
        "FROM task_runs t WHERE t.execution_id = ? ORDER BY t.position", (execution_id,))
    names = [d[0] for d in cur.description]
    data["tasks"] = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    metrics: dict[str, dict[str, float]] = {}
    for task_id, name, value in conn.execute(
        "SELECT task_id, name, value FROM task_metrics WHERE execution_id = ? ORDER BY id",
        (execution_id,),
    ):  # fmt: skip
        metrics.setdefault(str(task_id), {})[str(name)] = float(value)
    data["metrics"] = metrics
    return data


def workflow_durations(conn: sqlite3.Connection, workflow_ids: Iterable[str],
                       limit: int = 200) -> dict[str, list[float]]:  # fmt: skip
    """Durations of the newest finished runs (succeeded or failed) of each workflow, sorted."""
    out: dict[str, list[float]] = {}
    for wf in set(workflow_ids):
        rows = conn.execute(
            "SELECT duration_s FROM executions WHERE workflow_id = ? AND duration_s IS NOT NULL "
            "AND state IN ('succeeded', 'failed') ORDER BY created_at DESC LIMIT ?",
            (wf, limit)).fetchall()  # fmt: skip
        out[wf] = sorted(float(r[0]) for r in rows)
    return out


def task_durations(conn: sqlite3.Connection, workflow_id: str,
                   limit: int = 200) -> dict[str, list[float]]:  # fmt: skip
    """Durations of the newest runs of each task of a workflow (tasks that ran), sorted."""
    rows = conn.execute(
        "SELECT t.task_id, t.duration_s FROM task_runs t JOIN (SELECT id FROM executions "
        "WHERE workflow_id = ? ORDER BY created_at DESC LIMIT ?) e ON e.id = t.execution_id "
        "WHERE t.state IN ('succeeded', 'failed', 'timed_out') AND t.duration_s IS NOT NULL",
        (workflow_id, limit)).fetchall()  # fmt: skip
    out: dict[str, list[float]] = {}
    for task_id, duration in rows:
        out.setdefault(str(task_id), []).append(float(duration))
    return {k: sorted(v) for k, v in out.items()}
