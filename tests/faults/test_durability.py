"""Durability under hostile conditions, with real `l3tui` processes, real SIGKILLs, a real
6 MB tmpfs filled to the last byte, read-only files, bind mounts and directories, and a
database deleted or truncated under a running writer (issue 10, items 6-12; issue 11's
uncreatable state dir). What each test checks is read from the database itself.

Mounts need root: without it (or where mount is refused) those tests skip, saying why.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import L3TUI, live_processes, write_config

SCHEDULING = """
scheduling:
  resource_limits: {max_concurrent_tasks: 2}
  execution: {grace_period: 1s, default_timeout: 60s}
"""

# `step` appends "<execution> <task>" to ran.txt before it prints, so a test knows what ran
# in which execution; `slow_step` sleeps a little in a grandchild whose command line carries
# the test's token, so leftover processes can be found.
ACTIONS = """
actions:
  step:
    command: [sh, -c, 'echo "$L3_EXECUTION_ID $2" >> "$1/ran.txt"; echo "step $2"; sleep "$3"', sh, "${dir}", "${name}", "${pause}", "${token}"]
  slow_step:
    command: [sh, -c, 'echo "$L3_EXECUTION_ID $2" >> "$1/ran.txt"; echo "slow $2"; sh -c "sleep 0.4; true" "$3" & sleep "$4"; wait', sh, "${dir}", "${name}", "${token}", "${pause}"]
  suicide:
    command: [sh, -c, 'echo "$L3_EXECUTION_ID" >> "$1/ran.txt"; kill -9 $PPID; sleep 5', sh, "${dir}"]
  nothing:
    command: ["true"]
"""


def workflows(work: Path, token: str, pause: str = "0.05") -> str:
    def step(task: str, deps: str = "", action: str = "step") -> str:
        extra = f", dependencies: [{deps}]" if deps else ""
        return (f'      - {{id: {task}, action: {action}, parameters: {{dir: "{work}", '
                f'name: {task}, pause: "{pause}", token: "{token}"}}{extra}}}\n')

    six = "".join(step(f"t{i}", f"t{i - 1}" if i > 1 else "") for i in range(1, 7))
    loop = (step("a") + step("b", "a") + step("c", "a", "slow_step") + step("d", "b, c")
            + step("e", "d"))
    return (
        "workflows:\n"
        "  six:\n    name: six\n    tasks:\n" + six
        + "  loop:\n    name: \"حلقة\"\n    tasks:\n" + loop
        + "  suicide:\n    name: suicide\n    tasks:\n"
        + f'      - {{id: first, action: suicide, parameters: {{dir: "{work}"}}}}\n'
        + "  noop:\n    name: noop\n    tasks:\n      - {id: nothing, action: nothing}\n"
    )


@dataclass
class Env:
    config: Path
    state: Path
    work: Path
    token: str

    def args(self, *args: str) -> list[str]:
        return [L3TUI, *args, "--config", str(self.config), "--state", str(self.state)]

    def l3(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.args(*args), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.args(*args), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    @property
    def db(self) -> Path:
        return self.state / "l3tui.db"

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def ran(self, exec_id: str) -> list[str]:
        path = self.work / "ran.txt"
        lines = path.read_text().splitlines() if path.exists() else []
        return [line.split()[1] for line in lines if line.split()[0] == exec_id
                and len(line.split()) > 1]


def make_env(root: Path, state: Path | None = None, pause: str = "0.05") -> Env:
    work = root / "work"
    work.mkdir(parents=True, exist_ok=True)
    token = f"l3dur-{uuid.uuid4().hex[:12]}"
    config = write_config(root / "config", workflows(work, token, pause), actions=ACTIONS,
                          scheduling=SCHEDULING)
    return Env(config, state or root / "state", work, token)


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return make_env(tmp_path)


def one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The run failed with exit 1 and one line on stderr holding every needle."""
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------------ mounts (root only)


