"""The coordinator inside a real Runtime (real store, real processes): decisions dropped in
the inbox are recorded before they act and act once; results reach the outbox once and
match the store; analysis updates start the workflows that listen; batches keep to their
parallelism; a restart acts on what was recorded and books what was written."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from l3tui.store import coordination
from tests.conftest import descendants_by_marker, live_processes, write_config
from tests.coordinator.conftest import (
    ACTIONS,
    SCHEDULING,
    WORKFLOWS,
    drop,
    executions_of,
    query,
    results,
    until,
)


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return write_config(tmp_path / "config", WORKFLOWS, ACTIONS, SCHEDULING)


def result_of(state: Path, decision_id: str) -> list[dict[str, Any]]:
    return [r for r in results(state) if r["decision_id"] == decision_id]


async def test_a_decision_in_the_inbox_runs_once_and_its_result_names_it(
    runtime_for: Callable[..., Any], config_dir: Path, state_dir: Path
) -> None:
    inbox = state_dir / "inbox"
    async with runtime_for(config_dir, coordinate="all"):
        drop(inbox, "first.json", {"id": "d-1", "kind": "run_workflow", "workflow": "quick",
                                   "source": "L2"})  # fmt: skip
        [line] = await until(lambda: result_of(state_dir, "d-1"))
        assert line["outcome"] == "succeeded" and line["workflow"] == "quick"
        assert line["trigger"] == "decision:d-1" and line["task_counts"] == {"succeeded": 2}
        await until(lambda: (inbox / "processed" / "first.json").exists())
        # The same id again, in another file: recorded as a repeat, nothing runs.
        drop(inbox, "again.json", {"id": "d-1", "kind": "run_workflow", "workflow": "quick",
                                   "source": "L2"})  # fmt: skip
        await until(lambda: (inbox / "processed" / "again.json").exists())
    assert len(executions_of(state_dir, "d-1")) == 1
    assert len(result_of(state_dir, "d-1")) == 1
    kinds = [r[0] for r in query(state_dir, "SELECT kind FROM events WHERE kind LIKE "
                                 "'decision_%' ORDER BY id")]  # fmt: skip
    assert kinds == ["decision_received", "decision_acted", "decision_received"]
    duplicate = json.loads(query(state_dir, "SELECT data FROM events WHERE kind = "
                                 "'decision_received' ORDER BY id DESC LIMIT 1")[0][0])
    assert duplicate["duplicate"] is True
    # Recorded before it acted: the decision's receipt precedes the execution's creation.
    order = [r[0] for r in query(state_dir, "SELECT kind FROM events WHERE kind IN "
                                 "('decision_received', 'execution_created') ORDER BY id")]
    assert order[:2] == ["decision_received", "execution_created"]
    audit = query(state_dir, "SELECT actor, action, outcome FROM audit WHERE action = "
                  "'execution.run'")
    assert audit and audit[0][0].startswith("L2 (decision d-1 via inbox:first.json)")


async def test_a_malformed_file_is_rejected_with_its_reason_and_the_next_one_runs(
    runtime_for: Callable[..., Any], config_dir: Path, state_dir: Path
) -> None:
    inbox = state_dir / "inbox"
    async with runtime_for(config_dir, coordinate="all"):
        drop(inbox, "a-bad.json", b'{"id": "d-2", "kind": "run_workflow", "workflow": ')
        drop(inbox, "b-unknown-workflow.json", {"id": "d-3", "kind": "run_workflow",
                                                "workflow": "nope"})  # fmt: skip
        drop(inbox, "c-good.json", {"id": "d-4", "kind": "run_workflow", "workflow": "quick"})
        await until(lambda: result_of(state_dir, "d-4"))
        await until(lambda: (inbox / "rejected" / "b-unknown-workflow.json.error.json").exists())
    error = json.loads((inbox / "rejected" / "a-bad.json.error.json").read_text())
    assert error["file"] == "a-bad.json" and error["reason"].startswith("not JSON")
    error = json.loads((inbox / "rejected" / "b-unknown-workflow.json.error.json").read_text())
    assert error["decision_id"] == "d-3" and "unknown workflow 'nope'" in error["reason"]
    assert (inbox / "rejected" / "a-bad.json").read_bytes().startswith(b'{"id": "d-2"')
    # A rejected decision is never recorded: its id is still free for a corrected one.
    assert query(state_dir, "SELECT id FROM decisions ORDER BY id") == [("d-4",)]


async def test_a_batch_of_20_tasks_keeps_to_its_parallelism(
    runtime_for: Callable[..., Any], config_dir: Path, state_dir: Path
) -> None:
    tasks = [{"action": "nap", "params": {"seconds": "0.3"}} for _ in range(20)]
    async with runtime_for(config_dir, coordinate="all"):
        drop(state_dir / "inbox", "batch.json", {"id": "b-1", "kind": "run_batch",
                                                 "parallelism": 3, "tasks": tasks})
        [line] = await until(lambda: result_of(state_dir, "b-1"), timeout=60)
    assert line["outcome"] == "succeeded" and len(line["tasks"]) == 20
    spans = query(state_dir, "SELECT a.started_at, a.finished_at FROM task_attempts a JOIN "
                  "executions e ON e.id = a.execution_id WHERE e.trigger = 'decision:b-1'")
    assert len(spans) == 20
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans],
                   key=lambda e: (e[0], e[1]))  # an end before a start at the same instant
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert 2 <= peak <= 3


async def test_result_lines_match_the_store(
    runtime_for: Callable[..., Any], config_dir: Path, state_dir: Path
) -> None:
    inbox = state_dir / "inbox"
    async with runtime_for(config_dir, coordinate="all"):
        drop(inbox, "1.json", {"id": "r-1", "kind": "run_workflow", "workflow": "failing"})
        drop(inbox, "2.json", {"id": "r-2", "kind": "run_workflow", "workflow": "measured"})
        drop(inbox, "3.json", {"id": "r-3", "kind": "run_task", "action": "say",
                               "params": {"text": "${secret:TOKEN} ${env.HOME} literally"}})
        await until(lambda: len(results(state_dir)) >= 3)
    lines = {r["decision_id"]: r for r in results(state_dir)}
    conn = sqlite3.connect(f"file:{state_dir / 'l3tui.db'}?mode=ro", uri=True)
    try:
        for line in lines.values():
            state, started, finished, duration, workflow = conn.execute(
                "SELECT state, started_at, finished_at, duration_s, workflow_id FROM executions "
                "WHERE id = ?", (line["execution_id"],)).fetchone()  # fmt: skip
            assert (line["outcome"], line["started_at"], line["finished_at"],
                    line["duration_s"], line["workflow"]) == (state, started, finished,
                                                               duration, workflow)  # fmt: skip
            booked = conn.execute("SELECT decision_id, outcome FROM outbox WHERE "
                                  "execution_id = ?", (line["execution_id"],)).fetchone()
            assert booked == (line["decision_id"], line["outcome"])
    finally:
        conn.close()
    [bad] = lines["r-1"]["failed_tasks"]
    assert (bad["task_id"], bad["exit_code"], bad["last_lines"][-1]) == ("bad", 3,
                                                                         "the last words")
    assert lines["r-2"]["metrics"] == {"m": {"coverage": 87.5}}
    assert lines["r-3"]["action"] == "say" and lines["r-3"]["tasks"][0]["state"] == "succeeded"
    # A run_task's values are data: no placeholder in them was filled.
    log = next((state_dir / "runs" / lines["r-3"]["execution_id"]).glob("say.1.log"))
    assert log.read_text().strip() == "${secret:TOKEN} ${env.HOME} literally"


async def test_an_analysis_update_starts_the_workflows_whose_trigger_holds(
    runtime_for: Callable[..., Any], config_dir: Path, state_dir: Path
) -> None:
    async with runtime_for(config_dir, coordinate="all") as rt:
        low = await rt.coordinator.submit({"id": "a-1", "kind": "analysis_update",
                                           "topic": "lint", "payload": {"severity": "low"}},
                                          "test")  # fmt: skip
        assert low.applied and low.execution_ids == () and "no workflow" in low.message
        high = await rt.coordinator.submit({"id": "a-2", "kind": "analysis_update",
                                            "topic": "lint.dart",
                                            "payload": {"severity": "high"}}, "test")
        assert high.applied and len(high.execution_ids) == 1
        visit = await rt.coordinator.submit({
            "id": "a-3", "kind": "analysis_update", "topic": "people",
            "payload": {"who": "سارة", "report": {"kind": "visit"}}}, "test")  # fmt: skip
        assert visit.applied, visit.message
        await until(lambda: len(results(state_dir)) >= 2)
    workflows = {r["decision_id"]: r["workflow"] for r in results(state_dir)}
    assert workflows == {"a-2": "lint_fix", "a-3": "greet"}
    [params] = query(state_dir, "SELECT params FROM executions WHERE trigger = 'decision:a-3'")
    assert json.loads(params[0]) == {"who": "سارة"}


async def test_not_before_waits_and_a_cancel_naming_the_decision_withdraws_it(
    runtime_for: Callable[..., Any], config_dir: Path, state_dir: Path
) -> None:
    async with runtime_for(config_dir, coordinate="all") as rt:
        later = await rt.coordinator.submit({"id": "w-1", "kind": "run_workflow",
                                             "workflow": "quick", "not_before": "1h"}, "test")
        assert later.status == "accepted" and later.waits_until is not None
        soon = await rt.coordinator.submit({"id": "w-2", "kind": "run_workflow",
                                            "workflow": "quick", "not_before": 300}, "test")
        assert soon.applied is None
        withdrawn = await rt.coordinator.submit({"id": "w-3", "kind": "cancel",
                                                 "execution": "w-1"}, "test")
        assert withdrawn.applied and "withdrew decision w-1" in withdrawn.message
        await until(lambda: result_of(state_dir, "w-2"))
    assert executions_of(state_dir, "w-1") == []
    assert query(state_dir, "SELECT state FROM decisions WHERE id = 'w-1'") == [("cancelled",)]


async def test_a_decision_recorded_but_not_acted_on_acts_at_the_next_start(
    runtime_for: Callable[..., Any], config_dir: Path, state_dir: Path
) -> None:
    async with runtime_for(config_dir, coordinate="all") as rt:
        out = await rt.coordinator.submit({"id": "n-1", "kind": "run_workflow",
                                           "workflow": "quick", "not_before": "2s"}, "test")
        assert out.waits_until is not None
    # l3tui stopped before its time: recorded, not acted on.
    assert query(state_dir, "SELECT state FROM decisions WHERE id = 'n-1'") == [("received",)]
    assert executions_of(state_dir, "n-1") == []
    async with runtime_for(config_dir, coordinate="all"):
        await until(lambda: result_of(state_dir, "n-1"))
    assert len(executions_of(state_dir, "n-1")) == 1


async def test_a_decision_that_acted_but_was_not_marked_does_not_act_again(
    runtime_for: Callable[..., Any], config_dir: Path, state_dir: Path
) -> None:
    """A kill between the execution's commit and the decision's mark: its trigger shows
    that it had acted."""
    async with runtime_for(config_dir) as rt:
        started = await rt.run_workflow("quick", trigger="decision:k-1")
        await rt.wait(started.execution_id)
        body = json.dumps({"id": "k-1", "kind": "run_workflow", "workflow": "quick"})
        record = coordination.DecisionRecord("k-1", "run_workflow", body, "x", "",
                                             "inbox:k.json", rt.clock.time() - 5, None)
        await rt.store.transact(lambda conn: coordination.record_decisions(conn, [record]))
    async with runtime_for(config_dir, coordinate="all"):
        pass
    assert executions_of(state_dir, "k-1") == [started.execution_id]
    [(state, message)] = query(state_dir, "SELECT state, message FROM decisions")
    assert state == "acted" and "acted before l3tui stopped" in message


async def test_a_cancel_by_decision_kills_the_whole_process_tree(
    runtime_for: Callable[..., Any], config_dir: Path, state_dir: Path
) -> None:
    async with runtime_for(config_dir, coordinate="all") as rt:
        ran = await rt.coordinator.submit({"id": "t-1", "kind": "run_task", "action": "tree",
                                           "params": {"seconds": "1051.61"}}, "test")
        assert ran.applied, ran.message
        pids = await until(lambda: (found := descendants_by_marker("sleep 1051.61"))
                           and len(found) >= 2 and found)  # fmt: skip
        out = await rt.coordinator.submit({"id": "t-2", "kind": "cancel", "execution": "t-1"},
                                          "test")  # fmt: skip
        assert out.applied, out.message
        await until(lambda: not live_processes(pids), timeout=30)
        [line] = await until(lambda: result_of(state_dir, "t-1"))
    assert line["outcome"] == "cancelled"


async def test_the_same_id_for_another_decision_is_rejected(
    runtime_for: Callable[..., Any], config_dir: Path, state_dir: Path
) -> None:
    async with runtime_for(config_dir, coordinate="all") as rt:
        first = await rt.coordinator.submit({"id": "s-1", "kind": "run_workflow",
                                             "workflow": "quick"}, "test")  # fmt: skip
        again = await rt.coordinator.submit({"kind": "run_workflow", "workflow": "quick",
                                             "id": "s-1"}, "test")  # fmt: skip
        other = await rt.coordinator.submit({"id": "s-1", "kind": "run_workflow",
                                             "workflow": "failing"}, "test")  # fmt: skip
    assert first.status == "accepted" and first.applied
    assert again.status == "duplicate" and again.execution_ids == first.execution_ids
    assert other.status == "rejected" and "already used" in other.message
    assert len(executions_of(state_dir, "s-1")) == 1


async def test_a_result_written_but_not_booked_is_booked_at_restart_not_written_again(
    runtime_for: Callable[..., Any], config_dir: Path, state_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from l3tui.coordinator import outbox as outbox_module

    def crash(*args: Any, **kwargs: Any) -> None:
        raise sqlite3.OperationalError("simulated crash between the write and its booking")

    async with runtime_for(config_dir, coordinate="all") as rt:
        monkeypatch.setattr(outbox_module, "book_results", crash)
        await rt.coordinator.submit({"id": "o-1", "kind": "run_workflow", "workflow": "quick"},
                                    "test")  # fmt: skip
        await until(lambda: result_of(state_dir, "o-1"))
    monkeypatch.undo()
    path = state_dir / "outbox" / "results.jsonl"
    with open(path, "ab") as fh:  # and a crash inside the next write: a torn line
        fh.write(b'{"v":1,"decision_id":"o-2","execution_id":"x')
    assert query(state_dir, "SELECT count(*) FROM outbox") == [(0,)]
    async with runtime_for(config_dir, coordinate="all") as rt:
        await rt.coordinator.submit({"id": "o-3", "kind": "run_workflow", "workflow": "quick"},
                                    "test")  # fmt: skip
        await until(lambda: result_of(state_dir, "o-3"))
    lines = path.read_text().splitlines()
    assert [json.loads(line)["decision_id"] for line in lines] == ["o-1", "o-3"]
    assert query(state_dir, "SELECT decision_id FROM outbox ORDER BY written_at") == [
        ("o-1",), ("o-3",)]


async def test_results_are_rotated_by_size_without_losing_or_repeating_a_line(
    runtime_for: Callable[..., Any], tmp_path: Path, state_dir: Path
) -> None:
    scheduling = SCHEDULING + "events:\n  outbox: {max_mb: 0.001, keep: 20}\n"
    config_dir = write_config(tmp_path / "small", WORKFLOWS, ACTIONS, scheduling)
    async with runtime_for(config_dir, coordinate="all") as rt:
        for i in range(8):
            out = await rt.coordinator.submit({"id": f"z-{i}", "kind": "run_workflow",
                                               "workflow": "quick"}, "test")  # fmt: skip
            await rt.wait(out.execution_ids[0])
        await until(lambda: query(state_dir, "SELECT count(*) FROM outbox") == [(8,)])
    files = sorted((state_dir / "outbox").iterdir())
    assert len(files) > 2 and all(f.stat().st_size <= 0.001 * 2**20 for f in files)
    ids = [json.loads(line)["decision_id"] for f in files for line in f.read_text().splitlines()]
    assert sorted(ids) == [f"z-{i}" for i in range(8)]
    assert oct(os.stat(files[0]).st_mode & 0o777) == "0o600"


async def test_a_burst_larger_than_one_round_is_taken_as_announced_not_after_settling(
    runtime_for: Callable[..., Any], config_dir: Path, state_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Files inotify announced as renamed in are taken at once, in every round, not only in
    the first (a file found by a periodic scan waits to settle; here, an hour)."""
    from l3tui.coordinator import coordinator as coordinator_module
    from l3tui.coordinator import inbox as inbox_module

    monkeypatch.setattr(coordinator_module, "BATCH", 5)
    monkeypatch.setattr(inbox_module, "SETTLE_S", 3600.0)
    async with runtime_for(config_dir, coordinate="all") as rt:
        assert rt.coordinator.watcher.inotify
        for i in range(12):
            drop(state_dir / "inbox", f"{i:02d}.json", {"id": f"u-{i}", **{
                "kind": "run_workflow", "workflow": "quick"}})  # fmt: skip
        await until(lambda: len(list((state_dir / "inbox" / "processed").iterdir())) == 12)
    assert len(query(state_dir, "SELECT id FROM decisions")) == 12


async def test_an_execution_that_ended_while_no_outbox_ran_is_reported_at_the_next_start(
    runtime_for: Callable[..., Any], config_dir: Path, state_dir: Path
) -> None:
    async with runtime_for(config_dir, coordinate="all"):
        pass  # the outbox begins here
    async with runtime_for(config_dir) as rt:  # no coordinator: nothing writes results
        started = await rt.run_workflow("failing")
        await rt.wait(started.execution_id)
    assert results(state_dir) == []
    async with runtime_for(config_dir, coordinate="all"):
        [line] = await until(lambda: results(state_dir))
    assert line["execution_id"] == started.execution_id and line["decision_id"] is None
    assert line["outcome"] == "failed"
