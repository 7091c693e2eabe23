"""Opening the state directory and database file: checks (not a directory, not writable,
full, unreadable, corrupt, newer schema), forward migrations, pragmas, read-only connections
for commands (on a read-only filesystem too), and `--reset-state`.

Synchronous on purpose: it runs once, before the engine starts (in a thread when called from
the event loop) or in a short-lived CLI command. Nothing here writes events. Only a database
that cannot be read as one is met with the advice to move it aside: a full disk, missing
permissions or a read-only filesystem are named as such.
"""

from __future__ import annotations

import errno
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


NO_RECORD_HINT = "`l3tui run --no-record` runs without keeping history"


def ensure_state_dir(state_dir: Path) -> None:
    """Create the state directory (and `runs/`) or raise StateError saying why it cannot be
    used for writing: not a directory, not creatable, not writable."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        (state_dir / "runs").mkdir(exist_ok=True)
    except FileExistsError:
        raise StateError(f"state directory {state_dir} is not a directory (give a directory "
                         "with --state or $L3TUI_STATE)") from None  # fmt: skip
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            raise StateError(f"state directory {state_dir} is not a directory (give a "
                             "directory with --state or $L3TUI_STATE)") from None  # fmt: skip
        raise StateError(f"cannot create the state directory {state_dir}: "
                         f"{exc.strerror or exc}") from None  # fmt: skip
    if not os.access(state_dir, os.W_OK | os.X_OK):
        raise StateError(f"state directory {state_dir} is not writable, so nothing this run "
                         f"does could be recorded; fix its permissions, or {NO_RECORD_HINT}")


def full_or_io(path: Path, exc: BaseException) -> StateError | None:
    """A StateError for a full disk or a read-only file, None for other errors."""
    text = str(exc).lower()
    if "disk is full" in text or getattr(exc, "errno", None) == errno.ENOSPC:
        return StateError(f"the disk holding {path} is full ({exc}), so nothing could be "
                          f"recorded; free some space and run again, or {NO_RECORD_HINT}")
    if "readonly" in text.replace(" ", "") or getattr(exc, "errno", None) == errno.EROFS:
        return StateError(f"state database {path} cannot be written ({exc}), so nothing this "
                          f"run does could be recorded; fix its permissions, or "
                          f"{NO_RECORD_HINT}")  # fmt: skip
    return None


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
    whether it is writable."""
    if path.exists() and not os.access(path, os.R_OK):
        raise StateError(f"state database {path} cannot be read (permission denied); fix "
                         "its permissions")  # fmt: skip
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        raise full_or_io(path, exc) or StateError(f"cannot open {path}: {exc}") from None
    try:
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            raise full_or_io(path, exc) or unusable(path, str(exc)) from None
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
                raise full_or_io(path, exc) or unusable(path, f"upgrade failed: {exc}") from None
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


def _open_ro(path: Path, immutable: bool) -> sqlite3.Connection:
    uri = f"file:{path}?{'immutable=1' if immutable else 'mode=ro'}"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False,
                           timeout=BUSY_TIMEOUT_MS / 1000)  # fmt: skip
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except BaseException:
        conn.close()
        raise
    return conn


def _wal_size(path: Path) -> int:
    try:
        return os.stat(f"{path}-wal").st_size
    except FileNotFoundError:
        return 0


def _nobody_can_write(path: Path) -> bool:
    """A database in a directory we cannot write, without the shared-memory file that
    `mode=ro` would have to create there, and with nothing in a write-ahead log: no writer
    can be at work (it would have made both), so the file can be read as immutable."""
    return (not os.access(path.parent, os.W_OK) and not Path(f"{path}-shm").exists()
            and _wal_size(path) == 0)  # fmt: skip


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A reader that never blocks (or is blocked by) the writer, and never writes: on a
    read-only state directory or filesystem it reads the file as immutable. Raises
    StateError."""
    if not path.exists():
        raise StateError(f"no history yet: {path} does not exist (nothing has run with this "
                         "state directory; see --state)")  # fmt: skip
    if not os.access(path, os.R_OK):
        raise StateError(f"state database {path} cannot be read (permission denied)")
    try:
        try:
            conn = _open_ro(path, immutable=_nobody_can_write(path))
        except sqlite3.OperationalError as exc:
            if "unable to open" not in str(exc):
                raise
            if _wal_size(path) and not Path(f"{path}-shm").exists():
                raise StateError(f"state database {path} cannot be read: its write-ahead log "
                                 f"{path.name}-wal needs a {path.name}-shm file that cannot be "
                                 "created here (read-only directory)") from None  # fmt: skip
            raise StateError(f"cannot open {path} for reading: {exc}") from None
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
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
