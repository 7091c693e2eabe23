"""The `l3tui` command: argument parsing and error reporting; each command's work is in
`l3tui.commands.<name>` and imported only when that command runs (cold start matters:
`l3tui run` and `l3tui validate` never import Textual).

Exit codes: 0 success, 1 failure (invalid config, failed execution, locked state, a state
dir or database that cannot record, a run not fully recorded, a full or read-only disk),
2 usage error, 130 interrupted, 70 internal error (details written to a crash file).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from l3tui import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 70, 130

COMMANDS = {
    "console": "Open the console (the default when no command is given)",
    "run": "Run one workflow (or template) to the end, headless",
    "validate": "Check the four config files; print a summary or every error",
    "schedules": "List recurring tasks with their next fire times",
    "history": "Past executions from the store, newest first",
    "show": "One execution: tasks, attempts, durations, exit codes, reasons",
    "logs": "Task logs of an execution (-f follows running tasks)",
    "report": "Success rates, durations, failures and business metrics over a period",
    "audit": "The audit trail (list), or check its hash chain (verify)",
    "resume": "Run an interrupted (or failed) execution again, keeping succeeded tasks",
    "daemon": "Run the scheduler and executions with no UI; consoles attach to it",
    "doctor": "Ask the daemon how it is (loop lag, store, queue, sampler, clients)",
    "reserve": "Hold CPU, memory or pool slots back from the scheduler for a window",
    "reservations": "Reservations to come and in force (list), or end one (cancel ID)",
    "advise": "Right-sizing from measured peaks, upgrade advice, time blocked per cause",
    "submit": "Hand l3tui a decision (JSON): through the daemon, else into the inbox",
    "plan": "What decisions would do (executions, tasks, expected durations, waits), undone",
    "events": "The event stream from the store (-f follows; --since SEQ resumes)",
    "schema": "The JSON Schema of a decision",
    "cluster": "Start a Dask cluster for `executor: dask` (local processes, or over SSH)",
}


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    default = None if top else argparse.SUPPRESS
    group = parser.add_argument_group("common options")
    group.add_argument(
        "--config",
        metavar="DIR",
        default=default,
        help="config directory (default: $L3TUI_CONFIG, ./config, $XDG_CONFIG_HOME/l3tui)",
    )
    group.add_argument(
        "--state",
        metavar="DIR",
        default=default,
        help="state directory (default: $L3TUI_STATE, $XDG_STATE_HOME/l3tui)",
    )
    group.add_argument(
        "--bidi",
        choices=["auto", "on", "off"],
        default="auto" if top else argparse.SUPPRESS,
        help="shape and reorder Arabic for display (off for terminals that do their own)",
    )


def _reset_state(parser: argparse.ArgumentParser, *, top: bool) -> None:
    parser.add_argument(
        "--reset-state",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="move the state database aside (renamed with a timestamp, never deleted) and "
        "start with empty history",
    )


def _exec_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("execution", metavar="EXEC", help="execution id (a unique prefix will do)")


class _Renamed(argparse.Action):
    """An option that no longer exists under this name: a usage error saying what replaced
    it (hidden from --help)."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, renamed_to: str,
                 **kwargs: object) -> None:  # fmt: skip
        self.renamed_to = renamed_to
        super().__init__(option_strings, dest, default=argparse.SUPPRESS, **kwargs)  # type: ignore[arg-type]

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:  # fmt: skip
        parser.error(f"{option_string} is gone: {self.renamed_to}")


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (argparse prints a usage block first), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"l3tui: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="l3tui",
        description="L3 Execution Layer of Baseer: a console for running and watching "
        "workflows on a build machine.",
    )
    parser.add_argument("--version", action="version", version=f"l3tui {__version__}")
    _common(parser, top=True)
    _reset_state(parser, top=True)
    parser.add_argument(
        "--theme",
        choices=["auto", "dark", "light", "ansi"],
        default="auto",
        help="console colours (auto: ansi when the terminal lacks truecolor)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("console", help=COMMANDS["console"])
    _common(p, top=False)
    _reset_state(p, top=False)
    p.add_argument("--theme", choices=["auto", "dark", "light", "ansi"], default=argparse.SUPPRESS)

    p = sub.add_parser(
        "run",
        help=COMMANDS["run"],
        description="Run WORKFLOW to the end. Exit 0 when it succeeded, 1 when "
        "it failed, 130 when interrupted (Ctrl-C cancels cleanly).",
    )
    _common(p, top=False)
    p.add_argument("workflow", help="workflow or template id")
    p.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="template param (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print events as JSON lines")
    p.add_argument("--no-record", action="store_true",
                   help="run without the state database: no history, audit trail or crash "
                   "recovery (for a read-only or full state directory)")  # fmt: skip

    p = sub.add_parser(
        "validate",
        help=COMMANDS["validate"],
        description="Load all four config files. Exit 0 and print a summary "
        "when valid; print every error (FILE:LINE:COL: key: message) "
        "and exit 1 when not.",
    )
    _common(p, top=False)
    p.add_argument("--explain", metavar="KEY", help="print what a config key means")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser(
        "schedules",
        help=COMMANDS["schedules"],
        description="Every recurring task with its next fire times, computed by "
        "the scheduler's own code (DST included).",
    )
    _common(p, top=False)
    p.add_argument(
        "--from",
        dest="from_time",
        metavar="ISO-TIME",
        help="start from this instant instead of now (e.g. 2026-10-24T12:00+02:00)",
    )
    p.add_argument("--count", type=int, default=5, metavar="N", help="fire times per task")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _store_commands(sub)

    p = sub.add_parser("daemon", help=COMMANDS["daemon"], description="The Runtime with no "
                       "UI: fires recurring tasks, runs what consoles and `l3tui run` submit, "
                       "serves them over a local socket. SIGTERM stops (see --on-stop), "
                       "SIGHUP reloads the config. Logs to STATE/daemon.log and stderr.")
    _common(p, top=False)
    p.add_argument("--on-stop", choices=["cancel", "wait"], default="cancel",
                   help="on SIGTERM: cancel running tasks (after the grace period), or let "
                   "them finish first (a second SIGTERM cancels)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    _resource_commands(sub)

    p = sub.add_parser("doctor", help=COMMANDS["doctor"], description="The health of the "
                       "daemon serving the state directory, check by check, with what to do. "
                       "Exit 1 when unhealthy or when no daemon answers.")
    _common(p, top=False)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _coordinator_commands(sub)
    _cluster_command(sub)
    return parser


def _resource_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Reservations and advice (the Resource Manager)."""
    p = sub.add_parser("reserve", help=COMMANDS["reserve"], description="Hold capacity back "
                       "from the scheduler for a window: tasks that would need it wait, "
                       "their reason naming the reservation. Sent to the daemon when one "
                       "serves the state dir; with no l3tui running, kept in the store until "
                       "one starts. Exit 1 when refused (in the past, overlapping others "
                       "beyond the capacity, larger than the machine).")
    _common(p, top=False)
    p.add_argument("--cpu", type=float, metavar="CORES", help="cores to hold (e.g. 4)")
    p.add_argument("--memory", metavar="SIZE", help="memory to hold: 8G, 512M, or MB")
    p.add_argument("--pool", action="append", default=[], metavar="NAME=SLOTS",
                   help="pool slots to hold (repeatable), e.g. flutter_build=1")
    p.add_argument("--from", dest="from_time", default="now", metavar="WHEN",
                   help="start: now (default), +30m, 18:00 (the next time the clock shows "
                   "it) or an ISO date-time")
    p.add_argument("--for", dest="duration", metavar="DURATION", help="how long: 2h, 90m")
    p.add_argument("--until", metavar="WHEN", help="or until when: 20:00, ISO date-time")
    p.add_argument("--reason", default="", help="why (shown in waiting tasks' reasons)")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("reservations", help=COMMANDS["reservations"], description="List "
                       "reservations to come and in force (read-only), or cancel one.")
    _common(p, top=False)
    p.add_argument("action", nargs="?", choices=["list", "cancel"], default="list")
    p.add_argument("id", nargs="?", metavar="ID", help="with cancel: the reservation's id "
                   "(a unique prefix will do)")
    p.add_argument("--all", action="store_true", help="ended and cancelled ones too")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("advise", help=COMMANDS["advise"], description="Per task, what it "
                       "declares against the peaks of its last runs (the suggested resources "
                       "block, with the evidence); upgrade advice and bottlenecks as kept by "
                       "the Runtime; how long tasks waited by cause. Read-only.")
    _common(p, top=False)
    p.add_argument("--runs", type=int, default=10, metavar="N",
                   help="look at the last N runs of each task (default 10)")
    p.add_argument("--min-runs", type=int, default=3, metavar="M",
                   help="advise only from at least M measured runs (default 3)")
    p.add_argument("--workflow", metavar="W", help="only this workflow's tasks")
    p.add_argument("--since", default="30d", metavar="AGE",
                   help="only runs of executions since then (default 30d)")
    p.add_argument("--all", action="store_true",
                   help="also tasks that fit, and those with too few runs")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _coordinator_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Decisions in, plans and events out (README: Coordinator)."""
    p = sub.add_parser("submit", help=COMMANDS["submit"], description="Send a decision (or a "
                       "JSON array of them) to the daemon serving the state directory, or, "
                       "with none, write it into STATE/inbox/. Exit 0 when each was accepted "
                       "(or repeats one that was), 1 when any was rejected or did not act.")
    _common(p, top=False)
    p.add_argument("source", metavar="FILE", help="a JSON file, or - for stdin")
    p.add_argument("--json", action="store_true", help="one outcome per line as JSON")

    p = sub.add_parser("plan", help=COMMANDS["plan"], description="What the decisions in FILE "
                       "would do, without doing it: executions, their tasks in order, "
                       "priorities, pools, expected durations (p50 of past runs) and what "
                       "would wait and why. Exit 1 when any would be rejected.")
    _common(p, top=False)
    p.add_argument("source", metavar="FILE", help="a JSON file, or - for stdin")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("events", help=COMMANDS["events"], description="Events recorded in the "
                       "store, oldest first, each with its sequence number (SEQ). Read-only.")
    _common(p, top=False)
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    p.add_argument("--since", type=int, metavar="SEQ",
                   help="only events after this sequence number (default: the newest --limit)")
    p.add_argument("--type", action="append", metavar="GLOB",
                   help="only events whose type (execution.failed, alert.raised, task.*) or "
                   "kind matches; repeatable")
    p.add_argument("--limit", type=int, metavar="N",
                   help="at most N events before following (default 100 without --since)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")

    p = sub.add_parser("schema", help=COMMANDS["schema"], description="Print the JSON Schema "
                       "of a decision (what the inbox, `submit` and the socket accept).")
    _common(p, top=False)
    p.add_argument("what", choices=["decision"], help="which schema")


def _cluster_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("cluster", help=COMMANDS["cluster"], description="Start a Dask "
                       "scheduler and workers, print the address for `executor: {kind: dask, "
                       "address: ...}`, keep them until Ctrl-C. `local`: processes of their "
                       "own on this machine, logs in STATE/cluster/. `ssh HOST...`: Dask's "
                       "SSHCluster, the scheduler on the first host and a worker on each (they "
                       "need dask and psutil). Dask's tcp transport is unauthenticated: keep it "
                       "on localhost and tunnel over SSH, or use TLS.")
    _common(p, top=False)
    p.add_argument("kind", choices=["local", "ssh"], help="where the processes run")
    p.add_argument("hosts", nargs="*", metavar="HOST",
                   help="ssh: [user@]host, the first runs the scheduler (one host: both there)")
    p.add_argument("--workers", type=int, metavar="N", help="local: workers (default 2)")
    p.add_argument("--threads", type=int, default=2, metavar="T",
                   help="tasks each worker runs at once (default 2)")
    p.add_argument("--resources", metavar="NAME=N ...",
                   help="what each worker declares, e.g. 'flutter_build=1 memory_mb=8000': "
                   "tasks needing a pool land only on such workers")
    p.add_argument("--host", metavar="ADDR",
                   help="local: address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8786, help="scheduler port (local: 0 for any)")
    p.add_argument("--scheduler-host", metavar="ADDR",
                   help="ssh: address the scheduler listens on (default: the first HOST)")
    p.add_argument("--remote-python", metavar="PATH",
                   help="ssh: the python on the hosts that has dask installed")


def _store_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Commands over the store. All but `resume` are read-only: they work while another
    l3tui holds the state directory."""
    since_help = "only executions since then: an age (7d, 12h, 30m) or an ISO date"
    p = sub.add_parser("history", help=COMMANDS["history"],
                       description="Executions recorded in the state directory, newest first.")
    _common(p, top=False)
    p.add_argument("--state-dir", action=_Renamed, help=argparse.SUPPRESS,
                   renamed_to="the state directory is --state DIR, in every command")
    p.add_argument("--workflow", metavar="W", help="only this workflow (or template) id")
    p.add_argument("--status", metavar="S",
                   help="only executions in this state (succeeded, failed, interrupted, ...)")
    p.add_argument("--since", metavar="AGE", help=since_help)
    p.add_argument("--limit", type=int, default=50, metavar="N", help="at most N (default 50)")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("show", help=COMMANDS["show"], description="One execution from the "
                       "store, with the hash of the definition it ran.")
    _common(p, top=False)
    _exec_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("logs", help=COMMANDS["logs"], description="Task logs, every attempt "
                       "in order; control sequences are removed when writing to a terminal. "
                       "With --grep, exit 1 when nothing matched.")
    _common(p, top=False)
    _exec_arg(p)
    p.add_argument("task", nargs="?", metavar="TASK", help="only this task")
    p.add_argument("-f", "--follow", action="store_true",
                   help="keep printing while the execution runs")
    p.add_argument("--grep", metavar="RE", help="only lines matching this regular expression")
    p.add_argument("--json", action="store_true", help="one JSON object per line")

    p = sub.add_parser("report", help=COMMANDS["report"], description="Per-workflow success "
                       "rate, p50/p95 durations, slowest and most failing tasks, queue waits, "
                       "resource peaks and task-reported metrics, with charts.")
    _common(p, top=False)
    p.add_argument("--since", metavar="AGE", default="7d", help="period (default 7d)")
    p.add_argument("--format", choices=["md", "json", "html"], default="md",
                   help="md (terminal charts), json, or html (inline SVG charts)")
    p.add_argument("--json", action="store_true", help="same as --format json")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")

    p = sub.add_parser("audit", help=COMMANDS["audit"], description="Who did what, when, "
                       "with what outcome. `verify` exits 1 when the chain was tampered with.")
    _common(p, top=False)
    p.add_argument("action", nargs="?", choices=["list", "verify"], default="list")
    p.add_argument("--since", metavar="AGE", help="only entries since then (7d, ISO date)")
    p.add_argument("--limit", type=int, metavar="N", help="only the newest N entries")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("resume", help=COMMANDS["resume"], description="A new execution of "
                       "the definition EXEC ran: succeeded tasks are kept, the rest run. "
                       "Exit codes as for `run`.")
    _common(p, top=False)
    _reset_state(p, top=False)
    _exec_arg(p)
    p.add_argument("--json", action="store_true", help="print events as JSON lines")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl-C while starting up (imports), before a command runs
        print("l3tui: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or "console"
    from l3tui.config.errors import ConfigError
    from l3tui.errors import L3Error

    try:
        if getattr(args, "reset_state", False):
            _do_reset_state(args)
        module = importlib.import_module(f"l3tui.commands.{command}")
        return int(module.run(args))
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        errors = sum(1 for i in exc.issues if i.severity == "error")
        print(f"l3tui: {errors} error(s) in config", file=sys.stderr)
        return EXIT_FAILED
    except L3Error as exc:
        print(f"l3tui: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("l3tui: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (l3tui history | head): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:
        if exc.errno not in _ENVIRONMENT_ERRNOS:
            return _internal_error(exc)
        # The machine said no (full disk, read-only filesystem, permissions): say what and
        # where in one line; it is not a bug of ours.
        where = f": {exc.filename}" if exc.filename else ""
        print(f"l3tui: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:
        return _internal_error(exc)


_ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES,
                                 errno.EPERM, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG,
                                 errno.EMFILE, errno.ENFILE})  # fmt: skip


def _do_reset_state(args: argparse.Namespace) -> None:
    from l3tui.config import resolve_state_dir
    from l3tui.store.database import reset_state

    moved = reset_state(resolve_state_dir(getattr(args, "state", None)))
    for path in moved:
        print(f"l3tui: moved aside: {path}", file=sys.stderr)


def _internal_error(exc: BaseException) -> int:
    import tempfile
    import time
    import traceback

    if os.environ.get("L3TUI_DEBUG"):
        traceback.print_exc()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        # mkstemp: a new 0600 file in the shared temp dir (a traceback may quote what it was
        # handling), never one someone else put there.
        fd, path = tempfile.mkstemp(prefix=f"l3tui-crash-{stamp}-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            traceback.print_exception(exc, file=fh)
        where = f"details in {path}"
    except OSError:
        where = "set L3TUI_DEBUG=1 to see details"
    print(f"l3tui: internal error: {type(exc).__name__}: {exc} ({where})", file=sys.stderr)
    return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
