"""Cron fire times across DST, as Vixie cron decides them (the code the scheduler and
`l3tui schedules` share). Fixed-hour jobs fire once per date; wildcard-hour jobs follow
elapsed time."""

from __future__ import annotations

import functools
import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from l3tui.engine.scheduling.cron import CronSchedule, describe

BERLIN = ZoneInfo("Europe/Berlin")
RIYADH = ZoneInfo("Asia/Riyadh")
FALL_BACK = date(2026, 10, 25)
SPRING_FORWARD = date(2027, 3, 28)


def fires_on(expr: str, zone: ZoneInfo, day: date) -> list[datetime]:
    """Fire instants whose local date is `day`."""
    schedule = CronSchedule(expr, zone)
    start = datetime(day.year, day.month, day.day, tzinfo=zone) - timedelta(days=1)
    return [f for f in schedule.fires_between(start, start + timedelta(days=3)) if f.date() == day]


def labels(fires: list[datetime]) -> list[str]:
    return [f"{f:%H:%M%z}" for f in fires]


def test_croniter_alone_fires_a_fixed_time_twice_on_fall_back():
    """Why CronSchedule exists: croniter walks wall time and repeats the ambiguous 02:00."""
    it = croniter("0 2 * * *", datetime(2026, 10, 24, 12, tzinfo=BERLIN))
    day = [it.get_next(datetime) for _ in range(3)]
    on_the_date = [d for d in day if d.date() == FALL_BACK]
    assert len(on_the_date) == 2


def test_cron_fires_once_on_dst_fall_back_at_the_first_0200():
    fires = fires_on("0 2 * * *", BERLIN, FALL_BACK)
    assert labels(fires) == ["02:00+0200"]
    assert fires[0].astimezone(UTC) == datetime(2026, 10, 25, 0, 0, tzinfo=UTC)


def test_half_past_two_fires_once_on_fall_back():
    assert labels(fires_on("30 2 * * *", BERLIN, FALL_BACK)) == ["02:30+0200"]


def test_hourly_job_fires_25_times_on_fall_back_day():
    fires = fires_on("0 * * * *", BERLIN, FALL_BACK)
    assert len(fires) == 25
    assert "02:00+0200" in labels(fires) and "02:00+0100" in labels(fires)
    utc = [f.astimezone(UTC) for f in fires]  # same-zone subtraction would use wall time
    gaps = {b - a for a, b in itertools.pairwise(utc)}
    assert gaps == {timedelta(hours=1)}  # every real hour, none twice


def test_fixed_time_in_the_spring_forward_gap_fires_once_at_the_first_valid_instant():
    for expr in ("0 2 * * *", "30 2 * * *"):
        fires = fires_on(expr, BERLIN, SPRING_FORWARD)
        assert labels(fires) == ["03:00+0200"], expr
        assert fires[0].astimezone(UTC) == datetime(2027, 3, 28, 1, 0, tzinfo=UTC)


def test_hourly_job_fires_23_times_on_spring_forward_day():
    fires = fires_on("0 * * * *", BERLIN, SPRING_FORWARD)
    assert len(fires) == 23
    assert "02:00+0100" not in labels(fires) and "02:00+0200" not in labels(fires)


def test_days_around_the_changes_are_ordinary():
    for day in (FALL_BACK - timedelta(days=1), FALL_BACK + timedelta(days=1),
                SPRING_FORWARD - timedelta(days=1), SPRING_FORWARD + timedelta(days=1)):
        assert len(fires_on("0 * * * *", BERLIN, day)) == 24
        assert len(fires_on("0 2 * * *", BERLIN, day)) == 1


def test_riyadh_has_no_dst_and_fires_at_local_0200():
    schedule = CronSchedule("0 2 * * *", RIYADH)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    fires = schedule.fires_between(start, start + timedelta(days=365))
    assert len(fires) == 365
    assert {f"{f:%H:%M%z}" for f in fires} == {"02:00+0300"}
    assert fires[0].astimezone(UTC).hour == 23  # the evening before, in UTC


def test_weekly_fixed_job_on_a_fall_back_sunday_fires_once():
    fires = fires_on("30 2 * * 0", BERLIN, FALL_BACK)
    assert labels(fires) == ["02:30+0200"]


