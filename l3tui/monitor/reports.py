"""Reports over the store's history: per-workflow success rates and durations, slowest and
most failing tasks, queue waits, resource peaks and the seed's business metrics (build
success rate, task-reported metrics over time, recovery time after failures), and the
Resource Manager's view (time blocked per cause, upgrade advice and bottlenecks with their
evidence, right-sizing, utilisation efficiency per workflow and the machine's idle capacity
while tasks waited), rendered as Markdown with terminal charts (plotext), JSON, or HTML with
inline SVG charts.

Reads through `l3tui.store.queries` and `l3tui.store.resources` only; never writes, never
imports Textual.
"""

from __future__ import annotations

import html
import json
import re
import sqlite3
import time
from collections import defaultdict
from typing import Any

from l3tui.engine.resources.usage import rank, size_task
from l3tui.store import queries
from l3tui.store import resources as stored

DAY = 86400.0
BUILD_TYPES = ("flutter_build", "build")


def _rate(good: int, total: int) -> float | None:
    return round(100.0 * good / total, 1) if total else None


def build_report(
    conn: sqlite3.Connection, since: float, now: float | None = None
) -> dict[str, Any]:
    """Everything a report shows, as plain data (what `--format json` prints)."""
    now = time.time() if now is None else now
    executions = queries.list_executions(conn, since=since, limit=None)
    executions.reverse()  # oldest first
    types = {h: (json.loads(b).get("type") or "") for h, b in
             conn.execute("SELECT hash, body FROM definitions")}  # fmt: skip
    per_wf: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in executions:
        per_wf[e["workflow_id"]].append(e)
    workflows = []
    for wf, rows in sorted(per_wf.items()):
        ended = [r for r in rows if r["state"] in ("succeeded", "failed", "interrupted")]
        durations = sorted(r["duration_s"] for r in rows
                           if r["state"] == "succeeded" and r["duration_s"] is not None)
        workflows.append({
            "workflow_id": wf, "name": rows[-1]["workflow_name"], "runs": len(rows),
            "succeeded": sum(r["state"] == "succeeded" for r in rows),
            "failed": sum(r["state"] == "failed" for r in rows),
            "interrupted": sum(r["state"] == "interrupted" for r in rows),
            "cancelled": sum(r["state"] == "cancelled" for r in rows),
            "success_rate_pct": _rate(sum(r["state"] == "succeeded" for r in ended), len(ended)),
            "p50_s": queries.quantile(durations, 0.5), "p95_s": queries.quantile(durations, 0.95),
        })  # fmt: skip
    stats = queries.task_duration_stats(conn, since)
    builds = [e for e in executions
              if types.get(e["definition_hash"]) in BUILD_TYPES or "build" in e["workflow_id"]]
    builds_ended = [b for b in builds if b["state"] in ("succeeded", "failed", "interrupted")]
    metrics: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in queries.task_metric_series(conn, since):
        metrics[m["name"]].append(m)
    days: dict[str, dict[str, int]] = defaultdict(lambda: {"succeeded": 0, "failed": 0})
    for e in executions:
        if e["state"] in ("succeeded", "failed", "interrupted"):
            day = time.strftime("%Y-%m-%d", time.localtime(e["created_at"]))
            days[day]["succeeded" if e["state"] == "succeeded" else "failed"] += 1
    waits = [s for s in stats if s["runs"]]
    return {
        "generated_at": now, "since": since, "until": now,
        "executions": len(executions),
        "workflows": workflows,
        "slowest_tasks": sorted(stats, key=lambda s: -(s["p95_s"] or 0))[:10],
        "most_failing_tasks": queries.failure_counts(conn, since)[:10],
        "queue_wait": {
            "mean_s": (sum(s["mean_wait_s"] * s["runs"] for s in waits)
                       / sum(s["runs"] for s in waits)) if waits else None,
            "by_task": sorted(waits, key=lambda s: -s["mean_wait_s"])[:10],
        },
        "resource_peaks": [p for p in queries.resource_peaks(conn, since)
                           if p["name"] not in ("busy_while_queued", "queued_interval_s")],
        "business": {
            "build_success_rate_pct": _rate(sum(b["state"] == "succeeded" for b in builds_ended),
                                            len(builds_ended)),
            "builds": len(builds),
            "task_metrics": {
                name: {"count": len(rows), "last": rows[-1]["value"],
                       "min": min(r["value"] for r in rows), "max": max(r["value"] for r in rows),
                       "series": [(r["at"], r["value"]) for r in rows]}
                for name, rows in sorted(metrics.items())
            },
            "recovery": recovery_times(executions),
        },
        "daily": [{"day": d, **counts} for d, counts in sorted(days.items())],
        "resources": resource_section(conn, since),
    }


