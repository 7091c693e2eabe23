"""Built-in maintenance actions, run as
`python -m l3tui.engine.actions.builtins NAME JSON-PARAMS [JSON-ROOTS]` in the task's own
process group, so pause, cancel, timeouts and logs work as for any command. Each prints what
it does, reports figures as `L3METRIC name=value` lines and exits 0 on success, 1 on a
failure (one line on stderr, never a traceback), 2 on bad parameters.

The file actions (`cleanup_files`, `rotate_logs`) act only under the roots the registry
hands over as JSON-ROOTS (never from the task's parameters), through directory descriptors
(confined.py): no symlink is followed, nothing outside a root is deleted or truncated.
"""

from __future__ import annotations

import fnmatch
import gzip
import json
import os
import shutil
import signal
import stat
import sys
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from l3tui.config.builtins import (
    BUILTIN_ACTIONS,
    CleanupFilesParams,
    HealthCheckParams,
    RotateLogsParams,
)
from l3tui.config.roots import FILE_ACTIONS, Roots
from l3tui.engine.actions import confined
from l3tui.engine.actions.backup import backup_sqlite
from l3tui.engine.actions.confined import Dir

FILE_FLAGS = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def metric(name: str, value: float) -> None:
    print(f"L3METRIC {name}={value:g}", flush=True)


def health_check(p: HealthCheckParams) -> int:
    import psutil

    failures = []
    if "disk" in p.checks:
        usage = psutil.disk_usage(p.path)
        print(f"disk {p.path}: {usage.percent:.1f}% used, {usage.free / 2**30:.1f} GiB free "
              f"(limit {p.disk_max_pct:g}%)")  # fmt: skip
        metric("disk_used_pct", usage.percent)
        if usage.percent > p.disk_max_pct:
            failures.append(f"disk {usage.percent:.1f}% > {p.disk_max_pct:g}%")
    if "memory" in p.checks:
        mem = psutil.virtual_memory()
        print(f"memory: {mem.percent:.1f}% used, {mem.available / 2**30:.1f} GiB available "
              f"(limit {p.memory_max_pct:g}%)")  # fmt: skip
        metric("memory_used_pct", mem.percent)
        if mem.percent > p.memory_max_pct:
            failures.append(f"memory {mem.percent:.1f}% > {p.memory_max_pct:g}%")
    if "swap" in p.checks:
        swap = psutil.swap_memory()
        if swap.total:
            print(f"swap: {swap.percent:.1f}% used (limit {p.swap_max_pct:g}%)")
            if swap.percent > p.swap_max_pct:
                failures.append(f"swap {swap.percent:.1f}% > {p.swap_max_pct:g}%")
        else:
            print("swap: none configured")
    if "load" in p.checks:
        cores = psutil.cpu_count() or 1
        load1, load5, load15 = os.getloadavg()
        per_core = load1 / cores
        print(f"load: {load1:.2f} {load5:.2f} {load15:.2f} on {cores} cores "
              f"({per_core:.2f}/core, limit {p.load_max_per_core:g})")  # fmt: skip
        metric("load_per_core", per_core)
        if per_core > p.load_max_per_core:
            failures.append(f"load {per_core:.2f}/core > {p.load_max_per_core:g}")
    for failure in failures:
        print(f"UNHEALTHY: {failure}", file=sys.stderr)
    print("healthy" if not failures else f"{len(failures)} check(s) failed")
    return 1 if failures else 0


def rotate_logs(p: RotateLogsParams, roots: Roots) -> int:
    limit = p.max_size_mb * 1024 * 1024
    rotated, failed = 0, 0
    store = confined.store_files(roots)
    for pattern in p.paths:
        target = confined.target_path(pattern, roots)
        found = roots.locate(target)
        if found is None:
            print(confined.outside(pattern, roots), file=sys.stderr)
            failed += 1
            continue
        root, below = found
        parts = [part for part in below.split("/") if part]
        if not parts:
            print(f"refusing {pattern}: names the root {root.alias} itself, not log files",
                  file=sys.stderr)  # fmt: skip
            failed += 1
            continue
        try:
            top = Dir(confined.open_root(root.path), root.alias)
        except FileNotFoundError:
            print(f"{pattern}: no files")
            continue
        except OSError as exc:
            print(f"refusing {pattern}: its root {root.alias} cannot be opened without "
                  f"following a symlink ({exc.strerror})", file=sys.stderr)  # fmt: skip
            failed += 1
            continue
        notes: list[str] = []
        seen = 0
        with top:
            for here, name, st in confined.glob(top, parts, notes):
                seen += 1
                if (st.st_dev, st.st_ino) in store:
                    print(f"skipped {os.path.join(here.shown, name)}: l3tui's own store")
                    continue
                try:
                    rotated += _rotate_one(here, name, st, p, limit)
                except OSError as exc:
                    print(f"cannot rotate {os.path.join(here.shown, name)}: {exc.strerror}",
                          file=sys.stderr)  # fmt: skip
                    failed += 1
        for note in notes:
            print(f"skipped {note}")
        if not seen:
            print(f"{pattern}: no files")
    metric("files_rotated", rotated)
    return 1 if failed else 0


