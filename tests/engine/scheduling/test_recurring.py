"""Recurring tasks through the real Runtime with a controllable clock: DST nights in
Europe/Berlin, downtime with each catch-up policy, overlap policies, persisted state across
restarts, run-time enable/disable, workflow cron triggers and timezone precedence."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from l3tui.config import load_config
from l3tui.engine import events as ev
from l3tui.engine.clock import FakeClock
from l3tui.engine.scheduling.cron import zone_name
from l3tui.engine.scheduling.recurring import jobs_from_config
from l3tui.store.schedules import read_schedule_states
from tests.engine.scheduling.test_scheduler import WAIT_FILE, FakeSampler, wait_for

BERLIN = ZoneInfo("Europe/Berlin")


def at(*args: int, fold: int = 0) -> float:
    return datetime(*args, tzinfo=BERLIN).replace(fold=fold).timestamp()


def config_with(job: str, gate: Path | None = None, timezone: str = "Europe/Berlin") -> str:
    return f"""
scheduling:
  timezone: {timezone}
  resource_limits: {{max_concurrent_tasks: 4}}
  execution: {{grace_period: 1s, default_timeout: 60s}}
  sampler: {{interval: 60s}}
  recurring_tasks:
    - {job}
"""


WORKFLOWS = """
workflows:
  nightly:
    name: nightly
    tasks:
      - {id: t, action: noop}
"""


def slow_workflows(gate: Path) -> str:
    return WORKFLOWS + f"""
  slow:
    name: slow
    tasks:
      - {{id: hold, action: wait_file, parameters: {{path: '{gate}'}}}}