def resource_section(conn: sqlite3.Connection, since: float) -> dict[str, Any]:
    """Time blocked per cause, advice kept with its evidence, right-sizing of the tasks that
    ran in the period, and how much of what tasks were allocated they used."""
    sizings = rank(s for s in (
        size_task(t["workflow_id"], t["task_id"], t["declared_cpu"], t["declared_memory_mb"],
                  t["runs"]) for t in stored.task_usage(conn, since=since)) if s is not None)
    efficiency = stored.efficiency_by_workflow(conn, since)
    return {
        "blocked": [{**b, "text": blocked_sentence(b["cause"], b["seconds"])}
                    for b in stored.blocked_by_cause(conn, since)],
        "findings": stored.findings(conn, since=since),
        "rightsizing": [{"workflow_id": s.workflow_id, "task_id": s.task_id,
                         "verdict": s.verdict, "runs": s.runs, "summary": s.summary,
                         "suggested": s.block(), "evidence": list(s.evidence)}
                        for s in sizings if s.actionable],
        "efficiency": {wf: e.as_dict() for wf, e in sorted(efficiency.items())},
        "busy_while_queued": stored.busy_while_queued(conn, since),
    }  # fmt: skip


def blocked_sentence(cause: str, seconds: float) -> str:
    """`tasks waited 3 h 12 min for pool flutter_build`."""
    minutes = round(seconds / 60)
    if seconds < 90:
        took = f"{seconds:.0f} s"
    elif minutes < 60:
        took = f"{minutes} min"
    else:
        took = f"{minutes // 60} h {minutes % 60} min" if minutes % 60 else f"{minutes // 60} h"
    words = (f"pool {cause[5:]}" if cause.startswith("pool:") else
             {"concurrency": "a free slot (max_concurrent_tasks)", "cpu": "CPU",
              "memory": "memory", "load": "measured load", "reservation": "capacity a "
              "reservation held", "max_parallel": "their workflow's max_parallel",
              "held": "an operator", "not_before": "their not_before time"}.get(cause, cause))
    return f"tasks waited {took} for {words}"


def recovery_times(executions: list[dict[str, Any]]) -> dict[str, Any]:
    """Time from a workflow's failure (or interruption) to its next success, per workflow:
    how long the team was without a green run."""
    out: dict[str, dict[str, Any]] = {}
    broken_since: dict[str, float] = {}
    samples: dict[str, list[float]] = defaultdict(list)
    for e in executions:  # oldest first
        wf, end = e["workflow_id"], e["finished_at"] or e["created_at"]
        if e["state"] in ("failed", "interrupted"):
            broken_since.setdefault(wf, end)
        elif e["state"] == "succeeded" and wf in broken_since:
            samples[wf].append(end - broken_since.pop(wf))
    for wf, values in sorted(samples.items()):
        out[wf] = {"recoveries": len(values), "mean_s": sum(values) / len(values),
                   "max_s": max(values)}  # fmt: skip
    for wf, start in broken_since.items():
        out.setdefault(wf, {"recoveries": 0, "mean_s": None, "max_s": None})
        out[wf]["broken_since"] = start
    return out


# ------------------------------------------------------------------ rendering helpers


def _s(seconds: float | None) -> str:
    from l3tui.config.durations import format_ms

    return "-" if seconds is None else format_ms(seconds * 1000)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(value)


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return ["_none_", ""]
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return [*out, ""]


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _plotext_chart(kind: str, xs: list[Any], ys: list[float], title: str) -> str:
    import plotext as plt

    plt.clear_figure()
    plt.theme("clear")
    plt.plotsize(72, 14)
    plt.title(title)
    if kind == "bar":
        plt.bar(xs, ys)
    else:
        plt.plot(xs, ys, marker="braille")
    text = _ANSI.sub("", plt.build())
    plt.clear_figure()
    return "\n".join(line.rstrip() for line in text.splitlines())


