"""Readings of the machine: the `Sampler` protocol and its real implementation on psutil.

`sample()` blocks (it reads /proc) and is meant to run in a worker thread; it returns plain
numbers, rates computed from counter deltas since the previous call, and the CPU % and RSS
of each requested process group (a task's whole process tree). It must not touch the event
loop, the bus or any engine state.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil


@dataclass(frozen=True, slots=True)
class GroupUsage:
    """One process group: CPU % (100 = one core busy) and resident memory, summed over its
    processes at the moment of reading; `cpu_s` the CPU seconds they used since the last
    reading (a process seen for the first time counts from then)."""

    cpu_pct: float
    rss: int
    processes: int
    cpu_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Reading:
    system: dict[str, Any]
    """cpu_usage, per_core, load_avg, memory_usage, swap_usage, disk_usage, disk_iops,
    net_in, net_out, net_connections, ... (see PsutilSampler)."""
    groups: dict[int, GroupUsage] = field(default_factory=dict)


class Sampler(Protocol):
    """Where readings come from; tests inject their own to drive admission."""

    def capacity(self) -> tuple[float, int]:
        """(CPU cores, memory MB) of the machine."""

    def sample(self, groups: Collection[int]) -> Reading:
        """Read the machine now (blocking; called in a worker thread)."""


class PsutilSampler:
    """The real machine. Rates (IOPS, network, swap) come from deltas since the last call."""

    def __init__(self, disk_path: Path) -> None:
        self.disk_path = disk_path
        self._clock_ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._page_size = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._linux = sys.platform.startswith("linux") and os.path.isdir("/proc/self")
        self._last_at = 0.0
        self._last_cpu: list[Any] = []
        self._last_counters: dict[str, int | None] = {}
        self._last_ticks: dict[tuple[int, int], int] = {}

    def capacity(self) -> tuple[float, int]:
        return float(psutil.cpu_count() or 1), psutil.virtual_memory().total // (1024 * 1024)

    def sample(self, groups: Collection[int]) -> Reading:
        if not self._last_cpu:  # first call (in the worker thread): rates need a baseline
            self._last_cpu = psutil.cpu_times(percpu=True)
            self._last_counters = self._counters(psutil.swap_memory())
            self._last_at = time.monotonic()
            if groups:
                self._groups(set(groups), 1.0)
            time.sleep(0.1)
        now = time.monotonic()
        elapsed = max(now - self._last_at, 1e-3)
        self._last_at = now
        cpu = psutil.cpu_times(percpu=True)
        per_core = [_busy(a, b) for a, b in zip(self._last_cpu, cpu, strict=False)]
        total = _busy(_sum_times(self._last_cpu), _sum_times(cpu))
        self._last_cpu = cpu
        memory = psutil.virtual_memory()
        swap = psutil.swap_memory()
        try:
            disk = psutil.disk_usage(str(self.disk_path))
            disk_pct, disk_free, disk_total = disk.percent, disk.free, disk.total
        except OSError:
            disk_pct, disk_free, disk_total = None, None, None
        counters = self._counters(swap)
        last = self._last_counters
        self._last_counters = counters

        def rate(key: str) -> float | None:
            now_value, last_value = counters.get(key), last.get(key)
            if now_value is None or last_value is None:
                return None
            return max(now_value - last_value, 0) / elapsed

        load1, load5, load15 = os.getloadavg()
        system: dict[str, Any] = {
            "cpu_usage": total, "per_core": per_core, "cpu_count": len(cpu),
            "load_avg": load1, "load_avg_5": load5, "load_avg_15": load15,
            "memory_usage": memory.percent, "memory_used": memory.total - memory.available,
            "memory_total": memory.total, "memory_available": memory.available,
            "swap_usage": swap.percent, "swap_used": swap.used, "swap_total": swap.total,
            "swap_in": rate("swap_in"), "swap_out": rate("swap_out"),
            "disk_usage": disk_pct, "disk_free": disk_free, "disk_total": disk_total,
            "disk_iops": rate("disk_ops"), "disk_read_bps": rate("disk_read"),
            "disk_write_bps": rate("disk_write"),
            "net_in": rate("net_in"), "net_out": rate("net_out"),
            "net_connections": self._connections(),
        }  # fmt: skip
        usage = self._groups(set(groups), elapsed) if groups else {}
        return Reading(system, usage)

    # ------------------------------------------------------------------ parts

    def _counters(self, swap: Any) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        out["swap_in"], out["swap_out"] = swap.sin, swap.sout
        try:
            disk = psutil.disk_io_counters(perdisk=False)
        except (OSError, RuntimeError):  # no disks visible (some containers)
            disk = None
        if disk is not None:
            out["disk_ops"] = disk.read_count + disk.write_count
            out["disk_read"], out["disk_write"] = disk.read_bytes, disk.write_bytes
        net = psutil.net_io_counters(pernic=False)
        if net is not None:
            out["net_in"], out["net_out"] = net.bytes_recv, net.bytes_sent
        return out

    def _connections(self) -> int | None:
        if self._linux:
            # psutil.net_connections maps every socket to its process by walking all of
            # /proc/*/fd, and even /proc/net/tcp lists each socket: milliseconds per call.
            # sockstat has the counts (sockets in use, listening ones included).
            count = 0
            found = False
            for name in ("sockstat", "sockstat6"):
                try:
                    with open(f"/proc/net/{name}", "rb") as fh:
                        text = fh.read()
                except OSError:
                    continue
                for line in text.splitlines():
                    label, _, rest = line.partition(b":")
                    if label in (b"TCP", b"UDP", b"TCP6", b"UDP6"):
                        words = rest.split()
                        if len(words) >= 2 and words[0] == b"inuse":
                            count += int(words[1])
                            found = True
            if found:
                return count
        try:
            return len(psutil.net_connections(kind="inet"))
        except (psutil.AccessDenied, OSError):
            return None

    def _groups(self, wanted: set[int], elapsed: float) -> dict[int, GroupUsage]:
        if not self._linux:
            return self._groups_psutil(wanted, elapsed)
        ticks_per_s = self._clock_ticks
        seen: dict[tuple[int, int], int] = {}
        cpu: dict[int, float] = {}
        ticks_used: dict[int, int] = {}
        rss: dict[int, int] = {}
        count: dict[int, int] = {}
        previous = self._last_ticks
        for entry in os.scandir("/proc"):
            name = entry.name
            if not name.isdigit():
                continue
            try:
                fd = os.open(f"/proc/{name}/stat", os.O_RDONLY)
                try:
                    raw = os.read(fd, 1024)
                finally:
                    os.close(fd)
            except OSError:
                continue  # gone between listing and reading
            rest = raw[raw.rfind(b")") + 2 :]
            head = rest.split(None, 3)  # state, ppid, pgrp: most processes stop here
            pgrp = int(head[2])
            if pgrp not in wanted or head[0] == b"Z":
                continue
            fields = rest.split()
            ticks = int(fields[11]) + int(fields[12])
            key = (int(name), int(fields[19]))  # (pid, start time): pids are reused
            seen[key] = ticks
            delta = ticks - previous.get(key, ticks)  # a new process counts from now
            cpu[pgrp] = cpu.get(pgrp, 0.0) + delta / ticks_per_s / elapsed * 100.0
            ticks_used[pgrp] = ticks_used.get(pgrp, 0) + delta
            rss[pgrp] = rss.get(pgrp, 0) + int(fields[21]) * self._page_size
            count[pgrp] = count.get(pgrp, 0) + 1
        self._last_ticks = seen
        return {g: GroupUsage(round(cpu[g], 1), rss[g], count[g], ticks_used[g] / ticks_per_s)
                for g in count}  # fmt: skip

    def _groups_psutil(self, wanted: set[int], elapsed: float) -> dict[int, GroupUsage]:
        seen: dict[tuple[int, int], int] = {}
        out: dict[int, list[float]] = {}
        for proc in psutil.process_iter():
            try:
                pgrp = os.getpgid(proc.pid)
                if pgrp not in wanted:
                    continue
                with proc.oneshot():
                    times = proc.cpu_times()
                    ticks = int((times.user + times.system) * 100)
                    key = (proc.pid, int(proc.create_time() * 100))
                    memory = proc.memory_info().rss
            except (psutil.Error, OSError):
                continue
            seen[key] = ticks
            delta = ticks - self._last_ticks.get(key, ticks)
            acc = out.setdefault(pgrp, [0.0, 0.0, 0.0, 0.0])
            acc[0] += delta / 100 / elapsed * 100.0
            acc[1] += memory
            acc[2] += 1
            acc[3] += delta / 100
        self._last_ticks = seen
        return {g: GroupUsage(round(a[0], 1), int(a[1]), int(a[2]), a[3])
                for g, a in out.items()}  # fmt: skip


def _sum_times(cores: list[Any]) -> Any:
    """Field-wise sum of per-core cpu_times (same type as one core's)."""
    first = cores[0]
    return type(first)(*(sum(values) for values in zip(*cores, strict=True)))


def _total(times: Any) -> float:
    # guest time is already counted in user time on Linux (psutil does the same)
    return float(sum(times)) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)


def _busy(before: Any, after: Any) -> float:
    """Busy % between two cpu_times readings (idle and iowait count as idle)."""
    idle_before = before.idle + getattr(before, "iowait", 0.0)
    idle_after = after.idle + getattr(after, "iowait", 0.0)
    total = _total(after) - _total(before)
    if total <= 0:
        return 0.0
    busy = 100.0 * (1 - float(idle_after - idle_before) / total)
    return round(max(0.0, min(100.0, busy)), 1)
