"""Cron fire times across DST, as Vixie cron decides them (the code the scheduler and
`l3tui schedules` share). Fixed-hour jobs fire once per date; wildcard-hour jobs follow
elapsed time."""

from __future__ import annotations

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
