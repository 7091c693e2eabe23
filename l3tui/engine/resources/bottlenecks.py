"""Bottleneck findings from resource samples and queue waits, and upgrade suggestions from
their history. Every finding and suggestion carries the evidence it rests on; with no
evidence there is no suggestion.

Pure bookkeeping on numbers it is given: it never samples, never touches the bus.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from l3tui.config.schema import Scheduling

SUSTAIN_S = 30.0
"""CPU or memory must stay over its limit this long to be a bottleneck, not a spike."""
DISK_FULL_PCT = 90.0
SWAP_RATE = 256 * 1024
"""Bytes/s swapped in or out that count as swap activity."""
MIN_EVIDENCE_WAIT_S = 60.0
"""Waits shorter than this in a day do not justify an upgrade suggestion."""
DAY_S = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Finding:
    """A typed observation with the numbers behind it."""

    kind: str
    """cpu_sustained, memory_sustained, disk_nearly_full, swap_activity, long_wait,
    or upgrade_<cause> for suggestions."""
    severity: str
    summary: str
    evidence: tuple[str, ...]
    suggestion: str = ""
    since: float = 0.0


@dataclass(frozen=True, slots=True)
class Waiter:
    """What the detector needs of a long-waiting queued task."""

    name: str
    waited_s: float
    reason: str


@dataclass(slots=True)
class _Over:
    """A run of samples over a limit."""

    since: float
    total: float = 0.0
    count: int = 0
    peak: float = 0.0

    def add(self, value: float) -> None:
        self.total += value
        self.count += 1
        self.peak = max(self.peak, value)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0


class BottleneckDetector:
    """Turns samples into raised and cleared findings (by kind)."""

    def __init__(self, settings: Scheduling, sustain_s: float = SUSTAIN_S) -> None:
        self.sustain_s = sustain_s
        self.configure(settings)
        self.active: dict[str, Finding] = {}
        self._over: dict[str, _Over] = {}

    def configure(self, settings: Scheduling) -> None:
        limits = settings.resource_limits
        self.limits = {"cpu": limits.max_cpu_usage, "memory": limits.max_memory_usage}
        self.hysteresis = limits.hysteresis
        self.wait_alert_s = settings.execution.wait_alert_after / 1000

    def observe(self, at: float, sample: Mapping[str, Any],
                waiters: Sequence[Waiter]) -> tuple[list[Finding], list[Finding]]:  # fmt: skip
        """(raised, cleared) since the previous call."""
        found: dict[str, Finding] = {}
        for name, key in (("cpu", "cpu_usage"), ("memory", "memory_usage")):
            finding = self._sustained(name, at, _number(sample.get(key)))
            if finding is not None:
                found[finding.kind] = finding
        for finding in (self._disk(at, sample), self._swap(at, sample),
                        self._waits(at, waiters)):  # fmt: skip
            if finding is not None:
                found[finding.kind] = finding
        raised = [f for kind, f in found.items() if kind not in self.active]
        cleared = [f for kind, f in self.active.items() if kind not in found]
        for kind, finding in found.items():
            previous = self.active.get(kind)
            # keep the first `since`; the evidence is refreshed every sample
            self.active[kind] = finding if previous is None else _since(finding, previous.since)
        for finding in cleared:
            del self.active[finding.kind]
        return raised, cleared

    def _sustained(self, name: str, at: float, value: float | None) -> Finding | None:
        limit = self.limits[name]
        run = self._over.get(name)
        still_over = value is not None and (
            value > limit or (run is not None and value > limit - self.hysteresis)
        )
        if not still_over or value is None:
            self._over.pop(name, None)
            return None
        if run is None:
            run = self._over[name] = _Over(at)
        run.add(value)
        lasted = at - run.since
        if lasted < self.sustain_s:
            return None
        evidence = (f"{name} above {limit:g}% for {_duration(lasted)} "
                    f"(mean {run.mean:.0f}%, peak {run.peak:.0f}%)",)  # fmt: skip
        return Finding(f"{name}_sustained", "warning",
                       f"{name} has been over its limit ({limit:g}%) for {_duration(lasted)}",
                       evidence, f"non-critical tasks wait until {name} is "
                       f"<= {limit - self.hysteresis:g}%", run.since)  # fmt: skip

    def _disk(self, at: float, sample: Mapping[str, Any]) -> Finding | None:
        used = _number(sample.get("disk_usage"))
        was = "disk_nearly_full" in self.active
        if used is None or used < (DISK_FULL_PCT - 2 if was else DISK_FULL_PCT):
            return None
        free = _number(sample.get("disk_free"))
        evidence = [f"state dir filesystem {used:.0f}% full"]
        if free is not None:
            evidence.append(f"{_bytes(free)} free")
        return Finding("disk_nearly_full", "critical" if used >= 97 else "warning",
                       f"the state dir's disk is {used:.0f}% full", tuple(evidence),
                       "free space (retention, cleanup actions) or move the state dir",
                       at)  # fmt: skip

    def _swap(self, at: float, sample: Mapping[str, Any]) -> Finding | None:
        rate_in = _number(sample.get("swap_in")) or 0.0
        rate_out = _number(sample.get("swap_out")) or 0.0
        if rate_in + rate_out < SWAP_RATE:
            self._over.pop("swap", None)
            return None
        run = self._over.setdefault("swap", _Over(at))
        run.add(rate_in + rate_out)
        if at - run.since < self.sustain_s:
            return None
        evidence = (f"swapping {_bytes(rate_in)}/s in, {_bytes(rate_out)}/s out "
                    f"for {_duration(at - run.since)}",
                    f"swap {(_number(sample.get('swap_usage')) or 0):.0f}% used")  # fmt: skip
        return Finding("swap_activity", "warning", "the machine is swapping", evidence,
                       "lower max_memory_usage or run fewer memory-heavy tasks at once",
                       run.since)  # fmt: skip

    def _waits(self, at: float, waiters: Sequence[Waiter]) -> Finding | None:
        if not waiters:
            return None
        longest = waiters[0]
        count = f"{len(waiters)}+" if len(waiters) >= 1000 else str(len(waiters))
        evidence = (f"{count} task(s) queued longer than {_duration(self.wait_alert_s)}",
                    f"longest: {longest.name}, {_duration(longest.waited_s)} ({longest.reason})")
        summary = f"{count} task(s) have waited more than {_duration(self.wait_alert_s)}"
        return Finding("long_wait", "warning", summary, evidence,
                       "see the queue report for what would unblock them", at)  # fmt: skip


@dataclass(slots=True)
class _Hour:
    start: float
    waits: dict[str, float] = field(default_factory=dict)
    peak_memory_demand: float = 0.0
    peak_cpu: float = 0.0
    peak_load: float = 0.0
    peak_memory_pct: float = 0.0


class UpgradeAdvisor:
    """Accumulates, per hour over the last day, how long tasks waited and for what, and the
    peaks of demand at the time; suggests an upgrade only where the waits are real."""

    def __init__(self, settings: Scheduling) -> None:
        self.settings = settings
        self._hours: deque[_Hour] = deque(maxlen=25)
        self._last_totals: dict[str, float] = {}

    def observe(self, at: float, sample: Mapping[str, Any], wait_totals: Mapping[str, float],
                queued_memory_mb: int) -> dict[str, float]:  # fmt: skip
        """Take one sample; returns the seconds waited since the last one, by cause."""
        hour = self._hour(at)
        waited: dict[str, float] = {}
        for cause, total in wait_totals.items():
            delta = total - self._last_totals.get(cause, 0.0)
            if delta > 0:
                hour.waits[cause] = hour.waits.get(cause, 0.0) + delta
                waited[cause] = round(delta, 3)
        self._last_totals = dict(wait_totals)
        used = _number(sample.get("memory_used")) or 0.0
        hour.peak_memory_demand = max(hour.peak_memory_demand,
                                      used + queued_memory_mb * 1024 * 1024)  # fmt: skip
        hour.peak_cpu = max(hour.peak_cpu, _number(sample.get("cpu_usage")) or 0.0)
        hour.peak_load = max(hour.peak_load, _number(sample.get("load_avg")) or 0.0)
        hour.peak_memory_pct = max(hour.peak_memory_pct,
                                   _number(sample.get("memory_usage")) or 0.0)  # fmt: skip
        self._memory_total = _number(sample.get("memory_total")) or 0.0
        self._cores = _number(sample.get("cpu_count")) or 0.0
        return waited

    def restore(self, waits: Iterable[tuple[str, float, float]],
                peaks: Iterable[tuple[str, float, float]]) -> None:  # fmt: skip
        """Hours kept by the store: (cause, hour start, seconds waited) and (metric, hour
        start, peak) for cpu_usage, load_avg and memory_usage."""
        hours: dict[float, _Hour] = {h.start: h for h in self._hours}
        for cause, start, seconds in waits:
            hour = hours.setdefault(start, _Hour(start))
            hour.waits[cause] = hour.waits.get(cause, 0.0) + seconds
        for name, start, peak in peaks:
            hour = hours.setdefault(start, _Hour(start))
            if name == "cpu_usage":
                hour.peak_cpu = max(hour.peak_cpu, peak)
            elif name == "load_avg":
                hour.peak_load = max(hour.peak_load, peak)
            elif name == "memory_usage":
                hour.peak_memory_pct = max(hour.peak_memory_pct, peak)
        self._hours = deque(sorted(hours.values(), key=lambda h: h.start),
                            maxlen=self._hours.maxlen)  # fmt: skip

    def _hour(self, at: float) -> _Hour:
        start = at - at % 3600
        if not self._hours or self._hours[-1].start != start:
            self._hours.append(_Hour(start))
        return self._hours[-1]

    def suggestions(self, at: float) -> list[Finding]:
        hours = [h for h in self._hours if h.start > at - DAY_S]
        if not hours:
            return []
        waits: dict[str, float] = {}
        for hour in hours:
            for cause, seconds in hour.waits.items():
                waits[cause] = waits.get(cause, 0.0) + seconds
        demand = max(h.peak_memory_demand for h in hours)
        peak_cpu = max(h.peak_cpu for h in hours)
        peak_load = max(h.peak_load for h in hours)
        peak_memory = max(h.peak_memory_pct for h in hours)
        limits = self.settings.resource_limits
        total = getattr(self, "_memory_total", 0.0)
        cores = getattr(self, "_cores", 0.0)
        out = []
        for cause, seconds in sorted(waits.items(), key=lambda kv: -kv[1]):
            if seconds < MIN_EVIDENCE_WAIT_S:
                continue
            waited = f"tasks waited {_duration(seconds)} for {_cause_words(cause)} in the last 24 h"
            if cause == "memory":
                evidence = (waited, f"peak demand {_bytes(demand)} of {_bytes(total)}")
                out.append(Finding("upgrade_memory", "info", "more memory would cut waits",
                                   evidence, "add memory, or run fewer memory-heavy tasks "
                                   "at once", at))  # fmt: skip
            elif cause == "cpu":
                evidence = (waited, f"CPU peaked at {peak_cpu:.0f}%, load {peak_load:.1f} on "
                            f"{cores:g} cores")  # fmt: skip
                out.append(Finding("upgrade_cpu", "info", "more CPU cores would cut waits",
                                   evidence, "add cores, or move heavy tasks off-peak", at))
            elif cause.startswith("pool:"):
                pool = cause[5:]
                size = self.settings.pools.get(pool, 0)
                out.append(Finding(f"upgrade_pool_{pool}", "info",
                                   f"pool {pool} ({size} slot(s)) is a bottleneck", (waited,),
                                   f"raise pools.{pool} to {size + 1} if the resource allows",
                                   at))  # fmt: skip
            elif cause == "concurrency" and peak_cpu < limits.max_cpu_usage \
                    and peak_memory < limits.max_memory_usage:  # fmt: skip
                evidence = (waited, f"meanwhile CPU peaked at {peak_cpu:.0f}% and memory at "
                            f"{peak_memory:.0f}%")  # fmt: skip
                out.append(Finding("upgrade_concurrency", "info",
                                   "the concurrency limit holds tasks back on an idle machine",
                                   evidence, "raise resource_limits.max_concurrent_tasks "
                                   f"(now {limits.max_concurrent_tasks})", at))  # fmt: skip
        return out


def _cause_words(cause: str) -> str:
    if cause.startswith("pool:"):
        return f"pool {cause[5:]}"
    return {"concurrency": "a free slot (max_concurrent_tasks)", "cpu": "CPU"}.get(cause, cause)


def _since(finding: Finding, since: float) -> Finding:
    return Finding(finding.kind, finding.severity, finding.summary, finding.evidence,
                   finding.suggestion, since)  # fmt: skip


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _bytes(value: float) -> str:
    for unit, size in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B"