def test_next_after_is_strict_and_needs_an_aware_instant():
    schedule = CronSchedule("0 2 * * *", BERLIN)
    at = datetime(2026, 10, 25, 2, 0, tzinfo=BERLIN)
    assert schedule.next_after(at) == datetime(2026, 10, 26, 2, 0, tzinfo=BERLIN)
    with pytest.raises(ValueError, match="timezone-aware"):
        schedule.next_after(datetime(2026, 10, 25, 2, 0))


def test_invalid_expression_is_refused():
    with pytest.raises(ValueError, match="invalid cron"):
        CronSchedule("61 * * * *", BERLIN)


def test_describe_shows_local_offset_and_utc():
    at = datetime(2026, 10, 25, 2, 0, tzinfo=BERLIN)
    assert describe(at) == "2026-10-25 02:00 +0200 (2026-10-25 00:00 UTC)"


# ---------------------------------------------------------------- cron as cronie reads it


def test_shortcuts_are_the_five_fields_cronie_sets_for_them():
    start = datetime(2026, 1, 1, 12, tzinfo=UTC)
    for shortcut, fields in {
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
        "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
        "@hourly": "0 * * * *",
    }.items():  # fmt: skip
        end = start + timedelta(days=3 if shortcut == "@hourly" else 400)
        ours = CronSchedule(shortcut, BERLIN).fires_between(start, end)
        assert ours == CronSchedule(fields, BERLIN).fires_between(start, end), shortcut
        assert ours, shortcut
    assert CronSchedule("@hourly", BERLIN).elapsed_time
    assert not CronSchedule("@daily", BERLIN).elapsed_time


def test_reboot_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="@reboot is not supported: l3tui fires schedules only"):
        CronSchedule("@reboot", BERLIN)
    with pytest.raises(ValueError, match="unknown cron shortcut '@fortnightly'"):
        CronSchedule("@fortnightly", BERLIN)


