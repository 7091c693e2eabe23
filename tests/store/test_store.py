"""The store on real SQLite files: durability before dispatch, queries, downsampling and
retention, schedule state, migrations, and what happens with a newer, corrupt, read-only or
full database and a second instance. No part of ours is mocked."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from l3tui.engine import events as ev
from l3tui.engine.api import ReservationRequest
from l3tui.engine.bus import EventBus, Subscription
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


PEEK = """
import os, sqlite3, sys
conn = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
rows = conn.execute("SELECT task_id, state FROM task_runs WHERE execution_id = ?",
                    (os.environ["L3_EXECUTION_ID"],)).fetchall()
attempt = conn.execute("SELECT state FROM task_attempts WHERE execution_id = ? AND "
                       "task_id = 'b'", (os.environ["L3_EXECUTION_ID"],)).fetchall()
print("seen", dict(rows)["a"], [a[0] for a in attempt])
"""


async def test_success_is_committed_before_the_dependant_starts(make_config, runtime_for,
                                                                state_dir):
    """The dependant's own process reads the database: its upstream's success and its own
    attempt are committed before it was spawned."""
    config = make_config(WORKFLOWS.replace("action: say, parameters: {text: beta, total: 12}",
                                           "action: peek"),
                         actions=ACTIONS + f"""
  peek:
    command: [{sys.executable}, -c, {json.dumps(PEEK)}, "{state_dir / 'l3tui.db'}"]
