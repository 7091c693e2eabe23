"""The `backup_sqlite` built-in: a live SQLite database copied with the online backup API,
verified, renamed into place only when complete, and old copies pruned. It runs in the
built-in's own process (builtins.py) and deletes nothing but backups it named itself.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import sqlite3
import stat
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

from l3tui.config.builtins import BackupSqliteParams
from l3tui.engine.actions import confined


def metric(name: str, value: float) -> None:
    print(f"L3METRIC {name}={value:g}", flush=True)


def backup_sqlite(p: BackupSqliteParams) -> int:
    source = os.path.abspath(os.path.expanduser(p.source))
    if not os.path.isfile(source):
        print(f"source database not found: {source}", file=sys.stderr)
        return 1
    given = os.path.expanduser(p.target)
    stem, suffix = Path(source).stem, Path(source).suffix or ".db"
    into_dir = given.endswith("/") or os.path.isdir(given)
    folder = (given.rstrip("/") or "/") if into_dir else (os.path.dirname(given) or ".")
    try:
        os.makedirs(folder, exist_ok=True)
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        print(f"backup_sqlite: cannot write to {folder}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        name = _free_name(dir_fd, stem, suffix) if into_dir else os.path.basename(given)
        shown = os.path.join(folder, name)
        try:
            _write_backup(source, folder, dir_fd, name, p.verify)
        except (OSError, sqlite3.Error, _CopyInvalid) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            print(f"backup_sqlite: cannot write {shown}: {reason}", file=sys.stderr)
            return 1
        size = os.stat(name, dir_fd=dir_fd).st_size
        print(f"backup written: {shown} ({size / 2**20:.2f} MiB)")
        metric("backup_bytes", size)
        if p.keep and into_dir:
            others = [n for n in _own_backups(dir_fd, stem, suffix) if n != name]
            for old in others[p.keep - 1 :]:  # the one just written is always kept
                os.unlink(old, dir_fd=dir_fd)
                print(f"pruned old backup {old}")
    finally:
        os.close(dir_fd)
    return 0


class _CopyInvalid(Exception):
    """The copy failed its integrity check."""


def _write_backup(source: str, folder: str, dir_fd: int, name: str, verify: bool) -> None:
    """Back `source` up into `name` in the directory `dir_fd`: written inside a private
    0700 directory there (no one else can plant a symlink or a file in it), renamed into
    place only when complete; on any failure nothing is left behind."""
    private = os.path.basename(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial",
                                                dir=folder))  # fmt: skip
    try:
        private_fd = os.open(private, confined.DIR_FLAGS, dir_fd=dir_fd)
        try:
            st = os.fstat(private_fd)
            if st.st_uid != os.geteuid() or st.st_mode & 0o077:
                raise OSError(errno.EPERM, f"{private} was replaced; is {folder} shared?")
            # The copy is no more open than its source (l3tui's store is 0600), whatever
            # the umask: created here with that mode before SQLite opens it.
            mode = stat.S_IMODE(os.stat(source).st_mode) & 0o666
            fd = os.open("backup", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, mode, dir_fd=private_fd)  # fmt: skip
            os.fchmod(fd, mode)
            os.close(fd)
        finally:
            os.close(private_fd)
        src = sqlite3.connect(f"file:{urllib.parse.quote(source)}?mode=ro", uri=True)
        try:
            dst = sqlite3.connect(os.path.join(folder, private, "backup"))
            try:

                def progress(status: int, remaining: int, total: int) -> None:
                    print(f"copied {total - remaining}/{total} pages", flush=True)

                src.backup(dst, pages=1024, progress=progress)
                if verify:
                    result = dst.execute("PRAGMA integrity_check").fetchone()[0]
                    if result != "ok":
                        raise _CopyInvalid(f"integrity check of the copy failed: {result}")
                    print("integrity check: ok")
            finally:
                dst.close()
        finally:
            src.close()
        private_fd = os.open(private, confined.DIR_FLAGS, dir_fd=dir_fd)
        try:
            os.rename("backup", name, src_dir_fd=private_fd, dst_dir_fd=dir_fd)
        finally:
            os.close(private_fd)
    finally:
        shutil.rmtree(private, dir_fd=dir_fd, ignore_errors=True)


def _backup_re(stem: str, suffix: str) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(stem)}-backup-(\d{{8}}-\d{{6}})(?:-(\d+))?{re.escape(suffix)}")


def _free_name(dir_fd: int, stem: str, suffix: str) -> str:
    """STEM-backup-YYYYmmdd-HHMMSS.db, with -2, -3... when a backup of that second exists."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        name = f"{stem}-backup-{stamp}{'' if n == 1 else f'-{n}'}{suffix}"
        try:
            os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return name
    raise OSError(errno.EEXIST, f"no free backup name for {stamp}")


def _own_backups(dir_fd: int, stem: str, suffix: str) -> list[str]:
    """Regular files named like this action's backups of `stem`, newest first: the only
    files `keep` ever prunes (a `l3tui-production.db` beside them is never touched)."""
    pattern = _backup_re(stem, suffix)
    found = []
    for name in os.listdir(dir_fd):
        match = pattern.fullmatch(name)
        if match is None:
            continue
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISREG(st.st_mode):
            found.append(((match.group(1), int(match.group(2) or 1)), name))
    return [name for _key, name in sorted(found, reverse=True)]
