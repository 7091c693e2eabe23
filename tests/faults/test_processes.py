"""No process escapes its task, and a lost terminal stops l3tui cleanly (issue 10, items 13
and 14). Real processes that leave their task's process group (`setsid`), clear their
environment too (`setsid env -i`), a pid really reused by an unrelated process, real
SIGHUPs and real tmux sessions killed under `l3tui run` and the console.

Each containment mode runs where this machine has it: `auto` (task cgroups where l3tui's
cgroup is delegated, else the subreaper) and `subreaper` (forced with L3TUI_CONTAINMENT).
What is asserted depends on the mode that actually ran; the test prints it.

Processes started with `env -i` lose the sweep fixture's marker: those tests kill them
themselves in a `finally`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import L3TUI, live_processes, write_config

MODES = ["auto", "subreaper"]
GRACE_S = 1.0

ESCAPE_SH = r"""
# $1 pid file, $2 setsid | envi, $3 a file to wait for before exiting ("-": exit at once)
echo $$ > "$1.main"
case "$2" in
  setsid) setsid sh -c 'echo $$ > "$1"; exec sleep 300' sh "$1" & ;;
  envi) setsid env -i sh -c 'echo $$ > "$1"; exec sleep 300' sh "$1" & ;;
  stubborn) trap "" TERM
    setsid sh -c 'echo $$ > "$1"; while :; do sleep 0.2; done' sh "$1" & ;;
esac
while [ ! -s "$1" ]; do sleep 0.01; done
if [ "$3" != "-" ]; then
  while [ ! -e "$3" ]; do sleep 0.05; done
