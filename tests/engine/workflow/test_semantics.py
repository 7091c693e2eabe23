"""Engine semantics: retries and backoff, trigger conditions, skipped dependants, the event
bus, state transitions and templates, through the real engine and real processes."""

from __future__ import annotations

import asyncio
import itertools
import os

import pytest

from l3tui.engine import events as ev
from l3tui.engine.actions.registry import ActionError
from l3tui.engine.bus import EventBus
from l3tui.engine.model import IllegalTransition, TaskRun, TaskState
from l3tui.errors import UsageError

ACTIONS = """
actions:
  ok:
    command: [sh, -c, 'echo "ok $1"', sh, "${label:-}"]
  fail:
    command: [sh, -c, 'echo "failing" >&2; exit 3']
  fail_times:
    description: "fails until its counter file has $2 lines"
    command: [sh, -c, 'echo x >> "$1"; n=$(wc -l < "$1"); [ "$n" -gt "$2" ] || { echo "attempt $n fails"; exit 1; }; echo "attempt $n ok"', sh, "${counter}", "${failures}"]
"""


async def run_to_end(rt, workflow: str, params=None, timeout: float = 60.0):
    result = await rt.run_workflow(workflow, params)
    assert result.applied, result.message
    state = await asyncio.wait_for(rt.wait(result.execution_id), timeout)
    view = rt.execution(result.execution_id)
    return state, {t.task_id: t for t in view.tasks}, view


async def test_retries_count_attempts_and_back_off(make_config, runtime_for, tmp_path):
    config = make_config(
        f"""
        workflows:
          flaky:
            name: flaky
            tasks:
              - id: t
                action: fail_times
                parameters: {{counter: "{tmp_path}/count", failures: 2}}
                retries: 3
                retry_delay: 200
                retry_backoff: 2
        """,
        actions=ACTIONS,
    )
    async with runtime_for(config) as rt:
        sub = rt.subscribe("test")
        state, tasks, _ = await run_to_end(rt, "flaky")
        events = sub.drain()
    assert state == "succeeded"
    assert tasks["t"].attempt == 3
    retries = [e for e in events if isinstance(e, ev.TaskRetrying)]
    assert [(r.attempt, r.delay_s) for r in retries] == [(1, 0.2), (2, 0.4)]
    starts = [e.at for e in events if isinstance(e, ev.TaskStarted)]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4  # the backoff really waited
    assert gaps[1] > gaps[0]


async def test_retries_stop_at_the_cap_and_the_task_fails(make_config, runtime_for, tmp_path):
    config = make_config(
        f"""
        workflows:
          hopeless:
            name: hopeless
            tasks:
              - id: t
                action: fail_times
                parameters: {{counter: "{tmp_path}/count", failures: 99}}
                retries: 2
                retry_delay: 50
                retry_backoff: 10
                retry_max_delay: 120
              - {{id: after, action: ok, dependencies: [t]}}
        """,
        actions=ACTIONS,
    )
    async with runtime_for(config) as rt:
        sub = rt.subscribe("test")
        state, tasks, view = await run_to_end(rt, "hopeless")
        events = sub.drain()
    assert state == "failed"
    assert tasks["t"].state == "failed" and tasks["t"].attempt == 3
    assert tasks["t"].exit_code == 1
    assert tasks["after"].state == "skipped"
    assert "upstream did not succeed" in tasks["after"].reason
    retrying = [e for e in events if isinstance(e, ev.TaskRetrying)]
    assert [e.delay_s for e in retrying] == [0.05, 0.12]  # 50 ms, then 500 ms capped at 120
    assert [(e.state, e.exit_code) for e in retrying] == [("failed", 1), ("failed", 1)]
    assert view.reason == "not succeeded: t"


