"""`l3tui cluster local|ssh`: start a Dask cluster for `executor: dask`, print its address,
and keep it until Ctrl-C, SIGTERM or SIGHUP (then stop every process it started).

`local` starts the scheduler and N workers (each under a nanny, which restarts it if it dies)
as processes of their own, never inside the console (a LocalCluster in a running Textual
app fails with "bad value(s) in fds_to_keep", and worker output would write over the
screen). They listen on 127.0.0.1 unless `--host` says otherwise, log to
STATE/cluster/*.log, and STATE/cluster/cluster.json says the address and pids.
`ssh` starts the scheduler on the first host and a worker on each host through Dask's
SSHCluster (asyncssh; dask and psutil must be installed on the hosts, not l3tui).

Dask's tcp transport is unauthenticated: bind to localhost and tunnel over SSH, or use
`tls://` with Dask's TLS settings (README, "Distributed execution").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from l3tui.config import resolve_state_dir
from l3tui.errors import L3Error, UsageError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
START_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0


class ClusterError(L3Error):
    """The cluster could not be started (the message says which part and why)."""


def parse_resources(text: str | None) -> dict[str, float]:
    """`pool=2 memory_mb=8000` (spaces or commas) -> {'pool': 2.0, 'memory_mb': 8000.0}."""
    out: dict[str, float] = {}
    for item in (text or "").replace(",", " ").split():
        name, eq, value = item.partition("=")
        try:
            amount = float(value)
        except ValueError:
            amount = -1.0
        if not eq or not name.isidentifier() or amount <= 0:
            raise UsageError(f"--resources: {item!r} is not NAME=N (N > 0), e.g. flutter_build=1")
        out[name] = amount
    return out


def _resource_arg(resources: dict[str, float]) -> str:
    return " ".join(f"{k}={v:g}" for k, v in resources.items())


def _require_dask() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ClusterError("l3tui cluster needs the `dask` extra: pip install "
                           "'l3tui[dask]'") from None  # fmt: skip


def run(args: argparse.Namespace) -> int:
    _require_dask()
    resources = parse_resources(args.resources)
    if args.threads < 1:
        raise UsageError("--threads must be at least 1")
    if args.kind == "local":
        if args.hosts:
            raise UsageError(f"cluster local takes no HOST ({args.hosts[0]}); for hosts: "
                             "l3tui cluster ssh HOST...")  # fmt: skip
        for option in ("scheduler_host", "remote_python"):
            if getattr(args, option) is not None:
                raise UsageError(f"--{option.replace('_', '-')} is for cluster ssh")
        args.workers = 2 if args.workers is None else args.workers
        args.host = args.host or "127.0.0.1"
        if args.workers < 1:
            raise UsageError("--workers must be at least 1")
        return _local(args, resources)
    if not args.hosts:
        raise UsageError("cluster ssh needs at least one HOST (the first runs the scheduler)")
    if args.workers is not None:
        raise UsageError("--workers is for cluster local (ssh: one worker per HOST)")
    if args.host is not None:
        raise UsageError("--host is for cluster local (ssh: --scheduler-host)")
    return asyncio.run(_ssh(args, resources))


# ---------------------------------------------------------------------------- local


def _local(args: argparse.Namespace, resources: dict[str, float]) -> int:
    state = resolve_state_dir(args.state)
    where = state / "cluster"
    where.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = where / "scheduler.json"
    info.unlink(missing_ok=True)
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    stopping: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        stopping.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        procs["scheduler"] = _spawn(where, "scheduler", env, [
            "-m", "distributed.cli.dask_scheduler", "--host", args.host, "--port",
            str(args.port), "--no-dashboard", "--scheduler-file", str(info)])  # fmt: skip
        address = _wait_address(info, procs["scheduler"], where, stopping)
        for i in range(1, args.workers + 1):
            argv = ["-m", "distributed.cli.dask_worker", address, "--nthreads",
                    str(args.threads), "--name", f"local-{i}", "--host", args.host,
                    "--no-dashboard", "--local-directory", str(where / f"worker-{i}")]
            if resources:
                argv += ["--resources", _resource_arg(resources)]
            procs[f"worker-{i}"] = _spawn(where, f"worker-{i}", env, argv)
        _wait_registered(where, procs, stopping)
        (where / "cluster.json").write_text(json.dumps({
            "address": address, "pids": {name: p.pid for name, p in procs.items()},
            "resources": resources, "started": time.time()}))  # fmt: skip
        print(f"scheduler {address} with {args.workers} worker(s) of {args.threads} "
              f"thread(s){' and ' + _resource_arg(resources) if resources else ''}; "
              f"logs in {where}")
        print(f'in l3-scheduling.yml:  executor: {{kind: dask, address: "{address}"}}')
        print("Ctrl-C stops the cluster.", flush=True)
        return _wait(procs, stopping)
    finally:
        _stop(procs)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _spawn(where: Path, name: str, env: dict[str, str],
           argv: list[str]) -> subprocess.Popen[bytes]:  # fmt: skip
    log = where / f"{name}.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        # Own session: Ctrl-C in this terminal reaches us, and we stop them in order.
        return subprocess.Popen([sys.executable, *argv], stdin=subprocess.DEVNULL, stdout=fd,
                                stderr=fd, env=env, start_new_session=True)  # fmt: skip
    finally:
        os.close(fd)


def _wait_address(info: Path, scheduler: subprocess.Popen[bytes], where: Path,
                  stopping: list[int]) -> str:  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and not stopping:
        with contextlib.suppress(OSError, ValueError, KeyError):
            return str(json.loads(info.read_text())["address"])
        if scheduler.poll() is not None:
            raise ClusterError(f"the scheduler exited ({scheduler.returncode}): "
                               f"{_last_line(where / 'scheduler.log')}")  # fmt: skip
        time.sleep(0.1)
    raise ClusterError("interrupted" if stopping else
                       f"no scheduler after {START_TIMEOUT_S:g}s: see {where / 'scheduler.log'}")


def _wait_registered(where: Path, procs: dict[str, subprocess.Popen[bytes]],
                     stopping: list[int]) -> None:  # fmt: skip
    """Until every worker has registered with the scheduler (its log says so)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    for name, proc in procs.items():
        if name == "scheduler":
            continue
        log = where / f"{name}.log"
        while "Registered to:" not in _read(log):
            if stopping:
                raise ClusterError("interrupted")
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ClusterError(f"{name} did not start: {_last_line(log)}")
            time.sleep(0.1)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _last_line(log: Path) -> str:
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    errors = [ln for ln in lines if "Error" in ln or "error" in ln]
    return (errors or lines or ["(empty log)"])[-1].strip()


