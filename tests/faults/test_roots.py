"""Built-in file actions never act outside their roots: real files, real symlinks, the
built-ins run as the engine runs them (resolved by the real ActionRegistry, spawned as
processes), or through `l3tui run` on the bundled config.

Issue 10 items 1-3 and the backup target of issue 11.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BUNDLED, L3TUI, write_config

SCHEDULING = """
scheduling:
  execution: {{grace_period: 1s, default_timeout: 60s, cleanup_roots: {roots}}}
"""


def registry_job(
    tmp_path: Path,
    action: str,
    parameters: dict[str, Any],
    *,
    state: Path,
    cwd: Path,
    cleanup_roots: list[str] | None = None,
    env: dict[str, str] | None = None,
    task_env: dict[str, str] | None = None,
) -> Any:
    """The CommandJob the engine would spawn for one task calling built-in `action`."""
    from l3tui.config import load_config
    from l3tui.engine.actions.registry import ActionRegistry

    workflows = {"workflows": {"w": {"name": "w", "tasks": [
        {"id": "t", "action": action, "parameters": parameters, "env": task_env or {}}]}}}  # fmt: skip
    config_dir = write_config(
        tmp_path / "config", json.dumps(workflows),
        scheduling=SCHEDULING.format(roots=json.dumps(cleanup_roots or [])),
    )  # fmt: skip
    config = load_config(config_dir)
    task = config.workflows.workflows["w"].tasks[0]
    registry = ActionRegistry(config, state, base_env={**os.environ, **(env or {})}, cwd=cwd)
    context = {"l3.state_dir": str(state), "l3.execution_id": "x1", "l3.task_id": "t",
               "l3.attempt": 1, "l3.execution_dir": str(state / "runs" / "x1"),
               "l3.workflow_id": "w", "l3.config_dir": str(config_dir)}  # fmt: skip
    job = registry.resolve(task, context, {})
    # The built-in runs this checkout's code, whatever is installed.
    assert Path(job.env["PYTHONPATH"].split(os.pathsep)[0], "l3tui", "engine").is_dir()
    return job


def run_job(job: Any, cwd: Path, prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*(prefix or []), *job.argv], env=dict(job.env),
                          cwd=job.cwd or str(cwd), capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    return [line for line in result.stderr.splitlines() if line.strip()]


def old_files(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = folder / name
        path.write_text(f"precious {name}\n")
        os.utime(path, (1_000_000_000, 1_000_000_000))


def l3tui(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([L3TUI, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


# ----------------------------------------------------------------------- item 1: cleanup


def test_cleanup_started_from_slash_does_not_treat_slash_as_a_root(tmp_path: Path) -> None:
    """Started from `/` (systemd's default), a dry run over a system directory lists
    nothing and refuses, in one line."""
    system_dir = next(d for d in ("/etc/ssl", "/usr/share/doc", "/etc/default", "/usr/lib")
                      if Path(d).is_dir() and os.listdir(d))  # fmt: skip
    state = tmp_path / "state"
    state.mkdir()
    job = registry_job(
        tmp_path, "cleanup_files",
        {"root": "${env.L3_TEST_TARGET}", "older_than_days": 0, "dry_run": True},
        state=state, cwd=Path("/"), env={"L3_TEST_TARGET": system_dir},
    )  # fmt: skip
    result = run_job(job, Path("/"))
    assert "would delete" not in result.stdout, result.stdout[:2000]
    assert result.returncode == 1
    [line] = error_lines(result)
    assert system_dir in line and "root" in line


@pytest.mark.slow
def test_cleanup_survives_a_directory_swapped_for_a_symlink_during_the_walk(
    tmp_path: Path,
) -> None:
    """A writer under the root keeps swapping a directory for a symlink to a victim
    directory while cleanup runs, many times: every victim file survives."""
    state = tmp_path / "state"
    root = state / "cache"
    sub, parked = root / "sub", root / "sub.parked"
    victim = tmp_path / "victim"
    names = [f"f{i:04d}.tmp" for i in range(300)]
    old_files(victim, names)
    job = registry_job(tmp_path, "cleanup_files", {"root": "${l3.state_dir}/cache",
                       "older_than_days": 0}, state=state, cwd=tmp_path)  # fmt: skip
    stop = threading.Event()
    swaps = 0

    def swapper() -> None:
        nonlocal swaps
        while not stop.is_set():
            try:
                os.rename(sub, parked)
                os.symlink(victim, sub)
                time.sleep(0.002)  # long enough to be seen half-way through a walk
                os.unlink(sub)
                os.rename(parked, sub)
                swaps += 1
                time.sleep(0.002)
            except OSError:
                pass

    deleted_inside = 0
    for _ in range(25):
        old_files(sub, names)
        stop.clear()
        thread = threading.Thread(target=swapper)
        thread.start()
        try:
            result = run_job(job, tmp_path)
        finally:
            stop.set()
            thread.join()
            if sub.is_symlink():
                sub.unlink()
            if parked.exists():
                parked.rename(sub)
        assert "Traceback" not in result.stderr, result.stderr
        deleted_inside += len(names) - len(os.listdir(sub))
        survivors = set(os.listdir(victim))
        assert survivors == set(names), f"{len(set(names) - survivors)} victim files deleted"
    assert swaps > 25 and deleted_inside > 0  # the race ran, and cleanup did its job


def test_cleanup_roots_are_explicit_and_refuse_a_symlinked_root(tmp_path: Path) -> None:
    """By default only the state dir is a root: the temp dir and the working dir are not.
    A root named in cleanup_roots that is a symlink is refused, not followed."""
    state = tmp_path / "state"
    state.mkdir()
    work = tmp_path / "work"
    old_files(work / "build", ["a.o", "b.o"])
    job = registry_job(tmp_path, "cleanup_files", {"root": "build", "older_than_days": 0},
                       state=state, cwd=work)  # fmt: skip
    result = run_job(job, work)
    assert result.returncode == 1, result.stdout
    [line] = error_lines(result)
    assert "cleanup_roots" in line
    assert sorted(os.listdir(work / "build")) == ["a.o", "b.o"]

    victim = tmp_path / "victim"
    old_files(victim, ["keep.db"])
    (tmp_path / "link").symlink_to(victim)
    job = registry_job(tmp_path, "cleanup_files", {"root": str(tmp_path / "link"),
                       "older_than_days": 0}, state=state, cwd=work,
                       cleanup_roots=[str(tmp_path / "link")])  # fmt: skip
    result = run_job(job, work)
    assert result.returncode == 1, result.stdout
    [line] = error_lines(result)
    assert "symlink" in line
    assert os.listdir(victim) == ["keep.db"]


def test_a_task_cannot_widen_its_roots(tmp_path: Path) -> None:
    """The roots reach the built-in as an argument only the registry sets: neither the
    task's env (the old L3TUI_CLEANUP_ROOTS variable) nor a parameter can add one."""
    from l3tui.config import ConfigError

    state = tmp_path / "state"
    state.mkdir()
    victim = tmp_path / "victim"
    old_files(victim, ["keep.db"])
    job = registry_job(tmp_path, "cleanup_files", {"root": "${env.L3_TEST_TARGET}",
                       "older_than_days": 0}, state=state, cwd=tmp_path,
                       env={"L3_TEST_TARGET": str(victim)},
                       task_env={"L3TUI_CLEANUP_ROOTS": f"/:{victim}"})  # fmt: skip
    assert job.env["L3TUI_CLEANUP_ROOTS"] == f"/:{victim}"  # the task did set it
    result = run_job(job, tmp_path)
    assert result.returncode == 1
    [line] = error_lines(result)
    assert "not under a cleanup root" in line
    assert os.listdir(victim) == ["keep.db"]
    with pytest.raises(ConfigError, match="unknown key 'roots'"):
        registry_job(tmp_path, "cleanup_files", {"root": "${l3.state_dir}", "roots": ["/"]},
                     state=state, cwd=tmp_path)  # fmt: skip


def test_cleanup_dry_run_lists_exactly_what_the_real_run_deletes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    root = state / "tmp"
    old_files(root / "deep" / "er", ["x.tmp", "y.tmp"])
    old_files(root, ["a.tmp", "b.log"])
    (root / "young.tmp").write_text("new")
    victim = tmp_path / "victim"
    old_files(victim, ["v.tmp"])
    (root / "link.tmp").symlink_to(victim / "v.tmp")  # the link may go; its target stays
    (root / "dirlink").symlink_to(victim)  # never entered
    os.mkfifo(root / "pipe.tmp")  # never deleted: not a file
    for name in ("link.tmp", "dirlink", "pipe.tmp"):
        os.utime(root / name, (1_000_000_000, 1_000_000_000), follow_symlinks=False)
    params = {"root": "${l3.state_dir}/tmp", "pattern": "*.tmp", "older_than_days": 1}
    dry = run_job(registry_job(tmp_path, "cleanup_files", {**params, "dry_run": True},
                               state=state, cwd=tmp_path), tmp_path)  # fmt: skip
    real = run_job(registry_job(tmp_path, "cleanup_files", params, state=state,
                                cwd=tmp_path), tmp_path)  # fmt: skip
    assert dry.returncode == real.returncode == 0, dry.stderr + real.stderr
    listed = sorted(line.split(" ", 2)[2] for line in dry.stdout.splitlines()
                    if line.startswith("would delete "))  # fmt: skip
    deleted = sorted(line.split(" ", 1)[1] for line in real.stdout.splitlines()
                     if line.startswith("deleted "))  # fmt: skip
    assert listed == deleted and len(deleted) == 4, (listed, deleted)
    assert os.listdir(victim) == ["v.tmp"]
    assert sorted(os.listdir(root)) == ["b.log", "deep", "dirlink", "pipe.tmp", "young.tmp"]
    assert os.listdir(root / "deep" / "er") == []


def test_validate_flags_bad_roots_and_literal_paths_outside_them(tmp_path: Path) -> None:
    workflows = """
    workflows:
      w:
        name: w
        tasks:
          - {id: a, action: cleanup_files, parameters: {root: /etc/ssl}}
          - {id: b, action: rotate_logs, parameters: {paths: ["${l3.state_dir}/*.log", /var/log/*.log]}}
          - {id: c, action: cleanup_files, parameters: {root: "${l3.state_dir}/tmp"}}
    """
    scheduling = """
    scheduling:
      execution:
        cleanup_roots: [{roots}]
    """
    config = write_config(tmp_path / "config", workflows,
                          scheduling=scheduling.format(roots="/srv/cache, .dart_tool"))
    result = l3tui("validate", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    out = result.stdout + result.stderr
    wf = config / "l3-workflows.yml"
    assert f"{wf}:6:" in out and "tasks[a].parameters.root: /etc/ssl is outside" in out, out
    assert f"{wf}:7:" in out and "tasks[b].parameters.paths[1]: /var/log" in out, out
    assert f"{wf}:8:" not in out and "paths[0]" not in out, out

    bad = write_config(tmp_path / "bad", workflows.replace("/etc/ssl", "/srv/cache/x"),
                       scheduling=scheduling.format(roots='/, "~", /usr, /srv/cache'))
    result = l3tui("validate", "--config", str(bad), cwd=tmp_path)
    assert result.returncode == 1
    lines = (result.stdout + result.stderr).splitlines()
    sched = bad / "l3-scheduling.yml"
    for index, why in enumerate(("/ itself", "the home directory", "a system directory")):
        assert any(line.startswith(f"{sched}:4:") and f"cleanup_roots[{index}]: " in line
                   and why in line for line in lines), (why, lines)  # fmt: skip
    assert not any("cleanup_roots[3]" in line for line in lines), lines


def test_file_actions_never_touch_the_live_store(tmp_path: Path) -> None:
    """The state dir is a root, but a rotate of `${l3.state_dir}/*` and a cleanup of
    everything in it, run by the l3tui that holds the store open, leave the store whole."""
    workflows = """
    workflows:
      sweep:
        name: sweep
        tasks:
          - {id: rotate, action: rotate_logs,
             parameters: {paths: ["${l3.state_dir}/*"], max_size_mb: 0.001, keep: 1}}
          - {id: clean, action: cleanup_files, dependencies: [rotate],
             parameters: {root: "${l3.state_dir}", older_than_days: 0}}
    """
    config = write_config(tmp_path / "config", workflows)
    state = tmp_path / "state"
    state.mkdir()
    (state / "old.tmp").write_text("x")
    result = l3tui("run", "sweep", "--config", str(config), "--state", str(state),
                   cwd=tmp_path)  # fmt: skip
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
    assert "l3tui's own store" in result.stdout
    assert not (state / "old.tmp").exists()  # the cleanup did run
    history = l3tui("--state", str(state), "history", "--json", cwd=tmp_path)
    assert history.returncode == 0, history.stderr
    assert '"sweep"' in history.stdout and '"succeeded"' in history.stdout, history.stdout


# ------------------------------------------------------------------- item 2: rotate_logs


def test_bundled_log_rotation_never_truncates_through_a_symlink(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    big = elsewhere / "big.log"
    big.write_bytes(b"x" * (11 * 2**20))
    (state / "evil.log").symlink_to(big)
    (state / "own.log").write_bytes(b"y" * (11 * 2**20))
    result = l3tui("run", "log_rotation", "--config", str(BUNDLED), "--state", str(state),
                   cwd=tmp_path)  # fmt: skip
    assert "Traceback" not in result.stdout + result.stderr
    assert big.stat().st_size == 11 * 2**20, result.stdout
    assert os.listdir(elsewhere) == ["big.log"]
    assert not any(n.startswith("evil.log.") for n in os.listdir(state)), os.listdir(state)
    assert (state / "own.log").stat().st_size == 0  # a real log in the state dir rotates
    assert (state / "own.log.1.gz").is_file()


def test_rotate_logs_refuses_paths_outside_the_roots(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("a.log", "b.log"):
        (outside / name).write_bytes(b"z" * (2 * 2**20))
    job = registry_job(tmp_path, "rotate_logs", {
        "paths": ["${l3.state_dir}/../outside/a.log", "${env.L3_TEST_TARGET}/*.log"],
        "max_size_mb": 1, "keep": 2}, state=state, cwd=tmp_path,
        env={"L3_TEST_TARGET": str(outside)})  # fmt: skip
    result = run_job(job, tmp_path)
    assert result.returncode == 1, result.stdout
    lines = error_lines(result)
    assert len(lines) == 2 and all("outside" in line for line in lines), lines
    assert sorted(os.listdir(outside)) == ["a.log", "b.log"]
    assert all((outside / n).stat().st_size == 2 * 2**20 for n in ("a.log", "b.log"))


# ----------------------------------------------------------------- item 3: backup_sqlite


def make_db(path: Path, mib: float = 0.1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("create table t (b blob)")
        db.executemany("insert into t values (randomblob(4096))",
                       [()] * int(mib * 256))  # fmt: skip
    db.close()
    path.chmod(0o600)


def test_backup_keep_prunes_only_its_own_backups(tmp_path: Path) -> None:
    state = tmp_path / "state"
    make_db(state / "l3tui.db")
    shared = tmp_path / "shared"
    make_db(shared / "l3tui-production.db")
    (shared / "l3tui-notes.db").write_text("not even a database")
    job = registry_job(tmp_path, "backup_sqlite", {"target": str(shared) + "/", "keep": 1},
                       state=state, cwd=tmp_path)  # fmt: skip
    for _ in range(3):
        result = run_job(job, tmp_path)
        assert result.returncode == 0, result.stderr
    names = sorted(os.listdir(shared))
    assert "l3tui-production.db" in names and "l3tui-notes.db" in names, names
    ours = [n for n in names if n not in ("l3tui-production.db", "l3tui-notes.db")]
    assert len(ours) == 1, names  # keep: 1 still prunes what it wrote
    with sqlite3.connect(shared / ours[0]) as db:
        assert db.execute("select count(*) from t").fetchone()[0] == 25
    db.close()
    assert stat.S_IMODE((shared / ours[0]).stat().st_mode) == 0o600  # as private as its source


def in_mount_namespace(tmp_path: Path, mount: str, target: Path, job: Any) -> tuple[Any, str]:
    """Run `job` in a private mount namespace where `target` is a fresh mount made by the
    shell command `mount` ($1 = target); the listing of `target` taken inside it."""
    if os.geteuid() != 0:
        pytest.skip("needs root for a private mount namespace with a tmpfs or read-only "
                    "mount (chmod does not stop root, and a non-root user cannot mount)")
    listing = tmp_path / "listing"
    script = (f'{mount} || exit 99; shift; "$@"; rc=$?; ls -A "{target}" > "{listing}"; '
              "exit $rc")  # fmt: skip
    result = run_job(job, tmp_path,
                     prefix=["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                             "sh", str(target)])  # fmt: skip
    assert result.returncode != 99, result.stderr
    return result, listing.read_text()


def test_backup_into_a_read_only_target_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    make_db(state / "l3tui.db")
    target = tmp_path / "ro"
    target.mkdir()
    job = registry_job(tmp_path, "backup_sqlite", {"target": str(target / "backup.db")},
                       state=state, cwd=tmp_path)  # fmt: skip
    result, listing = in_mount_namespace(
        tmp_path, 'mount -t tmpfs -o ro,size=1m tmpfs "$1"', target, job)
    assert result.returncode == 1, result.stdout
    [line] = error_lines(result)
    assert str(target) in line, line
    assert listing == "", listing


def test_backup_into_a_full_target_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    make_db(state / "l3tui.db", mib=3)
    target = tmp_path / "full"
    target.mkdir()
    job = registry_job(tmp_path, "backup_sqlite", {"target": str(target / "backup.db")},
                       state=state, cwd=tmp_path)  # fmt: skip
    result, listing = in_mount_namespace(
        tmp_path, 'mount -t tmpfs -o size=1m tmpfs "$1"', target, job)
    assert result.returncode == 1, result.stdout
    [line] = error_lines(result)
    assert str(target) in line and "full" in line, line
    assert listing == "", listing


# -------------------------------------------------------------- issue 11: backup target


def test_backup_restore_target_ending_in_slash_is_a_directory(tmp_path: Path) -> None:
    """The README's `l3tui run backup_restore -p target=/tmp/x/`: a file inside x/, and a
    target naming an existing directory also gets a file inside it."""
    state = tmp_path / "state"
    make_db(state / "source.db")
    for target, existing in ((tmp_path / "x", False), (tmp_path / "y", True)):
        if existing:
            target.mkdir()
        given = str(target) + ("/" if not existing else "")
        result = l3tui("run", "backup_restore", "--config", str(BUNDLED), "--state",
                       str(state), "-p", f"target={given}", "-p",
                       f"source={state / 'source.db'}", cwd=tmp_path)  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        assert target.is_dir(), f"{target} is a file"
        [backup] = os.listdir(target)
        with sqlite3.connect(target / backup) as db:
            assert db.execute("select count(*) from t").fetchone()[0] == 25