def _mount(*args: str) -> str | None:
    """None when it worked, else why not (not root, or the sandbox refuses mounts)."""
    if os.geteuid() != 0:
        return "needs root to mount a tmpfs or a read-only bind mount"
    result = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
    return None if result.returncode == 0 else f"mount refused: {result.stderr.strip()}"


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "6m") -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    why = _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    if why:
        print(f"SKIP reason: {why}")
        pytest.skip(why)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], timeout=30)


@contextlib.contextmanager
def read_only_view(source: Path, target: Path) -> Iterator[Path]:
    """`target` shows `source` through a read-only bind mount."""
    target.mkdir(parents=True, exist_ok=True)
    why = _mount("--bind", str(source), str(target))
    if why:
        print(f"SKIP reason: {why}")
        pytest.skip(why)
    try:
        why = _mount("-o", "remount,bind,ro", str(target))
        if why:
            print(f"SKIP reason: {why}")
            pytest.skip(why)
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], timeout=30)


def fill(directory: Path) -> Path:
    """Write a file until the filesystem is full; returns it (delete it to free the space)."""
    path = directory / "filler"
    block = b"\0" * 65536
    with open(path, "wb", buffering=0) as fh:
        with contextlib.suppress(OSError):
            while True:
                fh.write(block)
        with contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * 512)
    return path


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    """Read-only for everyone, root included (chattr +i), or by mode bits when not root."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], check=True, timeout=30)
    else:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        yield
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], check=True, timeout=30)
        else:
            path.chmod(0o755 if path.is_dir() else 0o644)


# ------------------------------------------------------------------ following a run


LINE = re.compile(r"^\d\d:\d\d:\d\d (?:execution (?P<exec>\S+) started|(?P<task>\w+): "
                  r"(?P<what>started attempt|succeeded|failed|skipped|cancelled|timed_out))")


@dataclass
class Followed:
    """What a run printed, up to where it was killed."""

    lines: list[str] = field(default_factory=list)
    exec_id: str | None = None
    succeeded: list[str] = field(default_factory=list)

    def take(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        self.lines.append(line)
        match = LINE.match(line)
        if match and match["exec"]:
            self.exec_id = match["exec"]
        elif match and match["what"] == "succeeded":
            self.succeeded.append(match["task"])


def kill9(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def follow_until(proc: subprocess.Popen[bytes], stop, timeout: float = 60) -> Followed:
    """Read the run's lines; SIGKILL it right after the line for which `stop(line, seen)`
    is true (or let it end). The kill point is chosen by what was printed, never by time."""
    seen = Followed()
    assert proc.stdout is not None
    timer = threading.Timer(timeout, lambda: os.kill(proc.pid, signal.SIGKILL))
    timer.start()
    try:
        for raw in iter(proc.stdout.readline, b""):
            seen.take(raw)
            if stop(seen.lines[-1], seen):
                kill9(proc)
                break
    finally:
        timer.cancel()
    proc.wait(timeout=30)
    return seen


def task_states(env: Env, exec_id: str) -> dict[str, str]:
    return dict(env.query("SELECT task_id, state FROM task_runs WHERE execution_id = ?",
                          (exec_id,)))


def integrity(env: Env) -> None:
    assert env.query("PRAGMA integrity_check") == [("ok",)]


# ------------------------------------------------------------------ item 6


def test_the_execution_and_its_first_attempt_are_committed_before_its_process_runs(env):
    """The first task kills l3tui (SIGKILL) as the first thing it does, five times: each
    execution and the attempt that ran are in the store, and the next start marks them
    interrupted."""
    assert env.l3("run", "noop").returncode == 0  # a database to start from
    killed = []
    for _ in range(5):
        result = env.l3("run", "suicide")
        assert result.returncode == -signal.SIGKILL, result.stderr
        ran = (env.work / "ran.txt").read_text().split()
        exec_id = ran[-1]
        killed.append(exec_id)
        assert env.query("SELECT state FROM executions WHERE id = ?", (exec_id,)) in (
            [("running",)], [("interrupted",)]), f"execution {exec_id} ran but was not stored"
        attempts = env.query("SELECT attempt, state FROM task_attempts WHERE execution_id = ?"
                             " AND task_id = 'first'", (exec_id,))
        assert [a for a, _ in attempts] == [1], f"attempt of {exec_id} ran but was not stored"
    assert env.l3("run", "noop").returncode == 0
    states = dict(env.query("SELECT id, state FROM executions WHERE workflow_id = 'suicide'"))
    assert states == dict.fromkeys(killed, "interrupted")


# ------------------------------------------------------------------ item 7


def test_a_task_printed_succeeded_is_committed_and_resume_does_not_run_it_again(env):
    """SIGKILL right after `a: succeeded` is read from the run's output, five times: `a` is
    succeeded in the store each time, and `resume` keeps it, runs only what the store never
    saw succeed, and says which and why."""
    for _ in range(5):
        proc = env.popen("run", "loop")
        seen = follow_until(proc, lambda line, s: "a: succeeded" in line)
        assert seen.exec_id and seen.succeeded == ["a"], seen.lines
        assert task_states(env, seen.exec_id)["a"] == "succeeded", "printed, not committed"
    result = env.l3("resume", seen.exec_id)
    assert result.returncode == 0, result.stderr
    child = env.query("SELECT id FROM executions WHERE parent_id = ?", (seen.exec_id,))[0][0]
    assert "a" not in env.ran(child)
    assert sorted(env.ran(child)) == ["b", "c", "d", "e"]
    said = next(line for line in result.stderr.splitlines() if line.startswith("resumed"))
    assert "kept: a" in said and "never saw them succeed" in said
    assert re.search(r"\bb \((interrupted|never started)", said), said


# ------------------------------------------------------------------ item 8


def test_a_full_disk_mid_run_loses_nothing_printed_once_space_returns(tmp_path):
    """A 6 MB tmpfs holds the state dir; it is filled after `t2` succeeded and freed 3 s
    later. Tasks keep running (no internal error, no traceback), the outage is said, and
    every task printed as succeeded is in the store with the execution's end."""
    with tmpfs(tmp_path / "disk") as disk:
        env = make_env(tmp_path, state=disk / "state", pause="0.3")
        proc = env.popen("run", "six")
        filler: list[Path] = []

        def on_line(line: str, seen: Followed) -> bool:
            if "t2: succeeded" in line and not filler:
                filler.append(fill(disk))
                threading.Timer(3.0, filler[0].unlink).start()
            return False

        seen = follow_until(proc, on_line, timeout=120)
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        assert proc.returncode == 0, stderr
        assert "Traceback" not in stderr and "internal error" not in stderr, stderr
        assert "database or disk is full" in stderr  # said when it happened
        assert "all " in stderr and "were written" in stderr  # and that it caught up
        assert seen.succeeded == ["t1", "t2", "t3", "t4", "t5", "t6"], seen.lines
        assert task_states(env, seen.exec_id) == dict.fromkeys(seen.succeeded, "succeeded")
        assert env.query("SELECT state FROM executions WHERE id = ?",
                         (seen.exec_id,)) == [("succeeded",)]
        assert ("store_write_failing",) in env.query("SELECT rule FROM alerts")
        integrity(env)
        assert env.l3("audit", "verify").returncode == 0


