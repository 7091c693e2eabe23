"""Secrets for `${secret:NAME}`: looked up in l3tui's environment, then in the secrets file
(`scheduling.execution.secrets_file`).

The secrets file holds one `NAME=value` per line; blank lines and lines starting with `#`
are skipped. The value is everything after the first `=` up to the end of the line, as
written: no quotes, no escapes, no placeholders. The file must be a regular file owned by
the user running l3tui and closed to everyone else (mode 0600 or 0400); anything else is
refused with one line naming the file and its mode.

This module reads and checks; it never records a value, and its errors name secrets, never
their values.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from l3tui.config.placeholders import SECRET_NAME_RE

MIN_SECRET_CHARS = 4
"""Shorter values are refused: masking `ab` would blank out ordinary output."""
MAX_FILE_BYTES = 1024 * 1024


class SecretError(Exception):
    """A secret cannot be used; the message (one line) names it, never its value."""


class SecretsFileError(SecretError):
    """The secrets file cannot be used; `line` is 0 when the whole file is at fault."""

    def __init__(self, path: Path, message: str, line: int = 0) -> None:
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"secrets file {where}: {message}")
        self.path = path
        self.line = line
        self.detail = message


@dataclass(frozen=True, slots=True)
class FileSecret:
    value: str
    line: int


def secrets_path(value: str, config_dir: Path) -> Path:
    """`scheduling.execution.secrets_file` as a path: `~` expanded, relative to the config
    directory."""
    return config_dir / Path(value).expanduser()


def _describe_mode(mode: int) -> str:
    who = []
    if mode & 0o070:
        who.append("group")
    if mode & 0o007:
        who.append("others")
    return f"mode {stat.S_IMODE(mode):04o} (open to {' and '.join(who)})"


def read_secrets_file(path: Path) -> dict[str, FileSecret]:
    """Every secret in the file. Raises SecretsFileError (FileNotFoundError's case included)
    when the file is missing, not private, too large or malformed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise SecretsFileError(path, "not found") from None
    except OSError as exc:
        raise SecretsFileError(path, f"cannot open: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        # Checked on the open file, not on the name: no swapping it in between.
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SecretsFileError(path, "not a regular file")
        if st.st_uid != os.geteuid():
            raise SecretsFileError(
                path, f"belongs to uid {st.st_uid}, not to the user running l3tui "
                f"(uid {os.geteuid()}); it must be that user's own file"
            )  # fmt: skip
        if st.st_mode & 0o077:
            raise SecretsFileError(
                path, f"{_describe_mode(st.st_mode)}; secrets must be readable by their "
                f"owner only: chmod 600 {path}"
            )  # fmt: skip
        raw = fh.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise SecretsFileError(path, f"larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SecretsFileError(path, "not UTF-8 text", line) from None
    return parse(text, path)


def parse(text: str, path: Path) -> dict[str, FileSecret]:
    found: dict[str, FileSecret] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        head = line.lstrip()
        if not head or head.startswith("#"):
            continue
        name, sep, value = head.partition("=")
        if not sep or not SECRET_NAME_RE.fullmatch(name):
            raise SecretsFileError(
                path, "expected NAME=value (NAME: letters, digits and _)", number
            )
        if "\0" in value:
            raise SecretsFileError(path, f"{name}: the value holds a NUL byte", number)
        if name in found:
            raise SecretsFileError(
                path, f"{name} is set twice (first on line {found[name].line})", number
            )
        found[name] = FileSecret(value, number)
    return found


def too_short(name: str, value: str) -> str | None:
    """Why `value` cannot serve as secret `name`, or None."""
    if len(value) < MIN_SECRET_CHARS:
        return (
            f"secret {name} is too short to be masked ({len(value)} characters; at least "
            f"{MIN_SECRET_CHARS}): l3tui refuses it rather than print it"
        )
    return None


@dataclass(slots=True)
class SecretSource:
    """Resolves `${secret:NAME}` for one job: the environment first, then the secrets file
    (read at most once, on the first name the environment does not hold)."""

    env: Mapping[str, str]
    file: Path | None
    _file_values: dict[str, FileSecret] | None = field(default=None, repr=False)

    def get(self, name: str) -> str:
        if not SECRET_NAME_RE.fullmatch(name):
            raise SecretError(f"${{secret:{name}}}: a secret's name is letters, digits and _")
        value = self.env.get(name)
        if value is None:
            value = self._from_file(name)
        reason = too_short(name, value)
        if reason:
            raise SecretError(reason)
        return value

    def _from_file(self, name: str) -> str:
        if self.file is None:
            raise SecretError(
                f"secret {name} is not set: not in l3tui's environment, and no secrets file "
                "is configured (scheduling.execution.secrets_file)"
            )
        if self._file_values is None:
            self._file_values = read_secrets_file(self.file)
        entry = self._file_values.get(name)
        if entry is None:
            raise SecretError(
                f"secret {name} is not set: not in l3tui's environment nor in {self.file}"
            )
        return entry.value
