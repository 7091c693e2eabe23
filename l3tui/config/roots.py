"""Cleanup roots: the directories under which the built-in file actions (`cleanup_files`,
`rotate_logs`) may delete, rename or truncate. The state dir is always one; anything else
(the temp dir, the working dir, a cache) only when listed in
`scheduling.execution.cleanup_roots`.

Path logic only: it may look at the file system to resolve a root (realpath, lstat) and
never changes a file. The built-in process enforces the roots with directory descriptors.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

SYSTEM_DIRS = frozenset({
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32",
    "/media", "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/snap", "/sys", "/usr",
    "/var",
})  # fmt: skip
"""Never a root as a whole (a directory below one may be, when listed)."""

STORE_FILES = ("l3tui.db", "l3tui.db-wal", "l3tui.db-shm", "l3tui.db-journal", "l3tui.lock")
"""The store's files in the state dir (store/schema.py, store/lock.py): the file actions
never delete or truncate them, whatever pattern they are given."""

STATE_DIR = "the state dir"
"""The origin of the state dir's root."""

FILE_ACTIONS = frozenset({"cleanup_files", "rotate_logs"})
"""Built-ins that delete, rename or truncate, and so act only under the roots."""


def lexical(path: str, cwd: str) -> str:
    """`path` made absolute against `cwd` and normalised without looking at the disk
    (`a/../b` is `b`): what the path names, before any symlink could change it."""
    full = os.path.normpath(os.path.join(cwd, os.path.expanduser(path)))
    return "/" + full.lstrip("/")  # POSIX keeps a leading `//`; it names `/`


def is_under(path: str, base: str) -> bool:
    """`path` is `base` or inside it (both absolute and normalised)."""
    return path == base or path.startswith(base.rstrip("/") + "/")


def refusal(path: str, home: str | None = None) -> str | None:
    """Why `path` (absolute, normalised) can never be a root, or None when it can."""
    home = os.path.normpath(home if home is not None else os.path.expanduser("~"))
    if path == "/":
        return "/ itself"
    if path == home:
        return "the home directory itself"
    if path in SYSTEM_DIRS:
        return "a system directory"
    if home != "/" and is_under(home, path):
        return "a directory holding the home directory"
    return None


def entry_refusal(entry: str) -> str | None:
    """What is wrong with a `cleanup_roots` entry as written, or None (checked at load)."""
    if "${" in entry:
        return "placeholders are not filled in cleanup_roots; write the directory"
    if not entry.strip():
        return "an empty path (it would name the working directory; write . for that)"
    expanded = os.path.expanduser(entry)
    if not os.path.isabs(expanded):
        return None  # relative to the working dir: judged when resolved
    why = refusal(lexical(expanded, "/"))
    return f"{entry} is {why}; name a directory below it" if why else None


@dataclass(frozen=True, slots=True)
class Root:
    """One directory the file actions may act under."""

    path: str
    """Its real path: no symlink anywhere in it when it was resolved."""
    alias: str
    """As configured, absolute and normalised; may pass through symlinks above the root."""
    origin: str
    """Where it came from, for messages: `the state dir`, `cleanup_roots[1]`."""


