"""The store's schema as forward migrations, applied in order and tracked with
`PRAGMA user_version`. A migration is never edited once released: add a new one.

Nothing here opens files or knows about the engine; `l3tui.store.sqlite` applies them.
"""

from __future__ import annotations

import sqlite3

DB_NAME = "l3tui.db"

# Version 1: executions, their tasks and attempts, definitions, events, alerts, schedules.
_V1 = """
CREATE TABLE definitions (
    hash        TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    name        TEXT NOT NULL,
    body        TEXT NOT NULL,
    first_seen  REAL NOT NULL
);
CREATE TABLE executions (
    id              TEXT PRIMARY KEY,
    workflow_id     TEXT NOT NULL,
    workflow_name   TEXT NOT NULL,
    definition_hash TEXT NOT NULL REFERENCES definitions(hash),
    params          TEXT NOT NULL DEFAULT '{}',
    trigger         TEXT NOT NULL DEFAULT '',
    parent_id       TEXT,
    priority        INTEGER NOT NULL DEFAULT 5,
    state           TEXT NOT NULL,
    reason          TEXT NOT NULL DEFAULT '',
    created_at      REAL NOT NULL,
    started_at      REAL,
    finished_at     REAL,
    duration_s      REAL
);
CREATE INDEX executions_by_time ON executions(created_at);
CREATE INDEX executions_by_workflow ON executions(workflow_id, created_at);
CREATE INDEX executions_by_state ON executions(state)
    WHERE state IN ('pending', 'running', 'paused');
CREATE TABLE task_runs (
    execution_id TEXT NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
    task_id      TEXT NOT NULL,
    name         TEXT NOT NULL,
    position     INTEGER NOT NULL,
    state        TEXT NOT NULL DEFAULT 'pending',
    attempt      INTEGER NOT NULL DEFAULT 0,
    reason       TEXT NOT NULL DEFAULT '',
    exit_code    INTEGER,
    queued_at    REAL,
    started_at   REAL,
    finished_at  REAL,
    duration_s   REAL,
    wait_s       REAL,
    peak_cpu_pct REAL,
    avg_cpu_pct  REAL,
    peak_rss     INTEGER,
    avg_rss      INTEGER,
    pid          INTEGER,
    pgid         INTEGER,
    proc_start   REAL,
    log_path     TEXT,
    PRIMARY KEY (execution_id, task_id)
) WITHOUT ROWID;
CREATE TABLE task_attempts (
    execution_id TEXT NOT NULL,
    task_id      TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    started_at   REAL NOT NULL,
    finished_at  REAL,
    state        TEXT NOT NULL DEFAULT 'running',
    exit_code    INTEGER,
    error        TEXT NOT NULL DEFAULT '',
    wait_s       REAL,
    pid          INTEGER,
    pgid         INTEGER,
    proc_start   REAL,
    log_path     TEXT,
    command      TEXT,
    PRIMARY KEY (execution_id, task_id, attempt),
    FOREIGN KEY (execution_id, task_id) REFERENCES task_runs(execution_id, task_id)
        ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX attempts_open ON task_attempts(execution_id) WHERE finished_at IS NULL;
CREATE TABLE events (
    id           INTEGER PRIMARY KEY,
    at           REAL NOT NULL,
    kind         TEXT NOT NULL,
    execution_id TEXT,
    data         TEXT NOT NULL
);
CREATE INDEX events_by_execution ON events(execution_id) WHERE execution_id IS NOT NULL;
CREATE TABLE alerts (
    id         TEXT PRIMARY KEY,
    rule       TEXT NOT NULL,
    severity   TEXT NOT NULL,
    state      TEXT NOT NULL,
    message    TEXT NOT NULL,
    source     TEXT NOT NULL,
    raised_at  REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE schedule_state (
    id           TEXT PRIMARY KEY,
    last_fire    REAL,
    enabled      INTEGER,
    last_outcome TEXT NOT NULL DEFAULT '',
    updated_at   REAL NOT NULL
);
"""

# Version 2: the audit trail, task-reported metrics and downsampled resource metrics.
_V2 = """
CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY,
    at        REAL NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    target    TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    detail    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE TABLE task_metrics (
    id           INTEGER PRIMARY KEY,
    at           REAL NOT NULL,
    execution_id TEXT NOT NULL,
    workflow_id  TEXT NOT NULL,
    task_id      TEXT NOT NULL,
    name         TEXT NOT NULL,
    value        REAL NOT NULL
);
CREATE INDEX task_metrics_by_name ON task_metrics(name, at);
CREATE TABLE resource_metrics (
    name   TEXT NOT NULL,
    bucket REAL NOT NULL,
    avg    REAL NOT NULL,
    max    REAL NOT NULL,
    min    REAL NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (name, bucket)
) WITHOUT ROWID;
CREATE INDEX resource_metrics_by_bucket ON resource_metrics(bucket);
"""