async def test_trigger_rules_on_upstream_outcomes(make_config, runtime_for):
    config = make_config(
        """
        workflows:
          rules:
            name: rules
            tasks:
              - {id: good, action: ok}
              - {id: bad, action: fail}
              - {id: needs_all, action: ok, dependencies: [good, bad]}
              - {id: on_failure, action: ok, dependencies: [good, bad],
                 conditions: [{upstream: one_failed}]}
              - {id: cleanup, action: ok, dependencies: [good, bad],
                 conditions: [{upstream: all_done}]}
              - {id: always, action: ok, dependencies: [needs_all],
                 conditions: [{upstream: always}]}
              - {id: only_on_failure_of_good, action: ok, dependencies: [good],
                 conditions: [{upstream: one_failed}]}
              - {id: downstream_of_skipped, action: ok, dependencies: [only_on_failure_of_good]}
        """,
        actions=ACTIONS,
    )
    async with runtime_for(config) as rt:
        state, tasks, _ = await run_to_end(rt, "rules")
    assert state == "failed"
    assert {k: t.state for k, t in tasks.items()} == {
        "good": "succeeded",
        "bad": "failed",
        "needs_all": "skipped",
        "on_failure": "succeeded",
        "cleanup": "succeeded",
        "always": "succeeded",
        "only_on_failure_of_good": "skipped",
        "downstream_of_skipped": "skipped",
    }


async def test_predicates_path_env_and_param(make_config, runtime_for, tmp_path, monkeypatch):
    marker = tmp_path / "present.txt"
    marker.write_text("x")
    monkeypatch.setenv("L3_TEST_FLAG", "on")
    config = make_config(
        f"""
        workflows: {{}}
        templates:
          preds:
            name: preds
            params:
              target: {{default: staging}}
            tasks:
              - {{id: exists, action: ok, conditions: [{{path_exists: "{marker}"}}]}}
              - {{id: missing, action: ok, conditions: [{{path_exists: "{tmp_path}/nope"}}]}}
              - {{id: absent, action: ok, conditions: [{{path_missing: "{tmp_path}/nope"}}]}}
              - {{id: env_on, action: ok, conditions: [{{env_equals: {{L3_TEST_FLAG: "on"}}}}]}}
              - {{id: env_off, action: ok, conditions: [{{env_equals: {{L3_TEST_FLAG: "off"}}}}]}}
              - {{id: prod_only, action: ok, parameters: {{label: "${{target}}"}},
                  conditions: [{{param_equals: {{target: prod}}}}]}}
        """,
        actions=ACTIONS,
    )
    async with runtime_for(config) as rt:
        state, tasks, _ = await run_to_end(rt, "preds")
        assert {k: t.state for k, t in tasks.items()} == {
            "exists": "succeeded", "missing": "skipped", "absent": "succeeded",
            "env_on": "succeeded", "env_off": "skipped", "prod_only": "skipped",
        }  # fmt: skip
        assert "does not exist" in tasks["missing"].reason
        assert "param target is 'staging'" in tasks["prod_only"].reason
        assert state == "succeeded"  # skipped by a condition is not a failure
        state, tasks, _view = await run_to_end(rt, "preds", {"target": "prod"})
        assert tasks["prod_only"].state == "succeeded"
        assert tasks["prod_only"].last_line == "ok prod"


async def test_metrics_printed_by_tasks_are_events(make_config, runtime_for):
    actions = """
    actions:
      report:
        command: [sh, -c, 'echo "L3METRIC analyzer_issues=12"; echo "L3METRIC tests_passed=118"; echo "L3METRIC bogus=abc"']
    """
    config = make_config(
        "workflows:\n  m:\n    name: m\n    tasks: [{id: r, action: report}]\n", actions=actions
    )
    async with runtime_for(config) as rt:
        sub = rt.subscribe("test")
        _state, tasks, _ = await run_to_end(rt, "m")
        metrics = [(e.name, e.value) for e in sub.drain() if isinstance(e, ev.TaskMetric)]
    assert metrics == [("analyzer_issues", 12.0), ("tests_passed", 118.0)]
    assert dict(tasks["r"].metrics) == {"analyzer_issues": 12.0, "tests_passed": 118.0}
    assert rt.metric_series("task.analyzer_issues", 60)[-1][1] == 12.0


