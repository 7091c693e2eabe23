"""The `events:` section of l3-scheduling.yml: where events go besides the store (a JSONL
file, command hooks per event type), how the outbox of results is rotated and how long the
inbox keeps what it handled. Shapes only: the coordinator runs them."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from l3tui.config.fields import Identifier, Model, PositiveMs

GLOB_RE = re.compile(r"^[A-Za-z0-9_.*?\[\]!-]+$")
"""An event-type glob: `alert.raised`, `execution.*`, `task.[fs]*`, `*`."""


def _globs(value: object) -> object:
    """`on: alert.raised` is `on: [alert.raised]`."""
    return [value] if isinstance(value, str) else value


class Sink(Model):
    """One place events go besides the store: a JSONL file, or a command run per event
    (give exactly one of `file`, `command`)."""

    name: Identifier | None = None
    """Its name in alerts and drop reports (default: sink1, sink2, ... in file order)."""
    on: Annotated[list[str], Field(min_length=1)] = Field(default_factory=lambda: ["*"])
    """Event types it takes, as globs: `execution.failed`, `alert.raised`, `task.*`, `*`."""
    file: str | None = None
    """Append each event as one JSON line to this file (relative to the state directory)."""
    max_mb: float = Field(default=64, gt=0)
    """The file is rotated past this size (FILE.1, FILE.2, ...)."""
    keep: int = Field(default=3, ge=1, le=100)
    """Rotated copies of the file kept."""
    command: Annotated[list[str], Field(min_length=1)] | None = None
    """Run this argument list once per event, the event as JSON on its stdin (no shell)."""
    timeout: PositiveMs = 10_000
    """A hook still running after this long is killed with its process group (ms or '10s')."""
    queue: int = Field(default=100, ge=1, le=100_000)
    """Events waiting for this sink; more are dropped, counted and reported (sinks.dropped)."""

    _on_list = field_validator("on", mode="before")(_globs)

    @field_validator("on")
    @classmethod
    def _valid_globs(cls, value: list[str]) -> list[str]:
        for glob in value:
            if not GLOB_RE.match(glob):
                raise ValueError(f"{glob!r} is not an event-type glob (letters, digits, "
                                 "'.', '_', '-' and the wildcards * ? [...])")  # fmt: skip
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Sink:
        if (self.file is None) == (self.command is None):
            raise ValueError("a sink takes exactly one of: file, command")
        if self.file is not None and (not self.file.strip() or "\0" in self.file):
            raise ValueError("file must name a file")
        return self


class OutboxSettings(Model):
    """STATE/outbox/results.jsonl: one line per finished execution."""

    max_mb: float = Field(default=16, gt=0)
    """results.jsonl is rotated past this size (results.jsonl.1, .2, ...)."""
    keep: int = Field(default=3, ge=1, le=1000)
    """Rotated copies kept."""


class InboxSettings(Model):
    """STATE/inbox/: decision files dropped by other programs."""

    keep_days: float = Field(default=7, gt=0)
    """Files in inbox/processed/ and inbox/rejected/ older than this are deleted."""


class EventsSettings(Model):
    """The `events:` section: sinks, the outbox and the inbox."""

    sinks: list[Sink] = Field(default_factory=list)
    """Where events go besides the store: JSONL files and command hooks."""
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    """How results.jsonl is rotated."""
    inbox: InboxSettings = Field(default_factory=InboxSettings)
    """How long handled decision files are kept."""

    @model_validator(mode="after")
    def _unique_names(self) -> EventsSettings:
        seen: set[str] = set()
        for index, sink in enumerate(self.sinks):
            name = sink_name(sink, index)
            if name in seen:
                raise ValueError(f"two sinks are named {name!r}; give each its own name")
            seen.add(name)
        return self


def sink_name(sink: Sink, index: int) -> str:
    """The sink's name, or `sinkN` (1-based position in the file)."""
    return sink.name or f"sink{index + 1}"
