"""Action registry: turns a task's `action` and `parameters` into a job an executor runs.

Command actions come from l3-actions.yml: parameters fill `${name}` placeholders inside
single argument-list elements, never a shell string, so `a; rm -rf ~` stays one literal
argument. Built-in actions are Python: `noop` runs in-process, the maintenance ones run as
`python -m l3tui.engine.actions.builtins NAME PARAMS` in their own process group like any command.

Each string of the definition is filled once, here: a task's `parameters` and `env`, then
the action's `command`, `env` and `cwd` with those parameters. A value put in place (a run's
param, an environment variable, a secret, a filled parameter) is never scanned again.
`${secret:NAME}` is resolved only where a process receives it (argv elements and env
values); the job carries a mask of the secrets it holds, so what is shown of it (argv,
messages, output) says `***` instead. A command action with nothing to fill, run by a task
without parameters or env of its own (the common case), is resolved once per config.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l3tui.config import placeholders, roots
from l3tui.config.builtins import BUILTIN_ACTIONS, IN_PROCESS_BUILTINS
from l3tui.config.loader import Config
from l3tui.config.schema import PLACEHOLDER_RE, ActionDef, TaskDef
from l3tui.config.secrets import SecretError, SecretSource, secrets_path
from l3tui.engine.executors.base import CommandJob
from l3tui.engine.executors.output import SecretMask


class ActionError(Exception):
    """The task cannot be started as configured; the message says why, in one line."""


InProcessFunc = Callable[[Mapping[str, Any]], Coroutine[Any, Any, int]]


@dataclass(frozen=True, slots=True)
class InProcessJob:
    """A coroutine run inside the engine's process (no pause; cancel cancels it)."""

    func: InProcessFunc
    params: Mapping[str, Any]
    timeout_s: float
    origin: str = ""


Job = CommandJob | InProcessJob


@dataclass(frozen=True, slots=True)
class _Plain:
    """A command action with nothing to fill (no placeholder in its argument list or env, no
    working directory) run by a task without parameters or env of its own: what every job
    of it shares, resolved once per registry (a config), where filling it for each attempt
    cost ~30 us of a busy loop's time."""

    argv: tuple[str, ...]
    executable: str
    env: dict[str, str]
    """The registry's environment and the action's, without the `L3_*` of an attempt."""
    origin: str


Lookup = Callable[[str], Any]


