"""`l3tui reservations [list] [--all] [--json]`: reservations still to come or in force (with
--all, ended and cancelled ones too), read from the store (read-only: works while another
l3tui runs). `l3tui reservations cancel ID`: end one now (a unique prefix of its id will do),
through the daemon when one serves the state dir, else on the store (see `l3tui reserve`).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from l3tui import textdir
from l3tui.commands._stored import bidi_enabled, open_store, print_json, table
from l3tui.commands.reserve import act, report
from l3tui.config import resolve_state_dir
from l3tui.errors import UsageError
from l3tui.store import resources as stored


def run(args: argparse.Namespace) -> int:
    if args.action == "cancel":
        if not args.id:
            raise UsageError("cancel what? `l3tui reservations cancel ID` (ids: "
                             "`l3tui reservations`)")  # fmt: skip
        result, where = act(resolve_state_dir(args.state), args.config, "cancel_reservation",
                            args.id)  # fmt: skip
        return report(result, where, args.json)
    if args.id:
        raise UsageError(f"unexpected {args.id!r}: did you mean `l3tui reservations cancel "
                         f"{args.id}`?")  # fmt: skip
    now = time.time()
    conn = open_store(args)
    try:
        rows = stored.list_reservations(conn, now, every=args.all)
    finally:
        conn.close()
    if args.json:
        print_json(rows)
        return 0
    print(render(rows, now, args.all, bidi_enabled(args)))
    return 0


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at))


def holds(row: dict[str, Any]) -> str:
    parts = []
    if row["cpu"]:
        parts.append(f"{row['cpu']:g} cpu")
    if row["memory_mb"]:
        mb = int(row["memory_mb"])
        parts.append(f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb} MB")
    parts += [f"pool {name}={slots}" for name, slots in row["pools"].items()]
    return ", ".join(parts)


def render(rows: list[dict[str, Any]], now: float, every: bool, bidi: bool = False) -> str:
    if not rows:
        return ("no reservations recorded" if every else
                "no reservation to come or in force (`l3tui reservations --all` for past ones)")
    body = []
    for r in rows:
        state = r["state"]
        if state in ("ended", "cancelled") and r.get("ended_by"):
            state += f" by {r['ended_by']}" if state == "cancelled" else ""
        body.append([r["id"], state, _when(r["starts_at"]), _when(r["ends_at"]), holds(r),
                     r["actor"], textdir.display(str(r["reason"]), bidi)])  # fmt: skip
    return table(["ID", "STATE", "FROM", "UNTIL", "HOLDS", "BY", "REASON"], body)
