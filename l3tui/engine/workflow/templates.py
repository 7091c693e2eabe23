"""Definitions: the one a workflow or template id names, and its hash. Templates: check the
params a run gives, fill `${param}` placeholders, and return an ordinary workflow definition
(context placeholders such as `${l3.state_dir}` stay for run time).

Values given for a run (`-p`, a schedule's params, the console's picker) are data: they are
put in place once and never scanned again. Where a later pass fills the rest at run time (a
task's `parameters` and `env`, which the action registry fills when it builds the process),
a given param's placeholder is left as written and the registry puts the value in, in that
same single pass; a param's default is definition text and is put in here, so its own
placeholders (`${l3.state_dir}/l3tui.db`) are filled there."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from l3tui.config import placeholders
from l3tui.config.loader import Config
from l3tui.config.schema import ParamSpec, TemplateDef, WorkflowDef
from l3tui.config.suggest import did_you_mean
from l3tui.errors import UsageError

RUN_TIME_FIELDS = ("parameters", "env")
"""Task fields the action registry fills when it builds the task's process."""
_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n"}


def coerce(name: str, spec: ParamSpec, value: Any) -> Any:
    """A param value (often a string from `-p key=value`) as its declared type."""
    kind = spec.type
    try:
        if kind == "integer":
            result: Any = int(value) if not isinstance(value, bool) else int("x")
        elif kind == "number":
            result = float(value)
        elif kind == "boolean":
            if isinstance(value, bool):
                result = value
            elif str(value).lower() in _TRUE:
                result = True
            elif str(value).lower() in _FALSE:
                result = False
            else:
                raise ValueError
        elif kind == "path":
            # `~` is expanded and nothing else: no normalising (a trailing `/` means a
            # directory to backup_sqlite), no placeholders.
            result = os.path.expanduser(str(value))
        else:
            result = str(value)
    except (TypeError, ValueError):
        raise UsageError(f"param {name}: expected {kind}, got {value!r}") from None
    if spec.choices is not None and result not in spec.choices:
        choices = ", ".join(map(str, spec.choices))
        raise UsageError(f"param {name}: {result!r} is not one of: {choices}")
    return result


def resolve_params(
    template_id: str, template: TemplateDef, given: Mapping[str, Any]
) -> dict[str, Any]:
    unknown = [k for k in given if k not in template.params]
    if unknown:
        name = unknown[0]
        raise UsageError(
            f"template {template_id!r} has no param {name!r}"
            f"{did_you_mean(name, template.params)}; its params: "
            f"{', '.join(template.params) or 'none'}"
        )
    values: dict[str, Any] = {}
    for name, spec in template.params.items():
        if name in given:
            values[name] = coerce(name, spec, given[name])
        elif spec.default is not None:
            values[name] = coerce(name, spec, spec.default)
        elif spec.is_required:
            raise UsageError(
                f"template {template_id!r} needs param {name!r} "
                f"({spec.description or spec.type}): add -p {name}=VALUE"
            )
    return values


def instantiate(
    template_id: str, template: TemplateDef, given: Mapping[str, Any]
) -> tuple[WorkflowDef, dict[str, Any]]:
    """(workflow definition, resolved params) for one run of a template."""
    values = resolve_params(template_id, template, given)

    def lookup(name: str) -> Any:
        if placeholders.is_context(name):
            return placeholders.KEEP  # filled at run time
        return values[name]

    def run_time_lookup(name: str) -> Any:
        if placeholders.is_context(name) or name in given:
            return placeholders.KEEP  # filled by the registry, given values as they are
        return values[name]

    raw = template.model_dump(mode="json", by_alias=True, exclude={"params"}, exclude_none=True)
    try:
        tasks = []
        for task in raw.pop("tasks", []):
            held = {key: task.pop(key) for key in RUN_TIME_FIELDS if key in task}
            filled_task = placeholders.fill_value(task, lookup)
            for key, value in held.items():
                filled_task[key] = placeholders.fill_value(value, run_time_lookup)
            tasks.append(filled_task)
        filled = {**placeholders.fill_value(raw, lookup), "tasks": tasks}
        return WorkflowDef.model_validate(filled), values
    except placeholders.MissingPlaceholder as exc:
        raise UsageError(f"template {template_id!r}: no value for ${{{exc.name}}}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(
            f"template {template_id!r} with these params is invalid: {where}: {first['msg']}"
        ) from None


ENCODED_KEPT = 4
T = TypeVar("T")


class PerDefinition(Generic[T]):
    """What is derived from a definition, kept for the newest `size` definition objects
    (each held, so its id is not reused). A workflow of the config runs from the same object
    each time (a schedule's fires, `run` again); a definition never changes once loaded (a
    reload, a template or a resume makes new objects, derived afresh)."""

    def __init__(self, derive: Callable[[WorkflowDef], T], size: int = ENCODED_KEPT) -> None:
        self._derive, self._size = derive, size
        self._kept: dict[int, tuple[WorkflowDef, T]] = {}

    def __call__(self, definition: WorkflowDef) -> T:
        known = self._kept.get(id(definition))
        if known is not None and known[0] is definition:
            return known[1]
        value = self._derive(definition)
        if len(self._kept) >= self._size:
            del self._kept[next(iter(self._kept))]  # the oldest
        self._kept[id(definition)] = (definition, value)
        return value


def _encode(definition: WorkflowDef) -> tuple[str, str]:
    # The serialiser's bytes hashed as they are, decoded once (`model_dump_json` decodes
    # them, and the hash encoded the text again: ~0.2 ms of a 1,000-task creation).
    raw = definition.__pydantic_serializer__.to_json(definition, by_alias=True)
    return raw.decode(), hashlib.sha256(raw).hexdigest()[:16]


_encodings = PerDefinition(_encode)


def encode_definition(definition: WorkflowDef) -> tuple[str, str]:
    """The definition as JSON (what the store keeps) and its hash, from one encoding:
    pydantic's own serialiser, fields in declaration order (a 10,001-task definition: 16 ms,
    against 180 ms for a dict dump hashed as sorted JSON and dumped again for the store);
    kept per definition object (~1.5 us per task of each later run of it)."""
    return _encodings(definition)


def definition_for(
    config: Config, workflow_id: str, params: Mapping[str, Any]
) -> tuple[WorkflowDef, dict[str, Any]]:
    """The definition a workflow or template id names (a template filled with `params`)."""
    wf = config.workflows
    if workflow_id in wf.templates:
        return instantiate(workflow_id, wf.templates[workflow_id], params)
    if workflow_id in wf.workflows:
        if params:
            raise UsageError(
                f"{workflow_id!r} is a workflow, not a template; it takes no params (-p)"
            )
        return wf.workflows[workflow_id], {}
    known = [*wf.workflows, *wf.templates]
    raise UsageError(f"unknown workflow {workflow_id!r}{did_you_mean(workflow_id, known)}")
