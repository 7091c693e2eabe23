"""Hostile parameters and secrets (issue 10 items 4-5, issue 11): a value given at run time
arrives byte for byte, never expanded again; `${secret:NAME}` reaches the task's process and
nothing else (run --json, show --json, logs, report, audit, the database's raw bytes and the
log files say `***`); the state dir, the database and task logs are private whatever the
umask. Real `l3tui` subprocesses, real files, real SQLite bytes."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import time
from pathlib import Path

from l3tui.engine import events as ev
from l3tui.engine.executors.output import MAX_LINE, OutputCapture, SecretMask
from tests.conftest import BUNDLED, L3TUI, write_config

HUNTER = "hunter2-env-x9"
"""The value of $L3SECRET: it must never reach a path or a process through a `-p` value."""
API_TOKEN = "tok-ENV-5f3a9c"
FILE_TOKEN = "tok-FILE-77b2e1"
ARG_TOKEN = "tok-ARG-0c4d18"
SECRETS = (API_TOKEN, FILE_TOKEN, ARG_TOKEN)


def l3tui(config: Path, state: Path, *args: str, env: dict[str, str] | None = None,
          umask: int | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(
        [L3TUI, "--config", str(config), "--state", str(state), *args],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,
    )  # fmt: skip


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ------------------------------------------------------------------ item 4: -p is data


def test_param_value_placeholders_are_not_expanded_by_a_template(tmp_path: Path) -> None:
    """The issue's case: `-p target=/x/bk-${env.L3SECRET}/` made /x/bk-hunter2. The bundled
    backup_restore template (a built-in action) now writes where it was told, literally."""
    state = tmp_path / "state"
    target = f"{tmp_path}/bk-${{env.L3SECRET}}-${{l3.state_dir}}/"
    result = l3tui(BUNDLED, state, "run", "backup_restore", "-p", f"target={target}",
                   env={"L3SECRET": HUNTER})  # fmt: skip
    assert result.returncode == 0, result.stderr
    literal = tmp_path / "bk-${env.L3SECRET}-${l3.state_dir}"
    assert literal.is_dir() and any(literal.glob("l3tui-*.db"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [literal.name, "state"]


def test_param_value_placeholders_reach_a_shell_action_literally(tmp_path: Path) -> None:
    """Through a `shell: true` action's environment, `${env.X}`, `${l3.state_dir}` and
    `${secret:X}` in a given value arrive as typed (and the shell does not expand `$HOME`
    either: the value is in a variable, not in the script)."""
    env = {"L3SECRET": HUNTER, "API_TOKEN": API_TOKEN}
    config = write_config(tmp_path / "config", """
        workflows: {}
        templates:
          echo_param:
            name: echo
            params:
              label: {required: true}
              out: {type: path, required: true}
            tasks:
              - {id: write, action: write_label, parameters: {label: "${label}", out: "${out}"}}
        """, actions="""
        actions:
          write_label:
            shell: true
            command: ['printf "%s" "$label" > "$out"']
        """)  # fmt: skip
    out = tmp_path / "label.txt"
    given = "${env.L3SECRET} ${l3.state_dir} ${secret:API_TOKEN} $HOME"
    result = l3tui(config, tmp_path / "state", "run", "echo_param", "-p", f"label={given}",
                   "-p", f"out={out}", env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert out.read_text() == given


# ------------------------------------------------------------------ item 5: secrets

SECRET_WORKFLOWS = """
workflows:
  deploy:
    name: deploy
    tasks:
      - id: push
        action: push
        parameters: {proof: "PROOF"}
        env: {API_TOKEN_COPY: "${secret:API_TOKEN}"}
      - id: ghost
        action: ghost
        dependencies: [push]
        conditions: [{upstream: always}]
