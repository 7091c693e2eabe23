"""Read the config directory into validated models, or say precisely what is wrong.

`load_config(dir)` returns a `Config` or raises `ConfigError` carrying *every* problem
found, each one line `FILE:LINE:COL: key.path: message`. It never runs anything.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from l3tui.config.errors import ConfigError, ConfigIssue, issues_from_validation
from l3tui.config.schema import (
    ActionsFile,
    DashboardFile,
    Scheduling,
    SchedulingFile,
    WorkflowDef,
    WorkflowsFile,
)
from l3tui.config.yamlpos import MAX_FILE_BYTES, Located, YamlFileError, decode, load_located

FileKind = Literal["workflows", "scheduling", "dashboard", "actions"]

FILE_NAMES: dict[FileKind, str] = {
    "workflows": "l3-workflows.yml",
    "scheduling": "l3-scheduling.yml",
    "dashboard": "l3-dashboard.yml",
    "actions": "l3-actions.yml",
}
MODELS: dict[FileKind, type[BaseModel]] = {
    "workflows": WorkflowsFile,
    "scheduling": SchedulingFile,
    "dashboard": DashboardFile,
    "actions": ActionsFile,
}
REQUIRED: frozenset[FileKind] = frozenset({"workflows"})


@dataclass(frozen=True)
class SourceFile:
    """One config file as read: where it is, its bytes' hash, where each key stood."""

    path: Path
    present: bool
    digest: str = ""
    located: Located | None = None

    def line_of(self, *path: str | int) -> int:
        return self.located.position(tuple(path)).line if self.located else 0


@dataclass(frozen=True)
class Config:
    """A validated configuration: the four files' models plus where they came from."""

    directory: Path
    workflows: WorkflowsFile
    scheduling_file: SchedulingFile
    dashboard: DashboardFile
    actions: ActionsFile
    sources: Mapping[FileKind, SourceFile]
    warnings: list[ConfigIssue] = field(default_factory=list)

    @property
    def scheduling(self) -> Scheduling:
        return self.scheduling_file.scheduling

    @property
    def digest(self) -> str:
        """Hash of all four files; changes whenever any of them does."""
        joined = "|".join(self.sources[k].digest for k in FILE_NAMES)
        return hashlib.sha256(joined.encode()).hexdigest()[:16]


