"""File access confined to cleanup roots through directory descriptors, for the built-in
file actions. A root is opened from `/` one component at a time with `O_NOFOLLOW`, and so is
every directory below it: a symlink is never followed, and a directory swapped between the
look (`lstat`) and the open is noticed by its st_dev/st_ino and not entered.

It opens and lists; it deletes, renames and truncates nothing itself (builtins.py does,
always by name relative to a `Dir` it got from here). Linux and other POSIX systems.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from l3tui.config.roots import STATE_DIR, STORE_FILES, Roots, lexical

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_DEPTH = 200
"""Directories deeper than this below a root are skipped (each level holds a descriptor)."""


class Refused(Exception):
    """The path is outside the roots, or reaches them through a symlink; one line."""


class Skipped(Exception):
    """A directory met during a walk that is not entered: where, and why."""

    def __init__(self, shown: str, reason: str) -> None:
        super().__init__(f"{shown}: {reason}")
        self.reason = reason


@dataclass(slots=True)
class Dir:
    """An open directory at or below a root, and how it was reached."""

    fd: int
    shown: str
    """Its path as the user wrote it, for messages."""
    parent: Dir | None = None
    name: str = ""
    dev: int = 0
    ino: int = 0
    depth: int = 0

    def child(self, name: str) -> Dir:
        """The subdirectory `name`, opened without following a symlink and checked to be
        the directory that `lstat` saw; raises Skipped (or OSError) otherwise."""
        shown = os.path.join(self.shown, name)
        st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            raise Skipped(shown, "a symlink, not followed")
        if not stat.S_ISDIR(st.st_mode):
            raise Skipped(shown, "not a directory")
        if self.depth + 1 > MAX_DEPTH:
            raise Skipped(shown, f"deeper than {MAX_DEPTH} levels, not entered")
        try:
            fd = os.open(name, DIR_FLAGS, dir_fd=self.fd)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise Skipped(shown, _why(exc)) from None
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
            os.close(fd)
            raise Skipped(shown, "replaced while being opened, not entered")
        return Dir(fd, shown, self, name, st.st_dev, st.st_ino, self.depth + 1)

    def in_place(self) -> bool:
        """Whether this directory, and each one above it up to the root, is still linked
        under its name in its parent: re-checked before every deletion."""
        here: Dir | None = self
        while here is not None and here.parent is not None:
            try:
                st = os.stat(here.name, dir_fd=here.parent.fd, follow_symlinks=False)
            except OSError:
                return False
            if (st.st_dev, st.st_ino) != (here.dev, here.ino):
                return False
            here = here.parent
        return True

    def lstat(self, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def close(self) -> None:
        """Close this directory (its parents stay open: they belong to the caller)."""
        os.close(self.fd)

    def __enter__(self) -> Dir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _why(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink
        return "a symlink, not followed"
    return exc.strerror or str(exc)


def target_path(given: str, roots: Roots) -> str:
    """`given` as an absolute normalised path (relative ones against the working dir)."""
    return lexical(given, roots.cwd)


def open_target(given: str, roots: Roots) -> Dir | None:
    """The directory `given` names, opened inside its root without following any symlink;
    None when it does not exist. Raises Refused when it is outside the roots or a symlink
    lies on the way."""
    found = roots.locate(target_path(given, roots))
    if found is None:
        raise Refused(outside(given, roots))
    root, below = found
    shown = os.path.expanduser(given).rstrip("/") or "/"
    try:
        top = open_root(root.path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Refused(f"refusing {given}: its root {root.alias} ({root.origin}) cannot be "
                      f"opened: {_root_why(root.path, exc)}") from None  # fmt: skip
    here, real = Dir(top, root.alias), root.path
    for name in [p for p in below.split("/") if p]:
        real = os.path.join(real, name)
        try:
            here = here.child(name)
        except FileNotFoundError:
            _close_chain(here)
            return None
        except (Skipped, OSError) as exc:
            _close_chain(here)
            reason = exc.reason if isinstance(exc, Skipped) else _why(exc)
            raise Refused(f"refusing {given}: {real} is {reason}") from None
    here.shown = shown
    return here


def outside(given: str, roots: Roots) -> str:
    """The one-line refusal for a path that is under no root."""
    target = target_path(given, roots)
    shown = given if target == given else f"{given} ({target})"
    why = roots.refused_for(target)
    if why:
        return f"refusing {shown}: its root is refused: {why}"
    return (f"refusing {shown}: not under a cleanup root (roots: {roots.describe()}); "
            "add its directory to scheduling.execution.cleanup_roots")


def _close_chain(here: Dir | None) -> None:
    while here is not None:
        os.close(here.fd)
        here = here.parent


def close_all(here: Dir) -> None:
    """Close `here` and every directory above it (what open_target returned)."""
    _close_chain(here)


def open_root(path: str) -> int:
    """A descriptor of the directory at the absolute real `path`, reached from `/` without
    following a symlink (a component swapped for one since the roots were resolved fails)."""
    fd = os.open("/", DIR_FLAGS)
    for part in [p for p in path.split("/") if p]:
        try:
            nxt = os.open(part, DIR_FLAGS, dir_fd=fd)
        finally:
            os.close(fd)
        fd = nxt
    return fd


def _root_why(path: str, exc: OSError) -> str:
    if exc.errno in (errno.ENOTDIR, errno.ELOOP):  # a component is no directory any more
        return "a symlink or a file now stands on its path"
    return exc.strerror or str(exc)


def store_files(roots: Roots) -> set[tuple[int, int]]:
    """(st_dev, st_ino) of l3tui's own store files in the state dir, hard links included:
    the file actions skip them whatever their pattern."""
    found = set()
    for root in roots.roots:
        if root.origin != STATE_DIR:
            continue
        try:
            fd = open_root(root.path)
        except OSError:
            continue
        with Dir(fd, root.alias) as state:
            for name in STORE_FILES:
                st = state.lstat(name)
                if st is not None and stat.S_ISREG(st.st_mode):
                    found.add((st.st_dev, st.st_ino))
    return found


def entries(here: Dir) -> Iterator[tuple[str, os.stat_result]]:
    """(name, lstat) of each entry, sorted; entries gone meanwhile are left out."""
    for name in sorted(os.listdir(here.fd)):
        st = here.lstat(name)
        if st is not None:
            yield name, st


def walk(here: Dir, recursive: bool, notes: list[str]) -> Iterator[tuple[Dir, str, os.stat_result]]:
    """(directory, name, lstat) of every non-directory at and below `here`; directories it
    does not enter are noted in `notes`, with why."""
    subdirs = []
    for name, st in entries(here):
        if stat.S_ISDIR(st.st_mode):
            subdirs.append(name)
        else:
            yield here, name, st
    if not recursive:
        return
    for name in subdirs:
        try:
            child = here.child(name)
        except FileNotFoundError:
            continue
        except (Skipped, OSError) as exc:
            notes.append(_note(here, name, exc))
            continue
        with child:
            yield from walk(child, recursive, notes)


def _note(here: Dir, name: str, exc: Exception) -> str:
    if isinstance(exc, Skipped):
        return str(exc)
    return f"{os.path.join(here.shown, name)}: {_why(exc) if isinstance(exc, OSError) else exc}"


def has_magic(part: str) -> bool:
    return any(c in part for c in "*?[")


def matches(name: str, pattern: str) -> bool:
    """Glob semantics for one component: a leading dot must be matched explicitly."""
    if name.startswith(".") and not pattern.startswith("."):
        return False
    return fnmatch.fnmatchcase(name, pattern)


def glob(
    here: Dir, parts: list[str], notes: list[str]
) -> Iterator[tuple[Dir, str, os.stat_result]]:
    """(directory, name, lstat) of each entry matching the pattern `parts` below `here`;
    directory components are entered without following symlinks."""
    head, rest = parts[0], parts[1:]
    if has_magic(head):
        names = [(n, st) for n, st in entries(here) if matches(n, head)]
    else:
        st = here.lstat(head)
        names = [(head, st)] if st is not None else []
    for name, st in names:
        if not rest:
            yield here, name, st
            continue
        if not stat.S_ISDIR(st.st_mode) and (stat.S_ISLNK(st.st_mode) or not has_magic(head)):
            notes.append(str(Skipped(os.path.join(here.shown, name), "a symlink, not followed"
                                     if stat.S_ISLNK(st.st_mode) else "not a directory")))
            continue
        if not stat.S_ISDIR(st.st_mode):
            continue
        try:
            child = here.child(name)
        except FileNotFoundError:
            continue
        except (Skipped, OSError) as exc:
            notes.append(_note(here, name, exc))
            continue
        with child:
            yield from glob(child, rest, notes)