# ------------------------------------------------------------------ item 9


def test_a_read_only_database_refuses_the_run_unless_no_record(env):
    assert env.l3("run", "noop").returncode == 0
    before = env.query("SELECT count(*) FROM executions")
    with immutable(env.db):
        result = env.l3("run", "six")
        one_line_error(result, str(env.db), "cannot be written", "--no-record")
        assert not (env.work / "ran.txt").exists()  # nothing ran
        free = env.l3("run", "six", "--no-record")
        assert free.returncode == 0, free.stderr
        assert "nothing of this run is recorded" in free.stderr
    assert len((env.work / "ran.txt").read_text().splitlines()) == 6
    assert env.query("SELECT count(*) FROM executions") == before


# ------------------------------------------------------------------ item 10


@pytest.mark.parametrize("how", ["deleted", "truncated"])
def test_a_database_deleted_or_truncated_mid_run_is_detected_and_fails_the_run(env, how):
    """The writer checks its file before each commit: the run says what happened, raises
    the store alert, exits 1, and the next start works."""
    assert env.l3("run", "noop").returncode == 0
    proc = env.popen("run", "six")

    def on_line(line: str, seen: Followed) -> bool:
        if "t2: succeeded" in line:
            if how == "deleted":
                env.db.unlink()
            else:
                os.truncate(env.db, 0)
        return False

    seen = follow_until(proc, on_line, timeout=120)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.returncode == 1, (seen.lines, stderr)
    assert f"{env.db} was {how}" in stderr and "recording stopped" in stderr, stderr
    assert "could not be recorded" in stderr
    assert "Traceback" not in stderr
    again = env.l3("run", "noop")
    assert again.returncode == 0, again.stderr
    integrity(env)


