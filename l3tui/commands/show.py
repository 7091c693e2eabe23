"""`l3tui show EXEC`: one execution from the store: its tasks with attempts, durations,
exit codes and why each waited or ended, and the definition hash it ran. EXEC may be a
unique prefix of the id. Read-only."""

from __future__ import annotations

import argparse
from typing import Any

from l3tui import textdir
from l3tui.commands._stored import (
    bidi_enabled,
    fmt_duration,
    fmt_time,
    open_store,
    print_json,
    table,
)
from l3tui.store import queries


def run(args: argparse.Namespace) -> int:
    conn = open_store(args)
    try:
        exec_id = queries.resolve_execution(conn, args.execution)
        row = queries.get_execution(conn, exec_id)
    finally:
        conn.close()
    assert row is not None  # resolve_execution found it
    if args.json:
        print_json(row)
        return 0
    print(render(row, bidi_enabled(args)))
    return 0


def render(row: dict[str, Any], bidi: bool) -> str:
    r = row
    show = textdir.display
    lines = [
        f"execution   {r['id']}",
        f"workflow    {r['workflow_id']} ({show(str(r['workflow_name']), bidi)})",
        f"state       {r['state']}" + (f": {r['reason']}" if r["reason"] else ""),
        f"definition  {r['definition_hash']}",
        f"trigger     {r['trigger']}",
    ]
    if r["parent_id"]:
        lines.append(f"resumes     {r['parent_id']}")
    resumed_by = r.get("resumed_by") or []
    if resumed_by:
        lines.append(f"resumed as  {', '.join(resumed_by)}")
    if r.get("params"):
        lines.append(f"params      {r['params']}")
    started, finished = r["started_at"], r["finished_at"]
    lines.append(f"created     {fmt_time(r['created_at'])}")
    lines.append(f"started     {fmt_time(started)}")
    lines.append(f"finished    {fmt_time(finished)}")
    lines.append(f"duration    {fmt_duration(r['duration_s'])}")
    lines.append("")
    body = []
    tasks: list[dict[str, Any]] = r["tasks"]
    for t in tasks:
        body.append([
            str(t["task_id"]), str(t["state"]), str(t["attempt"] or "-"),
            fmt_duration(t["duration_s"]),
            fmt_duration(t["wait_s"]),
            "-" if t["exit_code"] is None else str(t["exit_code"]),
            show(str(t["reason"] or ""), bidi),
        ])  # fmt: skip
    lines.append(table(["TASK", "STATE", "ATTEMPTS", "DURATION", "WAITED", "EXIT", "REASON"],
                       body))  # fmt: skip
    retried = [t for t in tasks if len(t["attempts"]) > 1]
    for t in retried:
        lines.append("")
        lines.append(f"{t['task_id']} attempts:")
        for a in t["attempts"]:
            code = "-" if a["exit_code"] is None else a["exit_code"]
            took = (a["finished_at"] - a["started_at"]) if a["finished_at"] else None
            lines.append(f"  #{a['attempt']} {a['state']:<10} exit {code:<4} "
                         f"{fmt_duration(took):>7}  {a['error']}".rstrip())  # fmt: skip
    return "\n".join(lines)
