"""The daemon's wire protocol: JSON lines over a unix socket, and where the socket lives.

Every message is one JSON object on one line. The daemon speaks first:

    daemon -> {"type": "hello", "protocol": [1, 0], "version": "0.1.0", "instance": "...",
               "pid": 4242, "host": "build-01", "since": 1764400000.0, "seq": 1234,
               "state_dir": "..."}
    client -> {"type": "hello", "protocol": [1, 0], "actor": "alice@pts/3", "client": "console"}

then requests and replies, matched by `id`, and what the daemon pushes after `subscribe`:

    client -> {"type": "request", "id": "c1-7", "method": "pause",
               "params": {"execution_id": "...", "task_id": null}}
    daemon -> {"type": "reply", "id": "c1-7", "ok": true, "result": {...}}
    daemon -> {"type": "reply", "id": "c1-8", "ok": false, "error": "one line"}
    daemon -> {"type": "snapshot", "seq": 1240, "snapshot": {...}, "executions": [...]}
                                                    (the snapshot's executions beside it)
    daemon -> {"type": "event", "seq": 1241, "event": {"kind": "task_started", ...}}
    daemon -> {"type": "resync", "reason": "..."}   (the client fell behind: events were
                                                     dropped; a fresh snapshot follows)
    daemon -> {"type": "error", "message": "..."}   (then the daemon closes the connection)

A client's line may be at most `MAX_REQUEST_BYTES`; a longer one is answered with an error
and the connection is closed (never a crash). Daemon lines are bounded by `MAX_PUSH_BYTES`.
A different major protocol version is refused by either side with both versions named.
Commands are idempotent by request id: a retried id gets the first reply again.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROTOCOL = (1, 0)
MAX_REQUEST_BYTES = 1024 * 1024
"""A client's line: 1 MiB. Longer is an error reply and a closed connection."""
MAX_PUSH_BYTES = 64 * 1024 * 1024
"""A daemon line: a snapshot of many large executions may be big; past this it is refused."""
INFO_NAME = "daemon.json"
"""In the state dir: who serves it (pid, socket path, instance, since)."""


class ProtocolError(Exception):
    """The other side said something this side cannot accept; the message says what."""


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    except RecursionError:
        raise ProtocolError("not accepted: JSON nested too deeply") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("a message is a JSON object with a string `type`")
    return message


def check_version(theirs: Any, who: str) -> None:
    """Refuse a different major version, naming both."""
    if (not isinstance(theirs, list) or len(theirs) != 2
            or not all(isinstance(part, int) for part in theirs)):  # fmt: skip
        raise ProtocolError(f"{who} sent no protocol version (this side speaks "
                            f"{PROTOCOL[0]}.{PROTOCOL[1]})")  # fmt: skip
    if theirs[0] != PROTOCOL[0]:
        raise ProtocolError(f"protocol {theirs[0]}.{theirs[1]} of the {who} is not "
                            f"compatible with {PROTOCOL[0]}.{PROTOCOL[1]} here")  # fmt: skip


def socket_path(state_dir: Path, env: dict[str, str] | None = None) -> Path:
    """`$XDG_RUNTIME_DIR/l3tui/<hash of the state dir>.sock`, else `STATE/daemon.sock`.
    One state dir, one socket: several daemons (several state dirs) can run side by side."""
    env = dict(os.environ) if env is None else env
    runtime_dir = env.get("XDG_RUNTIME_DIR")
    if runtime_dir and Path(runtime_dir).is_dir():
        digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:16]
        path = Path(runtime_dir) / "l3tui" / f"{digest}.sock"
    else:
        path = state_dir / "daemon.sock"
    # AF_UNIX paths are limited to 107 bytes: fall back to a short one under /tmp.
    if len(os.fsencode(path)) > 100:
        digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:16]
        path = Path("/tmp") / f"l3tui-{os.getuid()}" / f"{digest}.sock"
    return path


def private_dir(path: Path) -> None:
    """Create `path` 0700 for this user, or refuse one that others could use."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise ProtocolError(f"{path} is not a directory")
    if info.st_uid != os.getuid():
        raise ProtocolError(f"{path} belongs to uid {info.st_uid}, not to this user")
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)


@dataclass(frozen=True, slots=True)
class DaemonInfo:
    """What `STATE/daemon.json` says about the daemon serving a state dir."""

    pid: int
    socket: str
    instance: str
    since: float
    host: str
    version: str

    def write(self, state_dir: Path) -> None:
        path = state_dir / INFO_NAME
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"pid": self.pid, "socket": self.socket, "instance": self.instance,
                       "since": self.since, "host": self.host, "version": self.version}, fh)
        os.replace(tmp, path)

    @staticmethod
    def read(state_dir: Path) -> DaemonInfo | None:
        try:
            data = json.loads((state_dir / INFO_NAME).read_text(encoding="utf-8"))
            return DaemonInfo(int(data["pid"]), str(data["socket"]), str(data["instance"]),
                              float(data["since"]), str(data["host"]), str(data["version"]))
        except (OSError, ValueError, TypeError, KeyError):
            return None

    @staticmethod
    def remove(state_dir: Path, instance: str) -> None:
        current = DaemonInfo.read(state_dir)
        if current is not None and current.instance == instance:
            try:
                (state_dir / INFO_NAME).unlink()
            except OSError:
                pass
