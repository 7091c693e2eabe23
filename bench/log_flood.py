"""Console key latency while a task floods its output, in a real terminal (tmux, 120x40).

One task prints FLOOD_MB (default 1024) MiB of 100-byte lines with `log_cap_mb: CAP_MB`
(default 2048, so nothing is dropped and all of it goes through the engine's line splitting
and the console's log views). The console shows a dashboard with a log pane following the
task, and the task's log screen (`l`) on top. While the task prints, `?` is pressed again and
again: each sample is the time from sending `?` until the help screen is on the terminal
(read back with capture-pane every 5 ms), then Escape closes it.

    .venv/bin/python bench/log_flood.py [--flood-mb N] [--cap-mb N] [--screen log|dashboard]
                                        [--src DIR]

`--src DIR` runs the l3tui found in DIR (a checkout of another commit, `git archive REV | tar
-x -C DIR`) with this venv: on a busy machine, alternate runs of both to compare.

Last line: RESULT help_p50_s=<a> help_p90_s=<b> help_max_s=<c> samples=<n> flood_s=<d>
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
L3TUI = str(Path(sys.executable).parent / "l3tui")
HELP_TEXT = "Remap keys with L3TUI_KEYMAP"
LINE = "flood " + "0123456789abcdefghijklmnopqrstuvwxyz" * 2 + " the end of a long line"

WORKFLOWS = """
workflows:
  flood:
    name: flood
    tasks:
      - {id: spew, action: spew, timeout: 30m}
"""
DASHBOARD = """
dashboards:
  main:
    name: flood
    refresh_interval: 1000
    widgets:
      - {type: task_queue, title: queue}
      - {type: workflow_status, title: workflows}
      - {type: log_view, title: output, span: 2}
"""


def config(flood_mb: int, cap_mb: int) -> Path:
    root = Path(tempfile.mkdtemp(prefix="l3bench-flood-"))
    line = LINE[:99]
    count = flood_mb * 1024 * 1024 // 100
    actions = (
        "actions:\n  spew:\n    shell: true\n"
        f"    command: [\"yes '{line}' | head -n {count}\"]\n"
    )
    (root / "l3-workflows.yml").write_text(WORKFLOWS, encoding="utf-8")
    (root / "l3-actions.yml").write_text(actions, encoding="utf-8")
    (root / "l3-scheduling.yml").write_text(
        f"scheduling:\n  execution: {{log_cap_mb: {cap_mb}, default_timeout: 30m}}\n",
        encoding="utf-8",
    )
    (root / "l3-dashboard.yml").write_text(DASHBOARD, encoding="utf-8")
    return root


class Tmux:
    def __init__(self) -> None:
        self.socket = f"l3bench-flood-{os.getpid()}"

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True,
                              text=True, timeout=30, check=True).stdout  # fmt: skip

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "l3")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "l3", *keys)

    def wait_for(self, predicate, timeout: float = 60.0, poll: float = 0.005) -> float:  # type: ignore[no-untyped-def]
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if predicate(self.screen()):
                return time.monotonic() - start
            time.sleep(poll)
        raise TimeoutError(f"timed out; the screen was:\n{self.screen()}")

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True,
                       timeout=10)  # fmt: skip
        tmpdir = Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}"
        (tmpdir / self.socket).unlink(missing_ok=True)  # kill-server leaves the socket file


def log_size(state: Path) -> int:
    return sum(p.stat().st_size for p in (state / "runs").glob("*/spew.*.log"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flood-mb", type=int, default=1024)
    parser.add_argument("--cap-mb", type=int, default=2048)
    parser.add_argument("--screen", choices=("log", "dashboard"), default="log")
    parser.add_argument("--src", help="run the l3tui of this source tree")
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        print("RESULT skipped=needs_tmux")
        return
    conf = config(args.flood_mb, args.cap_mb)
    state = Path(tempfile.mkdtemp(prefix="l3bench-flood-state-"))
    tmux = Tmux()
    env = {k: v for k, v in os.environ.items() if k not in ("COLORTERM", "TMUX")}
    env["TERM"] = "xterm-256color"
    l3tui = L3TUI
    if args.src:
        code = (f"import sys; sys.path.insert(0, {args.src!r}); "
                "from l3tui.cli import main; sys.exit(main())")
        l3tui = f"{sys.executable} -c {shlex.quote(code)}"
    command = f"{l3tui} --config {conf} --state {state} --bidi off; sleep 600"
    subprocess.run(["tmux", "-L", tmux.socket, "-f", "/dev/null", "new-session", "-d", "-s",
                    "l3", "-x", "120", "-y", "40", command], check=True, timeout=10,
                   env=env)  # fmt: skip
    samples: list[float] = []
    try:
        tmux.wait_for(lambda s: "queue" in s and "output" in s)
        tmux.keys("n")
        tmux.wait_for(lambda s: "Run a workflow" in s)
        tmux.keys("flood", "Enter")
        start = time.monotonic()
        tmux.wait_for(lambda s: "spew" in s, timeout=60)
        if args.screen == "log":
            tmux.keys("l")
            tmux.wait_for(lambda s: "log of spew" in s)
        target = args.flood_mb * 1024 * 1024
        last_size, last_change = -1, time.monotonic()
        while True:
            size = log_size(state)
            if size != last_size:
                last_size, last_change = size, time.monotonic()
            if size >= target * 0.99 or time.monotonic() - last_change > 5:
                break
            tmux.keys("?")
            samples.append(tmux.wait_for(lambda s: HELP_TEXT in s))
            tmux.keys("Escape")
            tmux.wait_for(lambda s: HELP_TEXT not in s)
            time.sleep(0.2)
        flood_s = time.monotonic() - start
    finally:
        tmux.kill()
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(conf, ignore_errors=True)
    samples.sort()
    if not samples:
        raise SystemExit("no samples: the flood ended before the first key")

    def q(p: float) -> float:
        return samples[min(int(p * len(samples)), len(samples) - 1)]

    print(f"{args.src or ROOT}: {args.flood_mb} MiB flood, log_cap_mb {args.cap_mb}, "
          f"{args.screen} screen, load average {os.getloadavg()[0]:.1f}: "
          f"{len(samples)} presses of ?, p50 {q(0.5):.3f} s, p90 {q(0.9):.3f} s, "
          f"max {samples[-1]:.3f} s; the flood took {flood_s:.1f} s")  # fmt: skip
    print(f"RESULT help_p50_s={q(0.5):.3f} help_p90_s={q(0.9):.3f} "
          f"help_max_s={samples[-1]:.3f} samples={len(samples)} flood_s={flood_s:.1f}")


if __name__ == "__main__":
    main()
