"""A real Dask cluster for tests: `dask scheduler` and `dask worker` processes (no nanny, so
killing one kills it) on 127.0.0.1 with random ports, logs in a temp dir. Every process
carries a marker of its own in its environment (not the per-test sweep marker: a cluster
may serve a whole module) and `stop()` SIGKILLs everything carrying it, tasks included."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from tests.conftest import SWEEP_VAR, processes_with_env, sweep

DASK = str(Path(sys.executable).with_name("dask"))
# The action every Dask test runs: its command is the task's parameter.
SH_ACTION = """
actions:
  sh:
    command: [/bin/sh, -c, "${cmd}"]
"""


class DaskCluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.marker = f"L3TUI_DASK_TEST={uuid.uuid4().hex}"
        self.address = ""
        self.port = 0
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != SWEEP_VAR}
        name, _, value = self.marker.partition("=")
        env[name] = value
        return env

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 (the process owns it)
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self._env(),
                                cwd=self.root, start_new_session=True)
        log.close()
        self.procs[name] = proc
        return proc

    def start_scheduler(self, timeout: float = 60.0) -> str:
        """Start the scheduler (on the port it had before, if it was started already)."""
        info = self.root / "scheduler.json"
        info.unlink(missing_ok=True)
        self._spawn("scheduler", [DASK, "scheduler", "--host", "127.0.0.1", "--port",
                                  str(self.port), "--no-dashboard", "--scheduler-file", str(info)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.address = json.loads(info.read_text())["address"]
                break
            except (OSError, ValueError, KeyError):
                time.sleep(0.1)
        else:
            raise RuntimeError(f"no scheduler: {self.log('scheduler')[-2000:]}")
        self.port = int(self.address.rsplit(":", 1)[1])
        return self.address

    def start_worker(self, name: str, resources: str = "", nthreads: int = 2) -> None:
        argv = [DASK, "worker", self.address, "--nthreads", str(nthreads), "--no-nanny",
                "--no-dashboard", "--name", name, "--host", "127.0.0.1",
                "--local-directory", str(self.root / name)]
        if resources:
            argv += ["--resources", resources]
        (self.root / f"{name}.log").unlink(missing_ok=True)
        self._spawn(name, argv)

    def wait_workers(self, *names: str, timeout: float = 60.0) -> None:
        """Until each named worker has registered with the scheduler."""
        deadline = time.monotonic() + timeout
        for name in names:
            while "Registered to:" not in self.log(name):
                if self.procs[name].poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker {name} did not register: {self.log(name)[-2000:]}")
                time.sleep(0.1)

    def pids(self, text: str, name: str | None = None) -> list[int]:
        """Live processes of this cluster (its workers' tasks included: they inherit the
        cluster's marker) whose command line contains `text` (and named `name`)."""
        found = []
        for pid in processes_with_env(self.marker):
            try:
                proc = psutil.Process(pid)
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                if text in " ".join(proc.cmdline()) and (name is None or proc.name() == name):
                    found.append(pid)
            except psutil.Error:
                pass
        return found

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        proc.send_signal(sig)
        proc.wait(timeout=30)

    def log(self, name: str) -> str:
        try:
            return (self.root / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        sweep(self.marker)


@contextmanager
def running_cluster(root: Path, **workers: str) -> Iterator[DaskCluster]:
    """A scheduler and the named workers (name=resources), all registered; every process of
    the cluster (and of its tasks) killed on the way out, pass or fail."""
    dask = DaskCluster(root)
    try:
        dask.start_scheduler()
        for name, resources in workers.items():
            dask.start_worker(name, resources)
        dask.wait_workers(*workers)
        yield dask
    finally:
        dask.stop()
