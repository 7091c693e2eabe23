"""A bug in how events become rows (an exception that is not SQLite's) must be loud and
fail the run, never end the writer silently: the durable subscription then waited forever
and a run whose tasks waited for "success on disk" hung instead of failing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from l3tui.engine import events as ev
from l3tui.store.rows import BatchBuilder

WORKFLOWS = """
workflows:
  two:
    name: two
    tasks:
      - {id: first, action: noop}
      - {id: second, action: noop, dependencies: [first]}
"""
ACTIONS = """
actions:
  noop: {command: ["true"]}
"""


async def run_two(rt: Any) -> tuple[str, list[ev.SystemNotice]]:
    """Run `two` to its end, bounded (a writer that died hung here), and the store's notices
    (the list goes on filling after this returns)."""
    notices: list[ev.SystemNotice] = []
    rt.bus.add_listener(notices.append, kinds=[ev.SystemNotice])
    async with asyncio.timeout(60):
        result = await rt.run_workflow("two")
        state = await rt.wait(result.execution_id)
    return state, notices


@pytest.mark.parametrize("error", [TypeError, ValueError, KeyError])
async def test_a_batch_the_builder_cannot_map_fails_the_run_loudly_and_nothing_hangs(
    make_config, runtime_for, monkeypatch, error
):
    config = make_config(WORKFLOWS, actions=ACTIONS)
    build = BatchBuilder.build
    broken = {"once": False}

    def build_with_a_bug(self: BatchBuilder, events: list[ev.Event]) -> object:
        events = list(events)
        if not broken["once"] and any(isinstance(e, ev.TaskFinished) for e in events):
            broken["once"] = True
            raise error("a bug in mapping a task's end")
        return build(self, events)

    monkeypatch.setattr(BatchBuilder, "build", build_with_a_bug)
    async with runtime_for(config) as rt:
        state, notices = await run_two(rt)
        assert broken["once"]
        assert state == "succeeded"
        problem = rt.store.problem()
        assert problem is not None and "could not be recorded" in problem
        assert any(n.severity in ("error", "critical") and "a bug" in n.message
                   for n in notices), [n.message for n in notices]  # fmt: skip
        # the writer goes on: what comes after the broken batch is written
        async with asyncio.timeout(30):
            await rt.bus.durable()


async def test_a_bug_past_the_commit_stops_recording_loudly_and_nothing_hangs(
    make_config, runtime_for, monkeypatch
):
    """The writer's own bookkeeping after a commit (pruning) raising: recording stops with
    a critical notice (the run exits 1), and nobody waits forever for a commit."""
    from l3tui.store.sqlite import Store

    config = make_config(WORKFLOWS, actions=ACTIONS)
    prune = Store._maybe_prune
    broken = {"once": False}

    async def prune_with_a_bug(self: Store) -> None:
        if not broken["once"]:
            broken["once"] = True
            raise RuntimeError("a bug after a commit")
        await prune(self)

    monkeypatch.setattr(Store, "_maybe_prune", prune_with_a_bug)
    async with runtime_for(config) as rt:
        state, notices = await run_two(rt)
        assert broken["once"]
        assert state == "succeeded"
        assert rt.store.stopped is not None and "a bug after a commit" in rt.store.stopped
        assert rt.store.problem() is not None
        assert any(n.severity == "critical" and "recording stopped" in n.message
                   for n in notices), [n.message for n in notices]  # fmt: skip
