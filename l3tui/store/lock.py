"""Single-instance lock on a state directory: `flock` on `l3tui.lock`, whose content says
who holds it (pid, command, since). The kernel drops the lock when the holder dies, even by
`kill -9`, so a stale file never blocks a restart.

Only a process that writes the store takes it; read-only commands never do.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from l3tui.errors import LockedError, StateError

LOCK_NAME = "l3tui.lock"


@dataclass(frozen=True, slots=True)
class Holder:
    pid: int
    command: str
    since: float

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return f"pid {self.pid} ({self.command}) since {since}"


class StateLock:
    """`acquire()` or raise `LockedError` naming the holder; `release()` is idempotent."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, command: str | None = None) -> None:
        if self._fd is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_CLOEXEC (Python's default): a task process must never inherit the lock, or
            # an orphan would hold the state dir after l3tui itself died.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StateError(f"cannot create the lock file {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = read_holder(self.path)
            who = holder.describe() if holder else "another process"
            raise LockedError(
                f"state directory {self.path.parent} is in use by l3tui {who}; "
                "read-only commands (history, show, logs, report, audit) still work"
            ) from None
        holder = Holder(os.getpid(), command or _command_line(), time.time())
        payload = json.dumps({"pid": holder.pid, "command": holder.command,
                              "since": holder.since}).encode()  # fmt: skip
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, payload, 0)
        except OSError as exc:  # a full disk: a state dir that cannot take 100 bytes
            os.close(fd)
            raise StateError(f"cannot write the lock file {self.path}: {exc.strerror}; "
                             "nothing could be recorded there") from None  # fmt: skip
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass  # a read-only or full disk: the flock still goes away with the fd
        os.close(fd)


def read_holder(path: Path) -> Holder | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "null")
        return Holder(int(data["pid"]), str(data["command"]), float(data["since"]))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _command_line() -> str:
    args = [os.path.basename(sys.argv[0]) if sys.argv else "python", *sys.argv[1:]]
    text = " ".join(args)
    return text if len(text) <= 120 else text[:117] + "..."