class _Secrets:
    """The secrets one job's build resolved: to hand to its process and to mask."""

    __slots__ = ("env", "file", "source", "used")

    def __init__(self, env: Mapping[str, str], file: Path | None) -> None:
        self.env = env
        self.file = file
        self.source: SecretSource | None = None
        """Made on the first secret asked for: most jobs have none."""
        self.used: dict[str, str] = {}

    def get(self, name: str) -> str:
        if self.source is None:
            self.source = SecretSource(self.env, self.file)
        try:
            value = self.source.get(name)
        except SecretError as exc:
            raise ActionError(str(exc)) from None
        self.used[name] = value
        return value

    def mask(self) -> SecretMask | None:
        return SecretMask(self.used.values()) if self.used else None


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
    _secrets_file: Path | None = field(init=False, default=None)
    _in_process: dict[tuple[str, int | None], InProcessJob] = field(init=False,
                                                                    default_factory=dict)
    _plain: dict[str, _Plain | None] = field(init=False, default_factory=dict)
    """By action name: its `_Plain`, or None when it has something to fill."""

    def __post_init__(self) -> None:
        value = self.config.scheduling.execution.secrets_file
        self._secrets_file = secrets_path(value, self.config.directory) if value else None

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

    def in_process(self, task: TaskDef) -> InProcessJob | None:
        """What `resolve` gives an in-process built-in without parameters (a `noop`), shared
        between its tasks and needing no context; None for every other task. The hot path
        of short in-process tasks."""
        name = task.action
        if task.parameters or name not in IN_PROCESS_BUILTINS:
            return None
        key = (name, task.timeout)  # the rest of the timeout comes from this registry's config
        job = self._in_process.get(key)
        func = IN_PROCESS.get(name)
        if job is not None and job.func is func:
            return job
        if func is None or name in self.config.actions.actions:
            return None
        job = self._in_process[key] = InProcessJob(func, {}, self.default_timeout_s(task),
                                                   f"built-in action {name}")  # fmt: skip
        return job

    def resolve(self, task: TaskDef, context: Mapping[str, Any], params: Mapping[str, Any]) -> Job:
        """A runnable job for `task`; `context` holds the `l3.*` values for this attempt and
        `params` the execution's (a template's params, as given)."""
        timeout_s = self.default_timeout_s(task)
        if not task.parameters and not task.env:
            name = task.action
            plain = self._plain[name] if name in self._plain else self._plain_plan(name)
            if plain is not None:  # what `_command` and `_env` make of it, made once
                env = dict(plain.env)
                env["L3_EXECUTION_ID"] = str(context.get("l3.execution_id", ""))
                env["L3_TASK_ID"] = task.id
                env["L3_ATTEMPT"] = str(context.get("l3.attempt", 1))
                env["L3_EXECUTION_DIR"] = str(context.get("l3.execution_dir", ""))
                return CommandJob(plain.argv, plain.executable, env, None, timeout_s,
                                  task.rlimits, plain.origin)  # fmt: skip
        action = self.config.actions.actions.get(task.action)
        secrets = _Secrets(self.base_env, self._secrets_file)
        parameters: dict[str, Any] = {}
        if task.parameters:
            # Parameters reach a process only through an action bound in l3-actions.yml;
            # built-in actions get theirs as JSON that they print and report.
            where = "parameters" if action is not None else f"parameters of built-in {task.action}"
            lookup = self._lookup(context, params, secrets if action else None, where)
            try:
                parameters = placeholders.fill_value(dict(task.parameters), lookup)
            except placeholders.MissingPlaceholder as exc:
                raise ActionError(f"parameter placeholder ${{{exc.name}}} has no value") from None
        if action is not None:
            return self._command(task, action, parameters, context, params, timeout_s, secrets)
        if task.action in IN_PROCESS and task.action in IN_PROCESS_BUILTINS:
            return InProcessJob(IN_PROCESS[task.action], parameters, timeout_s,
                                f"built-in action {task.action}")  # fmt: skip
        if task.action in BUILTIN_ACTIONS:
            return self._builtin(task, parameters, context, params, timeout_s, secrets)
        raise ActionError(
            f"action {task.action!r} has no binding in l3-actions.yml and is not built in"
        )

    def _plain_plan(self, name: str) -> _Plain | None:
        """The action's `_Plain` when it has nothing to fill, else None (remembered); not
        remembered while its program is not found (it may be installed meanwhile)."""
        action = self.config.actions.actions.get(name)
        if action is None or action.cwd or any(
            PLACEHOLDER_RE.search(text) is not None
            for text in (*(() if action.shell else action.command), *action.env.values())
        ):  # fmt: skip
            self._plain[name] = None
            return None
        argv = ("/bin/sh", "-c", action.command[0]) if action.shell else tuple(action.command)
        env = dict(self.base_env)
        env.update(action.env)
        executable = self._which(argv[0], env.get("PATH", os.defpath))
        if executable is None:
            return None  # `_command` says so, and looks again next time
        origin = f"{self.config.sources['actions'].path.name}: {name}"
        plain = self._plain[name] = _Plain(argv, executable, env, origin)
        return plain

    def _lookup(
        self,
        context: Mapping[str, Any],
        params: Mapping[str, Any],
        secrets: _Secrets | None,
        where: str,
    ) -> Lookup:
        """Values for one pass over definition strings: `secrets` None where no process
        receives the text (a working directory, a built-in's parameters)."""

        def lookup(name: str) -> Any:
            if placeholders.is_secret(name):
                if secrets is None:
                    raise ActionError(f"${{{name}}} in {where}: a secret is passed only in a "
                                      "command's arguments or environment")  # fmt: skip
                return secrets.get(name.removeprefix(placeholders.SECRET_PREFIX))
            if name.startswith("env."):
                return self.base_env[name[4:]]
            if name in context:
                return context[name]
            return params[name]

        return lookup

    def _env(
        self,
        task: TaskDef,
        extra: Mapping[str, str],
        context: Mapping[str, Any],
        params: Mapping[str, Any],
        secrets: _Secrets,
    ) -> dict[str, str]:
        env = dict(self.base_env)
        env.update(extra)
        lookup = self._lookup(context, params, secrets, f"env of task {task.id}")
        for name, value in task.env.items():
            try:
                env[name] = placeholders.fill(value, lookup)
            except placeholders.MissingPlaceholder as exc:
                raise ActionError(f"env {name} of task {task.id!r}: no value for "
                                  f"${{{exc.name}}}") from None  # fmt: skip
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
        params: Mapping[str, Any],
        timeout_s: float,
        secrets: _Secrets,
    ) -> CommandJob:
        origin = f"{self.config.sources['actions'].path.name}: {task.action}"
        lookup = self._lookup(context, parameters, secrets, f"action {task.action}")
        cwd_lookup = self._lookup(context, parameters, None, f"cwd of action {task.action}")
        try:
            if action.shell:
                argv = ["/bin/sh", "-c", action.command[0]]
                extra = {k: str(v) for k, v in parameters.items()}
            else:
                argv = [placeholders.fill(arg, lookup) for arg in action.command]
                extra = {}
            extra.update({k: placeholders.fill(v, lookup) for k, v in action.env.items()})
            cwd = placeholders.fill(action.cwd, cwd_lookup) if action.cwd else None
        except placeholders.MissingPlaceholder as exc:
            raise ActionError(
                f"action {task.action!r} needs parameter {exc.name!r} (bound in {origin})"
            ) from None
        env = self._env(task, extra, context, params, secrets)
        mask = secrets.mask()
        shown = mask.text if mask is not None else str
        if cwd is not None and shown(cwd) != cwd:
            raise ActionError(f"the working directory of action {task.action!r} would hold a "
                              f"secret (bound in {origin})")  # fmt: skip
        executable = self._which(argv[0], env.get("PATH", os.defpath))
        if executable is None:
            raise ActionError(shown(f"command not found: {argv[0]} (bound in {origin})"))
        if cwd is not None:
            resolved = (self.cwd / cwd).resolve()
            if not resolved.is_dir():
                raise ActionError(f"working directory not found: {resolved} (bound in {origin})")
            cwd = None if resolved == self.cwd.resolve() else str(resolved)
        return CommandJob(tuple(argv), executable, env, cwd, timeout_s, task.rlimits, origin,
                          mask)  # fmt: skip

    def _builtin(
        self,
        task: TaskDef,
        parameters: Mapping[str, Any],
        context: Mapping[str, Any],
        params: Mapping[str, Any],
        timeout_s: float,
        secrets: _Secrets,
    ) -> CommandJob:
        model = BUILTIN_ACTIONS[task.action]
        # Defaults may hold placeholders (`${l3.state_dir}`): fill them here, in the engine.
        # The task's parameters were filled already and are not scanned again.
        lookup = self._lookup(context, {}, None, f"built-in {task.action}")
        defaults = {name: f.default for name, f in model.model_fields.items()
                    if f.default is not None and isinstance(f.default, str)}  # fmt: skip
        try:
            filled = {**placeholders.fill_value(defaults, lookup), **parameters}
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
        env = self._env(task, extra, context, params, secrets)
        return CommandJob(argv, sys.executable, env, None, timeout_s, task.rlimits,
                          f"built-in action {task.action}", secrets.mask())  # fmt: skip