def _wait(procs: dict[str, subprocess.Popen[bytes]], stopping: list[int]) -> int:
    """Until a stop signal (exit 0) or the scheduler exits on its own (exit 1)."""
    scheduler = procs["scheduler"]
    while not stopping:
        if scheduler.poll() is not None:
            print(f"l3tui: the scheduler exited ({scheduler.returncode}); stopping the workers",
                  file=sys.stderr)  # fmt: skip
            return 1
        time.sleep(0.2)
    print("stopping the cluster", flush=True)
    return 0


def _stop(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    """Workers first (SIGTERM: a nanny stops its worker), then the scheduler; SIGKILL after
    the grace period to each process group still there."""
    order = [p for name, p in procs.items() if name != "scheduler"]
    order += [p for name, p in procs.items() if name == "scheduler"]
    for proc in order:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for proc in order:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
    for proc in order:  # their groups: a nanny's worker, a worker's task processes
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


# ---------------------------------------------------------------------------- ssh


async def _ssh(args: argparse.Namespace, resources: dict[str, float]) -> int:
    from distributed import SSHCluster

    # Dask logs a failed start as a warning too: the one line below says it.
    logging.getLogger("distributed.deploy").setLevel(logging.ERROR)

    hosts = list(args.hosts)
    if len(hosts) == 1:
        hosts = hosts * 2  # the scheduler and one worker on the same host
    worker_options: dict[str, Any] = {"nthreads": args.threads}
    if resources:
        worker_options["resources"] = resources
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        cluster = await SSHCluster(
            hosts, asynchronous=True, worker_options=worker_options,
            scheduler_options={"port": args.port, "dashboard_address": None,
                               "host": args.scheduler_host or hosts[0]},
            remote_python=args.remote_python,
        )  # fmt: skip
    except Exception as exc:  # asyncssh and Dask raise many kinds; one line says which
        raise ClusterError(f"cannot start the cluster over SSH: {type(exc).__name__}: "
                           f"{exc}") from None  # fmt: skip
    try:
        address = cluster.scheduler_address
        print(f"scheduler {address} on {hosts[0]}, workers on {', '.join(hosts[1:])}")
        print(f'in l3-scheduling.yml:  executor: {{kind: dask, address: "{address}"}}')
        print("Ctrl-C stops the cluster.", flush=True)
        await stop.wait()
        print("stopping the cluster", flush=True)
    finally:
        await cluster.close()
    return 0
