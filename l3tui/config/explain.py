"""`l3tui validate --explain KEY`: what a config key means, from the models' docstrings."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from l3tui.config.builtins import BUILTIN_ACTIONS
from l3tui.config.loader import FILE_NAMES, MODELS


def _models_in(tp: Any) -> list[type[BaseModel]]:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    out: list[type[BaseModel]] = []
    origin = typing.get_origin(tp)
    if origin in (list, dict, typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            out += _models_in(arg)
    return out


def entries() -> Iterator[tuple[str, str, Any]]:
    """(file, dotted key path, FieldInfo) for every documented key."""
    for kind, root in MODELS.items():
        yield from _walk(FILE_NAMES[kind], root, "", set())
    for name, model in BUILTIN_ACTIONS.items():
        yield from _walk(f"built-in action {name}", model, "parameters", set())


def _walk(
    file: str, model: type[BaseModel], prefix: str, seen: set[type]
) -> Iterator[tuple[str, str, Any]]:
    if model in seen:
        return
    seen = seen | {model}
    for name, field in model.model_fields.items():
        key = field.alias or name
        path = f"{prefix}.{key}" if prefix else key
        yield file, path, field
        for sub in _models_in(field.annotation):
            sub_prefix = path
            tag = sub.model_fields.get("type")
            if tag is not None and typing.get_origin(tag.annotation) is typing.Literal:
                sub_prefix = f"{path}[{typing.get_args(tag.annotation)[0]}]"
            yield from _walk(file, sub, sub_prefix, seen)


def explain(key: str) -> list[str]:
    """Lines describing each key whose path ends with `key`."""
    wanted = key.strip(".")
    lines = []
    for file, path, field in entries():
        bare = path.replace("[", ".").replace("]", "")
        if not (
            path == wanted
            or path.endswith("." + wanted)
            or bare.endswith("." + wanted)
            or bare == wanted
        ):
            continue
        if field.default is not PydanticUndefined:
            default = f" = {field.default!r}"
        elif field.default_factory is not None:
            try:
                default = f" = {field.default_factory()!r}"
            except TypeError:
                default = ""
        else:
            default = " (required)"
        lines.append(f"{file}: {path}{default}")
        lines.append(f"    {field.description or '(no description)'}")
    if wanted.rpartition(".")[2] == "cron":
        from l3tui.config.cronexpr import explain_cron

        lines += explain_cron()
    return lines
