"""The resource manager: the real psutil sampler on this machine, a running task's process
tree measured and carried to TaskFinished, bounded history and the monitor iterator, and
bottleneck findings and upgrade suggestions that always show their evidence."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import psutil

from l3tui.config.schema import Scheduling
from l3tui.engine import events as ev
from l3tui.engine.resources.bottlenecks import BottleneckDetector, UpgradeAdvisor, Waiter
from l3tui.engine.resources.sampler import PsutilSampler
from tests.engine.scheduling.test_scheduler import FakeSampler, scheduling, wait_for

BURN = [sys.executable, "-c", "import time\nend = time.time() + 30\nwhile time.time() < end: pass"]
BUSY_PCT = 5.0
"""A busy loop measures far above this even with two CPU hogs and a loaded machine taking
most of the cores; a sleeping process measures about 0."""


def test_psutil_sampler_reads_the_real_machine_and_a_process_group(tmp_path):
    sampler = PsutilSampler(tmp_path)
    burner = subprocess.Popen(["sh", "-c", '"$0" -c "$1" & wait', *BURN[:1], BURN[2]],
                              process_group=0)  # its own group, like a task
    try:
        sampler.sample([burner.pid])
        usage = None
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline:  # bounded: CPU % needs time between readings
            time.sleep(0.2)
            reading = sampler.sample([burner.pid])
            usage = reading.groups.get(burner.pid)
            if usage is not None and usage.processes == 2 and usage.cpu_pct > BUSY_PCT:
                break
        assert usage is not None and usage.processes == 2  # sh and its python child
        assert usage.cpu_pct > BUSY_PCT and usage.rss > 1_000_000
        system = reading.system
        assert len(system["per_core"]) == psutil.cpu_count()
        assert 0 <= system["cpu_usage"] <= 100 and 0 < system["memory_usage"] < 100
        assert system["memory_total"] == psutil.virtual_memory().total
        assert 0 < system["disk_usage"] < 100
        for key in ("load_avg", "swap_usage", "net_in", "net_out", "net_connections"):
            assert isinstance(system[key], int | float), key
        cores, memory_mb = sampler.capacity()
        assert cores == psutil.cpu_count() and memory_mb > 100
    finally:
        os.killpg(burner.pid, signal.SIGKILL)
        burner.wait()


async def test_running_task_carries_cpu_and_rss_of_its_tree_to_task_finished(make_config,
                                                                            runtime_for,
                                                                            tmp_path):
    gate = tmp_path / "gate"  # the child burns CPU until the test has seen it measured
    config = make_config(
        """
        workflows:
          burn:
            name: burn
            tasks:
              - {id: hot, action: burn}
        """,
        actions=f"""
actions:
  burn:
    command: [sh, -c, '"$0" -c "$1" "$2" & wait', "{sys.executable}", "import os, sys\\nwhile not os.path.exists(sys.argv[1]): pass", "{gate}"]
