"""What a decision would start: the executions (`Start`s) of a run kind or of an analysis
update's triggers, each with the definition it runs, its params and priority. Checks a
decision against the config before it is recorded, so one that could never act is rejected
rather than kept. Also the `Host` protocol: what the coordinator needs of the Runtime.

Pure given the config and a time: the planner and the coordinator both use it; nothing here
starts anything.
"""

from __future__ import annotations

import asyncio
import fnmatch
import os
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from l3tui.config import placeholders
from l3tui.config.builtins import BUILTIN_ACTIONS
from l3tui.config.fields import IDENT_RE
from l3tui.config.loader import Config
from l3tui.config.schema import TemplateDef, WorkflowDef
from l3tui.coordinator.decisions import (
    AnalysisUpdate,
    AnyDecision,
    DecisionError,
    InstantiateTemplate,
    RunBatch,
    RunTask,
    RunWorkflow,
    TaskSpec,
    when_at,
)
from l3tui.engine.api import OpResult, ReservationRequest
from l3tui.engine.bus import EventBus
from l3tui.engine.clock import Clock
from l3tui.engine.scheduling.scheduler import TaskScheduler
from l3tui.engine.workflow.conditions import judge
from l3tui.engine.workflow.engine import WorkflowEngine
from l3tui.engine.workflow.templates import definition_for
from l3tui.errors import UsageError
from l3tui.store.sqlite import Store


class Host(Protocol):
    """What the coordinator uses of the Runtime that runs it."""

    config: Config
    state_dir: Path
    bus: EventBus
    store: Store
    engine: WorkflowEngine
    scheduler: TaskScheduler
    clock: Clock
    actor: str

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]: ...

    async def run_workflow(self, workflow_id: str, params: dict[str, Any] | None = None, *,
                           actor: str = "", trigger: str = "manual",
                           priority: str | int | None = None,
                           definition: WorkflowDef | None = None) -> OpResult: ...  # fmt: skip

    async def pause(self, execution_id: str, task_id: str | None = None, *,
                    actor: str = "") -> OpResult: ...  # fmt: skip

    async def resume(self, execution_id: str, task_id: str | None = None, *,
                     actor: str = "") -> OpResult: ...  # fmt: skip

    async def cancel(self, execution_id: str, task_id: str | None = None, *,
                     actor: str = "") -> OpResult: ...  # fmt: skip

    async def reserve(self, request: ReservationRequest, *, actor: str = "",
                      reservation_id: str | None = None) -> OpResult: ...  # fmt: skip

    async def cancel_reservation(self, reservation_id: str, *,
                                 actor: str = "") -> OpResult: ...  # fmt: skip


@dataclass(frozen=True, slots=True)
class Start:
    """One execution a decision starts."""

    workflow_id: str
    """A workflow or template id; `task:ACTION` or `batch:DECISION` for built ones."""
    definition: WorkflowDef
    params: dict[str, Any] = field(default_factory=dict)
    """As given to the engine: a template's params, or the values of a task's parameters."""
    priority: str | int | None = None
    built: bool = False
    """The definition is not the config's (a task, a batch, a deadline): pass it along."""
    why: str = ""
    """Why it starts (an analysis trigger), for plans and messages."""
    error: str = ""
    """Set when it cannot start after all (a template trigger missing a param): why."""


def starts(config: Config, decision: AnyDecision, received_at: float,
           now: float) -> list[Start]:  # fmt: skip
    """The executions `decision` starts (none for cancel, pause, resume and reservations).
    DecisionError
    saying why when it cannot start what it names (an unknown workflow, a missing param,
    an action with no binding, an unknown priority)."""
    if isinstance(decision, AnalysisUpdate):
        return analysis_starts(config, decision)
    if not isinstance(decision, RunWorkflow | InstantiateTemplate | RunTask | RunBatch):
        return []
    _check_priority(config, decision.priority)
    if isinstance(decision, RunWorkflow | InstantiateTemplate):
        start = _configured(config, decision)
    elif isinstance(decision, RunTask):
        definition, params = _built([(_task_id(decision.action), decision.spec())], "",
                                    name=decision.name or f"task {decision.action}")
        start = Start(f"task:{decision.action}", definition, params, built=True)
    else:
        definition, params = _built(list(zip(decision.task_ids(), decision.tasks, strict=True)),
                                    "t", name=f"batch {decision.id}",
                                    max_parallel=decision.parallelism)  # fmt: skip
        start = Start(f"batch:{decision.id}", definition, params, built=True)
    for spec in _specs(decision):
        _check_action(config, spec)
    definition = start.definition
    built = start.built
    if decision.deadline is not None:
        remaining_ms = (when_at(decision.deadline, received_at) - now) * 1000
        definition = definition.model_copy(update={"deadline": max(int(remaining_ms), 1)})
        built = True
    return [Start(start.workflow_id, definition, start.params, decision.priority, built)]


def _configured(config: Config, decision: RunWorkflow | InstantiateTemplate) -> Start:
    wf = config.workflows
    if isinstance(decision, RunWorkflow):
        name = decision.workflow
        if name in wf.templates and name not in wf.workflows:
            raise DecisionError(f"{name!r} is a template: use kind instantiate_template")
    else:
        name = decision.template
        if name in wf.workflows and name not in wf.templates:
            raise DecisionError(f"{name!r} is a workflow, not a template: use kind run_workflow")
    try:
        definition, _ = definition_for(config, name, decision.params)
    except UsageError as exc:
        raise DecisionError(str(exc)) from None
    return Start(name, definition, dict(decision.params))


