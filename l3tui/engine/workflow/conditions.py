"""Whether a task whose upstream tasks have all ended should run: its upstream rule plus
simple predicates (path exists or not, environment variable equals, param equals).
Nothing here evaluates user strings as code."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from l3tui.config.schema import Condition, UpstreamRule
from l3tui.engine.model import TASK_FAILED, TaskState


def judge(
    conditions: Sequence[Condition],
    upstream: Mapping[str, TaskState],
    params: Mapping[str, Any],
    env: Mapping[str, str],
    cwd: Path,
) -> tuple[bool, str]:
    """(run it?, why not) for a task whose upstream tasks have all ended."""
    rule = next((c.upstream for c in conditions if c.upstream is not None),
                UpstreamRule.ALL_SUCCESS)  # fmt: skip
    ok, why = _upstream_ok(rule, upstream)
    if not ok:
        return False, why
    for condition in conditions:
        if condition.path_exists is not None and not (cwd / condition.path_exists).exists():
            return False, f"condition: {condition.path_exists} does not exist"
        if condition.path_missing is not None and (cwd / condition.path_missing).exists():
            return False, f"condition: {condition.path_missing} exists"
        for name, value in (condition.env_equals or {}).items():
            if env.get(name) != value:
                return False, f"condition: ${name} is {env.get(name)!r}, not {value!r}"
        for name, value in (condition.param_equals or {}).items():
            if params.get(name) != value:
                return False, f"condition: param {name} is {params.get(name)!r}, not {value!r}"
    return True, ""


def _upstream_ok(rule: UpstreamRule, upstream: Mapping[str, TaskState]) -> tuple[bool, str]:
    if rule in (UpstreamRule.ALWAYS, UpstreamRule.ALL_DONE) or not upstream:
        return True, ""
    if rule == UpstreamRule.ONE_FAILED:
        if any(state in TASK_FAILED for state in upstream.values()):
            return True, ""
        return False, "no upstream task failed (runs on one_failed)"
    bad = [f"{task} {state}" for task, state in upstream.items() if state != TaskState.SUCCEEDED]
    if bad:
        return False, "upstream did not succeed: " + ", ".join(bad)
    return True, ""