def _rotate_one(here: Dir, name: str, st: os.stat_result, p: RotateLogsParams,
                limit: float) -> int:  # fmt: skip
    """Copy `name` to name.1(.gz), shifting older copies, then truncate it; 1 if rotated.
    Every name is relative to `here`; the log is opened with O_NOFOLLOW and must still be
    the file that was looked at."""
    path = os.path.join(here.shown, name)
    if stat.S_ISLNK(st.st_mode):
        print(f"skipped {path}: a symlink, not followed")
        return 0
    if not stat.S_ISREG(st.st_mode) or st.st_size <= limit:
        return 0
    if not here.in_place():
        print(f"skipped {path}: its directory moved during the walk")
        return 0
    fd = os.open(name, FILE_FLAGS, dir_fd=here.fd)
    try:
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
            print(f"skipped {path}: replaced while being opened")
            return 0
        suffix = ".gz" if p.compress else ""
        copies = [f"{name}.{index}{suffix}" for index in range(1, p.keep + 1)]
        _unlink_if_there(copies[-1], here.fd)
        for index in range(p.keep - 1, 0, -1):
            try:
                os.rename(copies[index - 1], copies[index], src_dir_fd=here.fd,
                          dst_dir_fd=here.fd)  # fmt: skip
            except FileNotFoundError:
                pass
        partial = f".{copies[0]}.{os.getpid()}.partial"
        out = os.open(partial, NEW_FILE_FLAGS, opened.st_mode & 0o666, dir_fd=here.fd)
        try:
            # Copy then truncate, so a writer holding the log open keeps writing to it.
            with open(fd, "rb", closefd=False) as src, open(out, "wb") as dst:
                src.seek(0)
                if p.compress:
                    with gzip.GzipFile(filename=name, mode="wb", fileobj=dst) as packed:
                        shutil.copyfileobj(src, packed, 1024 * 1024)
                else:
                    shutil.copyfileobj(src, dst, 1024 * 1024)
            os.rename(partial, copies[0], src_dir_fd=here.fd, dst_dir_fd=here.fd)
        except BaseException:
            _unlink_if_there(partial, here.fd)
            raise
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)
    print(f"rotated {path} ({opened.st_size / 2**20:.1f} MiB) -> {copies[0]}")
    return 1


def _unlink_if_there(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


def cleanup_files(p: CleanupFilesParams, roots: Roots) -> int:
    try:
        top = confined.open_target(p.root, roots)
    except confined.Refused as exc:
        print(exc, file=sys.stderr)
        return 1
    if top is None:
        print(f"{p.root}: does not exist, nothing to clean")
        metric("files_deleted", 0)
        return 0
    cutoff = time.time() - p.older_than_days * 86400
    verb = "would delete" if p.dry_run else "deleted"
    store = confined.store_files(roots)
    deleted, freed, failed = 0, 0, 0
    notes: list[str] = []
    moved: set[str] = set()
    try:
        for here, name, st in confined.walk(top, p.recursive, notes):
            # Regular files and symlinks (removing a link never touches what it points to);
            # never directories, pipes, sockets or devices.
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                continue
            if not fnmatch.fnmatchcase(name, p.pattern) or st.st_mtime > cutoff:
                continue
            path = os.path.join(here.shown, name)
            if (st.st_dev, st.st_ino) in store:
                notes.append(f"{path}: l3tui's own store")
                continue
            if not here.in_place():
                if here.shown not in moved:
                    moved.add(here.shown)
                    notes.append(f"{here.shown}: moved during the walk, nothing deleted in it")
                continue
            if not p.dry_run:
                try:
                    os.unlink(name, dir_fd=here.fd)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    print(f"cannot delete {path}: {exc.strerror}", file=sys.stderr)
                    failed += 1
                    continue
            deleted += 1
            freed += st.st_size
            print(f"{verb} {path}")
    finally:
        confined.close_all(top)
    for note in notes:
        print(f"skipped {note}")
    print(f"{deleted} file(s), {freed / 2**20:.1f} MiB"
          f"{' (dry run)' if p.dry_run else ' freed'}")  # fmt: skip
    metric("files_deleted", deleted)
    metric("bytes_freed", freed)
    return 1 if failed else 0


RUNNERS: dict[str, Callable[[Any], int]] = {
    "health_check": health_check,
    "backup_sqlite": backup_sqlite,
}
FILE_RUNNERS: dict[str, Callable[[Any, Roots], int]] = {
    "rotate_logs": rotate_logs,
    "cleanup_files": cleanup_files,
}
assert set(FILE_RUNNERS) == FILE_ACTIONS


def _terminated(signum: int, frame: object) -> None:
    # SIGTERM (cancel, timeout) unwinds like an error, so partial files are removed.
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    names = [*RUNNERS, *FILE_RUNNERS]
    if len(argv) not in (2, 3) or argv[0] not in names:
        print(f"usage: python -m l3tui.engine.actions.builtins {{{','.join(names)}}} JSON "
              "[ROOTS-JSON]", file=sys.stderr)  # fmt: skip
        return 2
    name, raw = argv[:2]
    try:
        params = BUILTIN_ACTIONS[name].model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        print(f"{name}: invalid parameters: {str(exc).splitlines()[-1].strip()}",
              file=sys.stderr)  # fmt: skip
        return 2
    roots = None
    if name in FILE_RUNNERS:
        try:
            roots = Roots.from_json(argv[2])
        except (IndexError, ValueError, KeyError, TypeError):
            print(f"{name}: no valid cleanup roots given (l3tui passes them; run it in a "
                  "workflow)", file=sys.stderr)  # fmt: skip
            return 2
    signal.signal(signal.SIGTERM, _terminated)
    try:
        if roots is not None:
            return FILE_RUNNERS[name](params, roots)
        return RUNNERS[name](params)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"{name}: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
