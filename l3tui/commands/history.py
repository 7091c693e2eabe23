"""`l3tui history`: past executions from the store, newest first, filtered by workflow,
execution state (`--status`) and age. Read-only: works while another l3tui runs. `--state`
is the state directory, as in every command."""

from __future__ import annotations

import argparse
from pathlib import Path

from l3tui import textdir
from l3tui.commands._stored import (
    bidi_enabled,
    fmt_duration,
    fmt_time,
    open_store,
    parse_since,
    print_json,
    table,
)
from l3tui.errors import UsageError
from l3tui.store import queries

STATES = ("pending", "running", "paused", "succeeded", "failed", "cancelled", "interrupted")


def run(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    if args.status and args.status not in STATES:
        raise UsageError(f"--status must be one of {', '.join(STATES)}, got {args.status!r}")
    state_dir = getattr(args, "state", None)
    if state_dir in STATES and not Path(state_dir).is_dir():
        # `history --state failed` filtered by execution state before --state meant the
        # state directory here as in every command.
        raise UsageError(f"--state is the state directory and there is no directory "
                         f"{state_dir!r}; to list {state_dir} executions use --status {state_dir}")
    since = parse_since(args.since)
    conn = open_store(args)
    try:
        rows = queries.list_executions(conn, workflow=args.workflow, state=args.status,
                                       since=since, limit=args.limit)  # fmt: skip
    finally:
        conn.close()
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no executions match")
        return 0
    bidi = bidi_enabled(args)
    body = []
    for r in rows:
        duration = r["duration_s"]
        if duration is None and r["started_at"] is not None and r["finished_at"] is not None:
            duration = r["finished_at"] - r["started_at"]
        body.append([
            r["id"], r["workflow_id"], r["state"], fmt_time(r["started_at"] or r["created_at"]),
            fmt_duration(duration), f"{r['succeeded']}/{r['tasks']}"
            + (f" ({r['failed']} failed)" if r["failed"] else ""),
            r["trigger"] + (f" <- {r['parent_id']}" if r["parent_id"] else ""),
            textdir.display(r["workflow_name"], bidi),
        ])  # fmt: skip
    print(table(["ID", "WORKFLOW", "STATE", "STARTED", "DURATION", "TASKS OK", "TRIGGER",
                 "NAME"], body))  # fmt: skip
    return 0