# Version 3: the scheduler's full recurring-task state (where it resumes after downtime,
# and the execution its last fire started), so it no longer needs a side file.
_V3 = """
ALTER TABLE schedule_state ADD COLUMN cursor REAL;
ALTER TABLE schedule_state ADD COLUMN last_execution_id TEXT;
"""

# Version 4: alerts keep what a restarted l3tui needs to carry on an alert still active (the
# problem it is about, its name, how many times it occurred, until when it is snoozed) and
# the message it was raised with, which its repeats do not overwrite.
_V4 = """
ALTER TABLE alerts ADD COLUMN alert_key TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
ALTER TABLE alerts ADD COLUMN snoozed_until REAL;
ALTER TABLE alerts ADD COLUMN first_message TEXT NOT NULL DEFAULT '';
UPDATE alerts SET first_message = message;
CREATE INDEX alerts_active ON alerts(state) WHERE state IN ('raised', 'acknowledged', 'snoozed')
"""

# Version 5: the execution coordinator. Decisions from other programs, recorded before
# anything acts on them (the id is the idempotency key; `digest` tells a repeat from an id
# reused for other content); the result lines written to the outbox (so none is written
# twice); its own bookmarks; and the indexes its reads need.
_V5 = """
CREATE TABLE decisions (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    body        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    source      TEXT NOT NULL DEFAULT '',
    via         TEXT NOT NULL DEFAULT '',
    state       TEXT NOT NULL,
    received_at REAL NOT NULL,
    not_before  REAL,
    acted_at    REAL,
    applied     INTEGER,
    message     TEXT NOT NULL DEFAULT '',
    executions  TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX decisions_open ON decisions(received_at) WHERE state = 'received';
CREATE TABLE outbox (
    execution_id TEXT PRIMARY KEY,
    decision_id  TEXT,
    outcome      TEXT NOT NULL,
    written_at   REAL NOT NULL,
    file         TEXT NOT NULL,
    file_offset  INTEGER NOT NULL
);
CREATE TABLE coordinator_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE INDEX task_metrics_by_execution ON task_metrics(execution_id);
CREATE INDEX executions_by_finish ON executions(finished_at) WHERE finished_at IS NOT NULL;
"""

# Version 6: the Resource Manager. Reservations, persisted bottleneck findings and upgrade
# advice, time tasks waited per cause by hour, and each task's CPU seconds.
_V6 = """
CREATE TABLE IF NOT EXISTS reservations (
    id         TEXT PRIMARY KEY,
    cpu        REAL NOT NULL DEFAULT 0,
    memory_mb  INTEGER NOT NULL DEFAULT 0,
    pools      TEXT NOT NULL DEFAULT '[]',
    starts_at  REAL NOT NULL,
    ends_at    REAL NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    actor      TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    state      TEXT NOT NULL DEFAULT 'scheduled',
    ended_at   REAL,
    ended_by   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS reservations_open ON reservations(ends_at)
    WHERE state IN ('scheduled', 'active');
CREATE TABLE IF NOT EXISTS findings (
    kind        TEXT PRIMARY KEY,
    state       TEXT NOT NULL,
    severity    TEXT NOT NULL,
    summary     TEXT NOT NULL,
    evidence    TEXT NOT NULL DEFAULT '[]',
    suggestion  TEXT NOT NULL DEFAULT '',
    first_seen  REAL NOT NULL,
    last_seen   REAL NOT NULL,
    resolved_at REAL,
    times       INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS blocked_time (
    cause   TEXT NOT NULL,
    bucket  REAL NOT NULL,
    seconds REAL NOT NULL,
    PRIMARY KEY (cause, bucket)
) WITHOUT ROWID;
ALTER TABLE task_runs ADD COLUMN cpu_s REAL;
"""

# Version 7: a run of task events (task_state, task_started, task_finished) of one execution
# in one commit (16 or more) is one row of kind 'task_events' holding n events, whose
# sequence numbers end at its id (store/rows.py: Pack; the readers in store/queries.py
# unpack it): three rows per task were a third of the writer's work. Other rows have n = 1.
_V7 = """
ALTER TABLE events ADD COLUMN n INTEGER NOT NULL DEFAULT 1;
ALTER TABLE events ADD COLUMN times BLOB
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7)
"""MIGRATIONS[i] takes a database from version i to version i + 1."""
LATEST = len(MIGRATIONS)


def apply_migrations(conn: sqlite3.Connection, current: int, target: int = LATEST) -> None:
    """Run the migrations from `current` up to `target`, each in its own transaction, so a
    crash between two leaves a consistent database at an intermediate version."""
    for version in range(current, target):
        script = MIGRATIONS[version]
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
