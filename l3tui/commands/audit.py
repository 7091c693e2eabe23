"""`l3tui audit [list]` shows the audit trail (who did what, when, with what outcome);
`l3tui audit verify` walks its hash chain and exits 1 at the first broken link, naming it.
Read-only: works while another l3tui runs."""

from __future__ import annotations

import argparse
import sys

from l3tui.commands._stored import fmt_time, open_store, parse_since, print_json, table
from l3tui.store import queries
from l3tui.store.audit import verify


def run(args: argparse.Namespace) -> int:
    conn = open_store(args)
    try:
        if args.action == "verify":
            entries = queries.all_audit_entries(conn)
            result = verify(entries)
            if args.json:
                print_json({"ok": result.ok, "checked": result.checked,
                            "broken_at": result.broken_at, "problem": result.problem,
                            "entries": len(entries)})  # fmt: skip
            elif result.ok:
                print(f"audit trail intact: {result.checked} entries, every link verified")
            else:
                bad = next((e for e in entries if e.seq == result.broken_at), None)
                what = (f" ({fmt_time(bad.entry.at)}, {bad.entry.action} by {bad.entry.actor})"
                        if bad else "")  # fmt: skip
                print(f"l3tui: audit trail broken at entry {result.broken_at}{what}: "
                      f"{result.problem}; {result.checked} entries before it verified",
                      file=sys.stderr)  # fmt: skip
            return 0 if result.ok else 1
        entries = queries.audit_entries(conn, since=parse_since(args.since), limit=args.limit)
    finally:
        conn.close()
    if args.json:
        print_json([{"seq": c.seq, "at": c.entry.at, "actor": c.entry.actor,
                     "action": c.entry.action, "target": c.entry.target,
                     "outcome": c.entry.outcome, "detail": c.entry.detail, "hash": c.hash}
                    for c in entries])  # fmt: skip
        return 0
    if not entries:
        print("no audit entries")
        return 0
    rows = [[str(c.seq), fmt_time(c.entry.at), c.entry.actor, c.entry.action, c.entry.target,
             c.entry.outcome, c.entry.detail] for c in entries]  # fmt: skip
    print(table(["#", "WHEN", "WHO", "ACTION", "TARGET", "OUTCOME", "DETAIL"], rows))
    return 0