def _tables(r: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    return [
        ("Workflows", ["workflow", "runs", "ok", "failed", "interrupted", "success", "p50", "p95"],
         [[w["workflow_id"], str(w["runs"]), str(w["succeeded"]), str(w["failed"]),
           str(w["interrupted"]), _pct(w["success_rate_pct"]), _s(w["p50_s"]), _s(w["p95_s"])]
          for w in r["workflows"]]),
        ("Slowest tasks (p95)", ["workflow", "task", "runs", "p50", "p95", "max"],
         [[s["workflow_id"], s["task_id"], str(s["runs"]), _s(s["p50_s"]), _s(s["p95_s"]),
           _s(s["max_s"])] for s in r["slowest_tasks"]]),
        ("Most failing tasks", ["workflow", "task", "failures"],
         [[f["workflow_id"], f["task_id"], str(f["failures"])] for f in r["most_failing_tasks"]]),
        ("Queue waiting time", ["workflow", "task", "runs", "mean wait"],
         [[s["workflow_id"], s["task_id"], str(s["runs"]), _s(s["mean_wait_s"])]
          for s in r["queue_wait"]["by_task"]]),
        ("Resource peaks", ["metric", "peak", "average", "samples"],
         [[p["name"], f"{p['peak']:.1f}", f"{p['avg']:.1f}", str(p["samples"])]
          for p in r["resource_peaks"]]),
        ("Task-reported metrics", ["metric", "reports", "last", "min", "max"],
         [[n, str(m["count"]), f"{m['last']:g}", f"{m['min']:g}", f"{m['max']:g}"]
          for n, m in r["business"]["task_metrics"].items()]),
        ("Recovery time after failures", ["workflow", "recoveries", "mean", "max", "red since"],
         [[wf, str(v["recoveries"]), _s(v["mean_s"]), _s(v["max_s"]),
           _when(v["broken_since"]) if v.get("broken_since") else "-"]
          for wf, v in r["business"]["recovery"].items()]),
        *_resource_tables(r.get("resources") or {}),
    ]  # fmt: skip


def _resource_tables(res: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    return [
        ("Time blocked, by cause", ["cause", "waited", ""],
         [[b["cause"], _s(b["seconds"]), b["text"]] for b in res.get("blocked", [])]),
        ("Upgrade advice and bottlenecks", ["state", "finding", "suggestion", "evidence",
                                            "since"],
         [[f["state"], f["summary"], f["suggestion"] or "-", "; ".join(f["evidence"]),
           _when(f["first_seen"])] for f in res.get("findings", [])]),
        ("Right-sizing", ["task", "verdict", "runs", "suggested", "why"],
         [[f"{s['workflow_id']}/{s['task_id']}", s["verdict"], str(s["runs"]), s["suggested"],
           s["summary"]] for s in res.get("rightsizing", [])]),
        ("Utilisation efficiency (used / allocated)", ["workflow", "cpu", "cpu-s used/alloc",
                                                       "memory", "MB-s used/alloc"],
         [[wf, _pct(e["cpu_pct"]), f"{e['cpu_used_s']:g}/{e['cpu_allocated_s']:g}",
           _pct(e["memory_pct"]),
           f"{e['memory_used_mb_s']:g}/{e['memory_allocated_mb_s']:g}"]
          for wf, e in res.get("efficiency", {}).items()]),
    ]  # fmt: skip


def _headline(r: dict[str, Any]) -> list[str]:
    b = r["business"]
    lines = [
        f"Period: {_when(r['since'])} to {_when(r['until'])}; {r['executions']} execution(s).",
        f"Build success rate: {_pct(b['build_success_rate_pct'])} over {b['builds']} build(s).",
        f"Mean queue wait: {_s(r['queue_wait']['mean_s'])}.",
    ]
    busy = (r.get("resources") or {}).get("busy_while_queued") or {}
    if busy.get("busy_pct") is not None:
        lines.append(f"While ready tasks waited ({_s(busy['queued_s'])} in all), the CPU was "
                     f"{_pct(busy['busy_pct'])} busy: {_pct(busy['idle_pct'])} of it stood "
                     "idle (capacity the scheduling left unused).")  # fmt: skip
    return lines


def render_markdown(r: dict[str, Any], charts: bool = True) -> str:
    lines = ["# l3tui report", "", *_headline(r), ""]
    for title, headers, rows in _tables(r):
        lines += [f"## {title}", "", *_md_table(headers, rows)]
    if charts and r["daily"]:
        lines += ["## Charts", "", "```",
                  _plotext_chart("bar", [d["day"][5:] for d in r["daily"]],
                                 [float(d["succeeded"]) for d in r["daily"]],
                                 "succeeded executions per day"),
                  _plotext_chart("bar", [d["day"][5:] for d in r["daily"]],
                                 [float(d["failed"]) for d in r["daily"]],
                                 "failed or interrupted executions per day")]  # fmt: skip
        for name, m in r["business"]["task_metrics"].items():
            if len(m["series"]) >= 2:
                xs = list(range(1, len(m["series"]) + 1))
                lines.append(_plotext_chart("line", xs, [v for _, v in m["series"]],
                                            f"{name} per report"))  # fmt: skip
        lines += ["```", ""]
    return "\n".join(lines)


def _svg_bars(values: list[tuple[str, float]], title: str, color: str) -> str:
    width, height, pad = 560, 180, 28
    top = max((v for _, v in values), default=0) or 1
    bar_w = (width - 2 * pad) / max(len(values), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="{html.escape(title)}">',
             f'<text x="{pad}" y="16" font-size="13">{html.escape(title)}</text>']  # fmt: skip
    for i, (label, value) in enumerate(values):
        h = (height - 2 * pad - 10) * value / top
        x = pad + i * bar_w
        y = height - pad - h
        parts.append(f'<rect x="{x + 2:.1f}" y="{y:.1f}" width="{max(bar_w - 4, 1):.1f}" '
                     f'height="{h:.1f}" fill="{color}"><title>{html.escape(label)}: '
                     f'{value:g}</title></rect>')  # fmt: skip
        parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{height - pad + 14}" font-size="10" '
                     f'text-anchor="middle">{html.escape(label)}</text>')  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)


