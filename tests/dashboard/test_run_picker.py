"""The run picker (`n`) as a new user drives it: arrows move through the list from the
filter box, enter runs the highlighted entry (not the first match), tab reaches the list,
and ids and names rank above a match through a workflow's type or description."""

from __future__ import annotations

import pytest
from textual.widgets import Input, OptionList

from l3tui.dashboard.app import ConsoleApp
from l3tui.dashboard.screens.run_picker import ParamsScreen, RunPickerScreen
from l3tui.engine.api import WorkflowInfo
from tests.dashboard.test_keys import until

WORKFLOWS = """
workflows:
  backup_state:
    name: "نسخ احتياطي لحالة l3tui"
    description: "a daily copy of the execution database"
    type: backup_restore
    tasks:
      - {id: copy, action: nap, parameters: {seconds: 1021}}
  alpha:
    name: alpha
    tasks:
      - {id: a, action: nap, parameters: {seconds: 1022}}
  beta:
    name: beta
    tasks:
      - {id: b, action: nap, parameters: {seconds: 1023}}
  gamma:
    name: gamma
    tasks:
      - {id: c, action: nap, parameters: {seconds: 1024}}
templates:
  backup_restore:
    name: "نسخ احتياطي إلى وجهة"
    description: "copy the SQLite database to a destination and check it"
    type: backup_restore
    params:
      target: {type: path, required: true}
    tasks:
      - {id: copy, action: nap, parameters: {seconds: 1025}}
"""
ACTIONS = """
actions:
  nap: {command: [sleep, "${seconds}"]}
"""


@pytest.fixture
def picker_config(make_config):
    return make_config(WORKFLOWS, actions=ACTIONS)


def console(rt) -> ConsoleApp:
    return ConsoleApp(rt, theme="l3-ansi", bidi=True, ssh=False, actor="tester")


def started(rt) -> list[str]:
    return [e.workflow_id for e in rt.engine.executions.values()]


async def open_picker(app: ConsoleApp, pilot) -> RunPickerScreen:
    await pilot.press("n")
    return await until(lambda: isinstance(app.screen, RunPickerScreen) and app.screen)


async def test_arrows_from_the_filter_box_move_and_enter_runs_the_highlighted_entry(
    picker_config, runtime_for
):
    async with runtime_for(picker_config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            picker = await open_picker(app, pilot)
            assert isinstance(app.focused, Input)  # typing filters straight away
            options = picker.query_one(OptionList)
            await pilot.press("down", "down")
            await until(lambda: options.highlighted == 2)
            chosen = options.get_option_at_index(2).id
            assert isinstance(app.focused, Input)  # the arrows did not take the focus away
            await pilot.press("up", "down", "enter")
            await until(lambda: started(rt))
            assert started(rt) == [chosen]


async def test_an_id_prefix_ranks_above_a_match_through_the_type(picker_config, runtime_for):
    """`backup_re` + enter opens the template `backup_restore`; it used to start
    `backup_state`, which only matched through its type."""
    async with runtime_for(picker_config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            picker = await open_picker(app, pilot)
            await pilot.press(*"backup_re")
            options = picker.query_one(OptionList)
            await until(lambda: options.option_count == 2)
            assert [options.get_option_at_index(i).id for i in range(2)] == [
                "backup_restore", "backup_state"]  # fmt: skip
            await pilot.press("enter")
            await until(lambda: isinstance(app.screen, ParamsScreen))
            assert app.screen.workflow.id == "backup_restore"
            assert started(rt) == []


async def test_tab_reaches_the_list_and_enter_there_runs_the_highlighted_entry(
    picker_config, runtime_for
):
    async with runtime_for(picker_config) as rt:
        app = console(rt)
        async with app.run_test(size=(80, 24)) as pilot:
            picker = await open_picker(app, pilot)
            await pilot.press(*"a")  # alpha, beta, gamma, backup_*: 'a' is everywhere
            options = picker.query_one(OptionList)
            await pilot.press("tab")
            await until(lambda: app.focused is options)
            await pilot.press("down")
            await until(lambda: options.highlighted == 1)
            chosen = options.get_option_at_index(1).id
            await pilot.press("enter")
            if chosen == "backup_restore":
                await until(lambda: isinstance(app.screen, ParamsScreen))
            else:
                await until(lambda: started(rt))
                assert started(rt) == [chosen]


def test_rank_orders_exact_id_then_prefixes_then_words_then_descriptions() -> None:
    from l3tui.dashboard.screens.run_picker import rank

    def info(wf_id: str, name: str, description: str = "", kind: str | None = None):
        return WorkflowInfo(wf_id, name, description, kind, False, 1)

    state = info("backup_state", "nightly copy", "sqlite backup", "backup_restore")
    restore = info("backup_restore", "copy to a destination", "sqlite", "backup_restore")
    other = info("cleanup", "remove old backups")
    assert rank(restore, "backup_restore") < rank(state, "backup_restore")
    assert rank(restore, "backup_re") < rank(state, "backup_re")
    assert rank(other, "backups") is not None and rank(state, "backups") is None
    assert rank(state, "sqlite") is not None  # descriptions still find things...
    assert rank(other, "remove") < rank(state, "sqlite")  # ...after names do
    assert rank(state, "") is not None  # an empty filter lists everything
    assert rank(state, "zzz") is None
