"""`l3tui schedules [--from ISO-TIME] [--count N] [--json]`: every recurring task with its
next N fire times, computed by the scheduler's own code (`RecurringJob.schedule`), so a DST
weekend can be previewed before it happens. Reads the config and, if present, the persisted
enabled flags; starts nothing and never imports Textual.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from l3tui import textdir
from l3tui.config import load_config, resolve_config_dir, resolve_state_dir
from l3tui.engine.scheduling.cron import zone_name
from l3tui.engine.scheduling.recurring import RecurringJob, ScheduleState, jobs_from_config
from l3tui.errors import UsageError
from l3tui.store.schedules import read_schedule_states

MAX_COUNT = 1000


def run(args: argparse.Namespace) -> int:
    start = parse_from(args.from_time)
    if not 1 <= args.count <= MAX_COUNT:
        raise UsageError(f"--count must be between 1 and {MAX_COUNT}, got {args.count}")
    config = load_config(resolve_config_dir(args.config))
    for warning in config.warnings:
        print(warning, file=sys.stderr)
    states = read_schedule_states(resolve_state_dir(args.state))
    listing = [describe(job, states.get(job.id), start, args.count)
               for job in jobs_from_config(config)]  # fmt: skip
    if args.json:
        print(json.dumps({"from": start.isoformat(), "schedules": listing},
                         ensure_ascii=False, indent=2))  # fmt: skip
    else:
        bidi = textdir.resolve(args.bidi) and sys.stdout.isatty()
        print(render(listing, start, bidi))
    return 0


def parse_from(value: str | None) -> datetime:
    """`--from`: an ISO 8601 time; without an offset it is the machine's local time."""
    if not value:
        return datetime.now(UTC)
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--from expects an ISO 8601 time like 2026-10-24T12:00+02:00, "
                         f"got {value!r}") from None  # fmt: skip
    return instant if instant.tzinfo is not None else instant.astimezone()


def describe(job: RecurringJob, state: ScheduleState | None, start: datetime,
             count: int) -> dict[str, Any]:  # fmt: skip
    enabled = job.enabled if state is None or state.enabled is None else state.enabled
    fires = []
    for fire in job.schedule.fires_after(start):
        if len(fires) >= count:
            break
        fires.append({"local": fire.isoformat(), "utc": fire.astimezone(UTC).isoformat()})
    return {
        "id": job.id, "name": job.name, "workflow": job.workflow, "cron": job.cron,
        "timezone": zone_name(job.schedule.zone), "enabled": enabled,
        "catch_up": job.catch_up, "overlap": job.overlap,
        "follows": "elapsed time" if job.schedule.elapsed_time else "wall clock",
        "last_fire": datetime.fromtimestamp(state.last_fire, UTC).isoformat()
        if state is not None and state.last_fire is not None else None,
        "next": fires,
    }  # fmt: skip


def render(listing: list[dict[str, Any]], start: datetime, bidi: bool) -> str:
    if not listing:
        return "no recurring tasks (scheduling.recurring_tasks or workflow cron triggers)"
    lines = [f"recurring tasks from {start:%Y-%m-%d %H:%M %z}"]
    for job in listing:
        state = "" if job["enabled"] else "  [disabled: will not fire]"
        name = textdir.display(job["name"], bidi)
        lines.append(f"\n{job['id']}  {name}{state}")
        lines.append(f"  {job['cron']}  {job['timezone']}  -> {job['workflow']}  "
                     f"(catch_up {job['catch_up']}, overlap {job['overlap']}, "
                     f"follows the {job['follows']})")  # fmt: skip
        for fire in job["next"]:
            local = datetime.fromisoformat(fire["local"])
            utc = datetime.fromisoformat(fire["utc"])
            lines.append(f"  {local:%a %Y-%m-%d %H:%M %z}   {utc:%Y-%m-%d %H:%M} UTC")
    return "\n".join(lines)