async def test_template_params_are_checked_and_filled(make_config, runtime_for, state_dir):
    config = make_config(
        """
        workflows: {}
        templates:
          greet:
            name: "تحية ${who}"
            params:
              who: {required: true}
              times: {type: integer, default: 1}
              mode: {choices: [fast, slow], default: fast}
            tasks:
              - {id: say, name: "قل ${who}", action: ok, parameters: {label: "${who}/${mode}"}}
        """,
        actions=ACTIONS,
    )
    async with runtime_for(config) as rt:
        missing = await rt.run_workflow("greet")
        assert not missing.applied and "needs param 'who'" in missing.message
        unknown = await rt.run_workflow("greet", {"who": "x", "wh0": "y"})
        assert not unknown.applied and "did you mean 'who'" in unknown.message
        bad_int = await rt.run_workflow("greet", {"who": "x", "times": "many"})
        assert "expected integer" in bad_int.message
        bad_choice = await rt.run_workflow("greet", {"who": "x", "mode": "warp"})
        assert "not one of: fast, slow" in bad_choice.message
        state, tasks, view = await run_to_end(rt, "greet", {"who": "سارة", "times": "3"})
    assert state == "succeeded"
    assert view.workflow_name == "تحية سارة"
    assert tasks["say"].name == "قل سارة"
    assert tasks["say"].last_line == "ok سارة/fast"


async def test_unknown_workflow_and_params_on_a_plain_workflow(make_config, runtime_for):
    config = make_config(
        "workflows:\n  build:\n    name: b\n    tasks: [{id: a, action: ok}]\n", actions=ACTIONS
    )
    async with runtime_for(config) as rt:
        result = await rt.run_workflow("biuld")
        assert not result.applied
        assert result.message == "unknown workflow 'biuld' (did you mean 'build'?)"
        result = await rt.run_workflow("build", {"x": "1"})
        assert "not a template" in result.message


async def test_fan_out_fan_in_respects_dependencies(make_config, runtime_for):
    config = make_config(
        """
        workflows:
          diamond:
            name: diamond
            tasks:
              - {id: a, action: ok}
              - {id: b1, action: ok, dependencies: [a]}
              - {id: b2, action: ok, dependencies: [a]}
              - {id: b3, action: ok, dependencies: [a]}
              - {id: c, action: ok, dependencies: [b1, b2, b3]}
        """,
        actions=ACTIONS,
    )
    async with runtime_for(config) as rt:
        sub = rt.subscribe("test")
        state, _tasks, _ = await run_to_end(rt, "diamond")
        events = sub.drain()
    assert state == "succeeded"
    started = {e.task_id: e.at for e in events if isinstance(e, ev.TaskStarted)}
    finished = {e.task_id: e.at for e in events if isinstance(e, ev.TaskFinished)}
    for b in ("b1", "b2", "b3"):
        assert started[b] >= finished["a"]
        assert started["c"] >= finished[b]


async def test_every_operator_command_is_an_event(make_config, runtime_for):
    config = make_config(
        "workflows:\n  w:\n    name: w\n    tasks: [{id: a, action: ok}]\n", actions=ACTIONS
    )
    async with runtime_for(config) as rt:
        sub = rt.subscribe("test")
        _state, _, view = await run_to_end(rt, "w")
        refused = await rt.pause(view.id)
        nothing = await rt.cancel("no-such-execution")
        actions = [e for e in sub.drain() if isinstance(e, ev.OperatorAction)]
    assert not refused.applied and "already ended" in refused.message
    assert not nothing.applied
    assert [(a.action, a.applied) for a in actions] == [
        ("execution.run", True), ("execution.pause", False), ("execution.cancel", False),
    ]  # fmt: skip
    assert all(a.actor == "test" for a in actions)


