"""Config problems as one-line messages `FILE:LINE:COL: key.path: message`.

Turns pydantic's error records into sentences a person can act on: the key as written in
the file, the closest valid key for a typo, the allowed values for an enum.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from l3tui.config.suggest import did_you_mean
from l3tui.config.yamlpos import Located, Path_

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a config file, located precisely."""

    file: Path
    line: int
    col: int
    key: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        prefix = "warning: " if self.severity == "warning" else ""
        line = (
            f"{where}: {self.key}: {prefix}{self.message}"
            if self.key
            else (f"{where}: {prefix}{self.message}")
        )
        return printable(line)


def printable(text: str) -> str:
    """`text` with control and other unprintable characters escaped (`\\n`, `\\x1b`): a key
    read from a file must not break the one-line format or drive the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class ConfigError(Exception):
    """The configuration cannot be used; `issues` holds every problem found."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues


def key_path(data: Any, path: Path_) -> str:
    """`workflows.build.tasks[compile].timeout`: list items are named by their id."""
    out: list[str] = []
    node = data
    for part in path:
        if isinstance(part, int):
            label: str = str(part)
            if isinstance(node, list) and 0 <= part < len(node):
                item = node[part]
                if isinstance(item, dict) and isinstance(item.get("id"), str | int):
                    label = str(item["id"])
                node = item
            else:
                node = None
            out.append(f"[{label}]")
        else:
            out.append(f".{part}" if out else str(part))
            node = node.get(part) if isinstance(node, dict) else None
    return "".join(out)


def data_path(data: Any, loc: tuple[Any, ...]) -> tuple[Path_, bool]:
    """Map a pydantic `loc` onto the YAML data: drop union tags and member names.

    Returns the path and whether the error is about a mapping key (`[key]` in loc).
    """
    path: list[str | int] = []
    node = data
    on_key = False
    for part in loc:
        if part == "[key]":
            on_key = True
            break
        present = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        )
        if present:
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and not _is_union_member(part):
            # A key that is not there (missing field) or an alias: keep it in the path.
            path.append(part)
            node = None
        # else: a discriminator tag or union member name that is not in the data
    return tuple(path), on_key


def _is_union_member(part: str) -> bool:
    return (
        part in {"str", "int", "float", "bool", "list", "dict", "none"}
        or ("[" in part and "]" in part)
        or part in _WIDGET_TAGS
    )


_WIDGET_TAGS = frozenset(
    {
        "metrics_chart", "task_queue", "workflow_status", "performance_metrics", "alerts",
        "resource_sparklines", "schedules", "log_view", "cluster",
    }
)  # fmt: skip


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that validates the mapping at `loc` (for listing its valid keys)."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        origin = typing.get_origin(current)
        if origin in (typing.Union, types.UnionType):
            members = [_unwrap(m) for m in typing.get_args(current)]
            chosen = None
            for member in members:
                if isinstance(member, type) and issubclass(member, BaseModel):
                    type_field = member.model_fields.get("type")
                    if type_field is not None and part in typing.get_args(type_field.annotation):
                        chosen = member
                        break
            if chosen is not None:
                current = chosen
                continue
            models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
            if len(models) != 1:
                return None
            current = models[0]
            origin = None
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                for candidate in current.model_fields.values():
                    if candidate.alias == part:
                        field = candidate
                        break
            if field is None:
                return None
            current = field.annotation
        elif origin is list and isinstance(part, int):
            current = typing.get_args(current)[0]
        elif origin is dict:
            current = typing.get_args(current)[1]
        else:
            return None
    current = _unwrap(current)
    if typing.get_origin(current) in (typing.Union, types.UnionType):
        models = [m for m in typing.get_args(current) if isinstance(m, type)]
        models = [m for m in models if issubclass(m, BaseModel)]
        current = models[0] if len(models) == 1 else current
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def humanize(error: Mapping[str, Any], root: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """One sentence for one pydantic error."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    last = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        model = model_at(root, loc[:-1])
        valid = field_names(model) if model else []
        hint = did_you_mean(str(last), valid)
        if not hint and valid:
            hint = f" (valid keys: {', '.join(valid)})"
        return f"unknown key {last!r}{hint}"
    if kind == "missing":
        return f"missing required key {last!r}"
    if kind == "union_tag_invalid":
        tags = re.findall(r"'([^']+)'", str(ctx.get("expected_tags", "")))
        return (
            f"unknown {ctx.get('discriminator', 'type').strip(chr(39))} "
            f"{ctx.get('tag')!r}{did_you_mean(str(ctx.get('tag')), tags)}; one of: "
            + ", ".join(tags)
        )
    if kind == "union_tag_not_found":
        return f"missing key {ctx.get('discriminator', 'type')!s}".replace("'", "")
    if kind in ("literal_error", "enum"):
        expected = re.findall(r"'([^']+)'", str(ctx.get("expected", "")))
        return f"{value!r} is not one of: {', '.join(expected)}{did_you_mean(str(value), expected)}"
    if kind in ("value_error", "assertion_error"):
        message = str(error["msg"])
        for prefix in ("Value error, ", "Assertion failed, "):
            message = message.removeprefix(prefix)
        return message
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"expected a whole number, got {value!r}"
    if kind in ("float_parsing", "float_type"):
        return f"expected a number, got {value!r}"
    if kind in ("bool_parsing", "bool_type"):
        return f"expected true or false, got {value!r}"
    if kind in ("string_type",):
        return f"expected text, got {_kind(value)}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping of keys, got {_kind(value)}"
    if kind in ("list_type",):
        return f"expected a list, got {_kind(value)}"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s)"
    comparisons = {
        "greater_than": ">", "greater_than_equal": ">=", "less_than": "<",
        "less_than_equal": "<=",
    }  # fmt: skip
    if kind in comparisons:
        bound = next(iter(ctx.values()), "?")
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)  # `<= 100`, not `<= 100.0`, for a percentage
        return f"must be {comparisons[kind]} {bound}, got {value!r}"
    message = str(error["msg"])
    return message[:1].lower() + message[1:]


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {value!r}"


def issues_from_validation(
    file: Path, located: Located, root: type[BaseModel], errors: Sequence[Mapping[str, Any]]
) -> list[ConfigIssue]:
    """Pydantic errors -> located issues, one per (path, message), in file order."""
    seen: dict[Path_, ConfigIssue] = {}
    union_counts: dict[Path_, int] = {}
    for error in errors:
        loc = tuple(error["loc"])
        path, on_key = data_path(located.data, loc)
        message = humanize(error, root, loc)
        if error["type"] == "union_tag_invalid":
            # pydantic places it on the item; the value to fix is its `type:`
            discriminator = str((error.get("ctx") or {}).get("discriminator", "")).strip("'")
            path = (*path, discriminator) if discriminator else path
        is_union_member = bool(loc) and isinstance(loc[-1], str) and loc[-1] in {"str", "int"}
        if is_union_member:
            union_counts[path] = union_counts.get(path, 0) + 1
            message = f"expected a name or a number, got {_kind(error.get('input'))}"
        prefer_key = on_key or error["type"] in ("extra_forbidden", "missing")
        pos = located.position(path, prefer_key=prefer_key)
        if error["type"] == "missing":
            pos = located.position(path[:-1], prefer_key=False)
        issue = ConfigIssue(file, pos.line, pos.col, key_path(located.data, path), message)
        seen.setdefault(path if not on_key else (*path, "[key]"), issue)
    return sorted(seen.values(), key=lambda i: (i.line, i.col))
