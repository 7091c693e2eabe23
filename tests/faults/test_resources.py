"""Hostile cases of the Resource Manager: a reservation in the past, overlapping others
beyond the capacity, or larger than the machine (refused in one line, exit 1, audited,
nothing recorded); one that expires while tasks wait (they start); a restart with one in
force (it survives, and holds tasks back again); advice from too few runs (none, with why);
a task that declares no resources (said so, never sized from nothing)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from l3tui.config import load_config
from l3tui.engine import events as ev
from l3tui.engine.api import ReservationRequest
from l3tui.runtime import Runtime
from tests.conftest import L3TUI
from tests.engine.resources.test_measurement import ALLOC

WORKFLOWS = """
workflows:
  build:
    name: build
    tasks:
      - {id: compile, action: say, resources: {cpu: 2, pools: {flutter_build: 1}}}
      - {id: package, action: say, resources: {cpu: 2}}
"""
ACTIONS = """
actions:
  say: {command: [echo, done]}
"""
SCHEDULING = """
scheduling:
  pools: {flutter_build: 1}
  resource_limits: {cpu_cores: 4, memory_mb: 8000, max_cpu_usage: 100, max_memory_usage: 100}
  execution: {grace_period: 1s, default_timeout: 60s}
"""


def cli(state: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    state.chmod(0o700)  # as l3tui makes it (a wider one draws a warning line)
    return subprocess.run([L3TUI, "--state", str(state), "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def refused_in_one_line(out: subprocess.CompletedProcess[str], words: str) -> None:
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith("l3tui: refused: ") and out.stderr.count("\n") == 1
    assert words in out.stderr and "Traceback" not in out.stderr


def test_a_reservation_in_the_past_is_refused_in_one_line(make_config, state_dir):
    config = make_config(WORKFLOWS, actions=ACTIONS, scheduling=SCHEDULING)
    out = cli(state_dir, config, "reserve", "--cpu", "1", "--from", "2020-01-01T18:00",
              "--for", "2h")  # fmt: skip
    refused_in_one_line(out, "which is in the past")
    out = cli(state_dir, config, "reserve", "--cpu", "1", "--from", "2020-01-01T18:00",
              "--until", "2099-01-01T00:00")  # fmt: skip
    refused_in_one_line(out, "start at 2020-01-01 18:00, which is in the past (use --from now)")
    assert json.loads(cli(state_dir, config, "reservations", "--all", "--json").stdout) == []
    assert cli(state_dir, config, "audit").stdout.count("refused: it would") == 2


def test_overlapping_reservations_beyond_the_capacity_are_refused_in_one_line(make_config,
                                                                            state_dir):
    config = make_config(WORKFLOWS, actions=ACTIONS, scheduling=SCHEDULING)
    first = cli(state_dir, config, "reserve", "--pool", "flutter_build=1", "--cpu", "3",
                "--from", "+1h", "--for", "2h", "--reason", "release", "--json")  # fmt: skip
    rid = json.loads(first.stdout)["reservation_id"]
    out = cli(state_dir, config, "reserve", "--pool", "flutter_build=1", "--from", "+2h",
              "--for", "2h")  # fmt: skip
    refused_in_one_line(out, f"overlaps reservation {rid} (release)")
    assert "2 of the 1 slot(s) of pool flutter_build" in out.stderr
    out = cli(state_dir, config, "reserve", "--cpu", "2", "--from", "+90m", "--for", "10m")
    refused_in_one_line(out, "5 of 4 cpu")
    listed = json.loads(cli(state_dir, config, "reservations", "--json").stdout)
    assert [r["id"] for r in listed] == [rid]


def test_a_reservation_larger_than_the_machine_is_refused_in_one_line(make_config, state_dir):
    config = make_config(WORKFLOWS, actions=ACTIONS, scheduling=SCHEDULING)
    refused_in_one_line(cli(state_dir, config, "reserve", "--cpu", "64", "--for", "1h"),
                        "64 cpu is more than the 4 the scheduler has in all")
    refused_in_one_line(cli(state_dir, config, "reserve", "--memory", "1T", "--for", "1h"),
                        "1024.0 GB is more than the 7.8 GB")
    refused_in_one_line(cli(state_dir, config, "reserve", "--pool", "flutter_build=2",
                            "--for", "1h"), "pool flutter_build has 1 slot(s), not 2")
    refused_in_one_line(cli(state_dir, config, "reserve", "--pool", "gpu", "--for", "1h"),
                        "there is no pool 'gpu' in scheduling.pools (flutter_build)")
    usage = cli(state_dir, config, "reserve", "--memory", "lots", "--for", "1h")
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1 and "--memory" in usage.stderr
    assert json.loads(cli(state_dir, config, "reservations", "--all", "--json").stdout) == []


async def test_tasks_waiting_when_a_reservation_expires_start(make_config, state_dir):
    config = make_config(WORKFLOWS, actions=ACTIONS, scheduling=SCHEDULING)
    async with Runtime(load_config(config), state_dir, actor="test") as rt:
        held = await rt.reserve(ReservationRequest(cpu=3, pools=(("flutter_build", 1),),
                                                   duration_s=1.5, reason="window"))
        assert held.applied and held.reservation_id
        sub = rt.subscribe("expiry")
        run = await rt.run_workflow("build")
        exec_id = run.execution_id or ""
        view = rt.execution(exec_id)
        assert view is not None
        reasons = {t.task_id: t.reason for t in view.tasks}
        assert held.reservation_id in reasons["compile"] and "window" in reasons["compile"]
        assert held.reservation_id in reasons["package"]  # 2 cpu of the 1 left
        async with asyncio.timeout(30):
            assert await rt.wait(exec_id) == "succeeded"
        events = sub.drain()
        ended = [e for e in events if isinstance(e, ev.ReservationChanged)]
        started = [e for e in events if isinstance(e, ev.TaskStarted)]
        assert [e.change for e in ended] == ["ended"] and len(started) == 2
        assert all(s.at >= ended[0].at for s in started)
        assert rt.snapshot().reservations == ()


async def test_an_active_reservation_survives_a_restart(make_config, state_dir):
    config = make_config(WORKFLOWS, actions=ACTIONS, scheduling=SCHEDULING)
    async with Runtime(load_config(config), state_dir, actor="test") as rt:
        held = await rt.reserve(ReservationRequest(pools=(("flutter_build", 1),),
                                                   duration_s=3600, reason="release"))
        rid = held.reservation_id or ""
    async with Runtime(load_config(config), state_dir, actor="test") as rt:
        assert [(r.id, r.state) for r in rt.snapshot().reservations] == [(rid, "active")]
        run = await rt.run_workflow("build")
        exec_id = run.execution_id or ""
        view = rt.execution(exec_id)
        assert view is not None and view.tasks[0].state == "queued"
        assert f"reservation {rid} (release) holds 1 slot(s)" in view.tasks[0].reason
        assert (await rt.cancel_reservation(rid[:4])).applied
        async with asyncio.timeout(30):
            assert await rt.wait(exec_id) == "succeeded"
    audit = cli(state_dir, config, "audit").stdout
    assert audit.count("reservation.start") == 1  # taking it back is not a second start
    assert audit.count("reservation.cancel") == 1


def alloc_config(make_config, tmp_path: Path, size_mb: int) -> Path:
    (tmp_path / "alloc.py").write_text(ALLOC)
    return make_config("""
        workflows:
          hog:
            name: hog
            tasks: [{id: fill, action: fill}]
        """, actions=f"""