def test_illegal_transitions_raise():
    run = TaskRun(execution_id="e", task_id="t", name="t")
    run.to(TaskState.QUEUED)
    run.to(TaskState.RUNNING)
    run.to(TaskState.SUCCEEDED)
    with pytest.raises(IllegalTransition, match="succeeded -> running"):
        run.to(TaskState.RUNNING)
    fresh = TaskRun(execution_id="e", task_id="u", name="u")
    with pytest.raises(IllegalTransition):
        fresh.to(TaskState.SUCCEEDED)  # never ran


async def test_a_slow_lossy_subscriber_never_blocks_and_counts_drops():
    bus = EventBus()
    slow = bus.subscribe("slow", maxsize=10)
    for i in range(1000):
        bus.publish(ev.SystemNotice(at=float(i), topic="t", message=str(i)))
    assert slow.pending() == 10 and slow.dropped == 990
    kept = [e.message for e in slow.drain()]
    assert kept == [str(i) for i in range(990, 1000)]  # the newest survive


async def test_durable_waits_until_the_durable_subscriber_acks():
    bus = EventBus()
    store = bus.subscribe("store", durable=True)
    for i in range(5):
        bus.publish(ev.SystemNotice(at=float(i), topic="t", message=str(i)))
    waiter = asyncio.ensure_future(bus.durable())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    batch = await store.get_batch(3)
    store.ack(len(batch))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    rest = await store.get_batch()
    store.ack(len(rest))
    async with asyncio.timeout(30):
        await waiter
    assert store.dropped == 0


async def test_a_failing_listener_does_not_stop_publishing():
    bus = EventBus()
    seen = []

    def broken(event: ev.Event) -> None:
        raise RuntimeError("boom")

    bus.add_listener(broken)
    bus.add_listener(seen.append)
    bus.publish(ev.SystemNotice(at=0.0, topic="t", message="m"))
    assert len(seen) == 1


def test_a_listener_of_some_kinds_sees_only_those_in_publication_order():
    bus = EventBus()
    calls: list[tuple[str, str]] = []
    bus.add_listener(lambda e: calls.append(("all", e.kind)))
    remove = bus.add_listener(lambda e: calls.append(("notices", e.kind)),
                              kinds=(ev.SystemNotice,))  # fmt: skip
    bus.add_listener(lambda e: calls.append(("last", e.kind)))
    notice = ev.SystemNotice(at=0.0, topic="t", message="m")
    paused = ev.ExecutionPaused(at=0.0, execution_id="e")
    bus.publish(notice)
    bus.publish(paused)
    assert calls == [("all", "system_notice"), ("notices", "system_notice"),
                     ("last", "system_notice"), ("all", "execution_paused"),
                     ("last", "execution_paused")]  # fmt: skip
    calls.clear()
    remove()  # the routes made before are not kept
    bus.add_listener(lambda e: calls.append(("new", e.kind)), kinds=(ev.Event,))
    bus.publish(notice)
    assert calls == [("all", "system_notice"), ("last", "system_notice"),
                     ("new", "system_notice")]  # fmt: skip


def test_param_coercion_errors_are_usage_errors():
    from l3tui.config.schema import ParamSpec
    from l3tui.engine.workflow.templates import coerce

    assert coerce("n", ParamSpec(type="integer"), "42") == 42
    assert coerce("b", ParamSpec(type="boolean"), "yes") is True
    with pytest.raises(UsageError, match="expected boolean"):
        coerce("b", ParamSpec(type="boolean"), "maybe")