def test_day_of_month_and_weekday_follow_crons_rule():
    """`0 16 */2 * sat`: a field starting with `*` makes cron require both (odd days that
    are Saturdays); croniter's default, either, fired about four times as often."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    fires = CronSchedule("0 16 */2 * sat", "UTC").fires_between(start, start + timedelta(days=90))
    assert fires and all(f.weekday() == 5 and f.day % 2 == 1 for f in fires)
    assert [f"{f:%m-%d}" for f in fires][:3] == ["01-03", "01-17", "01-31"]
    either = CronSchedule("0 16 1,15 * sat", "UTC").fires_between(start, start + timedelta(days=31))
    assert [f"{f:%d}" for f in either] == ["01", "03", "10", "15", "17", "24", "31"]


def test_wall_clock_or_elapsed_time_is_decided_as_cronie_does():
    """New York falls back at 02:00 to 01:00: `0 1-5/2` and `0 1,3,5` are the same job
    (a fixed-time one: 01:00 fires once); a minute or hour field starting with `*` makes a
    wildcard job, which follows elapsed time (`*/30 1` fires in both passes of 01:xx)."""
    new_york, day = ZoneInfo("America/New_York"), date(2026, 11, 1)
    for expr in ("0 1-5/2 * * *", "0 1,3,5 * * *", "0 1-6/2 * * *"):
        assert labels(fires_on(expr, new_york, day))[:2] == ["01:00-0400", "03:00-0500"], expr
    assert labels(fires_on("*/30 1 * * *", new_york, day)) == [
        "01:00-0400", "01:30-0400", "01:00-0500", "01:30-0500"
    ]
    assert len(fires_on("0 0-23 * * *", new_york, day)) == 24  # wall clock: 01:00 once
    assert len(fires_on("0 */1 * * *", new_york, day)) == 25  # elapsed time


# An independent model of cronie (src/cron.c and src/entry.c), written from its source for
# these tests: its own field parser (no croniter), its own DOM_STAR/DOW_STAR rule, and the
# daemon's minute loop with its four wake-up cases, stepped through real minutes with
# zoneinfo. Fires are compared as sets of instants (cronie runs a fixed-time job once per
# skipped time that matches, all at the end of the gap; l3tui fires once per instant).

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NAMES = {**{m: i for i, m in enumerate(_MONTHS, 1)}, **{d: i for i, d in enumerate(_DAYS)}}
_SHORTCUTS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
              "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
              "@hourly": "0 * * * *"}  # fmt: skip
_EPOCH = datetime(1970, 1, 1)


def _bits(text: str, low: int, high: int) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        span, _, step = part.partition("/")
        if span == "*":
            first, last = low, high
        else:
            ends = [int(_NAMES.get(x.lower(), x)) for x in span.split("-")]
            first, last = ends[0], ends[-1]
        out.update(range(first, last + 1, int(step or 1)))
    return frozenset(out)


class _CronieEntry:
    def __init__(self, expr: str) -> None:
        fields = _SHORTCUTS.get(expr, expr).split()
        self.minute, self.hour = _bits(fields[0], 0, 59), _bits(fields[1], 0, 23)
        self.dom, self.month = _bits(fields[2], 1, 31), _bits(fields[3], 1, 12)
        dow = _bits(fields[4], 0, 7)
        self.dow = dow | {0, 7} if dow & {0, 7} else dow
        self.wild = fields[0][0] == "*" or fields[1][0] == "*"  # MIN_STAR | HR_STAR
        self.both_days = fields[2][0] == "*" or fields[4][0] == "*"  # DOM_STAR | DOW_STAR

    def matches(self, vtime: int) -> bool:
        minute, hour, day, month, weekday = _wall_fields(vtime)
        dow, dom = weekday in self.dow, day in self.dom
        days = (dow and dom) if self.both_days else (dow or dom)
        return minute in self.minute and hour in self.hour and month in self.month and days


@functools.cache
def _wall_fields(vtime: int) -> tuple[int, int, int, int, int]:
    """(minute, hour, day, month, weekday 0=Sunday) of a wall-clock minute number."""
    wall = _EPOCH + timedelta(minutes=vtime)
    return wall.minute, wall.hour, wall.day, wall.month, wall.isoweekday() % 7


@functools.cache
def _clocks(zone: ZoneInfo, start: datetime, end: datetime) -> list[tuple[datetime, int]]:
    """Each real minute in (start, end] with cronie's clockTime then: minutes since the
    epoch of the local wall clock."""
    out, now = [], start
    while now < end:
        now += timedelta(minutes=1)
        local = now.astimezone(zone).replace(tzinfo=None)
        out.append((now, (local - _EPOCH) // timedelta(minutes=1)))
    return out


def cronie_fires(expr: str, zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """Instants in (start, end] at which cronie, running in `zone`, starts the job."""
    entry, fires = _CronieEntry(expr), set()
    local = start.astimezone(zone).replace(tzinfo=None)
    virtual = running = (local - _EPOCH) // timedelta(minutes=1)

    def due(vtime: int, wild: bool, fixed: bool) -> bool:  # find_jobs for one entry
        return entry.matches(vtime) and (wild if entry.wild else fixed)

    for now, running in _clocks(zone, start, end):
        diff = running - virtual
        starts = False
        if diff == 1:
            virtual = running
            starts = due(virtual, True, True)
        elif diff > 180 or diff < -180:  # the clock jumped: everything, at the new time
            virtual = running
            starts = due(running, True, True)
        elif diff > 5:  # DST began: wildcard jobs now, fixed-time jobs for each missed minute
            starts = due(running, True, False)
            while virtual < running:
                virtual += 1
                starts = due(virtual, False, True) or starts
        elif diff > 0:  # woke up late: every job for each missed minute
            while virtual < running:
                virtual += 1
                starts = due(virtual, True, True) or starts
        else:  # DST ended: wildcard jobs only, until the clock passes where it was
            starts = due(running, True, False)
        if starts:
            fires.add(now)
    return sorted(fires)


def _transitions(zone: ZoneInfo, year: int) -> list[datetime]:
    """Instants (to the hour) just after each change of the zone's UTC offset in `year`."""
    out, at = [], datetime(year, 1, 1, tzinfo=UTC)
    offset = at.astimezone(zone).utcoffset()
    while at.year == year:
        at += timedelta(hours=1)
        if at.astimezone(zone).utcoffset() != offset:
            offset = at.astimezone(zone).utcoffset()
            out.append(at)
    return out


DST_ZONES = [
    ("Europe/Berlin", 2026), ("America/New_York", 2026), ("Australia/Lord_Howe", 2026),
    ("America/Santiago", 2026), ("America/Havana", 2026), ("Pacific/Chatham", 2026),
    ("Pacific/Apia", 2011),  # 2011-12-30 never happened there: a clock jump of a day
    ("Antarctica/Casey", 2018),  # 3 h forward is a clock jump to cronie, 3 h back is not
]  # fmt: skip
WINDOWS = [
    (name, at - timedelta(hours=30), at + timedelta(hours=30))
    for name, year in DST_ZONES
    for at in _transitions(ZoneInfo(name), year)
]

