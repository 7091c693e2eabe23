"""Recurring-task state in the store's `schedule_state` table: the SQLite implementation of
`l3tui.engine.scheduling.recurring.ScheduleStateStore`, so a restart knows what already fired."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from l3tui.engine.scheduling.recurring import ScheduleState
from l3tui.errors import StateError
from l3tui.store.database import connect_readonly
from l3tui.store.schema import DB_NAME
from l3tui.store.sqlite import Store

_SAVE = (
    "INSERT INTO schedule_state (id, cursor, last_fire, last_outcome, last_execution_id, "
    "enabled, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
    "cursor = excluded.cursor, last_fire = excluded.last_fire, "
    "last_outcome = excluded.last_outcome, last_execution_id = excluded.last_execution_id, "
    "enabled = excluded.enabled, updated_at = excluded.updated_at"
)


def _load(conn: sqlite3.Connection) -> dict[str, ScheduleState]:
    rows = conn.execute(
        "SELECT id, cursor, last_fire, last_outcome, last_execution_id, enabled "
        "FROM schedule_state"
    ).fetchall()
    return {
        row[0]: ScheduleState(
            cursor=row[1], last_fire=row[2], last_outcome=row[3] or "",
            last_execution_id=row[4], enabled=None if row[5] is None else bool(row[5]),
        )
        for row in rows
    }


class SqliteScheduleStore:
    """Loads and saves each recurring task's cursor, last fire and operator toggle."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def load(self) -> dict[str, ScheduleState]:
        try:
            return await self.store.read(_load)
        except sqlite3.Error as exc:
            raise StateError(f"cannot read recurring-task state: {exc}") from None

    async def save(self, schedule_id: str, state: ScheduleState) -> None:
        enabled = None if state.enabled is None else int(state.enabled)
        try:
            await self.store.execute(_SAVE, (
                schedule_id, state.cursor, state.last_fire, state.last_outcome,
                state.last_execution_id, enabled, self.store.now(),
            ))  # fmt: skip
        except sqlite3.Error as exc:
            raise StateError(f"cannot save the state of {schedule_id}: {exc}") from None


def read_schedule_states(state_dir: Path) -> dict[str, ScheduleState]:
    """The saved states, read-only and without the lock (for `l3tui schedules` while a
    console runs); empty when there is no database yet."""
    path = state_dir / DB_NAME
    if not path.exists():
        return {}
    try:
        conn = connect_readonly(path)
    except StateError as exc:
        if "older l3tui" in str(exc):
            return {}  # a database from before schedules were stored: nothing saved yet
        raise
    try:
        return _load(conn)
    finally:
        conn.close()
