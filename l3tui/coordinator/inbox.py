"""STATE/inbox/: decision files other programs drop (write a temp name, then rename to
`NAME.json`). l3tui claims a file by renaming it into `inbox/.claimed/`, reads it there
(never through a symlink, never more than 1 MiB, never a FIFO or a directory), and once the
decision is recorded and acted on moves it to `inbox/processed/`, or to `inbox/rejected/`
beside `NAME.error.json` saying why.

Blocking file work only (the coordinator runs it in a thread) plus a watcher that wakes the
coordinator when something arrives (inotify, else polling). It decides nothing about what
a decision means.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import hashlib
import itertools
import json
import logging
import os
import shutil
import stat
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from l3tui.coordinator.decisions import MAX_DECISION_BYTES, DecisionError

log = logging.getLogger(__name__)

CLAIMED, PROCESSED, REJECTED = ".claimed", "processed", "rejected"
SETTLE_S = 0.5
"""A file found by a periodic scan (not announced by inotify as renamed in or closed after
writing) is taken only once it has not changed for this long: it may still be written."""
NAME_MAX = 255


def display_name(name: str) -> str:
    """A file name as text that can be printed and put in JSON (bad bytes replaced)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class Claimed:
    """A file taken from the inbox: its name there and its name in `.claimed/`."""

    original: str
    claimed: str


@dataclass(frozen=True, slots=True)
class ReadResult:
    """What a claimed file holds: its bytes, or why it cannot be read as a decision."""

    item: Claimed
    data: bytes | None
    error: DecisionError | None


class Inbox:
    """The inbox directories, opened without following symlinks."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._fds: dict[str, int] = {}
        self._seq = itertools.count()

    # ------------------------------------------------------------------ directories

    def open(self) -> None:
        """Create (0700) and open the inbox and its three subdirectories; refuse any that is
        a symlink or not a directory (StateError-like OSError with the path)."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._fds[""] = _open_dir(str(self.root), None)
        for name in (CLAIMED, PROCESSED, REJECTED):
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o700, dir_fd=self._fds[""])
            self._fds[name] = _open_dir(name, self._fds[""])

    def close(self) -> None:
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()

    # ------------------------------------------------------------------ finding and claiming

    def candidates(self, ready: set[str] | None = None, now: float | None = None) -> list[str]:
        """Names in the inbox to take, oldest first: `*.json`, not starting with a dot.
        Regular files only once settled (or announced in `ready`); anything else (a
        symlink, a FIFO, a directory) at once, to be rejected."""
        now = time.time() if now is None else now
        ready = ready or set()
        found: list[tuple[int, str]] = []
        with os.scandir(self._fds[""]) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith(".") or not name.endswith(".json"):
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if (stat.S_ISREG(info.st_mode) and name not in ready
                        and now - info.st_mtime < SETTLE_S):  # fmt: skip
                    continue
                found.append((info.st_mtime_ns, name))
        found.sort()
        return [name for _, name in found]

    def claimed_left(self) -> list[Claimed]:
        """Files a previous run claimed and did not finish with, in claim order."""
        names = sorted(os.listdir(self._fds[CLAIMED]))
        return [Claimed(name.partition("-")[2] or name, name) for name in names]

    def claim(self, name: str) -> Claimed | None:
        """Rename `name` into `.claimed/` (None when it is gone: taken by someone else)."""
        stamp = f"{time.time_ns():020d}{next(self._seq) % 10_000:04d}"
        claimed = f"{stamp}-{name}"
        if len(os.fsencode(claimed)) > NAME_MAX:
            claimed = f"{stamp}-{hashlib.sha256(os.fsencode(name)).hexdigest()[:32]}.json"
        try:
            os.rename(name, claimed, src_dir_fd=self._fds[""], dst_dir_fd=self._fds[CLAIMED])
        except FileNotFoundError:
            return None
        return Claimed(name, claimed)

    def read(self, item: Claimed) -> ReadResult:
        """The claimed file's bytes, or why it is refused (a symlink, not a regular file,
        over 1 MiB, unreadable)."""
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(item.claimed, flags, dir_fd=self._fds[CLAIMED])
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                why = "a symlink (decisions are read only from regular files)"
            else:
                why = f"cannot be read: {exc.strerror}"
            return ReadResult(item, None, DecisionError(why))
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                what = _kind_of(info.st_mode)
                return ReadResult(item, None, DecisionError(f"{what}, not a regular file"))
            if info.st_size > MAX_DECISION_BYTES:
                return ReadResult(item, None, DecisionError(
                    f"{info.st_size:,} bytes, over the {MAX_DECISION_BYTES:,}-byte limit for "
                    "a decision"))  # fmt: skip
            data = os.read(fd, MAX_DECISION_BYTES + 1)
        except OSError as exc:
            return ReadResult(item, None, DecisionError(f"cannot be read: {exc.strerror}"))
        finally:
            os.close(fd)
        if len(data) > MAX_DECISION_BYTES:  # it grew after the check
            return ReadResult(item, None, DecisionError(
                f"over the {MAX_DECISION_BYTES:,}-byte limit for a decision"))  # fmt: skip
        return ReadResult(item, data, None)

    # ------------------------------------------------------------------ finishing

    def finish(self, item: Claimed, error: dict[str, Any] | None = None) -> str:
        """Move a claimed file to processed/ (no error) or rejected/ with `NAME.error.json`
        holding `error`; returns the name it got there."""
        where = PROCESSED if error is None else REJECTED
        target = self._free_name(where, item.original)
        try:
            os.rename(item.claimed, target, src_dir_fd=self._fds[CLAIMED],
                      dst_dir_fd=self._fds[where])  # fmt: skip
        except FileNotFoundError:
            return target
        if error is not None:
            self._write_json(where, _error_name(target), error)
        return target

    def _free_name(self, where: str, name: str) -> str:
        """`name`, or `name` with a stamp when one of that name is there already."""
        if len(os.fsencode(name)) > NAME_MAX - 32:
            name = hashlib.sha256(os.fsencode(name)).hexdigest()[:32] + ".json"
        try:
            os.lstat(name, dir_fd=self._fds[where])
        except FileNotFoundError:
            return name
        stem = name.removesuffix(".json")
        return f"{stem}.{time.time_ns()}.json"

    def _write_json(self, where: str, name: str, data: dict[str, Any]) -> None:
        tmp = f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=self._fds[where])  # fmt: skip
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, ensure_ascii=False, indent=2)
            fh.write("\n")
        os.rename(tmp, name, src_dir_fd=self._fds[where], dst_dir_fd=self._fds[where])

    def prune(self, keep_days: float, now: float | None = None) -> int:
        """Delete what processed/ and rejected/ hold that is older than `keep_days`."""
        cutoff = (time.time() if now is None else now) - keep_days * 86400
        removed = 0
        for where in (PROCESSED, REJECTED):
            dir_fd = self._fds[where]
            for name in os.listdir(dir_fd):
                try:
                    info = os.lstat(name, dir_fd=dir_fd)
                    if info.st_mtime >= cutoff:
                        continue
                    if stat.S_ISDIR(info.st_mode):
                        shutil.rmtree(name, dir_fd=dir_fd)
                    else:
                        os.unlink(name, dir_fd=dir_fd)
                    removed += 1
                except OSError as exc:
                    log.warning("inbox: cannot remove %s/%s: %s", where, display_name(name),
                                exc.strerror)  # fmt: skip
        return removed


