"""`l3tui events [-f] [--since SEQ] [--type GLOB] [--json]`: the event stream, for anyone
who wants everything, from the store's events table. Each event has a sequence number
(`seq`), so a reader that stopped resumes with `--since SEQ` and misses nothing the store
kept (`scheduling.retention.events_days`). `-f` follows: woken by the daemon's socket when
a daemon serves the state dir (it pushes each event once it is on disk), else by polling.
Task output and resource samples are not in the store: `l3tui logs` and `l3tui report`.
Read-only: it never takes the lock.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from l3tui.commands._stored import fmt_time, open_store
from l3tui.config import resolve_state_dir
from l3tui.coordinator.naming import Matcher, event_type, summary
from l3tui.engine.events import EVENT_TYPES
from l3tui.errors import UsageError
from l3tui.store.queries import event_bounds, events_after

PAGE = 5000
POLL_S = 0.5
STORED_KINDS = tuple(kind for kind in EVENT_TYPES if kind not in ("task_output",
                                                                  "resource_sampled"))
"""Kinds the store keeps (pushes of other kinds would only wake us for nothing)."""


def run(args: argparse.Namespace) -> int:
    if args.since is not None and args.since < 0:
        raise UsageError("--since takes a sequence number (0 or more)")
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    match = Matcher(args.type or ["*"])
    conn = open_store(args)
    try:
        last = _print_start(conn, args, match)
        if args.follow:
            asyncio.run(_follow(conn, args, match, last))
    finally:
        conn.close()
    return 0


def _print_start(conn: sqlite3.Connection, args: argparse.Namespace, match: Matcher) -> int:
    """What is stored already: after `--since` (at most `--limit`), or else the newest
    `--limit` (default 100) that match; the last sequence number looked at."""
    low, high = event_bounds(conn)
    if args.since is not None:
        if low and args.since < low - 1:
            print(f"l3tui: events {args.since + 1}..{low - 1} are no longer kept (retention); "
                  f"starting at {low}", file=sys.stderr)  # fmt: skip
        last, printed = args.since, 0
        for row in _rows(conn, args.since):
            if args.limit is not None and printed >= args.limit:
                break
            if match(row["type"], row["kind"]):
                _print(row, args.json)
                printed += 1
            last = row["seq"]
        return last
    wanted = args.limit or 100
    found: list[dict[str, Any]] = []
    before = high + 1
    while before > low and len(found) < wanted:
        start = max(before - PAGE, low - 1)
        page = [r for r in events_after(conn, start, PAGE, before=before)
                if match(_typed(r)["type"], r["kind"])]  # fmt: skip
        if page:
            found = page[-(wanted - len(found)):] + found
        before = start + 1
    for row in found:
        _print(row, args.json)
    return high


def _rows(conn: sqlite3.Connection, after: int) -> Iterator[dict[str, Any]]:
    while True:
        page = events_after(conn, after, PAGE)
        for row in page:
            yield _typed(row)
        if len(page) < PAGE:
            return
        after = page[-1]["seq"]


def _typed(row: dict[str, Any]) -> dict[str, Any]:
    if "type" not in row:
        row["type"] = event_type(row["kind"], row)
    return row


def _print(row: dict[str, Any], as_json: bool) -> None:
    if as_json:
        head = {"seq": row["seq"], "at": row["at"], "type": row["type"], "kind": row["kind"]}
        print(json.dumps({**head, **{k: v for k, v in row.items() if k not in head}},
                         ensure_ascii=False, default=str))  # fmt: skip
    else:
        print(f"{row['seq']:>8}  {fmt_time(row['at'])}  {row['type']:<22}  "
              f"{summary(row['kind'], row)}".rstrip())  # fmt: skip


async def _follow(conn: sqlite3.Connection, args: argparse.Namespace, match: Matcher,
                  last: int) -> None:  # fmt: skip
    wake = asyncio.Event()
    remote = await _listen(resolve_state_dir(args.state), wake)
    try:
        while True:
            printed = False
            for row in _rows(conn, last):
                if match(row["type"], row["kind"]):
                    _print(row, args.json)
                    printed = True
                last = row["seq"]
            if printed:
                sys.stdout.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), POLL_S if remote is None else 5.0)
            wake.clear()
    finally:
        if remote is not None:
            await remote.close()


async def _listen(state_dir: Path, wake: asyncio.Event) -> Any:
    """The daemon's event pushes, as a wake-up (None: no daemon; then we poll)."""
    from l3tui.daemon.client import DaemonUnavailable, RemoteRuntime, daemon_answers
    from l3tui.runtime.actor import current_actor

    if not daemon_answers(state_dir):
        return None
    remote = RemoteRuntime(state_dir, actor=current_actor(), client="events", snapshots=False,
                           kinds=STORED_KINDS)  # fmt: skip
    try:
        await remote.connect()
    except DaemonUnavailable:
        return None
    remote.bus.add_listener(lambda _event: wake.set())
    return remote
