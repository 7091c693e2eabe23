"""Action registry: turns a task's `action` and `parameters` into a job an executor runs.

Command actions come from l3-actions.yml: parameters fill `${name}` placeholders inside
single argument-list elements, never a shell string, so `a; rm -rf ~` stays one literal
argument. Built-in actions are Python: `noop` runs in-process, the maintenance ones run as
`python -m l3tui.engine.actions.builtins NAME PARAMS` in their own process group like any command.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l3tui.config import placeholders, roots
from l3tui.config.builtins import BUILTIN_ACTIONS, IN_PROCESS_BUILTINS
from l3tui.config.loader import Config
from l3tui.config.schema import ActionDef, TaskDef
from l3tui.engine.executors.base import CommandJob


class ActionError(Exception):
    """The task cannot be started as configured; the message says why, in one line."""


InProcessFunc = Callable[[Mapping[str, Any]], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class InProcessJob:
    """A coroutine run inside the engine's process (no pause; cancel cancels it)."""

    func: InProcessFunc
    params: Mapping[str, Any]
    timeout_s: float
    origin: str = ""


Job = CommandJob | InProcessJob


async def _noop(params: Mapping[str, Any]) -> int:
    return 0


IN_PROCESS: dict[str, InProcessFunc] = {"noop": _noop}


