"""What tasks declared against what they used: right-sizing (the seed's `optimizeAllocation`)
from the measured peaks of a task's last runs, and utilisation efficiency (the share of the
CPU-seconds and MB-seconds allocated to tasks that they used).

Pure arithmetic on figures it is given (the store's history, or finished tasks in memory):
it reads nothing and decides nothing about admission.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MIB = 1024 * 1024
MIN_RUNS = 3
"""Fewer measured runs than this give no advice: one slow run is not a pattern."""
HEADROOM = 1.25
"""Suggested needs are the p95 peak plus this much: room for the next run's variation."""
UNDER_TOLERANCE = 1.10
"""A p95 peak this far over what was declared counts as under-declared (noise below)."""
OVER_FACTOR = 1.5
"""Declared at least this many times the suggestion (and by a real amount) is over."""
OVER_CPU = 0.5
OVER_MEMORY_MB = 256
NOTABLE_CPU = 0.5
NOTABLE_MEMORY_MB = 256
"""An undeclared task using this much is worth declaring (admission cannot see it)."""


@dataclass(frozen=True, slots=True)
class MeasuredRun:
    """One run of a task (all its attempts), as the store has it."""

    execution_id: str
    finished_at: float
    duration_s: float
    peak_cpu_pct: float
    peak_rss: int
    cpu_s: float | None = None


@dataclass(frozen=True, slots=True)
class Sizing:
    """Right-sizing advice for one task, with the evidence it rests on."""

    workflow_id: str
    task_id: str
    verdict: str
    """under, over, undeclared, fits, or too_few (no advice: not enough measured runs)."""
    runs: int
    declared_cpu: float
    declared_memory_mb: int
    p95_cpu: float = 0.0
    """Cores (1.0 = one core busy) at the p95 of the runs' peaks."""
    max_cpu: float = 0.0
    p95_rss_mb: float = 0.0
    max_rss_mb: float = 0.0
    p95_duration_s: float = 0.0
    suggested_cpu: float = 0.0
    suggested_memory_mb: int = 0
    summary: str = ""
    evidence: tuple[str, ...] = ()

    @property
    def actionable(self) -> bool:
        return self.verdict in ("under", "over", "undeclared")

    def block(self) -> str:
        """The suggested `resources:` block, flow style, as it goes in l3-workflows.yml."""
        parts = []
        if self.suggested_cpu:
            parts.append(f"cpu: {self.suggested_cpu:g}")
        if self.suggested_memory_mb:
            parts.append(f"memory_mb: {self.suggested_memory_mb}")
        return "resources: {" + ", ".join(parts) + "}"


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile (what `p95` means everywhere in l3tui's reports)."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


def _round_up(value: float, step: float) -> float:
    return max(step, math.ceil(value / step - 1e-9) * step)


def size_task(workflow_id: str, task_id: str, declared_cpu: float, declared_memory_mb: int,
              runs: Sequence[MeasuredRun], min_runs: int = MIN_RUNS) -> Sizing | None:  # fmt: skip
    """Advice for one task from its recent runs (newest first); None when none of them was
    ever measured (an in-process action: nothing to size)."""
    measured = [r for r in runs if r.peak_rss > 0 or r.peak_cpu_pct > 0 or (r.cpu_s or 0) > 0]
    if not measured:
        return None
    n = len(measured)
    if n < min_runs:
        return Sizing(workflow_id, task_id, "too_few", n, declared_cpu, declared_memory_mb,
                      summary=f"no advice yet: {n} measured run(s), it needs {min_runs}")
    cpus = [r.peak_cpu_pct / 100 for r in measured]
    # A run shorter than a sample, of a task smaller than l3tui itself, has no RSS figure
    # (see ProcessResult.max_rss): memory advice rests on the runs that have one.
    rss = [r.peak_rss / MIB for r in measured if r.peak_rss > 0]
    p95_cpu, p95_mb = quantile(cpus, 0.95), quantile(rss, 0.95)
    fit_cpu = _round_up(p95_cpu * HEADROOM, 0.25)
    fit_mb = int(_round_up(p95_mb * HEADROOM, 64))
    said: list[str] = []
    cpu_under = declared_cpu > 0 and p95_cpu > declared_cpu * UNDER_TOLERANCE
    mem_under = declared_memory_mb > 0 and p95_mb > declared_memory_mb * UNDER_TOLERANCE
    cpu_over = (declared_cpu >= fit_cpu * OVER_FACTOR
                and declared_cpu - fit_cpu >= OVER_CPU)  # fmt: skip
    mem_over = (len(rss) >= min_runs and declared_memory_mb >= fit_mb * OVER_FACTOR
                and declared_memory_mb - fit_mb >= OVER_MEMORY_MB)  # fmt: skip
    undeclared = (not declared_cpu and not declared_memory_mb
                  and (p95_cpu >= NOTABLE_CPU or p95_mb >= NOTABLE_MEMORY_MB))  # fmt: skip
    if cpu_under:
        said.append(f"peaks at {p95_cpu:.2f} cores (p95) but declares cpu {declared_cpu:g}")
    if mem_under:
        said.append(f"peaks at {p95_mb:.0f} MB (p95) but declares memory_mb "
                    f"{declared_memory_mb}")  # fmt: skip
    if cpu_over:
        said.append(f"declares cpu {declared_cpu:g} but peaks at {p95_cpu:.2f} cores (p95)")
    if mem_over:
        said.append(f"declares memory_mb {declared_memory_mb} but peaks at {p95_mb:.0f} MB "
                    "(p95)")  # fmt: skip
    if cpu_under or mem_under:
        verdict = "under"
        lead = "under-declared: admission lets the machine overcommit"
    elif cpu_over or mem_over:
        verdict = "over"
        lead = "over-declared: it blocks other tasks for capacity it does not use"
    elif undeclared:
        verdict = "undeclared"
        lead = "declares no resources, so admission cannot account for it"
        said.append(f"peaks at {p95_cpu:.2f} cores and {p95_mb:.0f} MB (p95)")
    else:
        verdict, lead = "fits", "what it declares fits what it uses"
    suggested_cpu = fit_cpu if (cpu_under or cpu_over or undeclared) else declared_cpu
    suggested_mb = (fit_mb if (mem_under or mem_over or (undeclared and rss))
                    else declared_memory_mb)  # fmt: skip
    durations = [r.duration_s for r in measured]
    newest, oldest = measured[0].finished_at, measured[-1].finished_at
    cpu_said = f"declared {declared_cpu:g}" if declared_cpu else "none declared"
    mem_said = f"declared {declared_memory_mb} MB" if declared_memory_mb else "none declared"
    evidence = (
        f"{n} measured run(s) from {_day(oldest)} to {_day(newest)}",
        f"CPU peak p95 {p95_cpu:.2f} cores (max {max(cpus):.2f}); {cpu_said}",
        f"RSS peak p95 {p95_mb:.0f} MB (max {max(rss, default=0):.0f} MB) over {len(rss)} "
        f"run(s) with a reading; {mem_said}",
        f"duration p95 {quantile(durations, 0.95):.1f} s",
    )
    summary = lead + (": " + "; ".join(said) if said else "")
    return Sizing(workflow_id, task_id, verdict, n, declared_cpu, declared_memory_mb,
                  p95_cpu, max(cpus), p95_mb, max(rss, default=0.0), quantile(durations, 0.95),
                  suggested_cpu, suggested_mb, summary, evidence)  # fmt: skip


def _day(at: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at))