async def test_in_process_attempts_time_out_at_their_own_deadline(
    make_config, runtime_for, monkeypatch
):
    """In-process timeouts share one heap and one loop timer: each still fires at its own
    deadline (a later-armed shorter one first), is retried as a timeout, and a finished
    attempt's timeout never fires."""
    from l3tui.engine.actions import registry

    sleeps = [0.05, 3600.0, 3600.0, 3600.0]  # quick, long, short, short again: admission order

    async def hang(params):
        await asyncio.sleep(sleeps.pop(0))
        return 0

    monkeypatch.setitem(registry.IN_PROCESS, "noop", hang)
    config = make_config(
        """
        workflows:
          slow:
            name: slow
            tasks:
              - {id: quick, action: noop, timeout: 60000}
              - {id: long, action: noop, timeout: 3000}
              - {id: short, action: noop, timeout: 200, retries: 1, retry_delay: 10}
        """,
        # No load gate: a busy machine must not hold the retry back behind `long`.
        scheduling="scheduling:\n  resource_limits: {max_cpu_usage: 100}\n",
    )
    async with runtime_for(config) as rt:
        sub = rt.subscribe("test")
        state, tasks, _ = await run_to_end(rt, "slow")
        events = sub.drain()
    assert state == "failed"
    assert tasks["quick"].state == "succeeded"
    assert tasks["long"].state == "timed_out" and tasks["long"].attempt == 1
    assert tasks["short"].state == "timed_out" and tasks["short"].attempt == 2
    retried = [e for e in events if isinstance(e, ev.TaskRetrying)]
    assert [(e.task_id, e.state) for e in retried] == [("short", "timed_out")]
    ended = [e.task_id for e in events if isinstance(e, ev.TaskFinished)]
    assert ended == ["quick", "short", "long"]
    started = {e.task_id: e.at for e in events if isinstance(e, ev.TaskStarted)}
    finished = {e.task_id: e for e in events if isinstance(e, ev.TaskFinished)}
    assert finished["long"].at - started["long"] >= 3.0  # not before its own deadline
    assert finished["long"].reason == "timed out after 3s"


async def test_the_timeout_heap_fires_in_deadline_order_and_sheds_disarmed_entries():
    from l3tui.engine.workflow.timers import TimeoutHeap

    heap = TimeoutHeap()
    fired: list[str] = []
    done = asyncio.Event()
    heap.arm(0.3, lambda: (fired.append("late"), done.set()))
    heap.arm(0.05, lambda: fired.append("early"))
    gone = heap.arm(0.1, lambda: fired.append("disarmed"))
    heap.disarm(gone)
    for _ in range(1000):  # attempts that end before their deadline
        heap.disarm(heap.arm(3600, lambda: fired.append("never")))
    assert len(heap) < 200  # disarmed entries do not pile up
    async with asyncio.timeout(30):
        await done.wait()
    assert fired == ["early", "late"]


async def test_pausable_timers_in_the_heap_stop_while_paused_and_may_arm_from_a_callback():
    """A process attempt's timeout is a `PausableTimer` in the shared heap: paused, its clock
    stops (wall time past its delay does not fire it); resumed, it fires; a callback may arm
    a later deadline without delaying one already due sooner."""
    from l3tui.engine.workflow.timers import PausableTimer, TimeoutHeap

    heap = TimeoutHeap()
    fired: list[str] = []
    soon, clock, resumed = asyncio.Event(), asyncio.Event(), asyncio.Event()
    paused = PausableTimer(0.05, lambda: (fired.append("paused"), resumed.set()), heap)
    paused.pause()
    assert not paused.running
    PausableTimer(0.3, lambda: (fired.append("clock"), clock.set()), heap)
    # Fires first and arms a far deadline from inside the heap's own callback: the one due
    # at 0.3 s must still fire then, not once the far one is due.
    PausableTimer(0.01, lambda: (fired.append("first"),
                                 PausableTimer(3600, lambda: fired.append("far"), heap)),
                  heap)  # fmt: skip
    PausableTimer(0.2, lambda: (fired.append("soon"), soon.set()), heap)
    async with asyncio.timeout(30):
        await clock.wait()
    assert fired == ["first", "soon", "clock"]  # 0.3 s of wall time: the paused one waits
    paused.resume()
    assert paused.running
    async with asyncio.timeout(30):
        await resumed.wait()
    assert fired == ["first", "soon", "clock", "paused"] and paused.fired
    cancelled = PausableTimer(0.01, lambda: fired.append("cancelled"), heap)
    cancelled.cancel()
    await asyncio.sleep(0.1)
    assert "cancelled" not in fired


