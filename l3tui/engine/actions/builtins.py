"""Built-in maintenance actions, run as `python -m l3tui.engine.actions.builtins NAME JSON-PARAMS`
in the task's own process group, so pause, cancel, timeouts and logs work as for any
command. Each prints what it does, reports figures as `L3METRIC name=value` lines and
exits 0 on success, 1 on a failed check, 2 on bad parameters.
"""

from __future__ import annotations

import fnmatch
import glob
import gzip
import json
import os
import shutil
import sqlite3
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from l3tui.config.builtins import (
    BUILTIN_ACTIONS,
    BackupSqliteParams,
    CleanupFilesParams,
    HealthCheckParams,
    RotateLogsParams,
)

FORBIDDEN_ROOTS = {"/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/root",
                   "/sbin", "/sys", "/usr", "/var", "/home"}  # fmt: skip


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


def rotate_logs(p: RotateLogsParams) -> int:
    limit = p.max_size_mb * 1024 * 1024
    rotated = 0
    for pattern in p.paths:
        matches = sorted(glob.glob(os.path.expanduser(pattern))) or []
        if not matches:
            print(f"{pattern}: no files")
        for name in matches:
            path = Path(name)
            if not path.is_file() or path.stat().st_size <= limit:
                continue
            suffix = ".gz" if p.compress else ""
            oldest = path.with_name(f"{path.name}.{p.keep}{suffix}")
            oldest.unlink(missing_ok=True)
            for index in range(p.keep - 1, 0, -1):
                src = path.with_name(f"{path.name}.{index}{suffix}")
                if src.exists():
                    src.rename(path.with_name(f"{path.name}.{index + 1}{suffix}"))
            target = path.with_name(f"{path.name}.1{suffix}")
            size = path.stat().st_size
            # Copy then truncate, so a writer holding the file open keeps writing to it.
            if p.compress:
                with open(path, "rb") as src_fh, gzip.open(target, "wb") as dst:
                    shutil.copyfileobj(src_fh, dst, 1024 * 1024)
            else:
                shutil.copyfile(path, target)
            with open(path, "r+b") as fh:
                fh.truncate(0)
            rotated += 1
            print(f"rotated {path} ({size / 2**20:.1f} MiB) -> {target.name}")
    metric("files_rotated", rotated)
    return 0


def _allowed(root: Path) -> str | None:
    """Why `root` may not be cleaned, or None when it may."""
    resolved = str(root.resolve())
    if resolved in FORBIDDEN_ROOTS or resolved == str(Path.home().resolve()):
        return f"refusing to clean {resolved}: a system or home directory"
    allowed = [r for r in os.environ.get("L3TUI_CLEANUP_ROOTS", "").split(os.pathsep) if r]
    for base in allowed:
        if resolved == base or resolved.startswith(base.rstrip("/") + "/"):
            return None
    return (
        f"refusing to clean {resolved}: not under an allowed root ("
        f"{', '.join(allowed) or 'none'}; add it to scheduling.execution.cleanup_roots)"
    )


def cleanup_files(p: CleanupFilesParams) -> int:
    root = Path(os.path.expanduser(p.root))
    if not root.exists():
        print(f"{root}: does not exist, nothing to clean")
        metric("files_deleted", 0)
        return 0
    refusal = _allowed(root)
    if refusal:
        print(refusal, file=sys.stderr)
        return 1
    cutoff = time.time() - p.older_than_days * 86400
    deleted, freed = 0, 0
    walker = os.walk(root) if p.recursive else [(str(root), [], os.listdir(root))]
    for folder, _dirs, files in walker:
        for name in files:
            if not fnmatch.fnmatch(name, p.pattern):
                continue
            path = Path(folder) / name
            try:
                st = path.lstat()
            except OSError:
                continue
            if st.st_mtime > cutoff:
                continue
            verb = "would delete" if p.dry_run else "deleted"
            if not p.dry_run:
                try:
                    path.unlink()
                except OSError as exc:
                    print(f"cannot delete {path}: {exc.strerror}", file=sys.stderr)
                    continue
            deleted += 1
            freed += st.st_size
            print(f"{verb} {path}")
    print(f"{deleted} file(s), {freed / 2**20:.1f} MiB"
          f"{' (dry run)' if p.dry_run else ' freed'}")  # fmt: skip
    metric("files_deleted", deleted)
    metric("bytes_freed", freed)
    return 0


def backup_sqlite(p: BackupSqliteParams) -> int:
    source = Path(os.path.expanduser(p.source))
    if not source.is_file():
        print(f"source database not found: {source}", file=sys.stderr)
        return 1
    target = Path(os.path.expanduser(p.target))
    if target.is_dir() or p.target.endswith("/"):
        target.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = target / f"{source.stem}-{stamp}{source.suffix or '.db'}"
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    # The copy is no more open than its source (l3tui's store is 0600), whatever the umask.
    mode = stat.S_IMODE(source.stat().st_mode) & 0o666
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    os.fchmod(fd, mode)
    os.close(fd)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(partial)
    try:

        def progress(status: int, remaining: int, total: int) -> None:
            print(f"copied {total - remaining}/{total} pages", flush=True)

        src.backup(dst, pages=1024, progress=progress)
        if p.verify:
            result = dst.execute("PRAGMA integrity_check").fetchone()[0]
            if result != "ok":
                print(f"integrity check of the copy failed: {result}", file=sys.stderr)
                return 1
            print("integrity check: ok")
    finally:
        dst.close()
        src.close()
    partial.replace(target)
    size = target.stat().st_size
    print(f"backup written: {target} ({size / 2**20:.2f} MiB)")
    metric("backup_bytes", size)
    if p.keep and target.parent.is_dir():
        siblings = sorted(target.parent.glob(f"{source.stem}-*{source.suffix or '.db'}"),
                          key=lambda f: f.stat().st_mtime, reverse=True)  # fmt: skip
        for old in siblings[p.keep :]:
            old.unlink()
            print(f"pruned old backup {old.name}")
    return 0


RUNNERS: dict[str, Callable[[Any], int]] = {
    "health_check": health_check,
    "rotate_logs": rotate_logs,
    "cleanup_files": cleanup_files,
    "backup_sqlite": backup_sqlite,
}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in RUNNERS:
        print(f"usage: python -m l3tui.engine.actions.builtins {{{','.join(RUNNERS)}}} JSON",
              file=sys.stderr)  # fmt: skip
        return 2
    name, raw = argv
    try:
        params = BUILTIN_ACTIONS[name].model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        print(f"{name}: invalid parameters: {exc}", file=sys.stderr)
        return 2
    try:
        return RUNNERS[name](params)
    except OSError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
