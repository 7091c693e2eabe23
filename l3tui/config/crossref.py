"""Checks that span config files or need a whole workflow: ids, dependencies, cycles,
action bindings, placeholders, pools, priorities, recurring tasks.

Each check reports the path of the offending key; `load_config` turns paths into lines.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from l3tui.config import placeholders, secret_checks
from l3tui.config.builtins import BUILTIN_ACTIONS, outside_roots
from l3tui.config.errors import ConfigIssue, Severity, humanize, key_path
from l3tui.config.graph import find_cycle
from l3tui.config.scheduling_schema import executor_spec
from l3tui.config.schema import (
    ActionDef,
    AlertRule,
    ExecutorChoice,
    RecurringTask,
    Scheduling,
    TemplateDef,
    WorkflowDef,
)
from l3tui.config.suggest import did_you_mean
from l3tui.config.yamlpos import Path_

DASK_EXTRA = (
    "executor dask needs the `dask` extra, which is not installed: "
    "pip install 'l3tui[dask]' (or `make install`), or use executor: local"
)
DASK_NO_ADDRESS = (
    "executor dask needs its scheduler's address: give {kind: dask, address: "
    '"tcp://HOST:8786"} here or as scheduling.executor in l3-scheduling.yml '
    "(`l3tui cluster local` starts one and prints it)"
)


def dask_installed() -> bool:
    """Whether `distributed` can be imported (looked up, not imported: validate stays fast)."""
    return importlib.util.find_spec("distributed") is not None


def _check_executor(choice: ExecutorChoice | None, path: Path_, sched: Scheduling | None,
                    kind: str = "workflows") -> list[Finding]:  # fmt: skip
    """A choice of `dask` must be runnable: the extra installed, an address known."""
    if choice is None or choice.kind == "local":
        return []
    spec = executor_spec(choice)
    if spec is None or spec.kind != "dask":
        return []
    if not dask_installed():
        return [Finding(kind, path, DASK_EXTRA)]
    resolved = sched.executor_for(choice) if sched is not None else spec
    if resolved.address is None and sched is not None:
        return [Finding(kind, path, DASK_NO_ADDRESS)]
    return []


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # which file
    path: Path_
    message: str
    severity: Severity = "error"
    prefer_key: bool = False


@dataclass
class CheckInput:
    """What validated, possibly only in part: cross-checks run on whatever did, so one
    broken key does not hide every other problem."""

    workflows: dict[str, WorkflowDef]
    templates: dict[str, TemplateDef]
    workflow_ids: set[str]
    scheduling: Scheduling | None
    recurring: list[tuple[int, RecurringTask]]
    actions: dict[str, ActionDef] | None
    action_names: set[str]
    alerts: list[AlertRule] | None
    salvaged: set[tuple[str, str, int]] = field(default_factory=set)
    """(section, workflow, task index) of tasks that failed validation: only their id and
    dependencies are known, so the other checks skip them."""


def cross_check(data: CheckInput, sources: Mapping[str, Any]) -> list[ConfigIssue]:
    findings: list[Finding] = []
    sched = data.scheduling
    priorities = sched.priorities if sched else None
    pools = sched.pools if sched else None
    everything: dict[str, WorkflowDef] = {**data.workflows, **data.templates}
    for section, defs in (("workflows", data.workflows), ("templates", data.templates)):
        for wf_id, wf in defs.items():
            findings += _check_workflow(section, wf_id, wf, data, priorities, pools)
    findings += _check_trigger_loop(data, everything)
    if sched is not None:
        findings += _check_executor(sched.executor, ("scheduling", "executor"), sched,
                                    kind="scheduling")  # fmt: skip
    if data.actions is not None:
        findings += _check_actions(data.actions)
    findings += _check_recurring(data, everything, sources)
    if data.alerts is not None:
        findings += _check_alerts(data.alerts)
    config_dir = sources["workflows"].path.parent
    for kind, path, message, severity in secret_checks.check(
        {"workflows": data.workflows, "templates": data.templates}, data.salvaged,
        data.actions, data.recurring, sched, config_dir,
    ):  # fmt: skip
        findings.append(Finding(kind, path, message, severity))
    return [_locate(f, sources) for f in findings]


def _locate(finding: Finding, sources: Mapping[str, Any]) -> ConfigIssue:
    source = sources[finding.kind]
    located = source.located
    pos = located.position(finding.path, prefer_key=finding.prefer_key)
    return ConfigIssue(
        source.path, pos.line, pos.col, key_path(located.data, finding.path),
        finding.message, finding.severity,
    )  # fmt: skip


def _check_workflow(
    section: str,
    wf_id: str,
    wf: WorkflowDef,
    data: CheckInput,
    priorities: Mapping[str, int] | None,
    pools: Mapping[str, int] | None,
) -> list[Finding]:
    out: list[Finding] = []
    base: Path_ = (section, wf_id)
    ids: dict[str, int] = {}
    for index, task in enumerate(wf.tasks):
        if task.id in ids:
            out.append(
                Finding(
                    "workflows",
                    (*base, "tasks", index, "id"),
                    f"duplicate task id {task.id!r} (also task #{ids[task.id] + 1})",
                )
            )
        else:
            ids[task.id] = index
    deps = {t.id: list(t.dependencies) for t in wf.tasks}
    for index, task in enumerate(wf.tasks):
        tpath: Path_ = (*base, "tasks", index)
        for d_index, dep in enumerate(task.dependencies):
            if dep == task.id:
                out.append(
                    Finding(
                        "workflows",
                        (*tpath, "dependencies", d_index),
                        f"task {task.id!r} depends on itself",
                    )
                )
            elif dep not in ids:
                out.append(
                    Finding(
                        "workflows",
                        (*tpath, "dependencies", d_index),
                        f"depends on unknown task {dep!r}{did_you_mean(dep, ids)}",
                    )
                )
        if (section, wf_id, index) in data.salvaged:
            continue
        out += _check_action(task.action, task.parameters, tpath, data)
        out += _check_executor(task.executor, (*tpath, "executor"), data.scheduling)
        out += _check_priority(task.priority, (*tpath, "priority"), priorities)
        for pool, slots in task.resources.pools.items():
            if pools is None:
                break
            ppath = (*tpath, "resources", "pools", pool)
            if pool not in pools:
                out.append(
                    Finding(
                        "workflows",
                        ppath,
                        f"pool {pool!r} is not declared in "
                        f"l3-scheduling.yml pools{did_you_mean(pool, pools)}",
                        prefer_key=True,
                    )
                )
            elif slots > pools[pool]:
                out.append(
                    Finding(
                        "workflows",
                        ppath,
                        f"needs {slots} slots of pool {pool!r}, which has only {pools[pool]}",
                    )
                )
    self_free = {k: [d for d in v if d != k] for k, v in deps.items()}
    cycle = find_cycle(self_free)
    if cycle:
        message = f"dependency cycle: {' -> '.join(cycle)} (each depends on the next)"
        out.append(Finding("workflows", _edge_path(base, wf, cycle[0], cycle[1]), message))
    if not wf.name and any(k[:2] == (section, wf_id) for k in data.salvaged):
        return out  # a salvaged workflow: only its graph is known
    out += _check_executor(wf.executor, (*base, "executor"), data.scheduling)
    out += _check_priority(wf.priority, (*base, "priority"), priorities, explicit=False)
    for t_index, trigger in enumerate(wf.triggers):
        if trigger.after is not None and trigger.after not in data.workflow_ids:
            out.append(
                Finding(
                    "workflows",
                    (*base, "triggers", t_index, "after"),
                    f"unknown workflow {trigger.after!r}"
                    f"{did_you_mean(trigger.after, data.workflow_ids)}",
                )
            )
    out += _check_placeholders(section, wf_id, wf, data.salvaged)
    return out


def _check_trigger_loop(data: CheckInput, everything: Mapping[str, WorkflowDef]) -> list[Finding]:
    """`after:` triggers that lead back to where they started would run forever (one such
    loop made 6,822 executions in 11 s): name the loop at the trigger that closes it.
    Every outcome (`on:`) counts: a loop that needs a failure to turn still turns."""
    runs_after = {
        wf_id: [t.after for t in wf.triggers if t.after is not None]
        for wf_id, wf in everything.items()
    }
    cycle = find_cycle(runs_after)
    if cycle is None:
        return []
    first, second = cycle[0], cycle[1]
    section = "workflows" if first in data.workflows else "templates"
    index = next(i for i, t in enumerate(everything[first].triggers) if t.after == second)
    order = " -> ".join(reversed(cycle))
    return [
        Finding(
            "workflows",
            (section, first, "triggers", index, "after"),
            f"`after:` triggers form a loop: {order} (each one's end starts the next), which "
            "would run forever; remove one of these triggers",
        )
    ]


def _edge_path(base: Path_, wf: WorkflowDef, task_id: str, dependency: str) -> Path_:
    """Where `task_id` lists `dependency`: the line a cycle message points at."""
    for index, task in enumerate(wf.tasks):
        if task.id == task_id and dependency in task.dependencies:
            return (*base, "tasks", index, "dependencies", task.dependencies.index(dependency))
    return (*base, "tasks")


def _check_priority(
    value: str | int | None,
    path: Path_,
    priorities: Mapping[str, int] | None,
    explicit: bool = True,
    kind: str = "workflows",
) -> list[Finding]:
    if priorities is None or not isinstance(value, str) or value in priorities:
        return []
    if explicit or value != "medium":
        names = ", ".join(f"{k} ({v})" for k, v in priorities.items())
        return [
            Finding(
                kind,
                path,
                f"unknown priority {value!r}"
                f"{did_you_mean(value, priorities)}; one of: {names}, or a number",
            )
        ]
    return []


def _action_placeholders(action: ActionDef) -> dict[str, str | None]:
    """Plain (non-context) placeholders an action's command, env and cwd use."""
    found: dict[str, str | None] = {}
    texts = [*action.command, *action.env.values(), action.cwd or ""]
    for text in texts:
        for name, default in placeholders.find(text):
            if not placeholders.is_context(name):
                found.setdefault(name, default)
    return found


