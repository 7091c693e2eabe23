"""Cron fire times that are right across DST, as cronie (Vixie cron) decides them.

croniter walks wall-clock time; alone it fires `0 2 * * *` twice on a fall-back night and
moves both `0 2` and `30 2` to 03:00 on a spring-forward night. cronie's daemon (cron.c,
`find_jobs` and its wake-up cases) decides by how the job is written
(`config/cronexpr.py`):

- a fixed-time job (neither the minute nor the hour field starts with `*`: `0 2`, `30 1-5/2`,
  `0 0-23`) follows the wall clock: when its time occurs twice it fires once (the first
  time); when its time is skipped it fires once, at the instant the gap ends;
- a wildcard job (`0 *`, `*/15 *`, `* 2`) follows real elapsed time: every real instant
  whose local time matches fires, so an hourly job fires 25 times on a fall-back day and 23
  times on a spring-forward day, and nothing fires for times the clock skipped;
- a shift of 3 hours or more (a zone changing its offset, not DST) is a clock jump: every
  job fires by elapsed time, and what a gap skipped is not run (cronie's thresholds: a
  jump forward of 180 minutes, back of 182); a jump forward of under 5 minutes runs every
  job's skipped times when it ends.

One difference, deliberate: cronie runs a fixed-time job once per skipped time that
matches (`0,30 2` twice, 10 s apart, at the end of the gap); here a schedule has one fire
per instant, so it fires once (a second run at the same instant would meet the first one
still running anyway: see `overlap`).

All instants are aware datetimes; the scheduler and `l3tui schedules` share this code.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

_MARGIN = timedelta(hours=4)  # wider than any DST shift, so ambiguous windows are seen whole


def local_zone(name: str | None) -> tzinfo:
    """The named IANA zone, or the machine's."""
    if name:
        return ZoneInfo(name)
    local = datetime.now().astimezone().tzinfo
    try:
        import os

        tz_env = os.environ.get("TZ")
        if tz_env:
            return ZoneInfo(tz_env.lstrip(":"))
        link = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in link:
            return ZoneInfo(link.split("zoneinfo/", 1)[1])
    except (OSError, ValueError, KeyError):
        pass
    return local or UTC


def zone_name(zone: tzinfo) -> str:
    return getattr(zone, "key", None) or str(zone)


class CronSchedule:
    """A five-field cron expression in a timezone, with DST-correct fire instants."""

    def __init__(self, expr: str, zone: tzinfo | str | None = None) -> None:
        from croniter import croniter

        from l3tui.config.cronexpr import read_cron

        self.expr = expr
        self.zone = zone if isinstance(zone, tzinfo) else local_zone(zone)
        self.cron = read_cron(expr)  # ValueError for @reboot and unknown shortcuts
        if not croniter.is_valid(self.cron.fields):
            raise ValueError(f"invalid cron expression {expr!r}")
        self.elapsed_time = not self.cron.wall_clock
        """True: fires by real elapsed time; False: follows the wall clock."""

    def __repr__(self) -> str:
        return f"CronSchedule({self.expr!r}, {zone_name(self.zone)!r})"

    def next_after(self, instant: datetime) -> datetime:
        """First fire strictly after `instant` (aware), in the schedule's zone."""
        return next(self.fires_after(instant))

    def fires_after(self, instant: datetime) -> Iterator[datetime]:
        """Fire instants strictly after `instant`, in order, without repeats."""
        if instant.tzinfo is None:
            raise ValueError("instant must be timezone-aware")
        last: datetime | None = None
        for fire in self._all_from(instant - _MARGIN):
            if fire <= instant or (last is not None and fire <= last):
                continue
            last = fire
            yield fire.astimezone(self.zone)

    def fires_between(self, start: datetime, end: datetime) -> list[datetime]:
        """Fire instants in (start, end]."""
        out = []
        for fire in self.fires_after(start):
            if fire > end:
                break
            out.append(fire)
        return out

    def _walls(self, start: datetime) -> Iterator[datetime]:
        from croniter import croniter

        wall = start.astimezone(self.zone).replace(tzinfo=None, fold=0)
        it = croniter(self.cron.fields, wall - timedelta(minutes=1), day_or=self.cron.day_or)
        while True:
            yield it.get_next(datetime)

    def _all_from(self, start: datetime) -> Iterator[datetime]:
        """Fire instants from about `start` on, in order (the caller drops repeats). A wall
        time that occurs twice fires at its first instant, and also at its second when
        the job follows elapsed time; second passes wait in a heap until every earlier
        instant has been given."""
        later: list[datetime] = []
        for wall in self._walls(start):
            kind, first, second = self._resolve(wall)
            by_elapsed_time = self.elapsed_time
            if kind != "normal":
                by_elapsed_time = self._follows_elapsed_time(kind, self._shift(wall))
            if kind == "gap" and by_elapsed_time:
                continue  # a skipped time: nothing was there to fire
            while later and later[0] < first:
                yield heapq.heappop(later)
            yield first  # for a gap: the instant it ends (fixed-time jobs)
            if kind == "ambiguous" and by_elapsed_time:
                heapq.heappush(later, second)

    def _follows_elapsed_time(self, kind: str, shift: timedelta) -> bool:
        """cronie's wake-up cases, by the minutes its clock moved (shift + 1 forward,
        1 - shift back): under 6 it runs every job for each minute (`small`); past 180 or
        below -180 the clock jumped and it runs every job once, at the new time (`large`);
        in between (DST) it tells fixed-time jobs from wildcard ones."""
        minutes = shift // timedelta(minutes=1)
        if kind == "gap":
            if minutes + 1 <= 5:
                return False  # small: the skipped minutes are run at the gap's end, by all
            return self.elapsed_time or minutes + 1 > 180
        return self.elapsed_time or 1 - minutes < -180

    def _resolve(self, wall: datetime) -> tuple[str, datetime, datetime]:
        """('normal'|'ambiguous'|'gap', first instant, second instant) in UTC; for a gap,
        the instant it ends and the instant the wall time would have been before it."""
        early = wall.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
        late = wall.replace(tzinfo=self.zone, fold=1).astimezone(UTC)
        if early == late:
            return "normal", early, early
        if early.astimezone(self.zone).replace(tzinfo=None) == wall:
            return "ambiguous", min(early, late), max(early, late)
        return "gap", self._gap_end(min(early, late), max(early, late)), early

    def _shift(self, wall: datetime) -> timedelta:
        """How far the clock moves at the change that makes `wall` skipped or repeated."""
        before = wall.replace(tzinfo=self.zone, fold=0).utcoffset() or timedelta()
        after = wall.replace(tzinfo=self.zone, fold=1).utcoffset() or timedelta()
        return abs(after - before)

    def _gap_end(self, low: datetime, high: datetime) -> datetime:
        """The instant the clock jumped: the first instant with the post-gap offset."""
        after = high.astimezone(self.zone).utcoffset()
        while (high - low) > timedelta(seconds=1):
            mid = low + (high - low) / 2
            if mid.astimezone(self.zone).utcoffset() == after:
                high = mid
            else:
                low = mid
        return high.replace(microsecond=0)


def describe(instant: datetime) -> str:
    """`2026-10-25 02:00 +0200 (00:00 UTC)`."""
    utc = instant.astimezone(UTC)
    return f"{instant:%Y-%m-%d %H:%M %z} ({utc:%Y-%m-%d %H:%M} UTC)"
