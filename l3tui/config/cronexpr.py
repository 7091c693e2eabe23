"""Cron expressions read as cron (cronie, Vixie cron) reads them: the `@` shortcuts, and the
two facts cron takes from how the fields are *written*, not from the times they match.

- Wall clock or elapsed time across DST: a job whose minute or hour field starts with `*`
  (`*`, `*/15`) is a "wildcard" job and follows elapsed time; any other job is a
  "fixed-time" job and follows the wall clock (cronie's MIN_STAR / HR_STAR flags).
- Day of month and weekday: when either field starts with `*`, a day must match both;
  otherwise a day matching either one will do (cronie's DOM_STAR / DOW_STAR flags).

Text rules only: the time arithmetic is in `engine/scheduling/cron.py`.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

MACROS: dict[str, str] = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}  # fmt: skip
"""The shortcuts cronie accepts, as the five fields it sets for each (entry.c)."""

REBOOT_REFUSED = (
    "@reboot is not supported: l3tui fires schedules only while a console or daemon runs, "
    "which is not at boot and may be many times per boot; start the workflow at boot with "
    "`l3tui run WORKFLOW` from a systemd unit or your own crontab's @reboot line"
)


@dataclass(frozen=True, slots=True)
class CronFields:
    """An expression as written, its five fields, and the two flags cron reads from them."""

    written: str
    fields: str
    """Five fields (a shortcut expanded)."""
    wall_clock: bool
    """True: a fixed-time job (follows the wall clock); False: follows elapsed time."""
    day_or: bool
    """True: a day matching day-of-month *or* weekday fires; False: it must match both."""


def read_cron(expr: str) -> CronFields:
    """Expand a shortcut and read the flags; raises ValueError for a shortcut cron does not
    have (or @reboot). The fields themselves are checked by whoever matches times."""
    text = expr.strip()
    if text.startswith("@"):
        word = text.lower()
        if word == "@reboot":
            raise ValueError(REBOOT_REFUSED)
        if word not in MACROS:
            raise ValueError(
                f"unknown cron shortcut {text!r} (one of: {', '.join(MACROS)}, or five fields)"
            )
        text = MACROS[word]
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(
            f"cron {expr!r} must have 5 fields (minute hour day month weekday), found "
            f"{len(fields)} (or write @hourly, @daily, @weekly, @monthly or @yearly)"
        )
    minute, hour, dom, _month, dow = fields
    return CronFields(
        written=expr,
        fields=" ".join(fields),
        wall_clock=not (minute.startswith("*") or hour.startswith("*")),
        day_or=not (dom.startswith("*") or dow.startswith("*")),
    )


@dataclass(frozen=True, slots=True)
class CronExample:
    """One DST case as `validate --explain cron` shows it; tests check every one against
    the scheduler's own fire times (local times 00:00-04:59 of `day`, and the day's count)."""

    case: str
    expr: str
    zone: str
    day: str
    early_fires: tuple[str, ...]
    fires_that_day: int


CRON_EXAMPLES: tuple[CronExample, ...] = (
    CronExample("fixed-time job, its time occurs twice (fall back): fires once, the first time",
                "30 2 * * *", "Europe/Berlin", "2026-10-25", ("02:30 +0200",), 1),
    CronExample("fixed-time job, its time is skipped (spring forward): fires when the gap ends",
                "30 2 * * *", "Europe/Berlin", "2026-03-29", ("03:00 +0200",), 1),
    CronExample("wildcard job, fall back: fires in both passes of the repeated hour",
                "0 * * * *", "Europe/Berlin", "2026-10-25",
                ("00:00 +0200", "01:00 +0200", "02:00 +0200", "02:00 +0100", "03:00 +0100",
                 "04:00 +0100"), 25),
    CronExample("wildcard job, spring forward: the skipped hour has no fire",
                "0 * * * *", "Europe/Berlin", "2026-03-29",
                ("00:00 +0100", "01:00 +0100", "03:00 +0200", "04:00 +0200"), 23),
    CronExample("a step in the hour is still a fixed-time job",
                "0 1-5/2 * * *", "America/New_York", "2026-11-01",
                ("01:00 -0400", "03:00 -0500"), 3),
    CronExample("... exactly like the same hours as a list",
                "0 1,3,5 * * *", "America/New_York", "2026-11-01",
                ("01:00 -0400", "03:00 -0500"), 3),
    CronExample("a minute field starting with * makes a wildcard job",
                "*/30 1 * * *", "America/New_York", "2026-11-01",
                ("01:00 -0400", "01:30 -0400", "01:00 -0500", "01:30 -0500"), 4),
    CronExample("a 30-minute change (Lord Howe Island), time skipped",
                "15 2 * * *", "Australia/Lord_Howe", "2026-10-04", ("02:30 +1100",), 1),
    CronExample("a 30-minute change, time occurs twice",
                "45 1 * * *", "Australia/Lord_Howe", "2026-04-05", ("01:45 +1100",), 1),
)  # fmt: skip


def explain_cron() -> list[str]:
    """What `l3tui validate --explain cron` prints after the fields' own docstrings."""
    lines = [
        "cron: when a schedule fires, as cron (cronie, Vixie cron) decides it",
        "    Five fields: minute hour day-of-month month weekday (0-7, 0 and 7 are Sunday;",
        "    names jan-dec and sun-sat), or a shortcut: @hourly (0 * * * *), @daily and",
        "    @midnight (0 0 * * *), @weekly (0 0 * * 0), @monthly (0 0 1 * *), @yearly and",
        "    @annually (0 0 1 1 *).",
        *textwrap.wrap(REBOOT_REFUSED + ".", 88, initial_indent="    ", subsequent_indent="    "),
        "    Day of month and weekday: when either field starts with *, a day must match",
        "    both (0 16 */2 * sat: Saturdays that are odd days of the month); otherwise a day",
        "    matching either will do (0 2 1,15 * sun: the 1st, the 15th and every Sunday).",
        "    Across DST, by how the minute and hour fields are written (not by the hours",
        "    they match):",
        "    - fixed-time job, neither field starts with * (30 2, 0 1-5/2, 0 0-23): follows",
        "      the wall clock. A time that occurs twice fires once, the first time; a time",
        "      the clock skips fires once, at the instant the gap ends.",
        "    - wildcard job, either field starts with * (0 *, */15 *, * 2, @hourly): follows",
        "      elapsed time. Every real instant whose local time matches fires (an hourly",
        "      job fires 25 times on a fall-back day, 23 on a spring-forward day); skipped",
        "      times do not fire.",
        "    - a jump of 3 hours forward or more than 3 back (a zone changing its offset, not",
        "      DST) is a clock jump: every job follows elapsed time; skipped times do not fire.",
        "    Examples (fire times from 00:00 to 04:59 local; `l3tui schedules --from TIME`",
        "    previews any schedule):",
    ]
    for example in CRON_EXAMPLES:
        lines.append(f"    {example.case}:")
        lines += textwrap.wrap(
            f"{example.expr:<14} {example.zone} {example.day}: "
            f"{', '.join(example.early_fires)} ({example.fires_that_day} that day)",
            88, initial_indent="      ", subsequent_indent=" " * 21,
        )  # fmt: skip
    return lines