""")
    async with runtime_for(config) as rt:
        sub = rt.subscribe("test")
        exec_id = await run_to_end(rt, "pair")
        lines = [line for e in sub.drain() if isinstance(e, ev.TaskOutput) and e.task_id == "b"
                 for line in e.lines]
    assert rt.engine.executions[exec_id].state == "succeeded", lines
    # its attempt is recorded as opened (or, by the time Python has started, as running)
    assert lines in (["seen succeeded ['starting']"], ["seen succeeded ['running']"])


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


async def test_a_database_at_the_coordinators_version_takes_the_resource_managers_tables(
    config, runtime_for, state_dir
):
    """Version 5 (alerts, decisions) to 6 (reservations, findings, blocked time, CPU
    seconds): what was there stays, the new tables work at once."""
    path = state_dir / "l3tui.db"
    conn = sqlite3.connect(path, isolation_level=None)
    apply_migrations(conn, 0, 5)
    conn.execute("INSERT INTO definitions VALUES ('h1', 'old', 'old', '{}', 1.0)")
    conn.execute("INSERT INTO executions (id, workflow_id, workflow_name, definition_hash, "
                 "state, created_at) VALUES ('250101-000000-aaaa', 'old', 'old', 'h1', "
                 "'succeeded', 1.0)")
    conn.execute("INSERT INTO task_runs (execution_id, task_id, name, position, state, "
                 "peak_rss) VALUES ('250101-000000-aaaa', 't', 't', 0, 'succeeded', 1024)")
    conn.execute("INSERT INTO decisions (id, kind, body, digest, state, received_at) VALUES "
                 "('d-1', 'run_workflow', '{}', 'x', 'acted', 1.0)")
    conn.close()
    async with runtime_for(config) as rt:
        made = await rt.reserve(ReservationRequest(cpu=0.5, duration_s=600, reason="old db"))
        assert made.applied, made.message
        await run_to_end(rt, "quick")
    with ro(state_dir) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST >= 6
        old = conn.execute("SELECT peak_rss, cpu_s FROM task_runs WHERE execution_id = "
                           "'250101-000000-aaaa'").fetchone()  # fmt: skip
        assert tuple(old) == (1024, None)
        assert conn.execute("SELECT id FROM decisions").fetchall()[0][0] == "d-1"
        [(reason, state)] = conn.execute("SELECT reason, state FROM reservations").fetchall()
        assert reason == "old db" and state == "active"
        assert conn.execute("SELECT count(*) FROM task_runs WHERE cpu_s IS NOT NULL"
                            ).fetchone()[0] >= 1  # the new run has its CPU seconds


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


async def test_a_database_refusing_writes_mid_run_is_held_then_caught_up(
    config, runtime_for, state_dir
):
    """The writer's connection turns read-only while running (as SQLite decides when a file
    loses its write permission): tasks keep running, events are held in order, the store
    reopens the file and catches up. (A database read-only before the start is refused:
    tests/faults/test_durability.py.)"""
    async with runtime_for(config) as rt:
        sub = rt.subscribe("test")
        before = await run_to_end(rt, "quick")
        await rt.store._in_writer(rt.store._writer.execute, "PRAGMA query_only = ON")
        exec_id = await run_to_end(rt, "pair")
        assert rt.engine.executions[exec_id].state == "succeeded"
        error = await _notices(sub, "error")
        db = state_dir / "l3tui.db"
        assert str(db) in error.message and "readonly" in error.message.replace(" ", "")
        assert rt.store.held_peak > 0
        assert any(a.rule == "store_write_failing" for a in rt.alerts.views())
        await _notices(sub, "info")
        assert rt.store.degraded is None and rt.store.held_events == 0
        assert rt.store.problem() is None
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


async def _fill_database(rt) -> None:
    """SQLite's own limit on the file's pages: a full disk for this database only."""
    pages = await rt.store.read(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
    await rt.store._in_writer(rt.store._writer.execute, f"PRAGMA max_page_count = {pages}")


async def test_a_committed_subscriber_sees_an_event_only_once_the_store_has_it(
    config, runtime_for
):
    import threading

    async with runtime_for(config) as rt:
        committed = rt.subscribe("printer", committed=True)
        raw = rt.subscribe("raw")
        await rt.store.flush()
        committed.drain()
        gate = threading.Event()
        busy = asyncio.ensure_future(rt.store._in_writer(gate.wait, 30))  # a slow disk
        rt.bus.publish(ev.SystemNotice(at=time.time(), topic="test", message="one"))
        rt.bus.publish(ev.TaskOutput(at=time.time(), execution_id="e", task_id="t", attempt=1,
                                     lines=("not stored, but after one",)))
        await asyncio.sleep(0.2)
        mine = ("system_notice", "task_output")
        try:
            assert [e.kind for e in raw.drain() if e.kind in mine] == list(mine)
            assert committed.drain() == []  # not on disk, not shown; the output waits its turn
        finally:
            gate.set()
        await busy
        await rt.store.flush()
        assert [e.kind for e in committed.drain() if e.kind in mine] == list(mine)
    bus_only = EventBus()  # nothing durable (`--no-record`): at once
    printer = bus_only.subscribe("printer", committed=True)
    bus_only.publish(ev.SystemNotice(at=0.0, topic="test", message="two"))
    assert len(printer.drain()) == 1


async def test_past_the_bound_recording_stops_loudly_and_the_run_is_marked_incomplete(
    config, runtime_for, state_dir
):
    async with runtime_for(config) as rt:
        sub = rt.subscribe("test")
        first = await run_to_end(rt, "quick")
        rt.store.max_held = 5
        await _fill_database(rt)
        second = await run_to_end(rt, "pair")  # tasks keep running
        assert rt.engine.executions[second].state == "succeeded"
        stop = await _notices(sub, "critical")
        assert "recording stopped" in stop.message and "more than 5 events" in stop.message
        assert any(a.rule == "store_write_failing" for a in rt.alerts.views())
        await rt.store._in_writer(rt.store._writer.execute, "PRAGMA max_page_count = 1000000")
        await _notices(sub, "error")  # writable again, but recording had stopped
    problem = rt.store.problem()
    assert problem is not None and "could not be recorded" in problem
    with ro(state_dir) as conn:  # what was held is written: a consistent prefix
        assert conn.execute("SELECT state FROM executions WHERE id = ?",
                            (first,)).fetchone()[0] == "succeeded"
        assert conn.execute("SELECT state FROM executions WHERE id = ?",
                            (second,)).fetchone()[0] == "running"


async def test_events_still_held_when_closing_are_retried_then_counted_as_unrecorded(
    config, runtime_for
):
    async with runtime_for(config) as rt:
        sub = rt.subscribe("test")
        rt.store.close_retry_s = 0.5
        await run_to_end(rt, "quick")
        await _fill_database(rt)
        await run_to_end(rt, "pair")
        await _notices(sub, "error")
        assert rt.store.held_events > 0
        started = time.monotonic()
    assert 0.4 < time.monotonic() - started < 10  # retried on close, for a while only
    assert rt.store.unrecorded > 0 and "could not be recorded" in (rt.store.problem() or "")


async def test_a_commit_is_acknowledged_before_the_retention_prune_after_it(tmp_path: Path
                                                                            ) -> None:  # fmt: skip
    """Retention prunes after a commit (the first of each store, then hourly): the engine,
    waiting for that commit (a creation's first tasks, a dependant's start), does not wait
    for the prune too, which on a large database deletes for a while."""
    import threading

    from l3tui.store.sqlite import Store
    from l3tui.store.writer import Writer

    entered, release = threading.Event(), threading.Event()
    real = Writer.prune

    def slow_prune(self: Writer, metrics_cutoff: float, events_cutoff: float) -> None:
        entered.set()
        release.wait(60)
        real(self, metrics_cutoff, events_cutoff)

    bus = EventBus()
    store = Store(tmp_path / "state", actor="test")
    store._writer.prune = slow_prune.__get__(store._writer)  # type: ignore[method-assign]
    await store.open(bus, recover=False)
    try:
        bus.publish(ev.SystemNotice(at=time.time(), topic="t", message="m", severity="info"))
        committed = asyncio.ensure_future(bus.durable())
        async with asyncio.timeout(30):
            while not entered.is_set():  # the commit is done and the prune has begun
                await asyncio.sleep(0.01)
            await committed  # acknowledged while the prune still runs
        assert not release.is_set()
    finally:
        release.set()
        await store.close()
    with sqlite3.connect(tmp_path / "state" / "l3tui.db") as conn:
        assert conn.execute("SELECT count(*) FROM events WHERE kind = 'system_notice' AND "
                            "json_extract(data, '$.topic') = 't'").fetchone()[0] == 1