@dataclass(slots=True)
class ActionRegistry:
    """Everything needed to resolve actions: the config and where state lives."""

    config: Config
    state_dir: Path
    base_env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    cwd: Path = field(default_factory=Path.cwd)
    _found: dict[tuple[str, str], str] = field(default_factory=dict)
    _roots: roots.Roots | None = None

    def _which(self, name: str, path: str) -> str | None:
        # Found programs are remembered (a PATH search is ~0.1 ms per task); a missing one
        # is looked for again next time, since it may be installed meanwhile.
        key = (name, path)
        found = self._found.get(key)
        if found is None:
            found = shutil.which(name, path=path)
            if found is not None:
                self._found[key] = found
        return found

    def cleanup_roots(self) -> roots.Roots:
        """Where file built-ins may act: the state dir and scheduling.execution.cleanup_roots,
        resolved to real paths once per config (symlinked, system and home roots refused)."""
        if self._roots is None:
            self._roots = roots.resolve(str(self.state_dir),
                                        self.config.scheduling.execution.cleanup_roots,
                                        str(self.cwd))  # fmt: skip
        return self._roots

    def default_timeout_s(self, task: TaskDef) -> float:
        action = self.config.actions.actions.get(task.action)
        ms = task.timeout or (action.timeout if action else None)
        return (ms or self.config.scheduling.execution.default_timeout) / 1000

    def resolve(self, task: TaskDef, context: Mapping[str, Any], params: Mapping[str, Any]) -> Job:
        """A runnable job for `task`; `context` holds the `l3.*` values for this attempt."""
        timeout_s = self.default_timeout_s(task)
        parameters: dict[str, Any] = {}
        if task.parameters:
            try:
                parameters = placeholders.fill_value(
                    dict(task.parameters), self._lookup(context, params)
                )
            except placeholders.MissingPlaceholder as exc:
                raise ActionError(f"parameter placeholder ${{{exc.name}}} has no value") from None
        action = self.config.actions.actions.get(task.action)
        if action is not None:
            return self._command(task, action, parameters, context, timeout_s)
        if task.action in IN_PROCESS and task.action in IN_PROCESS_BUILTINS:
            return InProcessJob(IN_PROCESS[task.action], parameters, timeout_s,
                                f"built-in action {task.action}")  # fmt: skip
        if task.action in BUILTIN_ACTIONS:
            return self._builtin(task, parameters, context, timeout_s)
        raise ActionError(
            f"action {task.action!r} has no binding in l3-actions.yml and is not built in"
        )

    def _lookup(
        self, context: Mapping[str, Any], params: Mapping[str, Any]
    ) -> Callable[[str], Any]:
        def lookup(name: str) -> Any:
            if name.startswith("env."):
                return self.base_env[name[4:]]
            if name in context:
                return context[name]
            return params[name]

        return lookup

    def _env(
        self, task: TaskDef, extra: Mapping[str, str], context: Mapping[str, Any]
    ) -> dict[str, str]:
        env = dict(self.base_env)
        env.update(extra)
        env.update(task.env)
        env["L3_EXECUTION_ID"] = str(context.get("l3.execution_id", ""))
        env["L3_TASK_ID"] = task.id
        env["L3_ATTEMPT"] = str(context.get("l3.attempt", 1))
        env["L3_EXECUTION_DIR"] = str(context.get("l3.execution_dir", ""))
        return env

    def _command(
        self,
        task: TaskDef,
        action: ActionDef,
        parameters: Mapping[str, Any],
        context: Mapping[str, Any],
        timeout_s: float,
    ) -> CommandJob:
        origin = f"{self.config.sources['actions'].path.name}: {task.action}"
        lookup = self._lookup(context, parameters)
        try:
            if action.shell:
                argv = ["/bin/sh", "-c", action.command[0]]
                extra = {k: str(v) for k, v in parameters.items()}
            else:
                argv = [placeholders.fill(arg, lookup) for arg in action.command]
                extra = {}
            extra.update({k: placeholders.fill(v, lookup) for k, v in action.env.items()})
            cwd = placeholders.fill(action.cwd, lookup) if action.cwd else None
        except placeholders.MissingPlaceholder as exc:
            raise ActionError(
                f"action {task.action!r} needs parameter {exc.name!r} (bound in {origin})"
            ) from None
        env = self._env(task, extra, context)
        executable = self._which(argv[0], env.get("PATH", os.defpath))
        if executable is None:
            raise ActionError(f"command not found: {argv[0]} (bound in {origin})")
        if cwd is not None:
            resolved = (self.cwd / cwd).resolve()
            if not resolved.is_dir():
                raise ActionError(f"working directory not found: {resolved} (bound in {origin})")
            cwd = None if resolved == self.cwd.resolve() else str(resolved)
        return CommandJob(tuple(argv), executable, env, cwd, timeout_s, task.rlimits, origin)

    def _builtin(
        self,
        task: TaskDef,
        parameters: Mapping[str, Any],
        context: Mapping[str, Any],
        timeout_s: float,
    ) -> CommandJob:
        model = BUILTIN_ACTIONS[task.action]
        # Defaults may hold placeholders (`${l3.state_dir}`): fill them here, in the engine.
        lookup = self._lookup(context, parameters)
        merged = {name: f.default for name, f in model.model_fields.items()
                  if f.default is not None and isinstance(f.default, str)}  # fmt: skip
        merged.update(parameters)
        try:
            filled = placeholders.fill_value(merged, lookup)
            model.model_validate(filled)
        except placeholders.MissingPlaceholder as exc:
            raise ActionError(f"built-in {task.action}: no value for ${{{exc.name}}}") from None
        except ValueError as exc:
            first = str(exc).splitlines()
            raise ActionError(f"built-in {task.action}: invalid parameters: {first[-1]}") from None
        package_root = str(Path(__file__).resolve().parents[3])  # holds l3tui/
        extra = {
            "PYTHONPATH": os.pathsep.join(
                p for p in (package_root, self.base_env.get("PYTHONPATH", "")) if p
            ),
            "PYTHONUNBUFFERED": "1",
        }
        argv: tuple[str, ...] = (sys.executable, "-m", "l3tui.engine.actions.builtins",
                                 task.action, json.dumps(filled, ensure_ascii=False))  # fmt: skip
        if task.action in roots.FILE_ACTIONS:
            # The roots travel as their own argument, set here only: nothing a task sets
            # (parameters, env) can widen them.
            argv += (self.cleanup_roots().to_json(),)
        return CommandJob(argv, sys.executable, self._env(task, extra, context), None,
                          timeout_s, task.rlimits, f"built-in action {task.action}")  # fmt: skip