HANDWRITTEN = [
    # the seed's and the bundled config's schedules
    "0 2 * * *", "0 3 * * 0", "0 * * * *", "30 3 * * *", "0 4 * * 6",
    # fixed-time jobs inside, at the edges of, and beside the changes
    "30 2 * * *", "0 1 * * *", "30 1 * * *", "59 1 * * *", "0 3 * * *", "45 2 * * *",
    "0,30 2 * * *", "15,45 1-3 * * *", "0 1-5/2 * * *", "0 1,3,5 * * *", "0 0-23 * * *",
    "0 0 * * *", "30 23 * * *", "0 23 * * 6", "0 0 * * 0",
    # wildcard jobs
    "*/15 * * * *", "* 2 * * *", "*/30 2 * * *", "0 */2 * * *", "*/20 1 * * *",
    "0 */1 * * *", "*/45 0-3 * * *",
    # day of month against weekday
    "0 16 */2 * sat", "0 2 1,15 * sun", "30 1 */2 * 0", "0 0 4-6 * *", "0 2 * * 7",
    # shortcuts
    "@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly",
]  # fmt: skip


def _random_expressions(count: int, seed: int = 11) -> list[str]:
    import random

    pick = random.Random(seed).choice
    minutes = ["0", "30", "*/15", "*/20", "5,35", "0-50/25", "45", "*/30", "59", "1-4"]
    hours = ["*", "2", "1-5/2", "1,3,5", "*/2", "0-23", "2-3", "1", "0", "23", "*/6", "0-3"]
    doms = ["*", "*/2", "1,15", "24-31", "1-7", "*/3", "5", "2-8/2"]
    months = ["*", "3,4,9,10", "*/2", "1-6", "apr", "oct-dec"]
    dows = ["*", "sat", "0", "7", "1-5", "*/2", "sun,wed", "6", "5-7"]
    return [
        f"{pick(minutes)} {pick(hours)} {pick(doms)} {pick(months)} {pick(dows)}"
        for _ in range(count)
    ]


def _check_against_cronie(expressions: list[str]) -> int:
    checked = 0
    for name, start, end in WINDOWS:
        zone = ZoneInfo(name)
        for expr in expressions:
            # in UTC: an aware time in a repeated hour never equals one of another zone
            ours = [f.astimezone(UTC) for f in CronSchedule(expr, zone).fires_between(start, end)]
            assert ours == cronie_fires(expr, zone, start, end), (expr, name, start)
            checked += 1
    return checked


def test_the_cronie_model_reproduces_what_crons_source_says():
    """The model is checked on the cases cron.c's comments spell out, so the comparisons
    below compare with cronie and not with a second copy of our own mistakes."""
    berlin_fall = datetime(2026, 10, 24, 12, tzinfo=UTC)
    fires = cronie_fires("0 2 * * *", BERLIN, berlin_fall, berlin_fall + timedelta(days=1))
    assert labels([f.astimezone(BERLIN) for f in fires]) == ["02:00+0200"]
    hourly = cronie_fires("0 * * * *", BERLIN, berlin_fall, berlin_fall + timedelta(days=1))
    assert len(hourly) == 24 and len({f.astimezone(BERLIN).hour for f in hourly}) == 23
    spring = datetime(2027, 3, 27, 12, tzinfo=UTC)
    fires = cronie_fires("30 2 * * *", BERLIN, spring, spring + timedelta(days=1))
    assert labels([f.astimezone(BERLIN) for f in fires]) == ["03:00+0200"]
    assert cronie_fires("* 2 * * *", BERLIN, spring, spring + timedelta(days=1)) == []
    start = datetime(2026, 1, 1, tzinfo=UTC)
    days = cronie_fires("0 16 */2 * sat", ZoneInfo("UTC"), start, start + timedelta(days=31))
    assert [f.day for f in days] == [3, 17, 31]


def test_dst_fire_times_match_cronie_for_handwritten_expressions():
    assert len(WINDOWS) == 17  # two changes a year in each zone, three in Apia's 2011
    assert _check_against_cronie(HANDWRITTEN) == 17 * len(HANDWRITTEN)


@pytest.mark.slow
def test_dst_fire_times_match_cronie_for_random_expressions():
    assert _check_against_cronie(_random_expressions(60)) == 17 * 60
