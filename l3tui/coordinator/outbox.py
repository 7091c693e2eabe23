"""STATE/outbox/results.jsonl: one JSON line per finished execution (the seed's
`reportToL2`), for the program that sent the decisions (or anyone) to read.

Each batch of lines is appended with one `write` (O_APPEND), fsync'd, and only then booked in
the store: the outbox table, plus a mark of the file's inode and size, in one transaction.
So a line is never written twice: on the next start whatever lies after the mark was written
but not booked (a crash in between), and it is booked instead of written again; a torn last
line (a crash inside the write) is cut off. Executions that ended while no outbox ran (or
whose event was missed) are found in the store and reported then. Rotated by size:
results.jsonl.1, .2, ... (the newest first).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from l3tui.config.events_schema import OutboxSettings
from l3tui.coordinator.results import build
from l3tui.engine import events as ev
from l3tui.engine.bus import EventBus, Subscription
from l3tui.errors import StateError
from l3tui.store.coordination import book_results, booked, get_value, set_value, unreported
from l3tui.store.sqlite import Store
from l3tui.store.writer import DatabaseReplaced

log = logging.getLogger(__name__)

FILE_NAME = "results.jsonl"
MARK_KEY = "outbox_mark"
"""`inode:size` of results.jsonl after the last booked write."""
SINCE_KEY = "outbox_since"
"""Executions that ended before this (the first start of an outbox) are not reported."""
BATCH = 500
Line = tuple[str, str | None, str, bytes]
"""(execution id, decision id, outcome, the line)."""


class Outbox:
    """Writes result lines for finished executions, each exactly once."""

    def __init__(self, directory: Path, settings: OutboxSettings, store: Store, bus: EventBus,
                 now: Callable[[], float]) -> None:  # fmt: skip
        self.directory = directory
        self.settings = settings
        self.store = store
        self.bus = bus
        self.now = now
        self.path = directory / FILE_NAME
        self.since = 0.0
        self.written = 0
        self.failing: str | None = None
        self._fd: int | None = None
        self._dir_fd: int | None = None
        self._sub: Subscription | None = None
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._busy = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open the file, book what a crash left written but unbooked, subscribe."""
        await asyncio.to_thread(self._open)
        since = await self.store.read(get_value, SINCE_KEY)
        if since is None:
            self.since = self.now()
            await self.store.transact(partial(set_value, key=SINCE_KEY, value=repr(self.since)))
        else:
            self.since = float(since)
        mark = await self.store.read(get_value, MARK_KEY)
        found = await asyncio.to_thread(self._recover, mark)
        if found:
            known = await self.store.read(booked, [line[0] for line in found])
            fresh = [entry for entry in found if entry[0] not in known]
            if fresh:
                log.warning("outbox: %d result line(s) were written but not booked before a "
                            "crash; booked now, not written again", len(fresh))  # fmt: skip
            await self._book([(e[0], e[1], e[2], e[3]) for e in fresh])
        self._sub = self.bus.subscribe("outbox", maxsize=100_000, committed=True,
                                       accepts=lambda e: isinstance(e, ev.ExecutionFinished))

    async def run(self) -> None:
        """Report what ended unreported, then every execution as it ends. While the store
        cannot be read or written, results wait (the store knows what ended); once it has
        stopped recording for good, so does the outbox."""
        sub = self._sub
        assert sub is not None
        behind = True
        dropped = sub.dropped
        delay = 0.5
        while True:
            batch: list[ev.Event] = []
            if not behind:
                try:
                    batch = await sub.get_batch(BATCH)
                except StopAsyncIteration:
                    return
            self._busy = True
            try:
                if sub.dropped != dropped:  # fell behind: the store knows what ended
                    dropped, behind = sub.dropped, True
                if behind:
                    await self._catch_up()
                    behind = False
                await self._report([e.execution_id for e in batch
                                    if isinstance(e, ev.ExecutionFinished)])  # fmt: skip
                delay = 0.5
            except (sqlite3.Error, DatabaseReplaced, StateError) as exc:
                behind = True
                if self.store.stopped is not None:
                    log.error("outbox: stopped: the store no longer records (%s)", exc)
                    return
                log.warning("outbox: the store cannot be used now (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            finally:
                self._busy = False

    async def drain(self, within_s: float = 5.0) -> None:
        """Until every execution that ended so far has its line (bounded)."""
        deadline = time.monotonic() + within_s
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.bus.durable(), within_s)
        while time.monotonic() < deadline and self._sub is not None and (
                self._sub.pending() or self._busy):  # fmt: skip
            await asyncio.sleep(0.02)

    def close(self) -> None:
        if self._sub is not None:
            self._sub.close()
            self._sub = None
        for fd in (self._fd, self._dir_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = self._dir_fd = None

    # ------------------------------------------------------------------ reporting

    async def _catch_up(self) -> None:
        while True:
            ids = await self.store.read(unreported, self.since, BATCH)
            ids = [i for i in ids if i not in self._recent]
            if not ids:
                return
            await self._report(ids)

    async def _report(self, ids: list[str]) -> None:
        ids = [i for i in dict.fromkeys(ids) if i not in self._recent]
        if not ids:
            return
        done = await self.store.read(booked, ids)
        ids = [i for i in ids if i not in done]
        if not ids:
            return
        now = self.now()
        lines: list[Line] = []
        for result in await self.store.read(_build_all, ids, self.store.state_dir, now):
            text = json.dumps(result, ensure_ascii=False, separators=(",", ":"), default=str)
            lines.append((result["execution_id"], result["decision_id"], result["outcome"],
                          text.encode() + b"\n"))  # fmt: skip
        if not lines:
            return
        placed = await self._write(lines)
        for execution_id, *_ in lines:
            self._recent[execution_id] = None
        while len(self._recent) > 20_000:
            self._recent.popitem(last=False)
        await self._book(placed)

    async def _write(self, lines: list[Line]) -> list[tuple[str, str | None, str, int]]:
        """Append and fsync, retrying with backoff while the disk refuses (a notice says so;
        what was written before the refusal is not written again); (execution id, decision
        id, outcome, offset) of each line."""
        placed: list[tuple[str, str | None, str, int]] = []
        remaining = lines
        delay = 0.5
        while remaining:
            try:
                offsets = await asyncio.to_thread(self._append, [line[3] for line in remaining])
            except OSError as exc:
                why = f"cannot write {self.path}: {exc.strerror or exc}"
                if self.failing != why:
                    self.failing = why
                    self._notice(f"{why}; results are held and written once it works again",
                                 "error")  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            placed.extend((e[0], e[1], e[2], offset)
                          for e, offset in zip(remaining, offsets, strict=False))  # fmt: skip
            remaining = remaining[len(offsets):]
        if self.failing is not None:
            self.failing = None
            self._notice(f"{self.path} is written again", "info")
        self.written += len(placed)
        return placed

    async def _book(self, placed: list[tuple[str, str | None, str, int]]) -> None:
        if not placed:
            return
        mark = await asyncio.to_thread(self._mark)
        rows = [(e, d, o, self.now(), FILE_NAME, off) for e, d, o, off in placed]

        def book(conn: sqlite3.Connection) -> None:
            book_results(conn, rows)
            set_value(conn, MARK_KEY, mark)

        try:
            await self.store.transact(book)
        except sqlite3.Error as exc:
            # Written and fsync'd: not booked means found after the mark at the next start.
            log.error("outbox: booking %d result line(s) failed: %s", len(rows), exc)
            return
        for execution_id, decision_id, outcome, _ in placed:
            self.bus.publish(ev.ResultReported(at=self.now(), execution_id=execution_id,
                                               decision_id=decision_id, outcome=outcome))

    def _notice(self, message: str, severity: str) -> None:
        (log.error if severity == "error" else log.info)("outbox: %s", message)
        self.bus.publish(ev.SystemNotice(at=self.now(), topic="outbox", message=message,
                                         severity=severity))  # fmt: skip

    # ------------------------------------------------------------------ the file (threads)

    def _open(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                               | os.O_CLOEXEC)  # fmt: skip
        self._reopen()

    def _reopen(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(FILE_NAME, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
                           | os.O_CLOEXEC, 0o600, dir_fd=self._dir_fd)  # fmt: skip

    def _mark(self) -> str:
        assert self._fd is not None
        info = os.fstat(self._fd)
        return f"{info.st_ino}:{info.st_size}"

    def _append(self, lines: list[bytes]) -> list[int]:
        """Whole lines, one write per file (rotating first when the next line would take
        the file past `max_mb`; a file holds at least one line), each write fsync'd; a
        failed write is cut back so nothing half-written stays. The offset of each line
        written: fewer than given when the disk refused part way (OSError when at once)."""
        assert self._fd is not None
        limit = self.settings.max_mb * 1024 * 1024
        offsets: list[int] = []
        pending = lines
        while pending:
            size = os.fstat(self._fd).st_size
            take = total = 0
            while take < len(pending) and (size + total + len(pending[take]) <= limit
                                           or (size == 0 and take == 0)):  # fmt: skip
                total += len(pending[take])
                take += 1
            if take == 0:
                self._rotate()
                continue
            try:
                self._write_all(b"".join(pending[:take]), size)
            except OSError:
                if offsets:
                    return offsets
                raise
            at = size
            for line in pending[:take]:
                offsets.append(at)
                at += len(line)
            pending = pending[take:]
        return offsets

    def _write_all(self, data: bytes, size: int) -> None:
        assert self._fd is not None
        fd = self._fd
        try:
            done = 0
            while done < len(data):
                done += os.write(fd, data[done:])
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise

    def _rotate(self) -> None:
        dir_fd = self._dir_fd
        for index in range(self.settings.keep, 0, -1):
            source = FILE_NAME if index == 1 else f"{FILE_NAME}.{index - 1}"
            with contextlib.suppress(FileNotFoundError):
                os.replace(source, f"{FILE_NAME}.{index}", src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        self._reopen()

    def _recover(self, mark: str | None) -> list[tuple[str, str | None, str, int]]:
        """Cut a torn last line; the lines written after the booked mark (maybe unbooked):
        in the current file, and in the files rotated since the mark, oldest first."""
        assert self._fd is not None and self._dir_fd is not None
        fd = self._fd
        info = os.fstat(fd)
        inode, _, size = (mark or "").partition(":")
        mark_size = int(size) if size.isdigit() else 0
        here = inode == str(info.st_ino) and mark_size <= info.st_size
        start = mark_size if here else 0
        end = info.st_size
        if end > start and os.pread(fd, 1, end - 1) != b"\n":
            cut = _last_newline(fd, start, end)
            log.warning("outbox: cutting a torn last line of %s (%d bytes)", self.path,
                        end - cut)  # fmt: skip
            os.ftruncate(fd, cut)
            os.fsync(fd)
            end = cut
        found = list(_entries(fd, start, end))
        if here or not inode:
            return found
        for index in range(1, self.settings.keep + 1):  # rotated since the mark?
            try:
                old = os.open(f"{FILE_NAME}.{index}", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                              dir_fd=self._dir_fd)  # fmt: skip
            except FileNotFoundError:
                break
            try:
                old_info = os.fstat(old)
                marked = str(old_info.st_ino) == inode
                found = list(_entries(old, mark_size if marked else 0, old_info.st_size)) + found
            finally:
                os.close(old)
            if marked:
                break
        return found


def _last_newline(fd: int, start: int, end: int) -> int:
    """The offset just past the last newline in [start, end), or `start`."""
    pos = end
    while pos > start:
        chunk_start = max(start, pos - 65536)
        chunk = os.pread(fd, pos - chunk_start, chunk_start)
        index = chunk.rfind(b"\n")
        if index >= 0:
            return chunk_start + index + 1
        pos = chunk_start
    return start


def _entries(fd: int, start: int, end: int) -> Iterator[tuple[str, str | None, str, int]]:
    """(execution id, decision id, outcome, offset) of each whole line in [start, end)."""
    rest = b""
    pos = offset = start
    while pos < end:
        chunk = os.pread(fd, min(1 << 20, end - pos), pos)
        if not chunk:
            break
        pos += len(chunk)
        parts = (rest + chunk).split(b"\n")
        rest = parts.pop()
        for line in parts:
            with contextlib.suppress(ValueError, KeyError, AttributeError, TypeError):
                data = json.loads(line)
                yield (str(data["execution_id"]), data.get("decision_id"),
                       str(data.get("outcome", "")), offset)  # fmt: skip
            offset += len(line) + 1


def _build_all(conn: sqlite3.Connection, ids: list[str], state_dir: Path,
               now: float) -> list[dict[str, Any]]:  # fmt: skip
    out = []
    for execution_id in ids:
        result = build(conn, execution_id, state_dir, now)
        if result is not None and result["outcome"] in ("succeeded", "failed", "cancelled",
                                                        "interrupted"):  # fmt: skip
            out.append(result)
    return out
