"""Who is acting: user, terminal and SSH client, for the audit trail and notifications."""

from __future__ import annotations

import getpass
import os
import sys
from functools import lru_cache


@lru_cache(maxsize=1)
def current_actor() -> str:
    """`alice@pts/3 via 10.0.0.7`, `ci@notty`, ..."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = str(os.getuid())
    tty = "notty"
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        try:
            if stream is not None and stream.isatty():
                tty = os.ttyname(stream.fileno()).removeprefix("/dev/")
                break
        except (OSError, ValueError):
            continue
    ssh = os.environ.get("SSH_CLIENT", "").split(" ")[0]
    return f"{user}@{tty}" + (f" via {ssh}" if ssh else "")
