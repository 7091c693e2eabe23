"""Parameter models of the built-in Python actions, so `validate` checks their options.

The actions themselves live in `l3tui.engine.actions.builtins`; this module only says what
parameters each one takes. A task whose `action` is one of these needs no binding in
l3-actions.yml.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import Field

from l3tui.config import roots
from l3tui.config.schema import Model, Percent


class HealthCheckParams(Model):
    """Fail when the disk, memory or load is over its threshold; print what was measured."""

    path: str = "${l3.state_dir}"
    """Filesystem to check for free space (any path on it)."""
    disk_max_pct: Percent = 90
    """Disk use above this fails the check."""
    memory_max_pct: Percent = 90
    """Memory use above this fails the check."""
    load_max_per_core: float = Field(default=2.0, gt=0)
    """1-minute load average per core above this fails the check."""
    swap_max_pct: Percent = 80
    """Swap use above this fails the check (ignored without swap)."""
    checks: list[str] = Field(default_factory=lambda: ["disk", "memory", "load", "swap"])
    """Which checks to run: disk, memory, load, swap."""


class RotateLogsParams(Model):
    """Rotate log files over a size: app.log -> app.log.1(.gz), keeping `keep` old copies;
    only regular files under a cleanup root, never through a symlink."""

    paths: list[str] = Field(min_length=1)
    """Files or glob patterns (`${l3.state_dir}/*.log`) under a cleanup root."""
    max_size_mb: float = Field(default=10, gt=0)
    """Rotate a file once it is bigger than this."""
    keep: int = Field(default=5, ge=1, le=1000)
    """Old copies kept; the oldest beyond this is deleted."""
    compress: bool = True
    """gzip rotated copies."""


class CleanupFilesParams(Model):
    """Delete files matching a pattern older than N days, under an allowed root only."""

    root: str
    """Directory to clean: the state dir or a directory in scheduling.execution.cleanup_roots,
    or below one (symlinks are never followed)."""
    pattern: str = "*"
    """Glob matched against file names."""
    older_than_days: float = Field(default=7, ge=0)
    """Only files not modified for this many days."""
    recursive: bool = True
    """Also look in subdirectories."""
    dry_run: bool = False
    """List what would be deleted, delete nothing."""


class BackupSqliteParams(Model):
    """Copy a live SQLite database with the online backup API, then check the copy."""

    source: str = "${l3.state_dir}/l3tui.db"
    """Database to back up."""
    target: str
    """Backup file, or a directory (an existing one, or a path ending in /) to hold
    backups named STEM-backup-YYYYmmdd-HHMMSS.db."""
    keep: int | None = Field(default=None, ge=1)
    """With a directory target: keep only this many newest of its own backups (files named
    like them); nothing else there is ever deleted."""
    verify: bool = True
    """Run `PRAGMA integrity_check` on the copy."""


class NoopParams(Model):
    """Does nothing, in-process: for tests, benchmarks and placeholders."""


BUILTIN_ACTIONS: dict[str, type[Model]] = {
    "health_check": HealthCheckParams,
    "rotate_logs": RotateLogsParams,
    "cleanup_files": CleanupFilesParams,
    "backup_sqlite": BackupSqliteParams,
    "noop": NoopParams,
}
"""Built-in action names and their parameter models."""

IN_PROCESS_BUILTINS = frozenset({"noop"})
"""Built-ins run inside the engine's process; the others run in a child process."""


def outside_roots(
    name: str, parameters: Mapping[str, Any], cleanup_roots: Iterable[str]
) -> list[tuple[tuple[str | int, ...], str]]:
    """(parameter path, message) for each literal absolute path a file action is given that
    lies outside the roots for sure; what depends on placeholders is checked at run time."""
    if name not in roots.FILE_ACTIONS:
        return []
    entries = list(cleanup_roots)
    given: list[tuple[tuple[str | int, ...], Any]] = []
    if name == "cleanup_files":
        given.append((("root",), parameters.get("root")))
    elif isinstance(parameters.get("paths"), list):
        given += [(("paths", i), p) for i, p in enumerate(parameters["paths"])]
    out = []
    for loc, value in given:
        why = roots.static_refusal(value, entries) if isinstance(value, str) else None
        if why:
            out.append((loc, why))
    return out