fi
echo "left $(cat "$1")"
"""


def escape_config(root: Path, tasks: str, grace_s: float = GRACE_S) -> Path:
    """A config whose `escape` action leaves a process behind (see ESCAPE_SH)."""
    script = root / "escape.sh"
    root.mkdir(parents=True, exist_ok=True)
    script.write_text(ESCAPE_SH)
    actions = f"""
    actions:
      escape:
        command: [sh, "{script}", "${{pidfile}}", "${{how}}", "${{wait_for}}"]
      sleep:
        command: [sleep, "${{seconds}}"]
    """
    workflows = "workflows:\n  w:\n    name: w\n    tasks:\n" + textwrap.indent(
        textwrap.dedent(tasks), "      "
    )
    scheduling = f"""
    scheduling:
      resource_limits: {{max_concurrent_tasks: 4}}
      execution: {{grace_period: {int(grace_s * 1000)}ms, default_timeout: 120s}}
    """
    return write_config(root / "config", workflows, actions=actions, scheduling=scheduling)


def read_pid(path: Path, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            text = ""
        if text:
            return int(text)
        time.sleep(0.02)
    raise AssertionError(f"{path} never got a pid")


def wait_gone(pids: list[int], timeout: float) -> float:
    """Seconds until none of `pids` is alive; AssertionError naming them at `timeout`."""
    start = time.monotonic()
    while live_processes(pids):
        if time.monotonic() - start > timeout:
            raise AssertionError(f"still alive after {timeout}s: {live_processes(pids)}")
        time.sleep(0.01)
    return time.monotonic() - start


def kill_quietly(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def in_task_cgroup(pid: int) -> bool:
    try:
        return "/l3tui-" in Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False


async def until(predicate: Callable[[], object], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def history(config: Path, state: Path) -> list[dict]:
    out = subprocess.run([L3TUI, "history", "--json", "--config", str(config), "--state",
                          str(state)], capture_output=True, text=True, timeout=60,
                         check=True, stdin=subprocess.DEVNULL)  # fmt: skip
    return json.loads(out.stdout)


# ---------------------------------------------------------------------- escapees


@pytest.mark.parametrize("mode", MODES)
async def test_setsid_escapee_dies_with_its_task_not_with_another(
    mode, tmp_path, state_dir, runtime_for, monkeypatch
):
    """b leaves a `setsid` process and ends: it dies (b's task ended). a's runs on until a
    itself ends: it is never blamed on b."""
    monkeypatch.setenv("L3TUI_CONTAINMENT", mode)
    go = tmp_path / "go"
    config = escape_config(tmp_path, f"""
    - {{id: a, action: escape, parameters: {{pidfile: "{tmp_path}/a.pid", how: setsid,
                                             wait_for: "{go}"}}}}
    - {{id: b, action: escape, parameters: {{pidfile: "{tmp_path}/b.pid", how: setsid,
                                             wait_for: "-"}}}}
    """)  # fmt: skip
    async with runtime_for(config) as rt:
        started = await rt.run_workflow("w")
        execution = rt.engine.executions[started.execution_id]
        await until(lambda: execution.tasks["b"].state.terminal)
        a_left, b_left = read_pid(tmp_path / "a.pid"), read_pid(tmp_path / "b.pid")
        took = await asyncio.to_thread(wait_gone, [b_left], 10.0)
        print(f"containment: {rt.executor.containment.describe()}; "
              f"b's escapee died {took * 1000:.0f} ms after b ended")  # fmt: skip
        assert live_processes([a_left]), "a still runs: its escapee must not die with b"
        go.touch()
        assert (await rt.wait(started.execution_id)).value == "succeeded"
        await asyncio.to_thread(wait_gone, [a_left], 10.0)
        expected = "cgroup" if mode == "auto" and rt.executor.mode == "cgroup" else "subreaper"
        assert rt.executor.mode == expected


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_escapees_of_l3tui_run_die_before_it_exits(mode, tmp_path):
    """`setsid` and `setsid env -i` escapees of a task: both dead when `l3tui run` exits
    (in cgroup mode with the task's cgroup; in subreaper mode `run` is l3tui alone, so even
    the one without environment is found, by when it started)."""
    config = escape_config(tmp_path, f"""
    - {{id: s, action: escape, parameters: {{pidfile: "{tmp_path}/s.pid", how: setsid,
                                             wait_for: "-"}}}}
    - {{id: e, action: escape, parameters: {{pidfile: "{tmp_path}/e.pid", how: envi,
                                             wait_for: "-"}}}}
    """)  # fmt: skip
    env = {**os.environ, "L3TUI_CONTAINMENT": mode}
    proc = subprocess.Popen([L3TUI, "run", "w", "--config", str(config), "--state",
                             str(tmp_path / "state")], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)  # fmt: skip
    left: list[int] = []
    try:
        left = [read_pid(tmp_path / "s.pid"), read_pid(tmp_path / "e.pid")]
        cgroup = in_task_cgroup(left[1])
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        print(f"mode requested {mode}; escapees in a task cgroup: {cgroup}")
        if mode == "subreaper":
            assert not cgroup
        assert live_processes(left) == [], "an escapee outlived `l3tui run`"
    finally:
        proc.kill()
        kill_quietly(left)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("adopt", [True, False], ids=["l3tui-alone", "embedded"])
async def test_setsid_env_i_escapee_per_mode(
    mode, adopt, tmp_path, state_dir, runtime_for, monkeypatch
):
    """`setsid env -i`: no group, no session, no environment left to recognise it by.

    - cgroup: it is in the task's cgroup and dies with the task.
    - subreaper, l3tui alone: it re-parents to l3tui and is attributed by its start time;
      while another task that was running when it started still runs, it could be that
      task's, so it lives until that one ends too.
    - subreaper, embedded in a program that spawns processes of its own (adopt off): not
      provably ours, left alone (the documented limit)."""
    monkeypatch.setenv("L3TUI_CONTAINMENT", mode)
    go = tmp_path / "go"
    config = escape_config(tmp_path, f"""
    - {{id: a, action: escape, parameters: {{pidfile: "{tmp_path}/a.pid", how: setsid,
                                             wait_for: "{go}"}}}}
    - {{id: b, action: escape, parameters: {{pidfile: "{tmp_path}/b.pid", how: envi,
                                             wait_for: "-"}}}}
    """)  # fmt: skip
    left: list[int] = []
    try:
        async with runtime_for(config, adopt_orphans=adopt) as rt:
            started = await rt.run_workflow("w")
            execution = rt.engine.executions[started.execution_id]
            await until(lambda: execution.tasks["b"].state.terminal)
            left = [read_pid(tmp_path / "b.pid")]
            ran = rt.executor.mode
            print(f"containment: {rt.executor.containment.describe()}; adopt={adopt}")
            if ran == "cgroup":
                await asyncio.to_thread(wait_gone, left, 10.0)
            else:
                tracker = rt.executor.containment.orphans
                assert tracker.sweep() == 0  # b has ended; a runs: nothing is condemned
                await asyncio.sleep(0.2)
                assert live_processes(left), "a ran when it started: it could be a's"
            go.touch()
            await rt.wait(started.execution_id)
            if ran == "cgroup" or adopt:
                await asyncio.to_thread(wait_gone, left, 10.0)
        if ran == "subreaper" and not adopt:
            assert live_processes(left), "documented limit: not provably ours, not touched"
        else:
            assert live_processes(left) == []
    finally:
        kill_quietly(left)


@pytest.mark.parametrize("mode", MODES)
async def test_a_reused_pid_is_never_signalled(mode, tmp_path, state_dir, monkeypatch):
    """A task's main process ends; before l3tui looks at its group, an unrelated process
    takes the very same pid and leads a group of that id (forced through ns_last_pid). The
    clean-up of the task must not touch it; nor does any signal sent by pid and start time
    reach it."""
    from l3tui.engine.executors.base import CommandJob
    from l3tui.engine.executors.local import LocalExecutor

    monkeypatch.setenv("L3TUI_CONTAINMENT", mode)
    executor = LocalExecutor(1 << 20, GRACE_S)
    stranger: subprocess.Popen[bytes] | None = None
    try:
        for _attempt in range(20):  # another process may take the pid first: try again
            job = CommandJob(argv=("true",), executable="/bin/true", env=dict(os.environ),
                             cwd=None, timeout_s=10)  # fmt: skip
            proc = executor.start(job, None, lambda lines: None, lambda n, v: None)
            async with asyncio.timeout(10):
                while proc.running:
                    await asyncio.sleep(0.005)
            stranger = reuse_pid(proc.pid)
            if stranger is not None:
                break
            await proc.wait()
        assert stranger is not None, "could not get the pid reused in 20 tries"
        await proc.wait()  # cleans up "the task's group": must not be the stranger's
        proc.pause()
        await proc.terminate()
        assert stranger.poll() is None, "the stranger holding a reused pid was signalled"
        from l3tui.engine.executors.procs import read_proc, signal_same

        now = read_proc(stranger.pid)
        assert now is not None
        assert not signal_same(stranger.pid, now.start + 1, signal.SIGKILL)
        time.sleep(0.05)
        assert stranger.poll() is None
        print(f"containment: {executor.containment.describe()}; pid {proc.pid} was reused")
    finally:
        if stranger is not None:
            stranger.kill()
            stranger.wait()
        if hasattr(executor, "close"):
            await executor.close()


@pytest.mark.parametrize("mode", MODES)
async def test_a_task_cancelled_as_it_starts_still_dies(mode, monkeypatch):
    """Cancelled right after the spawn, before the task's wrapper has joined its cgroup
    (cgroup mode): the task is still ended, not left running outside any cgroup."""
    from l3tui.engine.executors.base import CommandJob
    from l3tui.engine.executors.local import LocalExecutor

    monkeypatch.setenv("L3TUI_CONTAINMENT", mode)
    executor = LocalExecutor(1 << 20, GRACE_S)
    try:
        job = CommandJob(argv=("sleep", "300"), executable="/bin/sleep", env=dict(os.environ),
                         cwd=None, timeout_s=10)  # fmt: skip
        for _ in range(5):
            proc = executor.start(job, None, lambda lines: None, lambda n, v: None)
            proc.terminate()
            async with asyncio.timeout(GRACE_S + 10):
                result = await proc.wait()
            assert result.signal == signal.SIGTERM, result
        print(f"containment: {executor.containment.describe()}")
    finally:
        await executor.close()


def reuse_pid(pid: int) -> subprocess.Popen[bytes] | None:
    """Start a session leader that gets exactly `pid` (the kernel hands out the number after
    ns_last_pid), or None if another process took it first."""
    try:
        Path("/proc/sys/kernel/ns_last_pid").write_text(str(pid - 1))
    except OSError as exc:
        pytest.fail(f"this test needs to write /proc/sys/kernel/ns_last_pid (root): {exc}")
    child = subprocess.Popen(["sleep", "300"], start_new_session=True)
    if child.pid == pid:
        return child
    child.kill()
    child.wait()
    return None


# ---------------------------------------------------------------------- SIGHUP


LONG = """
- {id: long, action: escape, parameters: {pidfile: "%s/long.pid", how: setsid,
                                          wait_for: "%s/never"}}
"""


@pytest.mark.slow
def test_sighup_to_l3tui_run_cancels_and_exits(tmp_path):
    """SIGHUP is SIGTERM for `run`: cancelled with the signal as the reason, the task tree
    (its escapee included) dead within the grace period, exit 130, no traceback."""
    config = escape_config(tmp_path, LONG % (tmp_path, tmp_path))
    state = tmp_path / "state"
    # SIGHUP at its default in the child even when the suite itself runs under nohup
    # (an ignored signal is inherited, and `run` then keeps ignoring it, as it should).
    proc = subprocess.Popen([L3TUI, "run", "w", "--config", str(config), "--state",
                             str(state)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))  # fmt: skip
    try:
        tree = [read_pid(tmp_path / "long.pid"), read_pid(tmp_path / "long.pid.main")]
        proc.send_signal(signal.SIGHUP)
        _, err = proc.communicate(timeout=GRACE_S + 30)
        assert proc.returncode == 130, err
        assert "Traceback" not in err and "SIGHUP: cancelling" in err
        assert live_processes(tree) == []
        [row] = history(config, state)
        assert (row["state"], row["reason"]) == ("cancelled", "cancelled: SIGHUP")
    finally:
        proc.kill()


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_a_second_ctrl_c_kills_escapees_at_once_too(mode, tmp_path):
    """A task and its `setsid` escapee both ignore SIGTERM; the grace period is 60 s. The
    first Ctrl-C cancels (SIGTERM, ignored), the second kills at once: the escapee too."""
    config = escape_config(tmp_path, f"""
    - {{id: t, action: escape, parameters: {{pidfile: "{tmp_path}/t.pid", how: stubborn,
                                             wait_for: "{tmp_path}/never"}}}}
    """, grace_s=60)  # fmt: skip
    env = {**os.environ, "L3TUI_CONTAINMENT": mode}
    proc = subprocess.Popen([L3TUI, "run", "w", "--config", str(config), "--state",
                             str(tmp_path / "state")], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)  # fmt: skip
    try:
        tree = [read_pid(tmp_path / "t.pid"), read_pid(tmp_path / "t.pid.main")]
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert live_processes(tree), "SIGTERM is ignored: still there within the grace"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 130, err
        assert live_processes(tree) == []
    finally:
        proc.kill()


@pytest.mark.slow
def test_l3tui_run_under_nohup_survives_sighup(tmp_path):
    """Started with SIGHUP ignored (nohup), `run` keeps ignoring it."""
    config = escape_config(tmp_path, LONG % (tmp_path, tmp_path))
    state = tmp_path / "state"
    proc = subprocess.Popen([L3TUI, "run", "w", "--config", str(config), "--state",
                             str(state)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))  # fmt: skip
    try:
        read_pid(tmp_path / "long.pid")
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert proc.poll() is None, "nohup'd l3tui died of SIGHUP"
        (tmp_path / "never").touch()
        proc.communicate(timeout=60)
        assert proc.returncode == 0
    finally:
        proc.kill()


class Tmux:
    """A private tmux server running one session `l3`; `rc` gets the command's exit code.

    The command runs under a wrapper that, like a login shell, passes the hangup on to its
    job (the kernel signals only the session leader), and unlike one lives to record the
    exit code."""

    WRAPPER = ("import os, signal, subprocess, sys\n"
               "block = {signal.SIGHUP} if os.environ.get('BLOCK_HUP') else set()\n"
               "child = subprocess.Popen(sys.argv[2:], preexec_fn=lambda: "
               "signal.pthread_sigmask(signal.SIG_BLOCK, block))\n"
               "open(sys.argv[1] + '.pid', 'w').write(str(child.pid))\n"
               "signal.signal(signal.SIGHUP, lambda *a: os.kill(child.pid, signal.SIGHUP))\n"
               "open(sys.argv[1], 'w').write(str(child.wait()))\n")  # fmt: skip

    def __init__(self, root: Path) -> None:
        self.socket = f"l3faults-{os.getpid()}-{root.name}"
        self.root = root
        self.rc = root / "rc"

    def start(self, *argv: str, block_hup: bool = False) -> None:
        """Run `argv` in the session (with SIGHUP blocked: it never arrives)."""
        wrapper = self.root / "wrapper.py"
        wrapper.write_text(self.WRAPPER)
        command = " ".join([sys.executable, str(wrapper), str(self.rc), *argv])
        env = {k: v for k, v in os.environ.items() if k not in ("COLORTERM", "TMUX")}
        env |= {"TERM": "xterm-256color", "TMPDIR": str(self.root)}
        if block_hup:
            env["BLOCK_HUP"] = "1"
        self.tmux("-f", "/dev/null", "new-session", "-d", "-s", "l3", "-x", "100", "-y", "30",
                  command, env=env)  # fmt: skip

    def tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        out = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True,
                             text=True, timeout=10, check=True, env=env)  # fmt: skip
        return out.stdout

    def wait_screen(self, predicate: Callable[[str], bool], timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.tmux("capture-pane", "-p", "-t", "l3")
            if predicate(screen):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s; the screen was:\n{screen}")

    def exit_code(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.rc.exists() and self.rc.read_text():
                return int(self.rc.read_text())
            time.sleep(0.05)
        raise AssertionError(f"l3tui had not exited {timeout}s after the hangup")

    def crash_files(self) -> list[Path]:
        return sorted(self.root.glob("l3tui-crash-*"))

    def kill_server(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True,
                       timeout=10)  # fmt: skip


@pytest.fixture
def tmux(tmp_path: Path):
    server = Tmux(tmp_path)
    yield server
    server.kill_server()


@pytest.mark.slow
def test_tmux_session_killed_under_l3tui_run(tmux, tmp_path):
    """`l3tui run` drawing its live tree in tmux; the session is killed: the terminal is
    gone, so the execution is cancelled as `terminal lost (SIGHUP)`, its processes die,
    l3tui exits 130 without a traceback (nothing it writes to the dead terminal fails)."""
    config = escape_config(tmp_path, LONG % (tmp_path, tmp_path))
    state = tmp_path / "state"
    tmux.start(L3TUI, "run", "w", "--config", str(config), "--state", str(state))
    tree = [read_pid(tmp_path / "long.pid"), read_pid(tmp_path / "long.pid.main")]
    tmux.wait_screen(lambda s: "long" in s)
    tmux.tmux("kill-session", "-t", "l3")
    hung_up = time.monotonic()
    assert tmux.exit_code(GRACE_S + 30) == 130
    print(f"l3tui run exited {time.monotonic() - hung_up:.2f}s after the hangup")
    assert live_processes(tree) == []
    assert tmux.crash_files() == []
    [row] = history(config, state)
    assert (row["state"], row["reason"]) == ("cancelled", "cancelled: terminal lost (SIGHUP)")


@pytest.mark.slow
def test_a_write_to_the_lost_terminal_before_the_signal(tmux, tmp_path):
    """The hangup can beat its signal: l3tui writes to the terminal (here every JSON event of
    a ticking task) before the SIGHUP handler runs. Here SIGHUP is blocked, so the failed
    write is all l3tui sees: it is taken for the hangup it is, not a crash."""
    config = escape_config(tmp_path, LONG % (tmp_path, tmp_path))
    ticking = 'while [ ! -e "$3" ]; do echo tick; sleep 0.1; done'
    (tmp_path / "escape.sh").write_text(
        ESCAPE_SH.replace('while [ ! -e "$3" ]; do sleep 0.05; done', ticking))
    state = tmp_path / "state"
    tmux.start(L3TUI, "run", "w", "--json", "--config", str(config), "--state", str(state),
               block_hup=True)  # fmt: skip
    tree = [read_pid(tmp_path / "long.pid"), read_pid(tmp_path / "long.pid.main")]
    tmux.wait_screen(lambda s: "tick" in s)
    tmux.tmux("kill-session", "-t", "l3")
    assert tmux.exit_code(GRACE_S + 30) == 130
    assert live_processes(tree) == []
    assert tmux.crash_files() == []
    [row] = history(config, state)
    assert (row["state"], row["reason"]) == ("cancelled", "cancelled: terminal lost (SIGHUP)")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["kill-session", "SIGTERM"])
def test_tmux_session_killed_under_the_console(how, tmux, tmp_path):
    """The console running a workflow in tmux; the session is killed (an SSH session drops
    the same way): executions are cancelled as `terminal lost (SIGHUP)`, the task tree is
    dead within the grace period and a few seconds, the console exits 130, no traceback.
    SIGTERM (the terminal still there) stops it the same way, as `SIGTERM`."""
    config = escape_config(tmp_path, LONG % (tmp_path, tmp_path))
    state = tmp_path / "state"
    tmux.start(L3TUI, "--config", str(config), "--state", str(state), "--bidi", "off")
    tmux.wait_screen(lambda s: "no executions yet" in s)
    tmux.tmux("send-keys", "-t", "l3", "n")
    tmux.wait_screen(lambda s: "Run a workflow" in s)
    tmux.tmux("send-keys", "-t", "l3", "w")
    tmux.tmux("send-keys", "-t", "l3", "Enter")
    tree = [read_pid(tmp_path / "long.pid"), read_pid(tmp_path / "long.pid.main")]
    tmux.wait_screen(lambda s: "running" in s)
    if how == "kill-session":
        tmux.tmux("kill-session", "-t", "l3")
    else:
        os.kill(read_pid(Path(f"{tmux.rc}.pid")), signal.SIGTERM)
    stopped = time.monotonic()
    took = wait_gone(tree, GRACE_S + 10)
    print(f"{how}: task tree dead {took:.2f}s after it")
    assert tmux.exit_code(GRACE_S + 30) == 130
    print(f"{how}: console exited {time.monotonic() - stopped:.2f}s after it")
    assert tmux.crash_files() == []
    [row] = history(config, state)
    why = "terminal lost (SIGHUP)" if how == "kill-session" else "SIGTERM"
    assert (row["state"], row["reason"]) == ("cancelled", f"cancelled: {why}")
