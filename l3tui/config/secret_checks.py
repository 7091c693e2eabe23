"""What `l3tui validate` checks about `${secret:NAME}`: that it stands only where a process
receives it (an action's `command` elements and `env` values, a task's `env` values, and the
`parameters` of a task whose action is bound in l3-actions.yml), and that the secrets file
is usable and holds what the config asks for.

Findings are plain tuples for `crossref` to locate; no value of a secret is ever put in one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from l3tui.config import placeholders
from l3tui.config.errors import Severity
from l3tui.config.schema import ActionDef, RecurringTask, Scheduling, WorkflowDef
from l3tui.config.secrets import SecretsFileError, read_secrets_file, secrets_path, too_short
from l3tui.config.yamlpos import Path_

Issue = tuple[str, Path_, str, Severity]
"""(file kind, key path, message, severity)."""

NOT_HERE = (
    "${{secret:{name}}} is not passed to a process here; secrets go only in a command's "
    "arguments or env values (a task's env, an action's command or env, or the parameters "
    "of a task whose action is bound in l3-actions.yml)"
)

BUILT_IN = (
    "${{secret:{name}}}: a built-in action's parameters are printed and recorded, so they "
    "take no secrets (give the secret to a command action, in its env)"
)
IN_SCRIPT = (
    "${{secret:{name}}}: placeholders in a shell: true script are not filled; put the "
    "secret in the action's env ({{TOKEN: \"${{secret:{name}}}\"}}) and use \"$TOKEN\""
)


def _secrets_in(text: str) -> Iterator[tuple[str, str | None]]:
    for name, default in placeholders.find(text):
        if placeholders.is_secret(name):
            yield name.removeprefix(placeholders.SECRET_PREFIX), default


def _shape(name: str, default: str | None) -> str | None:
    """What is wrong with how `${secret:NAME}` is written, or None."""
    if not placeholders.SECRET_NAME_RE.fullmatch(name):
        return f"${{secret:{name}}}: a secret's name is letters, digits and _"
    if default is not None:
        return f"${{secret:{name}:-...}}: a secret takes no default"
    return None


def check(
    defs: Mapping[str, Mapping[str, WorkflowDef]],
    salvaged: set[tuple[str, str, int]],
    actions: Mapping[str, ActionDef] | None,
    recurring: list[tuple[int, RecurringTask]],
    scheduling: Scheduling | None,
    config_dir: Path,
) -> list[Issue]:
    out: list[Issue] = []
    used: dict[str, tuple[str, Path_]] = {}
    """Each secret asked for where it is allowed, and where it is first asked for."""

    def visit(kind: str, path: Path_, text: str, allowed: bool, why: str = NOT_HERE) -> None:
        for name, default in _secrets_in(text):
            problem = _shape(name, default)
            if problem:
                out.append((kind, path, problem, "error"))
            elif not allowed:
                out.append((kind, path, why.format(name=name), "error"))
            else:
                used.setdefault(name, (kind, path))

    for section, workflows in defs.items():
        for wf_id, wf in workflows.items():
            base: Path_ = (section, wf_id)
            if (section, wf_id, -1) not in salvaged:  # else only its graph is known
                outer = wf.model_dump(exclude={"tasks"}, exclude_defaults=True)
                for sub, text in placeholders.strings_in(outer):
                    visit("workflows", (*base, *sub), text, False)
            for index, task in enumerate(wf.tasks):
                if (section, wf_id, index) in salvaged:
                    continue
                bound = actions.get(task.action) if actions else None
                in_cwd = {n for n, _ in placeholders.find(bound.cwd or "")} if bound else set()
                dumped = task.model_dump(exclude_defaults=True)
                for sub, text in placeholders.strings_in(dumped):
                    allowed = sub[0] == "env" or (
                        sub[0] == "parameters" and bound is not None and sub[1] not in in_cwd
                    )
                    why = BUILT_IN if sub[0] == "parameters" and bound is None else NOT_HERE
                    visit("workflows", (*base, "tasks", index, *sub), text, allowed, why)
    for name, action in (actions or {}).items():
        base = ("actions", name)
        for index, arg in enumerate(action.command):
            visit("actions", (*base, "command", index), arg, not action.shell, IN_SCRIPT)
            if action.shell:
                continue
            for secret, _ in _secrets_in(arg):
                out.append(("actions", (*base, "command", index),
                            f"${{secret:{secret}}} in a command's arguments is visible to "
                            "every user of this machine (ps, /proc); pass it in env: instead",
                            "warning"))  # fmt: skip
        for key, value in action.env.items():
            visit("actions", (*base, "env", key), value, True)
        visit("actions", (*base, "cwd"), action.cwd or "", False)
        visit("actions", (*base, "description"), action.description, False)
    for index, job in recurring:
        for sub, text in placeholders.strings_in(dict(job.params)):
            path: Path_ = ("scheduling", "recurring_tasks", index, "params", *sub)
            secrets = [name for name, _ in _secrets_in(text)]
            if secrets:
                out.append(("scheduling", path, f"${{secret:{secrets[0]}}} would arrive as "
                            "written: params are values, never filled; put the secret in the "
                            "task's env", "error"))  # fmt: skip
            elif any(True for _ in placeholders.find(text)):
                out.append(("scheduling", path, "params are values: a placeholder in them "
                            "arrives as written (it is not filled)", "warning"))  # fmt: skip
    out += _check_file(scheduling, config_dir, used)
    return out


def _check_file(
    scheduling: Scheduling | None, config_dir: Path, used: Mapping[str, tuple[str, Path_]]
) -> list[Issue]:
    out: list[Issue] = []
    configured = scheduling.execution.secrets_file if scheduling else None
    where: Path_ = ("scheduling", "execution", "secrets_file")
    values: Mapping[str, Any] = {}
    if configured:
        path = secrets_path(configured, config_dir)
        try:
            values = read_secrets_file(path)
        except SecretsFileError as exc:
            missing = exc.detail == "not found"
            out.append(("scheduling", where, str(exc), "warning" if missing else "error"))
            if not missing:
                return out
    for name, (kind, at) in used.items():
        value = os.environ.get(name)
        if value is None and name in values:
            value = values[name].value
        if value is None:
            source = "nor in the secrets file" if configured else (
                "and no secrets file is configured (scheduling.execution.secrets_file)")
            out.append((kind, at, f"secret {name} is not in the environment {source}: a task "
                        "using it will fail", "warning"))  # fmt: skip
        elif too_short(name, value):
            out.append((kind, at, str(too_short(name, value)), "warning"))
    return out
