"""The store on real SQLite files: durability before dispatch, queries, downsampling and
retention, schedule state, migrations, and what happens with a newer, corrupt, read-only or
full database and a second instance. No part of ours is mocked."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from l3tui.engine import events as ev
from l3tui.engine.bus import Subscription
from l3tui.store import queries
from l3tui.store.schema import LATEST, apply_migrations
from tests.conftest import L3TUI

WORKFLOWS = """
workflows:
  pair:
    name: "زوج"
    tasks:
      - {id: a, action: say, parameters: {text: alpha, total: 10}}
      - {id: b, action: say, parameters: {text: beta, total: 12}, dependencies: [a]}
  broken:
    name: broken
    tasks:
      - {id: fails, action: fail}
  slow:
    name: slow
    tasks:
      - {id: nap, action: nap}
  quick:
    name: quick
    tasks:
      - {id: one, action: say, parameters: {text: one, total: 1}}
"""
ACTIONS = """
actions:
  say:
    command: [sh, -c, 'echo "$1"; echo "L3METRIC tests_total=$2"', sh, "${text}", "${total}"]
  fail:
    command: [sh, -c, 'echo bad >&2; exit 3']
  nap:
    command: [sleep, "30"]
"""


@pytest.fixture
def config(make_config) -> Path:
    return make_config(WORKFLOWS, actions=ACTIONS)


def ro(state_dir: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{state_dir / 'l3tui.db'}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


async def run_to_end(rt, workflow: str) -> str:
    result = await rt.run_workflow(workflow)
    assert result.applied, result.message
    async with asyncio.timeout(20):
        await rt.wait(result.execution_id)
    return result.execution_id


def cli(config: Path, state: Path, *args: str, timeout: float = 60):
    return subprocess.run([L3TUI, "--config", str(config), "--state", str(state), *args],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


async def test_success_is_committed_before_the_dependant_starts(config, runtime_for, state_dir):
    seen: list[str] = []

    def on_event(event: ev.Event) -> None:
        if isinstance(event, ev.TaskStateChanged) and event.task_id == "b" \
                and event.state == "queued":
            with ro(state_dir) as conn:
                seen.append(conn.execute("SELECT state FROM task_runs WHERE execution_id = ? "
                                         "AND task_id = 'a'", (event.execution_id,)).fetchone()[0])

    async with runtime_for(config) as rt:
        rt.bus.add_listener(on_event)
        await run_to_end(rt, "pair")
    assert seen == ["succeeded"]


async def test_history_queries_answer_the_ui_and_cli(config, runtime_for, state_dir):
    async with runtime_for(config) as rt:
        ok = [await run_to_end(rt, "pair") for _ in range(3)]
        bad = await run_to_end(rt, "broken")
    with ro(state_dir) as conn:
        assert [r["id"] for r in queries.list_executions(conn, workflow="pair")] == ok[::-1]
        failed = queries.list_executions(conn, state="failed")
        assert [r["id"] for r in failed] == [bad] and failed[0]["failed"] == 1
        assert queries.list_executions(conn, since=time.time() + 60) == []
        stats = {(s["workflow_id"], s["task_id"]): s for s in queries.task_duration_stats(conn)}
        assert stats[("pair", "a")]["runs"] == 3
        assert 0 < stats[("pair", "a")]["p50_s"] <= stats[("pair", "a")]["p95_s"] < 5
        assert queries.failure_counts(conn) == [
            {"workflow_id": "broken", "task_id": "fails", "failures": 1}]
        detail = queries.get_execution(conn, ok[0])
        assert [t["task_id"] for t in detail["tasks"]] == ["a", "b"]
        assert detail["tasks"][1]["dependencies"] == ["a"]
        assert detail["tasks"][0]["attempts"][0]["exit_code"] == 0
        assert detail["definition"]["name"] == "زوج"
        broken = queries.get_execution(conn, bad)["tasks"][0]
        assert (broken["state"], broken["exit_code"]) == ("failed", 3)
        kinds = [e["kind"] for e in queries.execution_events(conn, ok[0])]
        assert kinds[0] == "execution_created" and kinds[-1] == "execution_finished"
        assert "task_output" not in kinds  # output lives in log files
        metrics = queries.task_metric_series(conn, name="tests_total")
        assert [m["value"] for m in metrics[:2]] == [10.0, 12.0]
        assert queries.resolve_execution(conn, ok[1][:-1]) == ok[1]


async def test_resource_samples_are_downsampled_and_pruned_by_retention(
    make_config, runtime_for, state_dir
):
    config = make_config(WORKFLOWS, actions=ACTIONS, scheduling="""
    scheduling:
      retention: {metrics_days: 1, events_days: 1}
    """)
    start = 1_800_000_000.0  # a bucket boundary (divisible by 30)
    async with runtime_for(config) as rt:
        for i in range(90):
            rt.bus.publish(ev.ResourceSampled(at=start + i, sample={"cpu_usage": float(i),
                                                                    "memory_usage": 50.0}))
        await rt.store.flush()
        series = await rt.store.read(queries.metric_series, "cpu_usage", start - 1)
        assert [(r["bucket"], r["n"], r["max"], r["min"]) for r in series] == [
            (start, 30, 29.0, 0.0), (start + 30, 30, 59.0, 30.0), (start + 60, 30, 89.0, 60.0)]
        assert series[0]["avg"] == pytest.approx(14.5)
        await rt.store.prune(now=start + 2 * 86400)
        assert await rt.store.read(queries.metric_series, "cpu_usage", 0) == []


async def test_schedule_state_survives_a_restart(config, runtime_for):
    from l3tui.engine.scheduling.recurring import ScheduleState
    from l3tui.store.schedules import SqliteScheduleStore

    async with runtime_for(config) as rt:
        saved = ScheduleState(cursor=1_800_000_060.0, last_fire=1_800_000_000.0,
                              last_outcome="started", last_execution_id="e1", enabled=True)
        await SqliteScheduleStore(rt.store).save("nightly", saved)
        rt.bus.publish(ev.ScheduleChanged(at=time.time(), schedule_id="nightly", enabled=False))
        await rt.store.flush()
    async with runtime_for(config) as rt:
        state = (await SqliteScheduleStore(rt.store).load())["nightly"]
    assert state == ScheduleState(cursor=1_800_000_060.0, last_fire=1_800_000_000.0,
                                  last_outcome="started", last_execution_id="e1",
                                  enabled=False)


async def test_an_older_database_is_migrated_forward(config, runtime_for, state_dir):
    path = state_dir / "l3tui.db"
    conn = sqlite3.connect(path, isolation_level=None)
    apply_migrations(conn, 0, 1)
    conn.execute("INSERT INTO definitions VALUES ('h1', 'old', 'old', '{}', 1.0)")
    conn.execute("INSERT INTO executions (id, workflow_id, workflow_name, definition_hash, "
                 "state, created_at) VALUES ('250101-000000-aaaa', 'old', 'old', 'h1', "
                 "'succeeded', 1.0)")
    conn.close()
    async with runtime_for(config) as rt:
        await run_to_end(rt, "quick")
    with ro(state_dir) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
        ids = [r["id"] for r in queries.list_executions(conn)]
        assert "250101-000000-aaaa" in ids and len(ids) == 2
        actions = [c.entry.action for c in queries.all_audit_entries(conn)]  # a v2 table
        assert actions == ["execution.start", "execution.run", "execution.finish"]


def test_a_newer_database_is_refused_with_one_line(config, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    conn = sqlite3.connect(state / "l3tui.db")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    for args in (("run", "quick"), ("history",)):
        result = cli(config, state, *args)
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert str(state / "l3tui.db") in lines[0] and "newer l3tui" in lines[0]
        assert "Traceback" not in result.stderr


def test_a_corrupt_database_is_named_and_reset_state_moves_it_aside(config, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    garbage = b"this is not a database " * 200
    (state / "l3tui.db").write_bytes(garbage)
    result = cli(config, state, "run", "quick")
    assert result.returncode == 1
    line = result.stderr.strip()
    assert "\n" not in line and str(state / "l3tui.db") in line and "--reset-state" in line
    result = subprocess.run([L3TUI, "--config", str(config), "--state", str(state),
                             "--reset-state", "run", "quick"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    kept = list(state.glob("l3tui.db.reset-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == garbage
    assert "moved aside" in result.stderr
    assert cli(config, state, "history").returncode == 0


@pytest.mark.slow  # eight l3tui processes, one after another
def test_a_second_instance_names_the_holder_and_readers_still_work(config, tmp_path):
    state = tmp_path / "state"
    holder = subprocess.Popen([L3TUI, "run", "slow", "--config", str(config), "--state",
                               str(state)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (state / "l3tui.db").exists() or not _running(state):
            assert time.monotonic() < deadline, "the first instance never started its task"
            time.sleep(0.05)
        second = cli(config, state, "run", "quick")
        assert second.returncode == 1
        assert f"pid {holder.pid}" in second.stderr and "run slow" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        exec_id = _running(state)
        for args in (("history",), ("show", exec_id), ("logs", exec_id), ("report",),
                     ("audit",), ("audit", "verify")):
            result = cli(config, state, *args)
            assert result.returncode == 0, (args, result.stderr)
    finally:
        holder.terminate()
        holder.wait(timeout=20)


def _running(state: Path) -> str | None:
    try:
        with ro(state) as conn:
            row = conn.execute("SELECT execution_id FROM task_runs WHERE state = 'running'"
                               ).fetchone()
    except sqlite3.OperationalError:
        return None
    return row[0] if row else None


async def _notices(sub: Subscription, want: str, timeout: float = 20) -> ev.SystemNotice:
    async with asyncio.timeout(timeout):
        async for event in sub:
            if isinstance(event, ev.SystemNotice) and event.topic == "store" \
                    and event.severity == want:
                return event
    raise AssertionError("subscription closed")


async def _chattr(flag: str, path: Path) -> None:
    proc = await asyncio.create_subprocess_exec("chattr", flag, str(path))
    assert await proc.wait() == 0


async def test_a_read_only_database_keeps_tasks_running_then_catches_up(
    config, runtime_for, state_dir
):
    async with runtime_for(config) as rt:  # create it, then make the file read-only
        before = await run_to_end(rt, "quick")
    db = state_dir / "l3tui.db"
    await _chattr("+i", db)  # root ignores permission bits; the immutable flag it does not
    try:
        async with runtime_for(config) as rt:
            sub = rt.subscribe("test")
            exec_id = await run_to_end(rt, "pair")
            assert rt.engine.executions[exec_id].state == "succeeded"
            error = await _notices(sub, "error")
            assert str(db) in error.message and "readonly" in error.message.replace(" ", "")
            assert rt.store.degraded is not None and rt.store.held_events > 0
            assert any(a.rule == "store_write_failing" for a in rt.alerts.views())
            await _chattr("-i", db)
            await _notices(sub, "info")
            assert rt.store.degraded is None and rt.store.held_events == 0
    finally:
        await _chattr("-i", db)
    with ro(state_dir) as conn:
        states = dict(conn.execute("SELECT id, state FROM executions").fetchall())
    assert states == {before: "succeeded", exec_id: "succeeded"}


async def test_a_full_disk_degrades_without_stalling_and_loses_nothing_committed(
    config, runtime_for, state_dir
):
    async with runtime_for(config) as rt:
        sub = rt.subscribe("test")
        first = await run_to_end(rt, "quick")
        pages = await rt.store.read(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
        await rt.store._in_writer(rt.store._writer.execute, f"PRAGMA max_page_count = {pages}")
        started = time.monotonic()
        second = await run_to_end(rt, "pair")
        assert time.monotonic() - started < 30  # not stalled on durability (a bound, not a pace)
        error = await _notices(sub, "error")
        assert "full" in error.message
        with ro(state_dir) as conn:
            assert conn.execute("SELECT state FROM executions WHERE id = ?",
                                (first,)).fetchone()[0] == "succeeded"
        await rt.store._in_writer(rt.store._writer.execute, "PRAGMA max_page_count = 1000000")
        await _notices(sub, "info")
    with ro(state_dir) as conn:
        assert conn.execute("SELECT state FROM executions WHERE id = ?",
                            (second,)).fetchone()[0] == "succeeded"


def test_store_and_history_commands_never_import_textual():
    code = ("import sys, l3tui.store.sqlite, l3tui.monitor.reports, l3tui.commands.history, "
            "l3tui.commands.show, l3tui.commands.logs, l3tui.commands.report, "
            "l3tui.commands.audit, l3tui.commands.resume; "
            "sys.exit(1 if any(m == 'textual' or m.startswith('textual.') for m in sys.modules) "
            "else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