async def test_a_large_execution_freezes_the_gc_only_while_it_runs(make_config, runtime_for):
    """`gc.freeze()` keeps a large definition out of full collections while it runs, and young
    collections come every YOUNG allocations, not 700; once it ends nothing stays frozen and
    the thresholds are the process's own again (a daemon must not pin memory across
    executions, nor change the collector for good)."""
    import gc

    from l3tui.engine.workflow.live import FREEZE_TASKS, YOUNG

    tasks = "\n".join(f"              - {{id: t{i}, action: noop}}" for i in range(FREEZE_TASKS))
    config = make_config(f"""
        workflows:
          big:
            name: big
            tasks:
{tasks}
        """)  # fmt: skip
    gc.unfreeze()
    before = gc.get_threshold()
    async with runtime_for(config) as rt:
        result = await rt.run_workflow("big")
        frozen_while_running = gc.get_freeze_count()
        threshold_while_running = gc.get_threshold()
        state = await asyncio.wait_for(rt.wait(result.execution_id), 60)
        assert state == "succeeded"
        assert frozen_while_running > 0
        assert threshold_while_running == (max(before[0], YOUNG), *before[1:])
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == before


async def test_a_chain_longer_than_a_launch_batch_runs_in_order(make_config, runtime_for):
    """No-ops begin and end inside the launcher's batches: a chain of thousands must neither
    recurse (each end admits the next) nor reorder anything."""
    from l3tui.engine.workflow.launch import BATCH

    length = 3 * BATCH + 7
    tasks = "\n".join(f"              - {{id: t{i}, action: noop"
                      + (f", dependencies: [t{i - 1}]}}" if i else "}")
                      for i in range(length))  # fmt: skip
    config = make_config(f"""
        workflows:
          chain:
            name: chain
            tasks:
{tasks}
        """)  # fmt: skip
    async with runtime_for(config) as rt:
        sub = rt.subscribe("test", maxsize=100_000)
        state, _, _ = await run_to_end(rt, "chain")
        events = sub.drain()
    assert state == "succeeded"
    ended = [e.task_id for e in events if isinstance(e, ev.TaskFinished)]
    assert ended == [f"t{i}" for i in range(length)]
    for task_id in ("t0", f"t{BATCH}", f"t{length - 1}"):  # queued, started, finished, in order
        kinds = [type(e).__name__ for e in events if getattr(e, "task_id", None) == task_id]
        assert kinds == ["TaskStateChanged", "TaskStarted", "TaskFinished"]


async def test_cancelling_an_in_process_attempt_that_waits(make_config, runtime_for, monkeypatch):
    """An in-process attempt that waits continues in a Task of its own: cancelling the task
    reaches it there, and its slot is given back."""
    from l3tui.engine.actions import registry

    began = asyncio.Event()

    async def hang(params):
        began.set()
        await asyncio.sleep(3600)
        return 0

    monkeypatch.setitem(registry.IN_PROCESS, "noop", hang)
    config = make_config("""
        workflows:
          one:
            name: one
            tasks:
              - {id: t, action: noop}
        """)  # fmt: skip
    async with runtime_for(config) as rt:
        run = await rt.run_workflow("one")
        async with asyncio.timeout(30):
            await began.wait()
        assert (await rt.cancel(run.execution_id, "t")).applied
        assert await asyncio.wait_for(rt.wait(run.execution_id), 30) == "failed"
        assert rt.execution(run.execution_id).tasks[0].state == "cancelled"
        assert rt.scheduler.running == set()