def _svg_line(points: list[tuple[float, float]], title: str) -> str:
    width, height, pad = 560, 180, 28
    ys = [v for _, v in points]
    lo, hi = min(ys), max(ys)
    span = (hi - lo) or 1
    step = (width - 2 * pad) / max(len(points) - 1, 1)
    scale = (height - 2 * pad - 10) / span
    coords = " ".join(f"{pad + i * step:.1f},{height - pad - (v - lo) * scale:.1f}"
                      for i, v in enumerate(ys))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'role="img" aria-label="{html.escape(title)}">'
            f'<text x="{pad}" y="16" font-size="13">{html.escape(title)} '
            f'({lo:g} to {hi:g})</text>'
            '<polyline fill="none" stroke="#2b6cb0" stroke-width="2" '
            f'points="{coords}"/></svg>')


def render_html(r: dict[str, Any]) -> str:
    esc = html.escape
    body = ["<h1>l3tui report</h1>", *[f"<p>{esc(line)}</p>" for line in _headline(r)]]
    if r["daily"]:
        body.append(_svg_bars([(d["day"][5:], float(d["succeeded"])) for d in r["daily"]],
                               "succeeded executions per day", "#2f855a"))  # fmt: skip
        body.append(_svg_bars([(d["day"][5:], float(d["failed"])) for d in r["daily"]],
                               "failed or interrupted executions per day", "#c53030"))  # fmt: skip
    for title, headers, rows in _tables(r):
        body.append(f"<h2>{esc(title)}</h2>")
        if not rows:
            body.append("<p><em>none</em></p>")
            continue
        body.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr>")
        body += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows]
        body.append("</table>")
    for name, m in r["business"]["task_metrics"].items():
        if len(m["series"]) >= 2:
            body.append(_svg_line(m["series"], name))
    style = ("body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:"
             "collapse;margin-bottom:1em}td,th{border:1px solid #ccc;padding:2px 8px;"
             "text-align:left}svg{display:block;margin:1em 0}")  # fmt: skip
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>l3tui "
            f"report</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n")
