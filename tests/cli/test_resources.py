"""advise, reserve, reservations, show and report as a person and a script use them, on
real runs: right-sizing from measured peaks (raise the under-declared task, lower the
over-declared one), reservations made while no l3tui runs and taken up by the next one,
cancelled, listed and audited; efficiency in `show` and the Resource Manager's sections in
`report`."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from l3tui.config import load_config
from l3tui.engine import events as ev
from l3tui.runtime import Runtime
from tests.conftest import L3TUI
from tests.engine.resources.test_measurement import footprint_config

MIB = 1024 * 1024


def cli(state: Path, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    extra = ["--config", str(config)] if config is not None else []
    state.chmod(0o700)  # as l3tui makes it (a wider one draws a warning line)
    return subprocess.run([L3TUI, "--state", str(state), *args, *extra], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


async def run_footprints(config: Path, state: Path, times: int) -> list[str]:
    """`times` executions of the footprints workflow, at once (they contend: fine)."""
    async with Runtime(load_config(config), state, actor="test") as rt:
        ids = [(await rt.run_workflow("footprints")).execution_id for _ in range(times)]
        async with asyncio.timeout(180):
            for exec_id in ids:
                assert exec_id is not None
                assert await rt.wait(exec_id) == "succeeded"
    return [i for i in ids if i]


@pytest.mark.slow
async def test_advise_raises_the_under_declared_and_lowers_the_over_declared(make_config,
                                                                            tmp_path, state_dir):
    # spin declares 8 cores and uses ~2 (over); alloc declares 64 MB and holds ~210 (under)
    config = footprint_config(make_config, tmp_path, memory_mb=64, cpu=8)
    ids = await run_footprints(config, state_dir, 3)
    out = cli(state_dir, "advise", "--json")
    assert out.returncode == 0, out.stderr
    advice = {a["task_id"]: a for a in json.loads(out.stdout)["rightsizing"]}
    spin, alloc = advice["spin"], advice["alloc"]
    assert spin["verdict"] == "over" and spin["runs"] == 3
    assert spin["suggested"]["cpu"] < 8 and spin["suggested"]["cpu"] >= spin["p95_cpu_cores"]
    assert alloc["verdict"] == "under" and alloc["runs"] == 3
    assert alloc["suggested"]["memory_mb"] >= 210 > 64
    assert alloc["p95_rss_mb"] == pytest.approx(210, rel=0.15)
    text = cli(state_dir, "advise").stdout
    assert "footprints/alloc  UNDER-DECLARED: under-declared: admission lets the machine " \
           "overcommit: peaks at" in text
    assert f"suggested  resources: {{cpu: 0, memory_mb: {alloc['suggested']['memory_mb']}}}" \
        not in text  # a task that declared no cpu is not told to declare cpu 0
    assert "footprints/spin  OVER-DECLARED" in text and "evidence   3 measured run(s)" in text
    # show: what each task declared against what it used, and the execution's efficiency
    shown = json.loads(cli(state_dir, "show", ids[0], "--json").stdout)
    spin_eff = shown["efficiency"]["tasks"]["spin"]
    assert 0 < spin_eff["cpu_pct"] < 50  # used ~2 of the 8 cores it holds
    assert shown["efficiency"]["tasks"]["alloc"]["memory_pct"] > 100  # used more than asked
    human = cli(state_dir, "show", ids[0]).stdout
    assert "resources (cores: 1.00 = one core busy" in human and "efficiency  cpu" in human
    report = json.loads(cli(state_dir, "report", "--json").stdout)["resources"]
    verdicts = {r["task_id"]: r["verdict"] for r in report["rightsizing"]}
    assert verdicts["spin"] == "over" and verdicts["alloc"] == "under"
    assert report["efficiency"]["footprints"]["cpu_allocated_s"] > 0


def test_reserve_while_no_l3tui_runs_is_kept_listed_cancelled_and_audited(make_config,
                                                                          state_dir):
    config = make_config("""
        workflows:
          w: {name: w, tasks: [{id: t, action: noop}]}
        """, scheduling="""