def test_definition_encoding_is_kept_per_object_and_never_shared():
    """Runs of one definition object reuse its encoding; another object (a reload, a
    template's fill, a changed copy) is encoded for itself, even once the first is let go."""
    from l3tui.config.schema import WorkflowDef
    from l3tui.engine.workflow.templates import ENCODED_KEPT, encode_definition

    def workflow(name: str, tasks: int) -> WorkflowDef:
        return WorkflowDef.model_validate({"name": name, "tasks": [
            {"id": f"t{i}", "action": "noop"} for i in range(tasks)]})

    first = workflow("first", 3)
    text, digest = encode_definition(first)
    assert encode_definition(first) == (text, digest)
    assert text == first.model_dump_json(by_alias=True)
    changed = workflow("first", 4)  # same name, another definition
    other_text, other_digest = encode_definition(changed)
    assert other_digest != digest and '"t3"' in other_text and '"t3"' not in text
    for n in range(ENCODED_KEPT + 1):  # the first is let go from what is kept
        encode_definition(workflow(f"w{n}", 1))
    assert encode_definition(first) == (text, digest)
    assert encode_definition(changed) == (other_text, other_digest)


def test_a_fresh_tracker_settles_apart_from_its_template():
    """Runs of one definition share its graph but not what each has settled."""
    from l3tui.engine.workflow.dag import ReadyTracker

    template = ReadyTracker({"a": [], "b": ["a"], "c": ["a", "b"]})
    first, second = template.fresh(), template.fresh()
    assert first.settle("a") == ["b"]
    assert first.settle("b") == ["c"]
    assert second.settle("a") == ["b"]  # not yet c: b has not ended in this run
    assert template.fresh().settle("b") == []
    assert template.initial() == ["a"]


async def test_the_events_of_each_task_say_what_its_record_holds(make_config, runtime_for):
    """The engine builds a task's events positionally (events.py says why): each field of
    them must carry what the record holds, whatever the path (in-process, process, retried
    and failed), and `ExecutionCreated.tasks` each task's id and display name in order."""
    config = make_config("""
        workflows:
          mixed:
            name: mixed
            tasks:
              - {id: quick, name: "سريع", action: noop, resources: {cpu: 0.5, memory_mb: 7}}
              - {id: shell, action: ok, dependencies: [quick], resources: {memory_mb: 3}}
              - {id: broken, action: fail, retries: 1, retry_delay: 10, dependencies: [quick]}
        """, actions=ACTIONS)  # fmt: skip
    async with runtime_for(config) as rt:
        sub = rt.subscribe("test", maxsize=10_000)
        state, _, view = await run_to_end(rt, "mixed")
        runs = rt.engine.executions[view.id].tasks
        events = sub.drain()
    assert state == "failed"
    created = next(e for e in events if isinstance(e, ev.ExecutionCreated))
    assert created.tasks == (("quick", "سريع"), ("shell", "shell"), ("broken", "broken"))
    expected = {"quick": ("succeeded", 1, 0, 0.5, 7), "shell": ("succeeded", 1, 0, 0.0, 3),
                "broken": ("failed", 2, 3, 0.0, 0)}  # fmt: skip
    for task_id, run in runs.items():
        mine = [e for e in events if getattr(e, "task_id", None) == task_id]
        (end,) = [e for e in mine if isinstance(e, ev.TaskFinished)]
        assert (end.state, end.attempt, end.exit_code, end.declared_cpu,
                end.declared_memory_mb) == expected[task_id]  # fmt: skip
        assert (end.execution_id, end.reason, end.duration_s, end.wait_s) == (
            view.id, run.reason, run.active_s, run.wait_s)
        assert end.peak_rss == run.peak_rss and end.avg_rss == run.avg_rss
        assert isinstance(end.at, float) and end.at == run.finished_at
        starts = [e for e in mine if isinstance(e, ev.TaskStarted)]
        assert [s.attempt for s in starts] == list(range(1, run.attempt + 1))
        assert all(s.execution_id == view.id and s.wait_s >= 0 for s in starts)
        command = ("noop",) if task_id == "quick" else None
        assert command is None or starts[0].command == command
        assert (starts[-1].pid is None) == (task_id == "quick")
        assert starts[-1].log_path == run.log_path
        opened = [e for e in mine if isinstance(e, ev.AttemptOpened)]
        assert [(o.attempt, o.execution_id, o.command, o.wait_s) for o in opened] == [
            (s.attempt, view.id, s.command, s.wait_s) for s in starts if s.pid is not None]
        assert not opened or opened[-1].log_path == run.log_path
        queued = [e for e in mine if isinstance(e, ev.TaskStateChanged) and e.state == "queued"]
        assert [(q.attempt, q.previous, q.reason) for q in queued] == (
            [(0, "waiting" if task_id != "quick" else "pending", "")]
            + [(1, "retrying", "")] * (task_id == "broken"))
        assert all(q.execution_id == view.id for q in queued)


