"""`l3tui validate`: load the four config files; a summary when valid, every error when not."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime

from l3tui import textdir
from l3tui.config import load_config, resolve_config_dir
from l3tui.config.errors import ConfigError, ConfigIssue
from l3tui.config.loader import FILE_NAMES, Config
from l3tui.errors import L3Error, UsageError


def run(args: argparse.Namespace) -> int:
    if args.explain:
        from l3tui.config.explain import explain

        lines = explain(args.explain)
        if not lines:
            raise UsageError(f"no config key named {args.explain!r}")
        print("\n".join(lines))
        return 0
    directory = resolve_config_dir(args.config)
    if not directory.is_dir():
        message = (
            f"config directory {directory} not found ({_config_source(args.config)}); "
            "give one with --config DIR"
        )
        if args.json:
            issue = _issue(ConfigIssue(directory, 1, 1, "", message))
            print(_dumps({"valid": False, "config": str(directory), "errors": [issue],
                          "warnings": []}))  # fmt: skip
        raise L3Error(message)
    try:
        config = load_config(directory)
    except ConfigError as exc:
        if args.json:  # the same issues as the lines on stderr, for programs
            print(_dumps({
                "valid": False,
                "config": str(directory),
                "errors": [_issue(i) for i in exc.issues if i.severity == "error"],
                "warnings": [_issue(i) for i in exc.issues if i.severity == "warning"],
            }))  # fmt: skip
        raise
    for warning in config.warnings:
        print(warning, file=sys.stderr)
    if args.json:
        print(_dumps(summary(config)))
    else:
        bidi = textdir.resolve(args.bidi) and sys.stdout.isatty()
        print(render(config, bidi))
    return 0


def _dumps(data: object) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2, default=str)


def _issue(issue: ConfigIssue) -> dict[str, object]:
    return {"file": str(issue.file), "line": issue.line, "col": issue.col, "key": issue.key,
            "message": issue.message, "severity": issue.severity}  # fmt: skip


def _config_source(cli_value: str | None) -> str:
    """Which rule of the resolution order chose the config directory, for the message."""
    if cli_value:
        return "from --config"
    if os.environ.get("L3TUI_CONFIG"):
        return "from $L3TUI_CONFIG"
    return "no ./config here, so $XDG_CONFIG_HOME/l3tui"


def recurring(
    config: Config, count: int = 3, now: datetime | None = None
) -> list[dict[str, object]]:
    """Recurring tasks (and cron triggers) with their next `count` fire times."""
    from l3tui.engine.scheduling.cron import CronSchedule, zone_name

    now = now or datetime.now(UTC)
    sched = config.scheduling
    jobs: list[tuple[str, str, str, str | None, bool]] = [
        (j.id, j.workflow, j.cron, j.timezone or sched.timezone, j.enabled)
        for j in sched.recurring_tasks
    ]
    for wf_id, wf in {**config.workflows.workflows, **config.workflows.templates}.items():
        for trigger in wf.triggers:
            if trigger.cron:
                jobs.append(
                    (f"{wf_id}@cron", wf_id, trigger.cron, trigger.timezone or sched.timezone, True)
                )
    out = []
    for job_id, workflow, cron, tz, enabled in jobs:
        schedule = CronSchedule(cron, tz)
        fires = []
        it = schedule.fires_after(now)
        for _ in range(count):
            fires.append(next(it))
        out.append(
            {
                "id": job_id,
                "workflow": workflow,
                "cron": cron,
                "timezone": zone_name(schedule.zone),
                "enabled": enabled,
                "next": fires,
            }
        )
    return out


def summary(config: Config) -> dict[str, object]:
    wf = config.workflows
    return {
        "valid": True,
        "config": str(config.directory),
        "files": {FILE_NAMES[k]: s.present for k, s in config.sources.items()},
        "workflows": {
            k: {"name": w.name, "tasks": len(w.tasks), "type": w.type}
            for k, w in wf.workflows.items()
        },
        "templates": {
            k: {
                "name": t.name,
                "tasks": len(t.tasks),
                "params": {
                    n: {"required": p.is_required, "type": p.type, "default": p.default}
                    for n, p in t.params.items()
                },
            }
            for k, t in wf.templates.items()
        },
        "recurring": [
            {**r, "next": [f.isoformat() for f in r["next"]]}  # type: ignore[attr-defined]
            for r in recurring(config)
        ],
        "dashboards": {
            k: {"name": d.name, "widgets": len(d.widgets)}
            for k, d in config.dashboard.dashboards.items()
        },
        "alert_rules": len(config.dashboard.alerts),
        "actions": len(config.actions.actions),
        "warnings": [str(w) for w in config.warnings],
    }


def _tasks(count: int) -> str:
    return f"{count:>2} task" + ("s" if count != 1 else " ")


def render(config: Config, bidi: bool) -> str:
    def show(text: str) -> str:
        return textdir.display(text, bidi)

    wf = config.workflows
    lines = [f"config: {config.directory}"]
    for kind, source in config.sources.items():
        state = "ok" if source.present else "not present, using defaults"
        lines.append(f"  {FILE_NAMES[kind]:<20} {state}")
    width = max([len(k) for k in [*wf.workflows, *wf.templates]] + [8])
    lines.append(f"\nworkflows ({len(wf.workflows)})")
    for key, w in wf.workflows.items():
        kind = f"[{w.type}]" if w.type else ""
        lines.append(f"  {key:<{width}}  {_tasks(len(w.tasks))}  {kind:<24} {show(w.name)}")
    if wf.templates:
        lines.append(f"\ntemplates ({len(wf.templates)})")
        for key, t in wf.templates.items():
            params = ", ".join(f"{n}{'*' if p.is_required else ''}" for n, p in t.params.items())
            lines.append(
                f"  {key:<{width}}  {_tasks(len(t.tasks))}  params: {params or '-'}"
                f"   {show(t.name)}"
            )
    jobs = recurring(config)
    if jobs:
        lines.append(f"\nrecurring tasks ({len(jobs)}), next three fire times")
        for job in jobs:
            state = "" if job["enabled"] else " (disabled)"
            fires = ", ".join(f"{f:%a %Y-%m-%d %H:%M %z}" for f in job["next"])  # type: ignore[attr-defined]
            lines.append(
                f"  {job['id']:<{width}}  {job['cron']:<12} {job['timezone']:<16} {fires}{state}"
            )
    dashboards = config.dashboard.dashboards
    if dashboards:
        lines.append(f"\ndashboards ({len(dashboards)})")
        for key, d in dashboards.items():
            lines.append(f"  {key:<{width}}  {len(d.widgets):>2} widgets  {show(d.name)}")
    lines.append(
        f"\nactions: {len(config.actions.actions)} bound; "
        f"alert rules: {len(config.dashboard.alerts)}"
    )
    lines.append("OK: configuration is valid")
    return "\n".join(lines)