def _check_action(
    name: str, parameters: Mapping[str, Any], tpath: Path_, data: CheckInput
) -> list[Finding]:
    if name in data.action_names:
        if data.actions is None or name not in data.actions:
            return []  # the binding itself is broken; reported in l3-actions.yml
        action = data.actions[name]
        if action.shell:
            return []  # parameters arrive as environment variables
        needed = _action_placeholders(action)
        out = []
        for param, default in needed.items():
            if default is None and param not in parameters:
                out.append(
                    Finding(
                        "workflows",
                        (*tpath, "action"),
                        f"action {name!r} needs parameter {param!r} "
                        f"(its command uses ${{{param}}}); add it under parameters",
                    )
                )
        for param in parameters:
            if param not in needed:
                hint = did_you_mean(param, needed) or (
                    f" (it uses: {', '.join(needed)})" if needed else " (it takes none)"
                )
                out.append(
                    Finding(
                        "workflows",
                        (*tpath, "parameters", param),
                        f"parameter {param!r} is not used by action {name!r}{hint}",
                        prefer_key=True,
                    )
                )
        return out
    if name in BUILTIN_ACTIONS:
        try:
            BUILTIN_ACTIONS[name].model_validate(dict(parameters))
        except ValidationError as exc:
            out = []
            for error in exc.errors(include_url=False):
                if isinstance(error.get("input"), str) and "${" in error["input"]:
                    continue  # a template param: checked once the template is filled
                loc = tuple(error["loc"])
                out.append(
                    Finding(
                        "workflows",
                        (*tpath, "parameters", *loc),
                        humanize(error, BUILTIN_ACTIONS[name], loc),
                        prefer_key=error["type"] == "extra_forbidden",
                    )
                )
            return out
        if data.scheduling is None:
            return []  # the roots are unknown until l3-scheduling.yml validates
        entries = data.scheduling.execution.cleanup_roots
        return [Finding("workflows", (*tpath, "parameters", *loc), message)
                for loc, message in outside_roots(name, parameters, entries)]  # fmt: skip
    known = [*data.action_names, *BUILTIN_ACTIONS]
    return [
        Finding(
            "workflows",
            (*tpath, "action"),
            f"action {name!r} has no binding in l3-actions.yml and is not a built-in "
            f"action{did_you_mean(name, known)}",
        )
    ]


