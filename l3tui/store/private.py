"""The state directory is private to the user running l3tui: created 0700, the database
(with its -wal and -shm, which SQLite creates with the database's own mode) 0600, whatever
the umask. On a shared build machine task logs, commands and history are nobody else's.

Only creates and tightens permissions; never reads or moves what is there.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
_OURS = ("l3tui.db", "l3tui.lock", "runs")
"""Names that mark a directory as an l3tui state dir, safe to tighten."""


def _mode(st: os.stat_result) -> str:
    return f"{stat.S_IMODE(st.st_mode):04o}"


def private_state_dir(path: Path) -> str | None:
    """Create `path` with mode 0700, or tighten an existing one of ours that is open to
    others. Returns a warning for the operator when it found one open, else None."""
    try:
        path.mkdir(mode=DIR_MODE, parents=True)
    except FileExistsError:
        pass
    else:
        # mkdir's mode went through the umask: never looser than 0700, but it may lack
        # owner bits. A file system without modes keeps what it has.
        with contextlib.suppress(OSError):
            os.chmod(path, DIR_MODE)
        return None
    try:
        st = path.stat()
        if not stat.S_ISDIR(st.st_mode) or not st.st_mode & 0o077:
            return None  # not a directory: opening the store will say so
        if st.st_uid != os.geteuid():
            return (f"state directory {path} is mode {_mode(st)} (open to other users) and "
                    f"belongs to uid {st.st_uid}; left as it is")  # fmt: skip
        # Never tighten a directory that is not only l3tui's (--state ~, --state /tmp).
        names = set(os.listdir(path))
        if st.st_mode & stat.S_ISVTX or (names and not names & set(_OURS)):
            return (f"state directory {path} is mode {_mode(st)} (open to other users) and "
                    "holds more than l3tui's files; left as it is: give l3tui a directory "
                    "of its own")  # fmt: skip
        os.chmod(path, DIR_MODE)
    except OSError as exc:
        return f"state directory {path} could not be made private: {exc.strerror}"
    return f"state directory {path} was mode {_mode(st)} (open to other users); made it 0700"


def private_file(path: Path) -> None:
    """Create `path` empty with mode 0600, or tighten it to 0600 if it is ours and looser.
    A file that cannot be changed (read-only mount, another owner) is left as it is."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        pass
    except OSError:
        return  # cannot create here: opening the database will say why
    else:
        try:
            with contextlib.suppress(OSError):  # created <= 0600 already; this adds owner bits
                os.fchmod(fd, FILE_MODE)
        finally:
            os.close(fd)
        return
    try:
        st = path.stat()
        if st.st_uid == os.geteuid() and st.st_mode & 0o077:
            os.chmod(path, FILE_MODE)
    except OSError:
        pass


def private_database(db: Path) -> None:
    """The database 0600 (created so if missing), and its -wal and -shm if they exist."""
    private_file(db)
    for suffix in ("-wal", "-shm"):
        side = db.with_name(db.name + suffix)
        if side.exists():
            private_file(side)
