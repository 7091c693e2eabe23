"""`${name}` and `${name:-default}` placeholders: find them, fill them, never evaluate them.

Names with a dot are context the engine supplies (`l3.state_dir`, `l3.execution_id`,
`l3.execution_dir`, `l3.config_dir`, `env.NAME`); `secret:NAME` is a secret the action
registry resolves for a task's process only; plain names are task parameters or template
params. Filling is pure string substitution: no shell, no expressions.

Expansion is one pass: `fill` scans a string of the definition once, and a value put in
place of a placeholder is never scanned again, so `${...}` inside a `-p` value, an
environment variable or a secret is literal text. A lookup may answer `KEEP` to leave a
placeholder exactly as written, for a later pass that fills what this one cannot know yet.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any, Final

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
SECRET_PREFIX = "secret:"
SECRET_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""What may follow `secret:`: an environment-variable-like name."""


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final = _Keep()
"""A lookup's answer meaning "leave this placeholder as written" (default included)."""


class MissingPlaceholder(KeyError):
    """A `${name}` without a value or default."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def is_secret(name: str) -> bool:
    return name.startswith(SECRET_PREFIX)


def is_context(name: str) -> bool:
    """Filled by l3tui (context, environment, secrets), never by a parameter."""
    return name in CONTEXT_NAMES or name.startswith("env.") or is_secret(name)


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


def _value(match: re.Match[str], lookup: Callable[[str], Any]) -> Any:
    name, default = match.group(1), match.group(2)
    try:
        value = lookup(name)
    except KeyError:
        if default is not None:
            return default
        raise MissingPlaceholder(name) from None
    return match.group(0) if value is KEEP else value


def fill(text: str, lookup: Callable[[str], Any]) -> str:
    """Replace each placeholder with `lookup(name)` (or its default when lookup raises
    KeyError), in one pass: what is put in place is not scanned again."""
    return PLACEHOLDER_RE.sub(lambda match: str(_value(match, lookup)), text)


def fill_value(value: Any, lookup: Callable[[str], Any]) -> Any:
    """`fill` applied to every string inside nested data; a string that is exactly one
    placeholder keeps the type of its value (`"${count}"` -> 3)."""
    if isinstance(value, str):
        match = PLACEHOLDER_RE.fullmatch(value)
        if match:
            return _value(match, lookup)
        return fill(value, lookup)
    if isinstance(value, dict):
        return {k: fill_value(v, lookup) for k, v in value.items()}
    if isinstance(value, list):
        return [fill_value(v, lookup) for v in value]
    return value