"""
# The task writes what it received to the proof file (the process got the secrets), then
# prints them: whole, in argv, split over two writes half a second apart (two pipe reads),
# as a metric line, and at the very end without a newline.
SECRET_ACTIONS = r"""
actions:
  push:
    command: [sh, -c, 'printf "%s %s %s" "$API_TOKEN_COPY" "$FILE_TOKEN" "$2" > "$1";
                       echo "env=$API_TOKEN_COPY file=$FILE_TOKEN arg=$2";
                       printf "split=%s" "$(printf %s "$FILE_TOKEN" | cut -c1-6)";
                       sleep 0.5;
                       printf "%s!\n" "$(printf %s "$FILE_TOKEN" | cut -c7-)";
                       echo "L3METRIC pushed=1";
                       printf "tail=%s" "$API_TOKEN_COPY"',
              sh, "${proof}", "${secret:ARG_TOKEN}"]
    env: {FILE_TOKEN: "${secret:FILE_TOKEN}"}
  ghost:
    command: ["/nonexistent/${secret:API_TOKEN}"]
"""


def secret_config(root: Path, file_mode: int = 0o600) -> tuple[Path, Path]:
    secrets_file = root / "secrets.env"
    secrets_file.write_text(f"# deploy keys\nFILE_TOKEN={FILE_TOKEN}\n")
    secrets_file.chmod(file_mode)
    proof = root / "proof.txt"
    config = write_config(
        root / "config", SECRET_WORKFLOWS.replace("PROOF", str(proof)),
        actions=SECRET_ACTIONS,
        scheduling="scheduling:\n  execution: {secrets_file: ../secrets.env}\n",
    )  # fmt: skip
    return config, proof


def test_secrets_reach_the_process_and_are_masked_everywhere_else(tmp_path: Path) -> None:
    config, proof = secret_config(tmp_path)
    state = tmp_path / "state"
    env = {"API_TOKEN": API_TOKEN, "ARG_TOKEN": ARG_TOKEN}
    run = l3tui(config, state, "run", "deploy", "--json", env=env)
    assert run.returncode == 1, run.stderr  # `ghost` fails: its command does not exist
    assert proof.read_text() == f"{API_TOKEN} {FILE_TOKEN} {ARG_TOKEN}"

    events = [json.loads(line) for line in run.stdout.splitlines()]
    exec_id = events[0]["execution_id"]
    started = [e for e in events if "command" in e and e["task_id"] == "push"]
    assert started and started[0]["command"][-1] == "***"
    lines = [line for e in events if "lines" in e for line in e["lines"]]
    assert "env=*** file=*** arg=***" in lines
    assert "split=***!" in lines and "tail=***" in lines
    outputs = {"run --json": run.stdout, "run stderr": run.stderr}
    for name, *args in (("show --json", "show", exec_id, "--json"), ("logs", "logs", exec_id),
                        ("report", "report"), ("report json", "report", "--format", "json"),
                        ("audit", "audit"), ("history", "history", "--json")):  # fmt: skip
        result = l3tui(config, state, *args, env=env)
        assert result.returncode == 0, (name, result.stderr)
        outputs[name] = result.stdout + result.stderr
    shown = json.loads(outputs["show --json"])
    ghost = next(t for t in shown["tasks"] if t["task_id"] == "ghost")
    assert "/nonexistent/***" in ghost["reason"]
    assert shown["definition"]["tasks"][0]["env"] == {"API_TOKEN_COPY": "${secret:API_TOKEN}"}
    assert "split=***!" in outputs["logs"]
    files = sorted(state.rglob("*.log")) + sorted(state.glob("l3tui.db*"))
    assert any(f.name.endswith(".log") for f in files) and (state / "l3tui.db").exists()
    for path in files:
        outputs[str(path)] = path.read_bytes().decode("utf-8", "replace")
    for name, text in outputs.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret} leaked into {name}"
        # The second half of the secret printed in two writes must not be there either.
        assert FILE_TOKEN[6:] + "!" not in text, f"half a secret leaked into {name}"


def test_secret_split_across_reads_and_long_lines_is_masked(tmp_path: Path) -> None:
    """The capture directly, with reads cut where a pipe may cut them."""
    secret = "s3cret-value"
    log = tmp_path / "out.log"
    lines: list[str] = []
    capture = OutputCapture(lambda: open(log, "ab"), 10 * 2**20, lines.extend,  # noqa: SIM115
                            lambda *_: None, SecretMask([secret]))  # fmt: skip
    for chunk in (b"a s3c", b"ret-va", b"lue b\nnext s3cret-v", b"alue\n"):
        capture.feed(chunk)
    long_line = b"x" * (MAX_LINE + 5) + b"s3cret-" + b"value" + b"y" * 10
    capture.feed(long_line[: MAX_LINE + 9])  # cut inside the secret, past MAX_LINE
    capture.feed(long_line[MAX_LINE + 9 :] + b"\n")
    capture.feed(b"z" * MAX_LINE + b"s3cret-value" + b"zz")  # whole, across the forced cut
    capture.feed(b"\n")
    capture.feed(b"end s3cret-val")
    capture.feed(b"ue")  # no newline: flushed on close
    capture.close()
    data = log.read_bytes()
    assert secret.encode() not in data and b"ret-val" not in data and b"s3cret-v" not in data
    assert data.startswith(b"a *** b\nnext ***\n") and data.endswith(b"end ***")
    assert data.count(b"***") == 5
    assert lines[:2] == ["a *** b", "next ***"] and lines[-1] == "end ***"
    assert lines[2] == "x" * (MAX_LINE + 5) + "***" + "y" * 10
    assert "z" * MAX_LINE + "***" in lines  # shown in pieces, as any over-long line
    assert b"z" * MAX_LINE + b"***zz\n" in data
    assert not any(secret in line for line in lines)


def test_group_readable_secrets_file_is_refused_with_one_line(tmp_path: Path) -> None:
    config, proof = secret_config(tmp_path, file_mode=0o640)
    env = {"API_TOKEN": API_TOKEN, "ARG_TOKEN": ARG_TOKEN}
    result = l3tui(config, tmp_path / "state", "run", "deploy", env=env)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines()
              if "warning:" not in line and not line.startswith("l3tui: ")]  # the tally
    assert len(errors) == 1, result.stderr
    assert "secrets.env: mode 0640 (open to group)" in errors[0]
    assert "l3-scheduling.yml:2:" in errors[0] and "chmod 600" in errors[0]
    assert "Traceback" not in result.stderr and FILE_TOKEN not in result.stderr
    assert not proof.exists()
    validate = l3tui(config, tmp_path / "state", "validate", env=env)
    assert validate.returncode == 1 and "mode 0640" in validate.stdout + validate.stderr


async def test_unknown_or_too_short_secret_fails_the_task_at_once(
    make_config, runtime_for, monkeypatch
) -> None:
    monkeypatch.setenv("SHORT_ONE", "abc")
    config = make_config("""
        workflows:
          w:
            name: w
            tasks:
              - {id: unknown, action: show, retries: 3, env: {V: "${secret:NOT_SET_ANYWHERE}"}}
              - {id: short, action: show, env: {V: "${secret:SHORT_ONE}"}}
        """, actions="actions:\n  show:\n    command: [sh, -c, 'echo \"$V\"']\n")  # fmt: skip
    async with runtime_for(config) as rt:
        result = await rt.run_workflow("w")
        assert result.applied
        assert await asyncio.wait_for(rt.wait(result.execution_id), 30) == "failed"
        tasks = {t.task_id: t for t in rt.execution(result.execution_id).tasks}
    assert tasks["unknown"].attempt == 1  # no retries: it will not be set by waiting
    assert "secret NOT_SET_ANYWHERE is not set" in tasks["unknown"].reason
    assert "secret SHORT_ONE is too short" in tasks["short"].reason
    assert "abc" not in tasks["short"].reason


def test_secret_where_no_process_receives_it_is_a_validate_error(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", """
        workflows:
          w:
            name: "deploy ${secret:API_TOKEN}"
            tasks:
              - {id: a, action: show, conditions: [{path_exists: "${secret:API_TOKEN}"}]}
              - {id: b, action: noop, parameters: {}, env: {OK: "${secret:API_TOKEN}"}}
        """, actions="""
        actions:
          show:
            command: [echo]
            cwd: "/tmp/${secret:API_TOKEN}"
        """)  # fmt: skip
    result = l3tui(config, tmp_path / "state", "validate", env={"API_TOKEN": API_TOKEN})
    assert result.returncode == 1
    errors = [line for line in result.stdout.splitlines() + result.stderr.splitlines()
              if "is not passed to a process" in line]  # fmt: skip
    keys = sorted(line.split(": ")[1] for line in errors)
    assert keys == ["actions.show.cwd", "workflows.w.name",
                    "workflows.w.tasks[a].conditions[0].path_exists"], errors  # fmt: skip
    assert all(line.split(":")[1].isdigit() for line in errors)  # file:line:col
    assert API_TOKEN not in result.stdout + result.stderr


# ------------------------------------------------------------------ private files


def test_state_dir_database_and_logs_are_private_under_umask_022(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", """
        workflows:
          w:
            name: w
            tasks: [{id: t, action: talk}]
        """, actions="actions:\n  talk:\n    command: [sh, -c, 'echo hello; sleep 1']\n")  # fmt: skip
    fresh = tmp_path / "fresh" / "state"
    proc = subprocess.Popen([L3TUI, "--config", str(config), "--state", str(fresh), "run", "w"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, preexec_fn=lambda: os.umask(0o022))  # fmt: skip
    try:
        # While it runs the WAL and shared-memory files exist: they must be private too.
        db = fresh / "l3tui.db"
        sides = [db.with_name("l3tui.db-wal"), db.with_name("l3tui.db-shm")]
        seen: dict[str, int] = {}
        end = time.monotonic() + 30
        while time.monotonic() < end and len(seen) < 3:
            for path in (db, *sides):
                if path.exists():
                    seen[path.name] = mode(path)
            time.sleep(0.02)
        proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    assert seen == {"l3tui.db": 0o600, "l3tui.db-wal": 0o600, "l3tui.db-shm": 0o600}
    assert mode(fresh) == 0o700
    logs = list(fresh.rglob("*.log"))
    assert logs and all(mode(log) == 0o600 for log in logs)

    # As an older l3tui left it, open to everyone: tightened, and the operator is told once.
    fresh.chmod(0o755)
    db.chmod(0o644)
    result = l3tui(config, fresh, "run", "w", umask=0o022)
    assert result.returncode == 0, result.stderr
    assert mode(fresh) == 0o700 and mode(db) == 0o600
    assert f"state directory {fresh} was mode 0755" in result.stderr
    result = l3tui(config, fresh, "run", "w", umask=0o022)
    assert result.returncode == 0 and "state directory" not in result.stderr


# ------------------------------------------------------------------ issue 11


async def test_env_placeholders_are_filled_in_a_tasks_own_env(
    make_config, runtime_for, monkeypatch
) -> None:
    monkeypatch.setenv("L3_TEST_REGION", "me-south-1")
    config = make_config("""
        workflows:
          w:
            name: w
            tasks:
              - id: t
                action: show
                env: {REGION: "${env.L3_TEST_REGION}", WHO: "${l3.task_id}",
                      LITERAL: "${env.L3_TEST_NOPE:-fallback}"}
        """, actions="""
        actions:
          show:
            command: [sh, -c, 'echo "$REGION $WHO $LITERAL"']
        """)  # fmt: skip
    async with runtime_for(config) as rt:
        sub = rt.subscribe("test")
        result = await rt.run_workflow("w")
        assert await asyncio.wait_for(rt.wait(result.execution_id), 30) == "succeeded"
        lines = [line for e in sub.drain() if isinstance(e, ev.TaskOutput) for line in e.lines]
    assert lines == ["me-south-1 t fallback"]