"""


async def fires(sub, count: int, timeout: float = 30.0) -> list[ev.ScheduleFired]:
    """The next `count` ScheduleFired events (bounded wait)."""
    out: list[ev.ScheduleFired] = []
    async with asyncio.timeout(timeout):
        while len(out) < count:
            event = await sub.get()
            if isinstance(event, ev.ScheduleFired):
                out.append(event)
    return out


def cron_executions(rt, job_id: str) -> list:
    return [e for e in rt.engine.executions.values() if e.trigger == f"cron:{job_id}"]


async def caught_up(rt, runs_end: bool = True, timeout: float = 30.0) -> None:
    """Wait (bounded) until the recurring loop has handled every fire time up to the clock's
    now: each enabled task's next fire lies ahead and no pass is under way; with `runs_end`
    also until the runs it started have ended (a run still going when the next fire time
    comes makes that fire an overlap, which only the overlap tests want)."""
    recurring = rt.recurring

    def done() -> bool:
        now = recurring.clock.time()
        return not recurring._ticking.locked() and all(
            (nxt := recurring.next_fire(job_id)) is None or nxt.timestamp() > now
            for job_id in recurring.jobs) and not (runs_end and any(recurring.active.values()))

    await wait_for(done, timeout)


async def walk(rt, clock: FakeClock, until: float, step: float = 600.0,
               runs_end: bool = True) -> None:  # fmt: skip
    """Move the clock in steps (shorter than any job's period), the loop handling each
    instant before the next: what fires never depends on how fast the machine is."""
    while clock.time() < until:
        clock.advance(min(step, until - clock.time()))
        await caught_up(rt, runs_end)


async def test_fixed_time_job_fires_once_on_the_fall_back_night(make_config, runtime_for):
    config = make_config(WORKFLOWS, scheduling=config_with(
        '{id: at_two, cron: "0 2 * * *", workflow: nightly}'))
    clock = FakeClock(start=at(2026, 10, 25, 1, 0))
    async with runtime_for(config, clock=clock, sampler=FakeSampler(),
                           fire_schedules=True) as rt:
        sub = rt.subscribe("fires")
        await walk(rt, clock, at(2026, 10, 25, 2, 0) + 30)
        [fired] = await fires(sub, 1)
        assert fired.fire_time == at(2026, 10, 25, 2, 0, fold=0)  # 02:00 +02:00
        assert fired.outcome == "started"
        # the repeated hour (02:00-03:00 +01:00) passes without a second fire
        await walk(rt, clock, at(2026, 10, 25, 4, 0))
        await wait_for(lambda: rt.recurring.next_fire("at_two").day == 26)
        assert len(cron_executions(rt, "at_two")) == 1
        assert rt.recurring.next_fire("at_two") == datetime(2026, 10, 26, 2, 0, tzinfo=BERLIN)


async def test_job_in_the_spring_forward_gap_fires_once_at_0300(make_config, runtime_for):
    config = make_config(WORKFLOWS, scheduling=config_with(
        '{id: half_two, cron: "30 2 * * *", workflow: nightly}'))
    clock = FakeClock(start=at(2027, 3, 28, 0, 30))
    async with runtime_for(config, clock=clock, sampler=FakeSampler(),
                           fire_schedules=True) as rt:
        sub = rt.subscribe("fires")
        await walk(rt, clock, at(2027, 3, 28, 3, 0) + 10)  # 01:59:59 +01:00 -> 03:00 +02:00
        [fired] = await fires(sub, 1)
        assert datetime.fromtimestamp(fired.fire_time, BERLIN).strftime("%H:%M%z") == \
            "03:00+0200"
        await walk(rt, clock, at(2027, 3, 28, 5, 0))
        await wait_for(lambda: rt.recurring.next_fire("half_two").day == 29)
        assert len(cron_executions(rt, "half_two")) == 1


async def test_hourly_job_fires_25_times_across_the_fall_back_day(make_config, runtime_for):
    config = make_config(WORKFLOWS, scheduling=config_with(
        '{id: hourly, cron: "0 * * * *", workflow: nightly}'))
    clock = FakeClock(start=at(2026, 10, 24, 23, 59))
    async with runtime_for(config, clock=clock, sampler=FakeSampler(),
                           fire_schedules=True) as rt:
        sub = rt.subscribe("fires")
        await walk(rt, clock, at(2026, 10, 25, 23, 30), step=900)
        fired = await fires(sub, 25)
        assert len({f.fire_time for f in fired}) == 25
        assert len(cron_executions(rt, "hourly")) == 25


async def downtime(make_config, runtime_for, catch_up: str):
    config = make_config(WORKFLOWS, scheduling=config_with(
        f'{{id: at_two, cron: "0 2 * * *", workflow: nightly, catch_up: {catch_up}}}'))
    clock = FakeClock(start=at(2026, 6, 1, 1, 59))
    async with runtime_for(config, clock=clock, sampler=FakeSampler(),
                           fire_schedules=True) as rt:
        sub = rt.subscribe("fires")
        await walk(rt, clock, at(2026, 6, 1, 2, 0) + 20)
        await fires(sub, 1)
    clock.set(at(2026, 6, 3, 10, 0))  # down across 06-02 02:00 and 06-03 02:00
    return config, clock


async def test_downtime_across_two_fire_times_runs_once_with_run_once(make_config, runtime_for):
    config, clock = await downtime(make_config, runtime_for, "run_once")
    async with runtime_for(config, clock=clock, sampler=FakeSampler(),
                           fire_schedules=True) as rt:
        sub = rt.subscribe("all")
        await rt.recurring.tick()
        await wait_for(lambda: len(cron_executions(rt, "at_two")) == 1)
        await asyncio.sleep(0.05)
        assert len(cron_executions(rt, "at_two")) == 1
        state = rt.recurring.states["at_two"]
        assert state.last_fire == at(2026, 6, 3, 2, 0) and state.last_outcome == "started"
        assert rt.recurring.next_fire("at_two") == datetime(2026, 6, 4, 2, 0, tzinfo=BERLIN)
        notices = [e.message for e in sub.drain() if isinstance(e, ev.SystemNotice)]
        assert any("2 fire time(s) missed" in m and "running once now" in m for m in notices)


async def test_downtime_across_two_fire_times_runs_nothing_with_skip(make_config, runtime_for):
    config, clock = await downtime(make_config, runtime_for, "skip")
    async with runtime_for(config, clock=clock, sampler=FakeSampler(),
                           fire_schedules=True) as rt:
        sub = rt.subscribe("all")
        await rt.recurring.tick()
        await wait_for(lambda: rt.recurring.states["at_two"].last_outcome.startswith("missed"))
        assert cron_executions(rt, "at_two") == []
        assert rt.recurring.states["at_two"].last_outcome == "missed 2"
        assert rt.recurring.next_fire("at_two") == datetime(2026, 6, 4, 2, 0, tzinfo=BERLIN)
        events = sub.drain()
        assert [e.outcome for e in events if isinstance(e, ev.ScheduleFired)] == ["missed"]
        clock.set(at(2026, 6, 4, 2, 0) + 5)  # the next one fires normally
        await rt.recurring.tick()
        await wait_for(lambda: len(cron_executions(rt, "at_two")) == 1)


async def test_restart_with_persisted_state_does_not_refire(make_config, runtime_for, state_dir):
    config = make_config(WORKFLOWS, scheduling=config_with(
        '{id: at_two, cron: "0 2 * * *", workflow: nightly}'))
    clock = FakeClock(start=at(2026, 6, 1, 1, 59))
    async with runtime_for(config, clock=clock, sampler=FakeSampler(),
                           fire_schedules=True) as rt:
        sub = rt.subscribe("fires")
        await walk(rt, clock, at(2026, 6, 1, 2, 0) + 20)
        await fires(sub, 1)
    saved = read_schedule_states(state_dir)["at_two"]
    assert saved.last_fire == at(2026, 6, 1, 2, 0) and saved.cursor == saved.last_fire
    clock.advance(40)
    async with runtime_for(config, clock=clock, sampler=FakeSampler(),
                           fire_schedules=True) as rt:
        await rt.recurring.tick()
        await asyncio.sleep(0.05)
        assert cron_executions(rt, "at_two") == []
        assert rt.recurring.next_fire("at_two") == datetime(2026, 6, 2, 2, 0, tzinfo=BERLIN)


async def overlap_run(make_config, runtime_for, tmp_path, policy: str):
    gate = tmp_path / "gate"
    config = make_config(slow_workflows(gate), actions=WAIT_FILE, scheduling=config_with(
        f'{{id: every10, cron: "*/10 * * * *", workflow: slow, overlap: {policy}}}'))
    clock = FakeClock(start=at(2026, 6, 1, 0, 5))
    return gate, config, clock


async def test_overlap_skip_does_not_start_a_second_run(make_config, runtime_for, tmp_path):
    gate, config, clock = await overlap_run(make_config, runtime_for, tmp_path, "skip")
    async with runtime_for(config, clock=clock, sampler=FakeSampler(),
                           fire_schedules=True) as rt:
        sub = rt.subscribe("fires")
        await walk(rt, clock, at(2026, 6, 1, 0, 10) + 5, runs_end=False)
        first, = await fires(sub, 1)
        await walk(rt, clock, at(2026, 6, 1, 0, 20) + 5, runs_end=False)
        second, = await fires(sub, 1)
        assert (first.outcome, second.outcome) == ("started", "skipped")
        assert len(cron_executions(rt, "every10")) == 1
        gate.touch()


async def test_overlap_queue_one_runs_one_more_after_the_previous(make_config, runtime_for,
                                                                  tmp_path):
    gate, config, clock = await overlap_run(make_config, runtime_for, tmp_path, "queue_one")
    async with runtime_for(config, clock=clock, sampler=FakeSampler(),
                           fire_schedules=True) as rt:
        sub = rt.subscribe("fires")
        outcomes = []
        for minute in (10, 20, 30):  # each fire handled before the clock moves on
            await walk(rt, clock, at(2026, 6, 1, 0, minute) + 5, runs_end=False)
            outcomes += [f.outcome for f in await fires(sub, 1)]
        assert outcomes == ["started", "queued", "skipped"]  # only one waits
        assert len(cron_executions(rt, "every10")) == 1
        gate.touch()
        started, = await fires(sub, 1)
        assert started.outcome == "started" and started.fire_time == at(2026, 6, 1, 0, 20)
        await wait_for(lambda: len(cron_executions(rt, "every10")) == 2)
        for execution in cron_executions(rt, "every10"):
            assert await asyncio.wait_for(rt.wait(execution.id), 30) == "succeeded"


async def test_overlap_allow_runs_both(make_config, runtime_for, tmp_path):
    gate, config, clock = await overlap_run(make_config, runtime_for, tmp_path, "allow")
    async with runtime_for(config, clock=clock, sampler=FakeSampler(),
                           fire_schedules=True) as rt:
        sub = rt.subscribe("fires")
        await walk(rt, clock, at(2026, 6, 1, 0, 10) + 5, runs_end=False)
        await walk(rt, clock, at(2026, 6, 1, 0, 20) + 5, runs_end=False)
        assert [f.outcome for f in await fires(sub, 2)] == ["started", "started"]
        runs = cron_executions(rt, "every10")
        await wait_for(lambda: all(r.tasks["hold"].state == "running" for r in runs))
        gate.touch()


async def test_disable_is_persisted_and_enable_does_not_catch_up(make_config, runtime_for,
                                                                 state_dir):
    config = make_config(WORKFLOWS, scheduling=config_with(
        '{id: at_two, cron: "0 2 * * *", workflow: nightly}'))
    clock = FakeClock(start=at(2026, 6, 1, 1, 0))
    async with runtime_for(config, clock=clock, sampler=FakeSampler(),
                           fire_schedules=True) as rt:
        sub = rt.subscribe("changes")
        result = await rt.set_schedule_enabled("at_two", False, actor="ops")
        assert result.applied and "disabled" in result.message
        assert not (await rt.set_schedule_enabled("at_two", False)).applied
        assert "did you mean" in (await rt.set_schedule_enabled("at_tow", True)).message
        view = next(v for v in rt.snapshot().schedules if v.id == "at_two")
        assert view.enabled is False and view.next_fire is None
        changed = [e for e in sub.drain() if isinstance(e, ev.ScheduleChanged)]
        assert [(e.schedule_id, e.enabled) for e in changed] == [("at_two", False)]
    assert read_schedule_states(state_dir)["at_two"].enabled is False
    async with runtime_for(config, clock=clock, sampler=FakeSampler(),
                           fire_schedules=True) as rt:
        assert rt.recurring.enabled("at_two") is False
        await walk(rt, clock, at(2026, 6, 1, 3, 0), step=1800)
        assert cron_executions(rt, "at_two") == []
        assert (await rt.set_schedule_enabled("at_two", True)).applied
        await rt.recurring.tick()
        assert cron_executions(rt, "at_two") == []  # 02:00 passed while disabled
        assert rt.recurring.next_fire("at_two") == datetime(2026, 6, 2, 2, 0, tzinfo=BERLIN)


async def test_workflow_cron_trigger_is_a_recurring_task(make_config, runtime_for):
    config = make_config(WORKFLOWS.replace("    tasks:", "    triggers: [{cron: \"15 * * * *\"}]\n"
                                           "    tasks:"),
                         scheduling=config_with('{id: other, cron: "0 0 1 1 *", workflow: nightly}'))
    clock = FakeClock(start=at(2026, 6, 1, 9, 0))
    async with runtime_for(config, clock=clock, sampler=FakeSampler(),
                           fire_schedules=True) as rt:
        sub = rt.subscribe("fires")
        assert {v.id for v in rt.snapshot().schedules} == {"other", "nightly@cron"}
        await walk(rt, clock, at(2026, 6, 1, 9, 15) + 5)
        fired, = await fires(sub, 1)
        assert fired.schedule_id == "nightly@cron"
        assert rt.engine.executions[fired.execution_id].trigger == "cron:nightly@cron"


def test_timezone_is_the_tasks_then_the_files_then_the_machines(make_config, monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    jobs = ('{id: own, cron: "0 2 * * *", workflow: nightly, timezone: Asia/Riyadh}\n'
            '    - {id: inherited, cron: "0 2 * * *", workflow: nightly}')
    with_file_zone = load_config(make_config(WORKFLOWS, scheduling=config_with(jobs)))
    zones = {j.id: zone_name(j.schedule.zone) for j in jobs_from_config(with_file_zone)}
    assert zones == {"own": "Asia/Riyadh", "inherited": "Europe/Berlin"}
    no_file_zone = config_with(jobs).replace("  timezone: Europe/Berlin\n", "")
    machine = load_config(make_config(WORKFLOWS, scheduling=no_file_zone))
    zones = {j.id: zone_name(j.schedule.zone) for j in jobs_from_config(machine)}
    assert zones == {"own": "Asia/Riyadh", "inherited": "America/New_York"}


class BrokenStore:
    """A state store whose disk is full: every save fails."""

    def __init__(self) -> None:
        self.fail = False

    async def load(self):
        return {}

    async def save(self, schedule_id, state):
        if self.fail:
            from l3tui.errors import StateError

            raise StateError("cannot write schedules.json: No space left on device")


async def test_a_failing_state_store_is_reported_and_the_loop_keeps_going(make_config,
                                                                          runtime_for):
    config = make_config(WORKFLOWS, scheduling=config_with(
        '{id: at_two, cron: "0 2 * * *", workflow: nightly}'))
    clock = FakeClock(start=at(2026, 6, 1, 1, 59))
    store = BrokenStore()
    async with runtime_for(config, clock=clock, sampler=FakeSampler(), fire_schedules=True,
                           schedule_store=store) as rt:
        sub = rt.subscribe("notices")
        store.fail = True
        clock.set(at(2026, 6, 1, 2, 0) + 5)
        async with asyncio.timeout(30):
            while True:
                event = await sub.get()
                if isinstance(event, ev.SystemNotice) and event.topic == "schedules":
                    break
        assert "No space left on device" in event.message and event.severity == "error"
        assert cron_executions(rt, "at_two") == []  # saved before starting: never run unsaved
        store.fail = False
        rt.recurring._changed.set()
        await wait_for(lambda: len(cron_executions(rt, "at_two")) == 1)


async def test_a_template_that_cannot_start_is_recorded_as_failed(make_config, runtime_for):
    workflows = WORKFLOWS + """
templates:
  deploy:
    name: deploy
    params: {target: {type: string, required: true}}
    triggers: [{cron: "0 3 * * *"}]
    tasks:
      - {id: t, action: noop}
"""
    config = make_config(workflows, scheduling=config_with(
        '{id: other, cron: "0 0 1 1 *", workflow: nightly}'))
    clock = FakeClock(start=at(2026, 6, 1, 2, 59))
    async with runtime_for(config, clock=clock, sampler=FakeSampler(),
                           fire_schedules=True) as rt:
        sub = rt.subscribe("fires")
        clock.set(at(2026, 6, 1, 3, 0) + 1)
        fired, = await fires(sub, 1)
        assert fired.schedule_id == "deploy@cron" and fired.outcome == "failed"
        assert rt.recurring.states["deploy@cron"].last_outcome.startswith("failed: ")
        assert "target" in rt.recurring.states["deploy@cron"].last_outcome


async def test_a_process_that_does_not_fire_schedules_records_nothing(make_config, runtime_for,
                                                                      state_dir):
    config = make_config(WORKFLOWS, scheduling=config_with(
        '{id: at_two, cron: "0 2 * * *", workflow: nightly}'))
    clock = FakeClock(start=at(2026, 6, 1, 1, 0))
    async with runtime_for(config, clock=clock, sampler=FakeSampler()) as rt:  # `l3tui run`
        view, = rt.snapshot().schedules
        assert view.next_fire == at(2026, 6, 1, 2, 0)  # views work without firing
    assert not (state_dir / "schedules.json").exists()
    clock.set(at(2026, 6, 1, 3, 0))  # the console starts after 02:00: nothing was missed
    async with runtime_for(config, clock=clock, sampler=FakeSampler(),
                           fire_schedules=True) as rt:
        await rt.recurring.tick()
        assert cron_executions(rt, "at_two") == []
        assert rt.recurring.next_fire("at_two") == datetime(2026, 6, 2, 2, 0, tzinfo=BERLIN)