@dataclass(frozen=True, slots=True)
class Roots:
    """The resolved roots, the entries refused and the working dir that relative targets
    are resolved against."""

    roots: tuple[Root, ...]
    refused: tuple[tuple[str, str], ...]
    """(path as configured, why it is refused: one line naming the entry)."""
    cwd: str

    def locate(self, target: str) -> tuple[Root, str] | None:
        """(root, path below it) for an absolute normalised `target`, or None."""
        for root in self.roots:
            for base in (root.alias, root.path):
                if is_under(target, base):
                    return root, target[len(base) :].lstrip("/")
        return None

    def refused_for(self, target: str) -> str | None:
        """Why the root that would hold `target` was refused, if one would have."""
        for alias, why in self.refused:
            if is_under(target, alias):
                return why
        return None

    def describe(self) -> str:
        """The roots in one line, for a refusal message."""
        named = [f"{r.alias} ({r.origin})" for r in self.roots]
        text = ", ".join(named) or "none"
        if self.refused:
            text += "; refused: " + "; ".join(why for _alias, why in self.refused)
        return text

    def to_json(self) -> str:
        return json.dumps({"cwd": self.cwd, "refused": [list(r) for r in self.refused],
                           "roots": [[r.path, r.alias, r.origin] for r in self.roots]},
                          ensure_ascii=False)  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> Roots:
        """Roots handed to a built-in process; a root that could never be one is dropped
        here too, whoever wrote the JSON."""
        data = json.loads(text)
        roots = []
        refused = [(str(alias), str(why)) for alias, why in data.get("refused", [])]
        for path, alias, origin in data["roots"]:
            why = refusal(str(path)) or refusal(str(alias))
            if why or not os.path.isabs(path):
                refused.append((str(alias), f"{origin} {alias}: {why or 'not absolute'}"))
            else:
                roots.append(Root(str(path), str(alias), str(origin)))
        return cls(tuple(roots), tuple(refused), str(data["cwd"]))


def resolve(state_dir: str, entries: Sequence[str], cwd: str) -> Roots:
    """The roots for a state dir and the `cleanup_roots` entries, each resolved once to
    its real path; `/`, system dirs, the home dir and a root that is a symlink are refused."""
    roots: list[Root] = []
    refused: list[tuple[str, str]] = []
    named = [(STATE_DIR, state_dir)]
    named += [(f"cleanup_roots[{i}]", entry) for i, entry in enumerate(entries)]
    for origin, raw in named:
        why = entry_refusal(raw) if origin != STATE_DIR else None
        alias = lexical(raw, cwd)
        real = os.path.realpath(alias)
        why = why or _why(alias, real)
        if why:
            refused.append((alias, f"{origin} {raw}: {why}"))
        elif all(r.path != real for r in roots):
            roots.append(Root(real, alias, origin))
    return Roots(tuple(roots), tuple(refused), cwd)


def _why(alias: str, real: str) -> str | None:
    home = os.path.normpath(os.path.expanduser("~"))
    for path in (alias, real):
        for home_path in {home, os.path.realpath(home)}:
            why = refusal(path, home_path)
            if why:
                return f"{path} is {why}"
    if os.path.islink(alias):
        return f"a symlink (to {os.readlink(alias)}); name the directory itself"
    return None


def static_refusal(value: str, entries: Iterable[str]) -> str | None:
    """Why a literal absolute path given to a file action is outside the roots for sure,
    or None when it is inside or cannot be told before run time (placeholders, relative)."""
    expanded = os.path.expanduser(value)
    if "${" in value or not os.path.isabs(expanded):
        return None
    target = lexical(expanded, "/")
    entries = list(entries)
    for entry in entries:
        written = os.path.expanduser(entry)
        if "${" in entry:
            return None
        if os.path.isabs(written):
            if is_under(target, lexical(written, "/")):
                return None
        elif _could_be_under(target, os.path.normpath(written)):
            return None  # under a root relative to the working dir, perhaps
    listed = ", ".join(entries) if entries else "none"
    return (
        f"{value} is outside the cleanup roots (the state dir, and cleanup_roots: {listed}); "
        "write ${l3.state_dir}/... or add its directory to scheduling.execution.cleanup_roots"
    )


def _could_be_under(target: str, relative_root: str) -> bool:
    """Whether `target` could lie under `relative_root` (normalised) joined to some
    working dir."""
    root_parts = [p for p in relative_root.split("/") if p not in ("", ".")]
    parts = [p for p in target.split("/") if p]
    if not root_parts or root_parts[0] == "..":
        return True
    width = len(root_parts)
    return any(parts[i : i + width] == root_parts for i in range(len(parts) - width + 1))