""",
        scheduling=scheduling("  sampler: {interval: 200ms}"),
    )
    async with runtime_for(config) as rt:
        sub = rt.subscribe("finish")
        run = await rt.run_workflow("burn")
        task = rt.engine.executions[run.execution_id].tasks["hot"]
        await wait_for(lambda: task.cpu_pct > BUSY_PCT and task.rss > 1_000_000, timeout=60)
        snap = rt.snapshot()
        assert snap.running and snap.running[0].cpu_pct > 0 and snap.running[0].rss > 0
        gate.touch()
        assert await asyncio.wait_for(rt.wait(run.execution_id), 60) == "succeeded"
        finished = [e for e in sub.drain() if isinstance(e, ev.TaskFinished)]
        assert finished[0].peak_cpu_pct > BUSY_PCT and finished[0].peak_rss > 1_000_000
        assert 0 < finished[0].avg_cpu_pct <= finished[0].peak_cpu_pct
        assert 0 < finished[0].avg_rss <= finished[0].peak_rss
        samples = [e for e in sub.drain() if isinstance(e, ev.ResourceSampled)]
        assert all("per_core" in s.sample for s in samples)


async def test_history_is_bounded_and_monitor_yields_each_new_sample(make_config, runtime_for):
    config = make_config(
        "workflows: {}\n",
        scheduling=scheduling("  sampler: {interval: 60s, history: 10}"),
    )
    sampler = FakeSampler(cpu=12.0)
    async with runtime_for(config, sampler=sampler) as rt:
        seen = []

        async def watch():
            async for sample in rt.resources.monitor():
                seen.append(sample["cpu_usage"])
                if len(seen) == 3:
                    return

        # The Runtime's own sampler takes its first reading at start (in a thread): let it
        # land first, or on a busy machine the watcher sees it before ours (the next is 60 s
        # away).
        async with asyncio.timeout(30):
            while not rt.resources.history:
                await asyncio.sleep(0.01)
        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0)
        for value in (20.0, 30.0, 40.0):
            sampler.set(cpu_usage=value)
            await rt.resources.sample_once()
            await asyncio.sleep(0)
        await asyncio.wait_for(watcher, 30)
        assert seen == [20.0, 30.0, 40.0]
        for _ in range(12):
            await rt.resources.sample_once()
        assert len(rt.resources.history) == 10
        assert rt.snapshot().resources["cpu_usage"] == 40.0
        assert [v for _, v in rt.resources.series("cpu_usage", 3600)][-1] == 40.0


def limits() -> Scheduling:
    return Scheduling.model_validate({
        "resource_limits": {"max_cpu_usage": 80, "max_memory_usage": 75},
        "execution": {"wait_alert_after": "10m"}, "pools": {"flutter_build": 1},
    })


def test_sustained_memory_is_a_finding_with_evidence_and_clears_below_hysteresis():
    detector = BottleneckDetector(limits())
    raised_all = []
    for second in range(0, 40, 5):
        raised, cleared = detector.observe(1000.0 + second, {"memory_usage": 90 + second % 3}, [])
        raised_all += raised
        assert not cleared
    assert [f.kind for f in raised_all] == ["memory_sustained"]
    finding = raised_all[0]
    assert finding.evidence == ("memory above 75% for 30 s (mean 91%, peak 92%)",)
    assert detector.observe(1045.0, {"memory_usage": 72}, []) == ([], [])  # in the band
    raised, cleared = detector.observe(1050.0, {"memory_usage": 60}, [])
    assert [f.kind for f in cleared] == ["memory_sustained"]


def test_a_short_spike_is_not_a_bottleneck():
    detector = BottleneckDetector(limits())
    for second, value in ((0, 99), (5, 99), (10, 40), (15, 99)):
        assert detector.observe(float(second), {"cpu_usage": value}, []) == ([], [])


def test_disk_swap_and_long_waits_are_findings():
    detector = BottleneckDetector(limits())
    sample = {"disk_usage": 95.0, "disk_free": 2 * 1024**3, "swap_in": 2 * 1024**2,
              "swap_out": 0.0, "swap_usage": 40.0}
    waiters = [Waiter("build/compile", 14 * 60, "memory 81% > 75%")]
    detector.observe(0.0, sample, waiters)
    raised, _ = detector.observe(31.0, sample, waiters)
    kinds = {f.kind: f for f in [*raised, *detector.active.values()]}
    assert kinds["disk_nearly_full"].evidence == ("state dir filesystem 95% full", "2.0 GB free")
    assert kinds["swap_activity"].evidence[0].startswith("swapping 2.0 MB/s in")
    assert kinds["long_wait"].evidence[1] == \
        "longest: build/compile, 14 min (memory 81% > 75%)"


def test_upgrade_suggestions_need_evidence():
    advisor = UpgradeAdvisor(limits())
    sample = {"memory_used": 7.5 * 1024**3, "memory_total": 8 * 1024**3, "memory_usage": 93.0,
              "cpu_usage": 50.0, "cpu_count": 4, "load_avg": 2.0}
    advisor.observe(0.0, sample, {"memory": 0.0}, 0)
    assert advisor.suggestions(10.0) == []  # no waits: no suggestion
    advisor.observe(600.0, sample, {"memory": 14 * 60.0, "pool:flutter_build": 30.0},
                    queued_memory_mb=1740)
    suggestions = advisor.suggestions(700.0)
    assert [s.kind for s in suggestions] == ["upgrade_memory"]  # 30 s of pool wait is noise
    assert suggestions[0].evidence == (
        "tasks waited 14 min for memory in the last 24 h", "peak demand 9.2 GB of 8.0 GB")
    assert advisor.suggestions(700.0 + 25 * 3600) == []  # older than a day: forgotten


async def test_findings_are_published_on_the_bus(make_config, runtime_for):
    config = make_config("workflows: {}\n", scheduling=scheduling("  sampler: {interval: 60s}"))
    sampler = FakeSampler(memory=95.0)
    async with runtime_for(config, sampler=sampler) as rt:
        rt.resources.detector.sustain_s = 0.0
        sub = rt.subscribe("findings")
        await rt.resources.sample_once()
        sampler.set(memory_usage=40.0)
        await rt.resources.sample_once()
        changes = [(e.finding, e.active) for e in sub.drain()
                   if isinstance(e, ev.BottleneckChanged)]
        assert changes == [("memory_sustained", True), ("memory_sustained", False)]
        assert ev.EVENT_TYPES["bottleneck"] is ev.BottleneckChanged


class FlakySampler(FakeSampler):
    """Fails once (a /proc read that raced with the kernel), then reads normally."""

    def sample(self, groups):
        if self.calls == 1:
            self.calls += 1
            raise OSError("read of /proc/stat failed")
        return super().sample(groups)


async def test_a_failed_reading_is_reported_once_and_sampling_goes_on(make_config, runtime_for):
    config = make_config("workflows: {}\n", scheduling=scheduling("  sampler: {interval: 50ms}"))
    sampler = FlakySampler()
    async with runtime_for(config, sampler=sampler) as rt:
        sub = rt.subscribe("notices")
        await wait_for(lambda: rt.resources.samples >= 3, timeout=30)
        notices = [e for e in sub.drain() if isinstance(e, ev.SystemNotice)
                   and e.topic == "resources"]
        assert len(notices) == 1 and "read of /proc/stat failed" in notices[0].message