scheduling:
  pools: {flutter_build: 1}
  resource_limits: {cpu_cores: 8, memory_mb: 16000}
""")  # fmt: skip
    made = cli(state_dir, "reserve", "--cpu", "4", "--memory", "8G", "--pool",
               "flutter_build=1", "--from", "+2h", "--for", "2h", "--reason", "release build",
               "--json", config=config)  # fmt: skip
    assert made.returncode == 0, made.stderr
    answer = json.loads(made.stdout)
    rid = answer["reservation_id"]
    assert answer["applied"] and answer["via"] == "store"
    assert "4 cpu, 8.0 GB, pool flutter_build=1" in answer["message"]
    listed = json.loads(cli(state_dir, "reservations", "--json").stdout)
    assert [(r["id"], r["state"], r["pools"], r["reason"]) for r in listed] == [
        (rid, "scheduled", {"flutter_build": 1}, "release build")]
    human = cli(state_dir, "reservations").stdout
    assert rid in human and "4 cpu, 8.0 GB, pool flutter_build=1" in human
    # The same window again would hold 8 of 8 cores: fine; a third overlapping one is not.
    again = cli(state_dir, "reserve", "--cpu", "4", "--from", "+2h", "--for", "1h",
                config=config)  # fmt: skip
    assert again.returncode == 0, again.stderr
    third = cli(state_dir, "reserve", "--cpu", "1", "--from", "+150m", "--for", "1h",
                config=config)  # fmt: skip
    assert third.returncode == 1 and third.stdout == ""
    assert third.stderr.count("\n") == 1 and "overlaps" in third.stderr and rid in third.stderr
    gone = cli(state_dir, "reservations", "cancel", rid[:4])
    assert gone.returncode == 0 and f"cancelled reservation {rid}" in gone.stdout
    assert cli(state_dir, "reservations", "cancel", rid).returncode == 1
    every = json.loads(cli(state_dir, "reservations", "--all", "--json").stdout)
    assert {r["id"]: r["state"] for r in every}[rid] == "cancelled"
    audit = cli(state_dir, "audit").stdout
    assert "reservation.make" in audit and "reservation.cancel" in audit
    assert "refused: it overlaps" in audit  # the refusal is audited too
    assert cli(state_dir, "audit", "verify").returncode == 0


async def test_a_reservation_made_offline_takes_effect_in_the_next_runtime(make_config,
                                                                         state_dir, tmp_path):
    config = make_config("""
        workflows:
          build:
            name: build
            tasks: [{id: compile, action: noop, resources: {pools: {flutter_build: 1}}}]
        """, scheduling="""
scheduling:
  pools: {flutter_build: 1}
""")  # fmt: skip
    made = cli(state_dir, "reserve", "--pool", "flutter_build", "--for", "1h", "--reason",
               "hands-on release", "--json", config=config)  # fmt: skip
    rid = json.loads(made.stdout)["reservation_id"]
    async with Runtime(load_config(config), state_dir, actor="test") as rt:
        assert [r.id for r in rt.snapshot().reservations] == [rid]
        run = await rt.run_workflow("build")
        view = rt.execution(run.execution_id or "")
        assert view is not None
        async with asyncio.timeout(10):
            while "hands-on release" not in (view.tasks[0].reason if view else ""):
                await asyncio.sleep(0.05)
                view = rt.execution(run.execution_id or "")
        assert view.tasks[0].state == "queued" and rid in view.tasks[0].reason
        sub = rt.subscribe("end")
        assert (await rt.cancel_reservation(rid)).applied
        async with asyncio.timeout(10):
            assert await rt.wait(run.execution_id or "") == "succeeded"
        changes = [e.change for e in sub.drain() if isinstance(e, ev.ReservationChanged)]
        assert changes == ["cancelled"]