def _error_name(target: str) -> str:
    name = f"{target}.error.json"
    if len(os.fsencode(name)) > NAME_MAX - 8:
        name = hashlib.sha256(os.fsencode(target)).hexdigest()[:32] + ".error.json"
    return name


def _open_dir(path: str, dir_fd: int | None) -> int:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=dir_fd)  # fmt: skip
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory (or a symlink)",
                                     path) from None  # fmt: skip
        raise
    return fd


def _kind_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


# ------------------------------------------------------------------ waking up


_IN_CLOSE_WRITE, _IN_MOVED_TO, _IN_CREATE = 0x8, 0x80, 0x100
_IN_DELETE_SELF, _IN_MOVE_SELF, _IN_Q_OVERFLOW, _IN_IGNORED = 0x400, 0x800, 0x4000, 0x8000
_IN_ONLYDIR, _IN_DONT_FOLLOW = 0x01000000, 0x02000000
_IN_NONBLOCK, _IN_CLOEXEC = 0o4000, 0o2000000
_HEADER = struct.Struct("iIII")


class Watcher:
    """Wakes whoever waits on `wait()` when something may have arrived in the inbox:
    inotify when the kernel has it (names renamed in or closed after writing are `ready`
    at once), else a poll every `poll_s`. A periodic wake-up runs anyway."""

    def __init__(self, directory: Path, poll_s: float = 0.1, idle_s: float = 2.0) -> None:
        self.directory = directory
        self.poll_s = poll_s
        self.idle_s = idle_s
        self.ready: set[str] = set()
        self.overflowed = False
        self.lost = False
        """inotify lost the directory (moved away or deleted): it should be made again."""
        self._event = asyncio.Event()
        self._fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def inotify(self) -> bool:
        return self._fd is not None

    def start(self) -> None:
        self.lost = False
        self._loop = asyncio.get_running_loop()
        self._fd = _inotify(self.directory)
        if self._fd is not None:
            self._loop.add_reader(self._fd, self._on_readable)
        self._event.set()  # look once at what is there already

    def close(self) -> None:
        if self._fd is not None and self._loop is not None:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
        self._fd = None

    async def wait(self) -> set[str]:
        """Until something may have arrived (or the periodic wake-up); the names inotify
        announced as complete since the last call."""
        timeout = self.idle_s if self._fd is not None else self.poll_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        self._event.clear()
        ready, self.ready = self.ready, set()
        return ready

    def take_ready(self) -> set[str]:
        """Names announced as complete since the last `wait` or `take_ready`."""
        ready, self.ready = self.ready, set()
        return ready

    def poke(self) -> None:
        self._event.set()

    def _on_readable(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, 64 * 1024)
        except BlockingIOError:
            return
        except OSError as exc:
            log.warning("inbox: inotify failed (%s); polling instead", exc.strerror)
            self.close()
            self._event.set()
            return
        offset = 0
        lost = False
        while offset + _HEADER.size <= len(data):
            _wd, mask, _cookie, length = _HEADER.unpack_from(data, offset)
            raw = data[offset + _HEADER.size: offset + _HEADER.size + length]
            offset += _HEADER.size + length
            if mask & _IN_Q_OVERFLOW:
                self.overflowed = True
            if mask & (_IN_DELETE_SELF | _IN_MOVE_SELF | _IN_IGNORED):
                lost = True
            if mask & (_IN_CLOSE_WRITE | _IN_MOVED_TO) and raw:
                self.ready.add(os.fsdecode(raw.rstrip(b"\0")))
        if lost:  # the directory went away: poll until the coordinator makes it again
            self.close()
            self.lost = True
        self._event.set()


def _inotify(directory: Path) -> int | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            return None
        mask = _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE_SELF | _IN_MOVE_SELF
        mask |= _IN_ONLYDIR | _IN_DONT_FOLLOW
        if libc.inotify_add_watch(fd, os.fsencode(directory), mask) < 0:
            os.close(fd)
            return None
    except (OSError, AttributeError):
        return None
    return int(fd)