def _check_placeholders(
    section: str, wf_id: str, wf: WorkflowDef, salvaged: set[tuple[str, str, int]]
) -> list[Finding]:
    declared = set(wf.params) if isinstance(wf, TemplateDef) else set()
    used: set[str] = set()
    out = []
    for index, task in enumerate(wf.tasks):
        if (section, wf_id, index) in salvaged:
            continue
        dumped = task.model_dump(exclude_defaults=True)
        for sub_path, text in placeholders.strings_in(dumped):
            for name, default in placeholders.find(text):
                if placeholders.is_context(name):
                    continue
                used.add(name)
                if name in declared or default is not None:
                    continue
                where = (section, wf_id, "tasks", index, *sub_path)
                if isinstance(wf, TemplateDef):
                    msg = (
                        f"placeholder ${{{name}}} has no declared param"
                        f"{did_you_mean(name, declared)}; declare it under params"
                    )
                else:
                    msg = (
                        f"placeholder ${{{name}}} in a workflow; only templates declare "
                        f"params (move it to templates: or give a default: ${{{name}:-value}})"
                    )
                out.append(Finding("workflows", where, msg))
    if isinstance(wf, TemplateDef):
        for name in sorted(declared - used):
            out.append(
                Finding(
                    "workflows",
                    (section, wf_id, "params", name),
                    f"param {name!r} is declared but never used",
                    "warning",
                    prefer_key=True,
                )
            )
        for name, spec in wf.params.items():
            if (
                spec.choices is not None
                and spec.default is not None
                and (spec.default not in spec.choices)
            ):
                out.append(
                    Finding(
                        "workflows",
                        (section, wf_id, "params", name, "default"),
                        f"default {spec.default!r} is not one of the choices",
                    )
                )
    return out


