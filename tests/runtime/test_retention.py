"""What a long-lived Runtime (daemon, console) keeps of executions that ended: the newest
ones, up to a number of tasks, not every one it ever ran (a daemon running large workflows
all day grew by every execution's task records). A real Runtime and store."""

from __future__ import annotations

import gc

from l3tui.engine.model import Execution
from l3tui.runtime import root

WORKFLOWS = """
workflows:
  wide:
    name: wide
    tasks:
      - {id: a, action: noop}
      - {id: b, action: noop}
      - {id: c, action: noop}
      - {id: d, action: noop}
"""


async def test_finished_executions_are_let_go_past_the_budget(make_config, runtime_for,
                                                              monkeypatch) -> None:  # fmt: skip
    monkeypatch.setattr(root, "FINISHED_TASKS_KEPT", 10)  # the newest three always stay
    config = make_config(WORKFLOWS, actions="actions: {}\n")
    ids: list[str] = []
    async with runtime_for(config) as rt:
        for _ in range(6):
            result = await rt.run_workflow("wide")
            assert result.execution_id is not None, result.message
            assert await rt.wait(result.execution_id) == "succeeded"
            ids.append(result.execution_id)
        newest = ids[-3:]
        assert sorted(rt.engine.executions) == sorted(newest)
        assert [e.id for e in rt.views.recent] == list(reversed(newest))
        assert [v.id for v in rt.snapshot().executions] == list(reversed(newest))
        assert rt.execution(ids[-1]) is not None
        gc.collect()
        held = {o.id for o in gc.get_objects() if isinstance(o, Execution)}
        assert held == set(newest), "executions let go are still referenced"
        # What was let go is still in the store, and a command on it says it is unknown.
        result = await rt.cancel(ids[0])
        assert not result.applied and ids[0] in result.message