def resolve_config_dir(
    cli_value: str | None, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Path:
    """`--config DIR` > `$L3TUI_CONFIG` > `./config` > `$XDG_CONFIG_HOME/l3tui`."""
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    if cli_value:
        return Path(cli_value).expanduser()
    if env.get("L3TUI_CONFIG"):
        return Path(env["L3TUI_CONFIG"]).expanduser()
    local = cwd / "config"
    if (local / FILE_NAMES["workflows"]).is_file():
        return local
    xdg = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(xdg) / "l3tui"


def resolve_state_dir(cli_value: str | None, env: Mapping[str, str] | None = None) -> Path:
    """`--state DIR` > `$L3TUI_STATE` > `$XDG_STATE_HOME/l3tui`."""
    env = os.environ if env is None else env
    if cli_value:
        return Path(cli_value).expanduser()
    if env.get("L3TUI_STATE"):
        return Path(env["L3TUI_STATE"]).expanduser()
    xdg = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "l3tui"


def _permission_warnings(path: Path) -> list[ConfigIssue]:
    try:
        st = path.stat()
    except OSError:
        return []
    warnings = []
    if st.st_mode & stat.S_IWOTH:
        warnings.append(
            ConfigIssue(
                path, 1, 1, "",
                "file is writable by other users, and it decides what commands run "
                f"(chmod o-w {path})",
                "warning",
            )
        )  # fmt: skip
    elif st.st_uid not in (os.getuid(), 0):
        warnings.append(
            ConfigIssue(
                path, 1, 1, "",
                f"file belongs to another user (uid {st.st_uid}), and it decides what "
                "commands run",
                "warning",
            )
        )  # fmt: skip
    return warnings


def _read(
    path: Path, kind: FileKind, issues: list[ConfigIssue]
) -> tuple[SourceFile, BaseModel | None]:
    model_cls = MODELS[kind]
    if not path.exists():
        if kind in REQUIRED:
            issues.append(ConfigIssue(path, 1, 1, "", "file not found"))
            return SourceFile(path, present=False), None
        return SourceFile(path, present=False), model_cls()
    try:
        # Never more than the limit in memory, whatever the file's size.
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        issues.append(ConfigIssue(path, 1, 1, "", f"cannot read: {exc.strerror}"))
        return SourceFile(path, present=False), None
    digest = hashlib.sha256(raw).hexdigest()
    try:
        located = load_located(decode(raw, size))
    except YamlFileError as exc:
        issues.append(ConfigIssue(path, exc.pos.line, exc.pos.col, exc.key, exc.message))
        return SourceFile(path, present=True, digest=digest), None
    source = SourceFile(path, present=True, digest=digest, located=located)
    for problem in located.problems:
        from l3tui.config.errors import key_path

        issues.append(
            ConfigIssue(
                path, problem.pos.line, problem.pos.col,
                key_path(located.data, problem.path), problem.message,
            )
        )  # fmt: skip
    try:
        model = model_cls.model_validate(located.data)
    except ValidationError as exc:
        issues.extend(
            issues_from_validation(path, located, model_cls, exc.errors(include_url=False))
        )
        return source, None
    return source, model


def _valid_entries(raw: Any, model: type[BaseModel]) -> dict[str, Any]:
    """The entries of a mapping that validate on their own (the rest were reported)."""
    out = {}
    if isinstance(raw, dict):
        for key, value in raw.items():
            try:
                out[key] = model.model_validate(value)
            except ValidationError:
                pass
    return out


def _salvage_workflows(
    section: str, raw: Any, model: type[BaseModel], salvaged: set[tuple[str, str, int]]
) -> dict[str, Any]:
    """Workflows that validate, plus, for those that do not, the tasks' ids, actions and
    dependencies, so a typo in one task does not hide a missing dependency in another."""
    from l3tui.config.schema import TaskDef

    out: dict[str, Any] = {}
    if not isinstance(raw, dict):
        return out
    for wf_id, value in raw.items():
        try:
            out[wf_id] = model.model_validate(value)
            continue
        except ValidationError:
            pass
        if not isinstance(value, dict) or not isinstance(value.get("tasks"), list):
            continue
        tasks = []
        for index, task in enumerate(value["tasks"]):
            try:
                tasks.append(TaskDef.model_validate(task))
                continue
            except ValidationError:
                pass
            if not isinstance(task, dict) or not isinstance(task.get("id"), str):
                tasks.append(TaskDef.model_construct(id=f"#{index}", action=""))
            else:
                deps = task.get("dependencies")
                deps = [d for d in deps if isinstance(d, str)] if isinstance(deps, list) else []
                tasks.append(TaskDef.model_construct(id=task["id"], action="", dependencies=deps))
            salvaged.add((section, str(wf_id), index))
        salvaged.add((section, str(wf_id), -1))  # the workflow itself: only its graph is known
        params = value.get("params") if model is not WorkflowDef else None
        fields: dict[str, Any] = {"name": "", "tasks": tasks}
        if isinstance(params, dict):
            fields["params"] = {k: _salvage_param(v) for k, v in params.items()}
        out[wf_id] = model.model_construct(**fields)
    return out


def _salvage_param(raw: Any) -> Any:
    """A template param as declared, or, when its declaration is broken (and reported), an
    optional one, so that no check invents a missing-param error from it."""
    from l3tui.config.schema import ParamSpec

    try:
        return ParamSpec.model_validate(raw)
    except ValidationError:
        return ParamSpec.model_construct(required=False)


def _raw(sources: Mapping[FileKind, SourceFile], kind: FileKind, *keys: str) -> Any:
    located = sources[kind].located
    node = located.data if located else None
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _check_input(models: Mapping[FileKind, Any], sources: Mapping[FileKind, SourceFile]) -> Any:
    """Whatever validated, in whole or in part, for the cross-file checks."""
    from l3tui.config.crossref import CheckInput
    from l3tui.config.schema import ActionDef, RecurringTask, TemplateDef

    wf_file, sched_file = models["workflows"], models["scheduling"]
    actions_file, dash_file = models["actions"], models["dashboard"]
    raw_wf = _raw(sources, "workflows", "workflows")
    raw_tpl = _raw(sources, "workflows", "templates")
    ids = {str(k) for part in (raw_wf, raw_tpl) if isinstance(part, dict) for k in part}
    salvaged: set[tuple[str, str, int]] = set()
    if wf_file is not None:
        workflows, templates = dict(wf_file.workflows), dict(wf_file.templates)
    else:
        workflows = _salvage_workflows("workflows", raw_wf, WorkflowDef, salvaged)
        templates = _salvage_workflows("templates", raw_tpl, TemplateDef, salvaged)
    if sched_file is not None:
        recurring = list(enumerate(sched_file.scheduling.recurring_tasks))
    else:
        raw_jobs = _raw(sources, "scheduling", "scheduling", "recurring_tasks")
        recurring = []
        for index, job in enumerate(raw_jobs if isinstance(raw_jobs, list) else []):
            try:
                recurring.append((index, RecurringTask.model_validate(job)))
            except ValidationError:
                pass
    raw_actions = _raw(sources, "actions", "actions")
    if actions_file is not None:
        actions: dict[str, Any] | None = dict(actions_file.actions)
        names = set(actions_file.actions)
    elif sources["actions"].present:
        actions = _valid_entries(raw_actions, ActionDef)
        names = {str(k) for k in raw_actions} if isinstance(raw_actions, dict) else set()
    else:
        actions, names = {}, set()
    return CheckInput(
        workflows=workflows, templates=templates, workflow_ids=ids,
        scheduling=sched_file.scheduling if sched_file is not None else None,
        recurring=recurring, actions=actions, action_names=names, salvaged=salvaged,
        alerts=list(dash_file.alerts) if dash_file is not None else None,
    )  # fmt: skip


def load_config(directory: Path | str) -> Config:
    """Load and check all four files; raise `ConfigError` listing every problem."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(
            [ConfigIssue(directory, 1, 1, "", "config directory not found (use --config DIR)")]
        )
    issues: list[ConfigIssue] = []
    warnings: list[ConfigIssue] = []
    sources: dict[FileKind, SourceFile] = {}
    models: dict[FileKind, Any] = {}
    for kind, name in FILE_NAMES.items():
        path = directory / name
        sources[kind], models[kind] = _read(path, kind, issues)
        if sources[kind].present:
            warnings.extend(_permission_warnings(path))
    if sources["workflows"].located is not None:
        from l3tui.config.crossref import cross_check

        found = cross_check(_check_input(models, sources), {str(k): v for k, v in sources.items()})
        issues.extend(i for i in found if i.severity == "error")
        warnings.extend(i for i in found if i.severity == "warning")
    issues.sort(
        key=lambda i: (
            list(FILE_NAMES.values()).index(i.file.name)
            if i.file.name in FILE_NAMES.values()
            else 9,
            i.line,
            i.col,
        )
    )
    if issues:
        raise ConfigError(issues + warnings)
    return Config(
        directory=directory,
        workflows=models["workflows"],
        scheduling_file=models["scheduling"],
        dashboard=models["dashboard"],
        actions=models["actions"],
        sources=sources,
        warnings=warnings,
    )
