"""`l3tui logs EXEC [TASK] [-f] [--grep RE] [--json]`: the log files of an execution's tasks,
every attempt in order, streamed a block at a time. On a terminal, control sequences a task
printed are removed and a line rewritten with `\r` shows its last state, as the console does
(a log cannot retitle the window or move the cursor); piped, the bytes are passed through.
`--json` writes one object per line with every control character escaped (C1 too). `-f`
follows running tasks (new attempts included) until the execution ends. Read-only."""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l3tui.commands._stored import open_store
from l3tui.errors import UsageError
from l3tui.sanitize import clean
from l3tui.store import queries

FOLLOW_POLL_S = 0.25
READ_BLOCK = 1024 * 1024
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029]")
"""What `json.dumps(ensure_ascii=False)` leaves raw but a terminal or a JavaScript parser
acts on: DEL, the C1 controls (U+009B is a CSI like ESC [), and the line separators."""
ACTIVE = ("pending", "running", "paused")


@dataclass(slots=True)
class _Log:
    task_id: str
    attempt: int
    path: str
    offset: int = 0
    partial: bytes = b""
    shown_header: bool = False
    missing: bool = False


@dataclass(slots=True)
class _Printer:
    json_mode: bool
    sanitize: bool
    pattern: re.Pattern[str] | None
    headers: bool
    matched: int = 0
    out: list[str] = field(default_factory=list)

    def header(self, log: _Log, state: str) -> None:
        if self.headers and not self.json_mode and self.pattern is None and not log.shown_header:
            self.out.append(f"==> {log.task_id} attempt {log.attempt} ({state}) <==")
        log.shown_header = True

    def line(self, log: _Log, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").rstrip("\r")
        if self.sanitize:
            text = clean(text)
        if self.pattern is not None and not self.pattern.search(clean(text)):
            return
        self.matched += 1
        if self.json_mode:
            self.out.append(json_line({"task_id": log.task_id, "attempt": log.attempt,
                                       "line": text}))  # fmt: skip
        elif self.pattern is not None and self.headers:
            self.out.append(f"{log.task_id}#{log.attempt}: {text}")
        else:
            self.out.append(text)

    def flush(self) -> None:
        if self.out:
            sys.stdout.write("\n".join(self.out) + "\n")
            sys.stdout.flush()
            self.out.clear()


def json_line(record: dict[str, Any]) -> str:
    """`record` as one JSON line: non-ASCII text stays readable, every control character is
    escaped (json escapes C0 and ESC; C1 and DEL are escaped here)."""
    text = json.dumps(record, ensure_ascii=False)
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def run(args: argparse.Namespace) -> int:
    pattern = None
    if args.grep:
        try:
            pattern = re.compile(args.grep)
        except re.error as exc:
            raise UsageError(f"--grep: invalid regular expression {args.grep!r}: {exc}") from None
    conn = open_store(args)
    try:
        exec_id = queries.resolve_execution(conn, args.execution)
        printer = _Printer(args.json, sys.stdout.isatty(), pattern, headers=True)
        return _show(conn, exec_id, args.task, args.follow, printer)
    finally:
        conn.close()


def _attempts(conn: sqlite3.Connection, exec_id: str, task: str | None
              ) -> tuple[str, list[tuple[dict[str, Any], dict[str, Any]]]]:  # fmt: skip
    row = queries.get_execution(conn, exec_id)
    assert row is not None
    tasks = row["tasks"]
    if task is not None:
        tasks = [t for t in tasks if t["task_id"] == task]
        if not tasks:
            names = ", ".join(t["task_id"] for t in row["tasks"])
            raise UsageError(f"execution {exec_id} has no task {task!r} (tasks: {names})")
    return row["state"], [(t, a) for t in tasks for a in t["attempts"] if a["log_path"]]


def _read_new(log: _Log, printer: _Printer, final: bool) -> None:
    """Print what `log` gained since the last call, a block at a time: a log of gigabytes
    streams through in bounded memory."""
    try:
        fh = open(log.path, "rb")  # noqa: SIM115 (closed below; the errors differ)
    except FileNotFoundError:
        # A log file is created with a task's first byte of output; only a missing
        # execution directory means the logs were deleted (by a cleanup, say).
        log.missing = not Path(log.path).parent.is_dir()
        return
    except OSError:
        log.missing = True
        return
    with fh:
        fh.seek(log.offset)
        while True:
            try:
                data = fh.read(READ_BLOCK)
            except OSError:
                log.missing = True
                return
            if not data:
                break
            log.offset += len(data)
            lines = (log.partial + data).split(b"\n")
            log.partial = lines.pop()
            for raw in lines:
                printer.line(log, raw)
            printer.flush()
    if final and log.partial:
        printer.line(log, log.partial)
        log.partial = b""


def _show(conn: sqlite3.Connection, exec_id: str, task: str | None, follow: bool,
          printer: _Printer) -> int:  # fmt: skip
    logs: dict[tuple[str, int], _Log] = {}
    while True:
        state, attempts = _attempts(conn, exec_id, task)
        printer.headers = len(attempts) > 1 or task is None
        done = state not in ACTIVE or not follow
        for t, a in attempts:
            key = (t["task_id"], a["attempt"])
            log = logs.get(key)
            if log is None:
                log = logs[key] = _Log(t["task_id"], a["attempt"], a["log_path"])
            attempt_over = a["finished_at"] is not None
            printer.header(log, a["state"])
            _read_new(log, printer, final=done or attempt_over)
        printer.flush()
        if done:
            break
        time.sleep(FOLLOW_POLL_S)
    missing = [f"{log.task_id}#{log.attempt}: {log.path}" for log in logs.values() if log.missing]
    for item in missing:
        print(f"l3tui: log file is gone: {item}", file=sys.stderr)
    if not logs:
        print(f"l3tui: no logs recorded for {exec_id}" + (f" task {task}" if task else ""),
              file=sys.stderr)  # fmt: skip
    if printer.pattern is not None and printer.matched == 0:
        return 1  # like grep: nothing matched
    return 0
