"""`l3tui show EXEC`: one execution from the store: its tasks with attempts, durations,
exit codes and why each waited or ended, what each declared against what it used (peaks,
CPU seconds, utilisation efficiency), and the definition hash it ran. EXEC may be a unique
prefix of the id. Read-only."""

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
from l3tui.store.resources import execution_efficiency


def run(args: argparse.Namespace) -> int:
    conn = open_store(args)
    try:
        exec_id = queries.resolve_execution(conn, args.execution)
        row = queries.get_execution(conn, exec_id)
    finally:
        conn.close()
    assert row is not None  # resolve_execution found it
    whole, per_task = execution_efficiency(row)
    row["efficiency"] = {"execution": whole.as_dict(),
                         "tasks": {t: e.as_dict() for t, e in per_task.items()}}
    if args.json:
        print_json(row)
        return 0
    print(render(row, bidi_enabled(args)))
    return 0


def _mb(value: float | None) -> str:
    return "-" if not value else f"{value / 1048576:.0f} MB"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def _resources(r: dict[str, Any]) -> list[str]:
    """Declared against used, per task that ran a process, and the execution's efficiency:
    CPU-seconds and MB-seconds used over those allocated (declared x running time)."""
    needs = {str(t.get("id")): t.get("resources") or {}
             for t in (r.get("definition") or {}).get("tasks") or []}  # fmt: skip
    efficiency = r.get("efficiency") or {"tasks": {}, "execution": {}}
    body = []
    for t in r["tasks"]:
        if not (t.get("peak_rss") or t.get("peak_cpu_pct") or t.get("cpu_s")):
            continue
        need = needs.get(t["task_id"], {})
        declared = ", ".join(p for p in (
            f"cpu {need['cpu']:g}" if need.get("cpu") else "",
            f"{need['memory_mb']} MB" if need.get("memory_mb") else "") if p) or "-"
        used = efficiency["tasks"].get(t["task_id"], {})
        body.append([str(t["task_id"]), declared, f"{(t['peak_cpu_pct'] or 0) / 100:.2f}",
                     f"{(t['avg_cpu_pct'] or 0) / 100:.2f}",
                     "-" if t.get("cpu_s") is None else f"{t['cpu_s']:.2f}",
                     _mb(t.get("peak_rss")), _pct(used.get("cpu_pct")),
                     _pct(used.get("memory_pct"))])  # fmt: skip
    if not body:
        return []
    whole = efficiency["execution"]
    out = ["", "resources (cores: 1.00 = one core busy; peaks are of the task's process tree)",
           table(["TASK", "DECLARED", "PEAK CPU", "AVG CPU", "CPU-S", "PEAK RSS", "CPU USED",
                  "MEM USED"], body)]  # fmt: skip
    if whole.get("tasks"):
        out.append(f"efficiency  cpu {_pct(whole['cpu_pct'])} of {whole['cpu_allocated_s']:g} "
                   f"cpu-s allocated, memory {_pct(whole['memory_pct'])} of "
                   f"{whole['memory_allocated_mb_s']:g} MB-s (used / declared x time)")
    return out


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
    lines += _resources(r)
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
