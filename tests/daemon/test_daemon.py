"""`l3tui daemon` as a user runs it (a real process on a temp state dir): it serves consoles
and `l3tui run` over its socket, stops cleanly on SIGTERM saying in the store what it did to
running work, reloads on SIGHUP, refuses a second daemon, and `l3tui doctor` reports on it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from l3tui.daemon.client import RemoteRuntime, find_socket
from l3tui.daemon.protocol import DaemonInfo, decode, encode
from l3tui.engine import events as ev
from tests.conftest import L3TUI, descendants_by_marker
from tests.daemon.conftest import Daemon


async def until(predicate: Any, timeout: float = 30.0, interval: float = 0.05) -> Any:
    async with asyncio.timeout(timeout):
        while not (result := predicate()):
            await asyncio.sleep(interval)
        return result


def poll(predicate: Any, timeout: float = 30.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s")
        time.sleep(interval)
    return result


def history(daemon: Daemon) -> list[dict[str, Any]]:
    result = daemon.cli("history", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


async def attach(daemon: Daemon, **kwargs: Any) -> RemoteRuntime:
    remote = RemoteRuntime(daemon.state, actor="tester@pts/9", **kwargs)
    await remote.connect(within_s=30)
    return remote


class TestServing:
    async def test_run_through_the_daemon_and_two_clients_see_the_same_events(
        self, daemon: Daemon
    ) -> None:
        one, two = await attach(daemon), await attach(daemon, client="second")
        try:
            subs = [one.subscribe("a", 10_000), two.subscribe("b", 10_000)]
            started = await one.run_workflow("quick")
            assert started.applied, started.message
            exec_id = started.execution_id

            def finished(sub_events: list[ev.Event]) -> bool:
                return any(isinstance(e, ev.ExecutionFinished) and e.execution_id == exec_id
                           for e in sub_events)  # fmt: skip

            seen: list[list[ev.Event]] = [[], []]

            def collect() -> bool:
                for i, sub in enumerate(subs):
                    seen[i].extend(sub.drain())
                return finished(seen[0]) and finished(seen[1])

            await until(collect, timeout=60)
            kinds = [[(e.kind, getattr(e, "task_id", None)) for e in events
                      if getattr(e, "execution_id", None) == exec_id] for events in seen]
            assert kinds[0] == kinds[1]
            assert ("task_finished", "two") in kinds[0]
            view = await one.fetch_execution(exec_id)
            assert view is not None and view.state == "succeeded"
        finally:
            await one.close()
            await two.close()
        rows = history(daemon)
        assert rows[0]["id"] == exec_id and rows[0]["state"] == "succeeded"

    def test_l3tui_run_submits_to_the_daemon_and_ctrl_c_cancels_it_there(
        self, daemon: Daemon
    ) -> None:
        run = subprocess.Popen([L3TUI, "run", "sleeper", "--state", str(daemon.state)],
                               env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)  # fmt: skip
        try:
            sleeper = poll(lambda: descendants_by_marker("sleep 1021"), timeout=60)
            # the task is the daemon's child, not the run command's
            assert psutil.Process(sleeper[0]).ppid() == daemon.pid
            run.send_signal(signal.SIGINT)
            _out, err = run.communicate(timeout=60)
        finally:
            if run.poll() is None:
                run.kill()
        assert run.returncode == 130, err
        assert "asking the daemon to cancel" in err
        poll(lambda: not descendants_by_marker("sleep 1021"), timeout=30)
        assert history(daemon)[0]["state"] == "cancelled"
        assert daemon.proc is not None and daemon.proc.poll() is None  # the daemon lives on

    def test_a_second_daemon_is_refused_naming_the_first(self, daemon: Daemon) -> None:
        second = subprocess.run([L3TUI, "daemon", "--config", str(daemon.config), "--state",
                                 str(daemon.state)], env=daemon.env, capture_output=True,
                                text=True, timeout=60, check=False)  # fmt: skip
        assert second.returncode == 1
        assert "already serves" in second.stderr and "Traceback" not in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1

    def test_doctor_reports_each_check_and_a_verdict(self, daemon: Daemon) -> None:
        result = daemon.cli("doctor")
        assert result.returncode == 0, result.stdout + result.stderr
        for check in ("event loop", "store latency", "store backlog", "queue",
                      "resource sampler", "clients"):  # fmt: skip
            assert check in result.stdout
        assert "verdict: healthy" in result.stdout
        data = json.loads(daemon.cli("doctor", "--json").stdout)
        assert data["verdict"] == "healthy" and data["pid"] == daemon.pid

    def test_doctor_without_a_daemon_says_so_and_exits_1(self, tmp_path: Path,
                                                         daemon_env: dict[str, str]) -> None:
        result = subprocess.run([L3TUI, "doctor", "--state", str(tmp_path / "none")],
                                env=daemon_env, capture_output=True, text=True, timeout=60,
                                check=False)  # fmt: skip
        assert result.returncode == 1
        assert "no l3tui daemon answers" in result.stdout


class TestStopping:
    def test_sigterm_cancels_running_work_and_the_store_says_so(self, daemon: Daemon) -> None:
        run = subprocess.Popen([L3TUI, "run", "sleeper", "--state", str(daemon.state)],
                               env=daemon.env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
            started = poll(lambda: descendants_by_marker("sleep 1021"), timeout=60)
            assert daemon.stop(signal.SIGTERM, wait_s=60) == 0, daemon.output()[-3000:]
            _, err = run.communicate(timeout=60)
        finally:
            if run.poll() is None:
                run.kill()
        assert run.returncode == 1, err  # the follower saw its execution cancelled
        assert not [p for p in started if psutil.pid_exists(p)
                    and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]  # fmt: skip
        row = history(daemon)[0]
        assert row["state"] == "cancelled"
        audit = daemon.cli("audit", "--json")
        assert "daemon stopping (SIGTERM)" in audit.stdout

    def test_on_stop_wait_lets_running_tasks_finish(self, make_daemon: Any) -> None:
        daemon = make_daemon().start("--on-stop", "wait")
        run = subprocess.Popen([L3TUI, "run", "short_nap", "--state", str(daemon.state)],
                               env=daemon.env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            poll(lambda: descendants_by_marker("sleep 2.0217"), timeout=60)
            assert daemon.stop(signal.SIGTERM, wait_s=60) == 0, daemon.output()[-3000:]
            run.wait(60)
        finally:
            if run.poll() is None:
                run.kill()
        assert history(daemon)[0]["state"] == "succeeded"

    def test_sighup_reloads_the_config(self, daemon: Daemon) -> None:
        workflows = (daemon.config / "l3-workflows.yml").read_text()
        (daemon.config / "l3-workflows.yml").write_text(workflows + """
  added_later:
    name: added later
    tasks:
      - {id: one, action: say, parameters: {text: hi}}