def _check_actions(actions: Mapping[str, ActionDef]) -> list[Finding]:
    out = []
    for name, action in actions.items():
        if name in BUILTIN_ACTIONS:
            out.append(
                Finding(
                    "actions",
                    ("actions", name),
                    f"{name!r} is a built-in action; this binding replaces it",
                    "warning",
                    prefer_key=True,
                )
            )
        for index, arg in enumerate(action.command):
            if arg.count("${") != len(list(placeholders.find(arg))):
                out.append(
                    Finding(
                        "actions",
                        ("actions", name, "command", index),
                        f"malformed placeholder in {arg!r} (write ${{name}} or ${{name:-default}})",
                    )
                )
    return out


def _check_recurring(
    data: CheckInput, known: Mapping[str, WorkflowDef], sources: Mapping[str, Any]
) -> list[Finding]:
    out = []
    seen: set[str] = set()
    wf_file = sources["workflows"].path.name
    priorities = data.scheduling.priorities if data.scheduling else None
    for index, job in data.recurring:
        path: Path_ = ("scheduling", "recurring_tasks", index)
        if job.id in seen:
            out.append(
                Finding("scheduling", (*path, "id"), f"duplicate recurring task id {job.id!r}")
            )
        seen.add(job.id)
        if job.workflow not in data.workflow_ids:
            out.append(
                Finding(
                    "scheduling",
                    (*path, "workflow"),
                    f"workflow {job.workflow!r} is not defined in {wf_file}"
                    f"{did_you_mean(job.workflow, data.workflow_ids)}",
                )
            )
            continue
        target = known.get(job.workflow)
        if isinstance(target, TemplateDef):
            for name, spec in target.params.items():
                if spec.is_required and name not in job.params:
                    out.append(
                        Finding(
                            "scheduling",
                            (*path, "params"),
                            f"template {job.workflow!r} needs param {name!r}",
                        )
                    )
            for name in job.params:
                if name not in target.params:
                    out.append(
                        Finding(
                            "scheduling",
                            (*path, "params", name),
                            f"template {job.workflow!r} has no param {name!r}"
                            f"{did_you_mean(name, target.params)}",
                            prefer_key=True,
                        )
                    )
        elif target is not None and job.params:
            out.append(
                Finding(
                    "scheduling",
                    (*path, "params"),
                    f"{job.workflow!r} is a workflow, not a template; it takes no params",
                    prefer_key=True,
                )
            )
        out += _check_priority(job.priority, (*path, "priority"), priorities, kind="scheduling")
    return out


def _check_alerts(alerts: list[AlertRule]) -> list[Finding]:
    out = []
    seen: set[str] = set()
    for index, rule in enumerate(alerts):
        if rule.id in seen:
            out.append(
                Finding(
                    "dashboard", ("alerts", index, "id"), f"duplicate alert rule id {rule.id!r}"
                )
            )
        seen.add(rule.id)
    return out