ORDER = {"under": 0, "over": 1, "undeclared": 2, "too_few": 3, "fits": 4}


def rank(sizings: Iterable[Sizing]) -> list[Sizing]:
    """Under-declared first (they risk the machine), then over-declared (they waste it)."""
    return sorted(sizings, key=lambda s: (ORDER.get(s.verdict, 9), s.workflow_id, s.task_id))


# ------------------------------------------------------------------ efficiency


@dataclass(frozen=True, slots=True)
class Efficiency:
    """Used against allocated, summed over tasks that declared the resource. A share over
    100 % means tasks used more than they declared (under-declared)."""

    cpu_allocated_s: float = 0.0
    cpu_used_s: float = 0.0
    memory_allocated_mb_s: float = 0.0
    memory_used_mb_s: float = 0.0
    tasks: int = 0

    @property
    def cpu_pct(self) -> float | None:
        return 100.0 * self.cpu_used_s / self.cpu_allocated_s if self.cpu_allocated_s else None

    @property
    def memory_pct(self) -> float | None:
        if not self.memory_allocated_mb_s:
            return None
        return 100.0 * self.memory_used_mb_s / self.memory_allocated_mb_s

    def __add__(self, other: Efficiency) -> Efficiency:
        return Efficiency(self.cpu_allocated_s + other.cpu_allocated_s,
                          self.cpu_used_s + other.cpu_used_s,
                          self.memory_allocated_mb_s + other.memory_allocated_mb_s,
                          self.memory_used_mb_s + other.memory_used_mb_s,
                          self.tasks + other.tasks)  # fmt: skip

    def as_dict(self) -> dict[str, float | int | None]:
        return {"cpu_pct": _r(self.cpu_pct), "memory_pct": _r(self.memory_pct),
                "cpu_allocated_s": round(self.cpu_allocated_s, 1),
                "cpu_used_s": round(self.cpu_used_s, 1),
                "memory_allocated_mb_s": round(self.memory_allocated_mb_s, 1),
                "memory_used_mb_s": round(self.memory_used_mb_s, 1), "tasks": self.tasks}


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def task_efficiency(declared_cpu: float, declared_memory_mb: int, duration_s: float,
                    cpu_s: float | None, avg_rss: int | None) -> Efficiency:  # fmt: skip
    """One task run: allocated = declared x running time; used = CPU seconds measured and
    average RSS x running time. A task that declared nothing allocates nothing."""
    if duration_s <= 0 or not (declared_cpu or declared_memory_mb):
        return Efficiency()
    return Efficiency(
        declared_cpu * duration_s, (cpu_s or 0.0) if declared_cpu else 0.0,
        declared_memory_mb * duration_s,
        (avg_rss or 0) / MIB * duration_s if declared_memory_mb else 0.0, 1,
    )  # fmt: skip


def total(parts: Iterable[Efficiency]) -> Efficiency:
    out = Efficiency()
    for part in parts:
        out = out + part
    return out
