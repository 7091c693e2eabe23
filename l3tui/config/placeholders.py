"""`${name}` and `${name:-default}` placeholders: find them, fill them, never evaluate them.

Names with a dot are context the engine supplies (`l3.state_dir`, `l3.execution_id`,
`l3.execution_dir`, `l3.config_dir`, `env.NAME`); plain names are task parameters or
template params. Filling is pure string substitution: no shell, no expressions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from l3tui.config.schema import PLACEHOLDER_RE

CONTEXT_NAMES = frozenset(
    {
        "l3.state_dir",
        "l3.execution_id",
        "l3.execution_dir",
        "l3.config_dir",
        "l3.task_id",
        "l3.workflow_id",
        "l3.attempt",
    }
)


class MissingPlaceholder(KeyError):
    """A `${name}` without a value or default."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def is_context(name: str) -> bool:
    return name in CONTEXT_NAMES or name.startswith("env.")


def find(text: str) -> Iterator[tuple[str, str | None]]:
    """(name, default-or-None) for each placeholder in `text`."""
    for match in PLACEHOLDER_RE.finditer(text):
        yield match.group(1), match.group(2)


def strings_in(
    value: Any, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every string inside nested dicts and lists, with its path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings_in(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings_in(item, (*path, index))


def fill(text: str, lookup: Callable[[str], Any]) -> str:
    """Replace each placeholder with `lookup(name)` (or its default when lookup raises KeyError)."""

    def replace(match: Any) -> str:
        name, default = match.group(1), match.group(2)
        try:
            return str(lookup(name))
        except KeyError:
            if default is not None:
                return str(default)
            raise MissingPlaceholder(name) from None

    return PLACEHOLDER_RE.sub(replace, text)


def fill_value(value: Any, lookup: Callable[[str], Any]) -> Any:
    """`fill` applied to every string inside nested data; a string that is exactly one
    placeholder keeps the type of its value (`"${count}"` -> 3)."""
    if isinstance(value, str):
        match = PLACEHOLDER_RE.fullmatch(value)
        if match:
            try:
                return lookup(match.group(1))
            except KeyError:
                if match.group(2) is not None:
                    return match.group(2)
                raise MissingPlaceholder(match.group(1)) from None
        return fill(value, lookup)
    if isinstance(value, dict):
        return {k: fill_value(v, lookup) for k, v in value.items()}
    if isinstance(value, list):
        return [fill_value(v, lookup) for v in value]
    return value