# ------------------------------------------------------------------ item 11


def test_read_only_commands_work_on_a_read_only_state_directory(env, tmp_path):
    assert env.l3("run", "six").returncode == 0
    exec_id = (env.work / "ran.txt").read_text().split()[0]
    # closed cleanly: no write-ahead log or shared memory that a reader could use
    assert sorted(os.listdir(env.state)) == ["l3tui.db", "l3tui.lock", "outbox", "runs"]
    with read_only_view(env.state, tmp_path / "ro") as view:
        listing = sorted(os.listdir(view))
        for args in (("history",), ("show", exec_id), ("logs", exec_id, "t1"), ("report",),
                     ("audit",), ("audit", "verify"), ("schedules",)):
            result = subprocess.run([L3TUI, "--config", str(env.config), "--state", str(view),
                                     *args], capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, (args, result.stderr)
            assert "reset-state" not in result.stderr
        assert sorted(os.listdir(view)) == listing
        assert "step t1" in subprocess.run(
            [L3TUI, "--state", str(view), "logs", exec_id, "t1"], capture_output=True,
            text=True, timeout=60).stdout
    with immutable(env.state):  # a read-only directory on a writable filesystem
        result = subprocess.run([L3TUI, "--state", str(env.state), "history"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and exec_id in result.stdout, result.stderr


# ------------------------------------------------------------------ item 12 (+ issue 11)


def test_a_full_disk_before_the_start_is_one_line(tmp_path):
    with tmpfs(tmp_path / "disk") as disk:
        env = make_env(tmp_path, state=disk / "state")
        assert env.l3("run", "noop").returncode == 0
        filler = fill(disk)
        one_line_error(env.l3("run", "six"), "No space left on device")
        fresh = make_env(tmp_path / "fresh", state=disk / "fresh-state")
        result = fresh.l3("run", "six")
        assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, \
            result.stderr
        assert "internal error" not in result.stderr
        filler.unlink()
        assert env.l3("run", "noop").returncode == 0


@pytest.mark.parametrize("state", ["a regular file", "/proc/1/nonexist"])
def test_a_state_dir_that_cannot_be_a_directory_is_one_line(env, tmp_path, state):
    if state == "a regular file":
        path = tmp_path / "plain"
        path.write_text("not a directory")
        expected = "is not a directory"
    else:
        path = Path(state)
        expected = "cannot create the state directory"
    for command in (("run", "six"), ("resume", "x")):
        result = subprocess.run([L3TUI, *command, "--config", str(env.config), "--state",
                                 str(path)], capture_output=True, text=True, timeout=60)
        one_line_error(result, str(path), expected)


# ------------------------------------------------------------------ the crash loop


def _pick_kill_point(rng: random.Random):
    """Right after the n-th line of a kind: the execution's start, a task's start, a
    success, or any line; once in a while no kill at all (the run ends)."""
    kind = rng.choice(["execution", "started", "succeeded", "succeeded", "any"] * 2 + ["end"])
    nth = 1 if kind == "execution" else rng.randint(1, 3 if kind != "any" else 8)
    count = {"n": 0}

    def stop(line: str, seen: Followed) -> bool:
        match = LINE.match(line)
        hit = {"execution": bool(match and match["exec"]),
               "started": bool(match and match["what"] == "started attempt"),
               "succeeded": bool(match and match["what"] == "succeeded"),
               "any": True, "end": False}[kind]
        count["n"] += hit
        return hit and count["n"] >= nth

    return f"{kind}#{nth}", stop


def _token_pids(token: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if token.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
    return [p.pid for p in live_processes(found)]


@pytest.mark.slow
@pytest.mark.timeout(900)  # 50 runs: 60-110 s on a quiet machine, several minutes when busy
def test_crash_loop_fifty_kills(env):
    """Runs and resumes until 50 of them were SIGKILLed, each right after a line chosen at
    random from its own output (the execution started, a task started, a task succeeded,
    any line; now and then no kill). After every kill: the database is intact, an execution
    printed as started is stored, every task printed as succeeded is committed as
    succeeded, and what the killed run left is gone once the next run has started. A resume
    never runs a task its parent had committed as succeeded. At the end the audit chain
    verifies and nothing is left running."""
    seed = int(os.environ.get("L3TUI_CRASH_SEED", time.time()))
    rng = random.Random(seed)
    print(f"crash loop seed {seed} (L3TUI_CRASH_SEED to replay)")
    assert env.l3("run", "noop").returncode == 0
    kills, resumes, runs, previous_pids = 0, 0, 0, []
    last_killed: str | None = None
    began = time.monotonic()
    while kills < 50:
        runs += 1
        assert runs <= 90, f"only {kills} kills in {runs - 1} runs (seed {seed})"
        parent_done: set[str] = set()
        if last_killed is not None and rng.random() < 0.5:
            # the parent's committed successes, read before the resume runs
            parent_done = {t for t, s in task_states(env, last_killed).items()
                           if s == "succeeded"}
            proc, what = env.popen("resume", last_killed), f"resume {last_killed}"
            resumes += 1
        else:
            proc, what = env.popen("run", "loop"), "run loop"
        point, stop = _pick_kill_point(rng)
        survivors: list[int] = []

        def stop_and_check(line: str, seen: Followed, stop=stop, before=previous_pids,
                           survivors=survivors) -> bool:
            if len(seen.lines) == 1:
                # This run is past its start-up, so the one killed before was recovered.
                survivors.extend(p.pid for p in live_processes(before))
            return stop(line, seen)

        seen = follow_until(proc, stop_and_check, timeout=90)
        context = f"run {runs} ({what}, kill after {point}), seed {seed}: {seen.lines}"
        assert survivors == [], f"left alive by the previous run: {survivors}; {context}"
        killed = proc.returncode == -signal.SIGKILL
        previous_pids = _token_pids(env.token) if killed else []
        integrity(env)
        if seen.exec_id is None:  # killed (or refused) before its execution started
            last_killed = last_killed if killed else None
            kills += killed
            continue
        exec_id = seen.exec_id
        assert env.query("SELECT id FROM executions WHERE id = ?", (exec_id,)), context
        states = task_states(env, exec_id)
        missing = [t for t in seen.succeeded if states.get(t) != "succeeded"]
        assert missing == [], f"printed succeeded, not committed: {missing}; {context}"
        rerun = parent_done & set(env.ran(exec_id))
        assert rerun == set(), f"committed successes ran again: {rerun}; {context}"
        if killed:
            kills += 1
            last_killed = exec_id
        else:
            assert proc.returncode == 0, context
            last_killed = None
    final = env.l3("run", "noop")
    assert final.returncode == 0, final.stderr
    assert live_processes(previous_pids) == []
    assert _token_pids(env.token) == []
    active = env.query("SELECT id, state FROM executions WHERE state IN ('pending', "
                       "'running', 'paused')")
    assert active == []
    integrity(env)
    verify = env.l3("audit", "verify")
    assert verify.returncode == 0, verify.stderr
    print(f"crash loop: {kills} kills survived in {runs} runs ({resumes} resumes) in "
          f"{time.monotonic() - began:.0f}s, seed {seed}")