def test_a_plain_command_action_resolves_once_to_what_filling_it_makes(make_config, tmp_path):
    """A command action with nothing to fill is resolved once per config: each job of it is
    field for field what the full resolution makes (its own env dict, this attempt's `L3_*`),
    a task with env of its own or an action with placeholders is filled every time, and a
    program not found is looked for again."""
    import dataclasses

    from l3tui.config import load_config
    from l3tui.engine.actions.registry import ActionRegistry

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    config = load_config(make_config(
        """
        workflows:
          w:
            name: w
            tasks:
              - {id: a, action: plain}
              - {id: b, action: script, timeout: 5s}
              - {id: c, action: plain, env: {EXTRA: "${l3.task_id}"}}
              - {id: d, action: filled}
              - {id: e, action: later}
        """,
        actions="""
        actions:
          plain: {command: [sh, -c, "exit 0"], env: {MODE: fast}, timeout: 9s}
          script: {shell: true, command: ['echo "${HOME}" $L3_ATTEMPT']}
          filled: {command: [echo, "${l3.task_id}"]}
          later: {command: [l3tui-test-later-tool]}
        """,
    ))  # fmt: skip
    tasks = {t.id: t for t in config.workflows.workflows["w"].tasks}
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "L3_TASK_ID": "outer"}
    registry = ActionRegistry(config, tmp_path / "state", base_env=env)
    full = ActionRegistry(config, tmp_path / "state", base_env=env)

    def context(task_id: str, attempt: int) -> dict[str, object]:
        return {"l3.execution_id": "x1", "l3.task_id": task_id, "l3.attempt": attempt,
                "l3.execution_dir": str(tmp_path / "state" / "runs" / "x1")}  # fmt: skip

    for task_id in "abcd":
        for attempt in (1, 2):
            job = registry.resolve(tasks[task_id], context(task_id, attempt), {})
            full._plain.clear()
            full._plain.update(dict.fromkeys(config.actions.actions))  # none plain: fill all
            expected = full.resolve(tasks[task_id], context(task_id, attempt), {})
            assert dataclasses.asdict(job) == dataclasses.asdict(expected), task_id
            assert list(job.env) == list(expected.env)  # the same order too
            assert job.env["L3_ATTEMPT"] == str(attempt) and job.env["L3_TASK_ID"] == task_id
    first = registry.resolve(tasks["a"], context("a", 1), {})
    again = registry.resolve(tasks["a"], context("a", 2), {})
    assert first.env is not again.env and first.env["L3_ATTEMPT"] == "1"
    assert set(registry._plain) == {"plain", "script", "filled"}
    assert registry._plain["plain"] and registry._plain["script"]
    assert registry._plain["filled"] is None  # has a placeholder: filled each time
    assert registry.resolve(tasks["c"], context("c", 1), {}).env["EXTRA"] == "c"
    with pytest.raises(ActionError, match="command not found: l3tui-test-later-tool"):
        registry.resolve(tasks["e"], context("e", 1), {})
    tool = bin_dir / "l3tui-test-later-tool"
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(0o755)
    assert registry.resolve(tasks["e"], context("e", 2), {}).executable == str(tool)
