"""`l3tui advise [--runs N] [--min-runs M] [--workflow W] [--all] [--json]`: what the Resource
Manager advises, from the store (read-only: works while another l3tui runs):

- right-sizing: per task, what it declares in `resources` against the peaks of its last N
  runs (CPU and RSS of its process tree, duration); under-declared tasks (peaks above what
  they ask: admission lets the machine overcommit) first, then over-declared ones (they
  block others for nothing), each with the suggested `resources:` block and its evidence;
- upgrade advice and bottlenecks as the Runtime found and kept them, with their evidence;
- how long tasks waited, by cause, over the last week.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from l3tui.commands._stored import open_store, parse_since, print_json
from l3tui.engine.resources.usage import MIN_RUNS, Sizing, rank, size_task
from l3tui.errors import UsageError
from l3tui.store import resources as stored

WEEK_S = 7 * 86400.0
LABEL = {"under": "UNDER-DECLARED", "over": "OVER-DECLARED", "undeclared": "UNDECLARED",
         "fits": "fits", "too_few": "too few runs"}  # fmt: skip


def run(args: argparse.Namespace) -> int:
    if args.runs < 1 or args.min_runs < 1:
        raise UsageError("--runs and --min-runs must be at least 1")
    now = time.time()
    since = parse_since(args.since, now)
    conn = open_store(args)
    try:
        tasks = stored.task_usage(conn, runs=args.runs, since=since, workflow=args.workflow)
        found = stored.findings(conn, since=now - WEEK_S)
        blocked = stored.blocked_by_cause(conn, now - WEEK_S)
    finally:
        conn.close()
    sizings = rank(s for s in (size_task(t["workflow_id"], t["task_id"], t["declared_cpu"],
                                         t["declared_memory_mb"], t["runs"], args.min_runs)
                               for t in tasks) if s is not None)  # fmt: skip
    if args.json:
        print_json({"rightsizing": [sizing_dict(s) for s in sizings], "findings": found,
                    "blocked": [{**b, "text": blocked_text(b["cause"], b["seconds"])}
                                for b in blocked]})  # fmt: skip
        return 0
    print(render(sizings, found, blocked, args.runs, args.all))
    return 0


def sizing_dict(s: Sizing) -> dict[str, Any]:
    return {"workflow_id": s.workflow_id, "task_id": s.task_id, "verdict": s.verdict,
            "runs": s.runs, "declared": {"cpu": s.declared_cpu,
                                         "memory_mb": s.declared_memory_mb},
            "p95_cpu_cores": round(s.p95_cpu, 2), "max_cpu_cores": round(s.max_cpu, 2),
            "p95_rss_mb": round(s.p95_rss_mb, 1), "max_rss_mb": round(s.max_rss_mb, 1),
            "p95_duration_s": round(s.p95_duration_s, 2),
            "suggested": {"cpu": s.suggested_cpu, "memory_mb": s.suggested_memory_mb}
            if s.actionable else None, "summary": s.summary, "evidence": list(s.evidence)}


def duration_words(seconds: float) -> str:
    minutes = round(seconds / 60)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def cause_words(cause: str) -> str:
    if cause.startswith("pool:"):
        return f"pool {cause[5:]}"
    return {"concurrency": "a free slot (max_concurrent_tasks)", "cpu": "CPU (declared or "
            "measured)", "memory": "memory (declared or measured)", "load": "measured load",
            "max_parallel": "their workflow's max_parallel", "held": "an operator (paused)",
            "not_before": "their not_before time", "reservation": "capacity a reservation "
            "held"}.get(cause, cause)  # fmt: skip


def blocked_text(cause: str, seconds: float) -> str:
    return f"tasks waited {duration_words(seconds)} for {cause_words(cause)}"


def render(sizings: list[Sizing], found: list[dict[str, Any]], blocked: list[dict[str, Any]],
           runs: int, every: bool) -> str:  # fmt: skip
    out = [f"Right-sizing (the last {runs} runs of each task)"]
    shown = [s for s in sizings if every or s.actionable]
    for s in shown:
        out.append(f"  {s.workflow_id}/{s.task_id}  {LABEL[s.verdict]}: {s.summary}")
        if s.actionable:
            out.append(f"    suggested  {s.block()}")
        for line in s.evidence:
            out.append(f"    evidence   {line}")
    fits = [s for s in sizings if s.verdict == "fits"]
    few = [s for s in sizings if s.verdict == "too_few"]
    if not sizings:
        out.append("  no measured runs yet: advice needs a task's processes to have run "
                   f"(at least {MIN_RUNS} times)")  # fmt: skip
    elif not every:
        if not shown:
            out.append("  every measured task fits what it declares")
        if fits:
            out.append(f"  {len(fits)} task(s) fit what they declare")
        if few:
            names = ", ".join(f"{s.workflow_id}/{s.task_id} ({s.runs})" for s in few[:5])
            out.append(f"  no advice yet for {len(few)} task(s) with too few measured runs: "
                       f"{names}{' ...' if len(few) > 5 else ''} (--all shows them)")
    out += ["", "Upgrade advice and bottlenecks (kept with their evidence)"]
    if not found:
        out.append("  none in the last 7 days")
    for f in found:
        since = time.strftime("%Y-%m-%d %H:%M", time.localtime(f["first_seen"]))
        if f["state"] == "active":
            state = f"since {since}" + (f", seen {f['times']} times" if f["times"] > 1 else "")
        else:
            ended = time.strftime("%Y-%m-%d %H:%M", time.localtime(f["resolved_at"]))
            state = f"resolved {ended} (the evidence stopped)"
        out.append(f"  {'!' if f['state'] == 'active' else '-'} {f['summary']} ({state})")
        if f["suggestion"]:
            out.append(f"    suggestion {f['suggestion']}")
        for line in f["evidence"]:
            out.append(f"    evidence   {line}")
    out += ["", "Time tasks waited, by cause (the last 7 days)"]
    if not blocked:
        out.append("  no task waited")
    for b in blocked:
        out.append(f"  {blocked_text(b['cause'], b['seconds'])}")
    return "\n".join(out)