actions:
  fill: {{command: ["{sys.executable}", "{tmp_path}/alloc.py", "/dev/null", "0.3", "{size_mb}"]}}
""", scheduling=SCHEDULING)  # fmt: skip


async def runs_of(config: Path, state: Path, times: int) -> list[str]:
    """`l3tui run hog` `times` times, each in a process of its own as a user runs it: a
    task's peak RSS comes from the kernel only when it is above l3tui's own peak, and this
    pytest, grown past 300 MB by earlier tests, would set a 300 MB task aside."""
    ids = []
    for _ in range(times):
        out = await asyncio.to_thread(cli, state, config, "run", "hog", "--json")
        assert out.returncode == 0, out.stderr[-2000:]
        ids.append(json.loads(out.stdout.splitlines()[0])["execution_id"])
    return ids


async def test_advice_from_too_few_runs_is_none_and_says_why(make_config, tmp_path, state_dir):
    config = alloc_config(make_config, tmp_path, 300)
    await runs_of(config, state_dir, 1)
    out = cli(state_dir, config, "advise")
    assert out.returncode == 0
    assert "hog/fill" not in out.stdout.split("Upgrade advice")[0].split("\n", 1)[1].split(
        "no advice yet")[0]  # not advised on
    assert "no advice yet for 1 task(s) with too few measured runs: hog/fill (1)" in out.stdout
    full = cli(state_dir, config, "advise", "--all").stdout
    assert "hog/fill  too few runs: no advice yet: 1 measured run(s), it needs 3" in full
    data = json.loads(cli(state_dir, config, "advise", "--json").stdout)["rightsizing"]
    assert [(a["verdict"], a["suggested"]) for a in data] == [("too_few", None)]
    async with Runtime(load_config(config), state_dir, actor="test") as rt:
        assert [a for a in rt.snapshot().advice if a.kind == "rightsizing"] == []


async def test_a_task_that_declares_no_resources_is_told_to_declare_them(make_config, tmp_path,
                                                                         state_dir):
    config = alloc_config(make_config, tmp_path, 300)
    ids = await runs_of(config, state_dir, 3)
    data = json.loads(cli(state_dir, config, "advise", "--json").stdout)["rightsizing"]
    [fill] = data
    assert fill["verdict"] == "undeclared" and fill["declared"] == {"cpu": 0.0, "memory_mb": 0}
    assert fill["suggested"]["memory_mb"] >= 300  # from its measured ~310 MB peak
    assert "declares no resources, so admission cannot account for it" in fill["summary"]
    shown = json.loads(cli(state_dir, config, "show", ids[0], "--json").stdout)
    assert shown["efficiency"]["execution"]["tasks"] == 0  # nothing allocated: no share
    assert shown["efficiency"]["execution"]["cpu_pct"] is None
    async with Runtime(load_config(config), state_dir, actor="test") as rt:
        [advice] = [a for a in rt.snapshot().advice if a.kind == "rightsizing"]
        assert advice.subject == "hog/fill" and advice.suggestion.startswith("resources: {")
