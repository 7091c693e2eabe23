"""Opening the state database file: checks (unreadable, corrupt, newer schema), forward
migrations, pragmas, read-only connections for commands, and `--reset-state`.

Synchronous on purpose: it runs once, before the engine starts (in a thread when called from
the event loop) or in a short-lived CLI command. Nothing here writes events.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from l3tui.errors import StateError
from l3tui.store.lock import StateLock
from l3tui.store.schema import DB_NAME, LATEST, apply_migrations

BUSY_TIMEOUT_MS = 5000
QUICK_CHECK_MAX_BYTES = 64 * 1024 * 1024
"""Larger files skip the page-level check at start (it reads every page)."""


def db_path(state_dir: Path) -> Path:
    return state_dir / DB_NAME


def unusable(path: Path, detail: str) -> StateError:
    return StateError(
        f"state database {path} cannot be used ({detail}); run again with --reset-state to "
        f"move it aside (kept as {path.name}.reset-<time>) and start with empty history, "
        "or put a backup of it in its place"
    )


def newer(path: Path, version: int) -> StateError:
    return StateError(
        f"state database {path} was written by a newer l3tui (schema version {version}, this "
        f"one knows up to {LATEST}); upgrade l3tui, or use --reset-state to move it aside"
    )


def _writable(conn: sqlite3.Connection, path: Path) -> bool:
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        return False
    try:  # a read-only mount passes os.access
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    except sqlite3.OperationalError:
        return False
    return True


def prepare(path: Path) -> bool:
    """Create or migrate the database; raise StateError when it cannot be used. Returns
    whether it is writable (a read-only one still serves reads; writes are retried)."""
    if path.exists() and not os.access(path, os.R_OK):
        raise unusable(path, "permission denied")
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        raise unusable(path, str(exc)) from None
    try:
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            raise unusable(path, str(exc)) from None
        if version > LATEST:
            raise newer(path, version)
        writable = _writable(conn, path)
        if version < LATEST:
            if not writable:
                raise StateError(
                    f"state database {path} needs upgrading (schema {version} -> {LATEST}) "
                    "but cannot be written; fix its permissions"
                )
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                apply_migrations(conn, version)
            except sqlite3.DatabaseError as exc:
                raise unusable(path, f"upgrade failed: {exc}") from None
        if path.stat().st_size <= QUICK_CHECK_MAX_BYTES:
            try:
                problems = [r[0] for r in conn.execute("PRAGMA quick_check(3)")]
            except sqlite3.DatabaseError as exc:
                raise unusable(path, str(exc)) from None
            if problems != ["ok"]:
                raise unusable(path, "; ".join(problems))
        return writable
    finally:
        conn.close()


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A reader that never blocks (or is blocked by) the writer. Raises StateError."""
    if not path.exists():
        raise StateError(f"no history yet: {path} does not exist (nothing has run with this "
                         "state directory; see --state)")  # fmt: skip
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000)  # fmt: skip
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise unusable(path, str(exc)) from None
    if version > LATEST:
        conn.close()
        raise newer(path, version)
    if version < LATEST:
        conn.close()
        raise StateError(f"state database {path} is from an older l3tui (schema {version}); "
                         "start `l3tui` or `l3tui run` once to upgrade it")  # fmt: skip
    conn.row_factory = sqlite3.Row
    return conn


def reset_state(state_dir: Path) -> list[Path]:
    """Move the database (and its WAL files) aside to a timestamped name; never deletes.
    Refuses while another l3tui holds the state directory."""
    lock = StateLock(state_dir)
    lock.acquire("l3tui --reset-state")
    try:
        path = db_path(state_dir)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = path.with_name(f"{path.name}.reset-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = path.with_name(f"{path.name}.reset-{stamp}-{n}")
        moved = []
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{path}{suffix}")
            if source.exists():
                dest = Path(f"{target}{suffix}")
                try:
                    source.rename(dest)
                except OSError as exc:
                    raise StateError(f"cannot move {source} aside: {exc.strerror}") from None
                moved.append(dest)
        return moved
    finally:
        lock.release()
