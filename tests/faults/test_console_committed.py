"""The console shows as done only what the store has (issue 10, item 7): with the writer
held (a slow disk), a task whose process has succeeded stays un-succeeded on screen until
its success is committed; then it shows. A real Runtime, a real process, the real app."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from l3tui.dashboard.app import ConsoleApp
from tests.dashboard.test_keys import until

WORKFLOWS = """
workflows:
  one:
    name: one
    tasks:
      - {id: quick, action: say}
"""
ACTIONS = """
actions:
  say: {command: [sh, -c, 'while [ ! -e "$0" ]; do sleep 0.01; done; echo committed-test-7', %s]}
"""


async def test_a_success_shows_only_once_the_store_has_it(
    make_config: Callable[..., Any], runtime_for: Callable[..., Any], tmp_path: Path
) -> None:
    go = tmp_path / "go"  # the task ends only once the store is held (not before: a
    # success committed before the hold is rightly shown)
    config = make_config(WORKFLOWS, actions=ACTIONS % json.dumps(str(go)))
    async with runtime_for(config) as rt:
        gate = threading.Event()
        gate.set()
        writer = rt.store._writer
        commit = writer.commit

        def slow_commit(events: list[Any]) -> None:
            gate.wait(60)  # the disk is slow: this commit waits
            commit(events)

        writer.commit = slow_commit
        app = ConsoleApp(rt, in_process=True)
        async with app.run_test(size=(120, 40)):
            started = await rt.run_workflow("one")
            exec_id = started.execution_id
            assert exec_id is not None
            # Spawned: its start is committed (durable before action), so holding the
            # store from here holds only what comes after. The state says "running" before
            # that commit; holding the store then would hold the spawn too.
            await until(lambda: rt.engine.executions[exec_id].tasks["quick"].pid is not None,
                        timeout=60)  # fmt: skip
            gate.clear()  # from now on the store is held
            go.touch()
            await until(lambda: rt.engine.executions[exec_id].tasks["quick"].state.value
                        == "succeeded", timeout=60)  # fmt: skip
            # The engine knows; the disk does not yet: the console must not say so.
            for _ in range(20):
                app.refresh_now(full=True)
                shown = app.executions.get(exec_id)
                assert shown is None or shown.tasks[0].state != "succeeded"
                await asyncio.sleep(0.05)
            gate.set()
            await until(lambda: (app.refresh_now(full=False) or True)
                        and exec_id in app.executions
                        and app.executions[exec_id].tasks[0].state == "succeeded",
                        timeout=60)  # fmt: skip