def _specs(decision: RunTask | RunBatch | RunWorkflow | InstantiateTemplate) -> list[TaskSpec]:
    if isinstance(decision, RunTask):
        return [decision.spec()]
    if isinstance(decision, RunBatch):
        return list(decision.tasks)
    return []


def _check_action(config: Config, spec: TaskSpec) -> None:
    """The action exists, and every parameter its command needs (without a default) is
    given: otherwise the task could only fail."""
    action = config.actions.actions.get(spec.action)
    if action is None:
        if spec.action not in BUILTIN_ACTIONS:
            raise DecisionError(f"action {spec.action!r} has no binding in l3-actions.yml and "
                                "is not built in")  # fmt: skip
        return
    if action.shell:
        return  # parameters arrive as environment variables: the script decides
    for text in [*action.command, *action.env.values(), action.cwd or ""]:
        for name, default in placeholders.find(text):
            if default is None and not placeholders.is_context(name) and name not in spec.params:
                raise DecisionError(f"action {spec.action!r} needs parameter {name!r}")


def _check_priority(config: Config, priority: str | int | None) -> None:
    levels = config.scheduling.priorities
    if isinstance(priority, str) and priority not in levels:
        raise DecisionError(f"unknown priority {priority!r} (one of: {', '.join(levels)}, "
                            "or a number)")  # fmt: skip


def _task_id(action: str) -> str:
    return action if IDENT_RE.match(action) and len(action) <= 64 else "task"


_BUILT: dict[str, WorkflowDef] = {}
"""Built definitions by their shape (values are params, not part of it): a stream of
run_task decisions for one action validates one definition, not one each."""


def _built(tasks: list[tuple[str, TaskSpec]], prefix: str, *, name: str,
           max_parallel: int | None = None) -> tuple[WorkflowDef, dict[str, Any]]:  # fmt: skip
    """A workflow of independent tasks around actions. Each value of a task's parameters
    becomes an execution param that its `${...}` placeholder names, so the registry puts it
    in place as data in its one pass (a `${secret:X}` in a value stays that text)."""
    params: dict[str, Any] = {}
    for index, (_, spec) in enumerate(tasks):
        key = f"{prefix}{index + 1}." if prefix else ""
        for param, value in spec.params.items():
            params[key + param] = value
    shape = repr((name, max_parallel, prefix, [(task_id, s.action, s.name, s.timeout, s.retries,
                                                tuple(s.params)) for task_id, s in tasks]))
    cached = _BUILT.get(shape)
    if cached is not None:
        return cached, params
    task_defs = []
    for index, (task_id, spec) in enumerate(tasks):
        key = f"{prefix}{index + 1}." if prefix else ""
        parameters = {}
        for param in spec.params:
            parameters[param] = "${" + key + param + "}"
        task: dict[str, Any] = {"id": task_id, "action": spec.action, "parameters": parameters,
                                "retries": spec.retries}  # fmt: skip
        if spec.name:
            task["name"] = spec.name
        if spec.timeout:
            task["timeout"] = spec.timeout
        task_defs.append(task)
    definition = WorkflowDef.model_validate({"name": name, "tasks": task_defs,
                                             "max_parallel": max_parallel})  # fmt: skip
    if len(_BUILT) >= 256:
        _BUILT.clear()
    if len(tasks) <= 100:
        _BUILT[shape] = definition
    return definition, params


def flatten(payload: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The payload's keys, nested ones also dotted (`{"a": {"b": 1}}` has `a` and `a.b`)."""
    out: dict[str, Any] = {}
    for key, value in payload.items():
        name = f"{prefix}{key}"
        out[name] = value
        if isinstance(value, dict) and len(out) < 10_000:
            out.update(flatten(value, f"{name}."))
    return out


def analysis_starts(config: Config, update: AnalysisUpdate) -> list[Start]:
    """The workflows (and templates) whose `on_analysis` trigger matches this update's topic
    and whose `when` holds on its payload; a template gets the payload's values of the
    params it declares."""
    values = flatten(update.payload)
    found: list[Start] = []
    catalogue: list[tuple[str, WorkflowDef]] = [*config.workflows.workflows.items(),
                                                *config.workflows.templates.items()]  # fmt: skip
    for wf_id, wf in catalogue:
        for trigger in wf.triggers:
            on = trigger.on_analysis
            if on is None or not fnmatch.fnmatchcase(update.topic, on.topic):
                continue
            ok, _why = judge(on.when, {}, values, os.environ, Path.cwd())
            if not ok:
                continue
            params: dict[str, Any] = {}
            if isinstance(wf, TemplateDef):
                params = {k: values[k] for k in wf.params if k in values}
            why = f"on_analysis {on.topic} of {wf_id}"
            try:
                definition, _ = definition_for(config, wf_id, params)
            except UsageError as exc:
                found.append(Start(wf_id, wf, params, why=why, error=f"{wf_id}: {exc}"))
            else:
                found.append(Start(wf_id, definition, params, why=why))
            break  # one start per workflow, whichever of its triggers matched
    return found