""")
        os.kill(daemon.pid, signal.SIGHUP)
        last: list[Any] = []

        def ran() -> Any:
            last[:] = [daemon.cli("run", "added_later")]
            return last[0].returncode == 0 and last[0]

        try:
            result = poll(ran, timeout=60, interval=0.5)
        except AssertionError:
            raise AssertionError(f"{last[0].stderr[-1000:]}\n--- daemon:\n"
                                 f"{daemon.output()[-2000:]}") from None
        assert "succeeded" in result.stderr
        assert daemon.proc is not None and daemon.proc.poll() is None


class TestProtocol:
    def _connect(self, daemon: Daemon) -> tuple[socket.socket, Any, dict[str, Any]]:
        path = find_socket(daemon.state)
        assert path is not None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(30)
        sock.connect(str(path))
        reader = sock.makefile("rb")
        return sock, reader, decode(reader.readline())

    def test_hello_names_versions_instance_and_sequence(self, daemon: Daemon) -> None:
        sock, _reader, hello = self._connect(daemon)
        sock.close()
        assert hello["type"] == "hello" and hello["protocol"][0] == 1
        assert hello["pid"] == daemon.pid and isinstance(hello["seq"], int)
        info = DaemonInfo.read(daemon.state)
        assert info is not None and info.instance == hello["instance"]

    def test_a_wrong_major_version_is_refused_with_both_versions(self, daemon: Daemon) -> None:
        sock, reader, _ = self._connect(daemon)
        sock.sendall(encode({"type": "hello", "protocol": [2, 0], "actor": "x"}))
        reply = decode(reader.readline())
        assert reply["type"] == "error"
        assert "2.0" in reply["message"] and "1.0" in reply["message"]
        assert reader.readline() == b""  # closed
        sock.close()
        assert daemon.cli("doctor").returncode == 0  # the daemon lives on

    def test_an_oversized_line_is_an_error_not_a_crash(self, daemon: Daemon) -> None:
        sock, reader, _ = self._connect(daemon)
        sock.sendall(encode({"type": "hello", "protocol": [1, 0], "actor": "x"}))
        try:
            sock.sendall(b'{"type": "request", "id": "big", "pad": "' + b"x" * (1536 * 1024)
                         + b'"}\n')  # fmt: skip
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon may close before reading it all
        reply = decode(reader.readline())
        assert reply["type"] == "error" and "longer than" in reply["message"]
        sock.close()
        assert daemon.cli("doctor").returncode == 0

    def test_a_retried_command_id_acts_once(self, daemon: Daemon) -> None:
        sock, reader, _ = self._connect(daemon)
        sock.sendall(encode({"type": "hello", "protocol": [1, 0], "actor": "t@pts/1"}))
        request = {"type": "request", "id": "same-id-1", "method": "run_workflow",
                   "params": {"workflow_id": "quick"}}  # fmt: skip
        sock.sendall(encode(request))
        first = decode(reader.readline())
        sock.close()
        sock, reader, _ = self._connect(daemon)  # a new connection, as after a lost reply
        sock.sendall(encode({"type": "hello", "protocol": [1, 0], "actor": "t@pts/1"}))
        sock.sendall(encode(request))
        second = decode(reader.readline())
        sock.close()
        assert first["ok"] and first == second
        poll(lambda: len(history(daemon)) >= 1, timeout=60)
        time.sleep(0.5)
        assert len(history(daemon)) == 1

    def test_the_socket_is_private(self, daemon: Daemon) -> None:
        path = find_socket(daemon.state)
        assert path is not None
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.parent.stat().st_mode & 0o777 == 0o700

    @pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another user")
    def test_another_user_is_refused_by_peer_credentials(self, make_daemon: Any,
                                                         tmp_path: Path) -> None:
        # A socket directory another user can reach (pytest's tmp dirs are 0700), and
        # filesystem permissions opened, so that only the SO_PEERCRED check stands in the way.
        runtime_dir = Path(tempfile.mkdtemp(prefix="l3tui-peer-", dir="/tmp"))
        try:
            daemon = make_daemon()
            daemon.env["XDG_RUNTIME_DIR"] = str(runtime_dir)
            daemon.start()
            path = find_socket(daemon.state)
            assert path is not None and path.is_relative_to(runtime_dir)
            os.chmod(runtime_dir, 0o711)
            os.chmod(path.parent, 0o711)
            os.chmod(path, 0o666)
            self._refused_as_nobody(path)
        finally:
            shutil.rmtree(runtime_dir, ignore_errors=True)

    def _refused_as_nobody(self, path: Path) -> None:
        probe = ("import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
                 "print(s.makefile('rb').readline().decode())")  # fmt: skip
        result = subprocess.run(["python3", "-c", probe, str(path)], capture_output=True,
                                text=True, timeout=60, user=65534, check=False)  # fmt: skip
        assert "refused" in result.stdout, result.stderr
