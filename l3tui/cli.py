"""The `l3tui` command: argument parsing and error reporting; each command's work is in
`l3tui.commands.<name>` and imported only when that command runs (cold start matters:
`l3tui run` and `l3tui validate` never import Textual).

Exit codes: 0 success, 1 failure (invalid config, failed execution, locked state),
2 usage error, 130 interrupted, 70 internal error (details written to a crash file).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from l3tui import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 70, 130

COMMANDS = {
    "console": "Open the console (the default when no command is given)",
    "run": "Run one workflow (or template) to the end, headless",
    "validate": "Check the four config files; print a summary or every error",
    "schedules": "List recurring tasks with their next fire times",
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="l3tui",
        description="L3 Execution Layer of Baseer: a console for running and watching "
        "workflows on a build machine.",
    )
    parser.add_argument("--version", action="version", version=f"l3tui {__version__}")
    _common(parser, top=True)
    parser.add_argument(
        "--theme",
        choices=["auto", "dark", "light", "ansi"],
        default="auto",
        help="console colours (auto: ansi when the terminal lacks truecolor)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("console", help=COMMANDS["console"])
    _common(p, top=False)
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or "console"
    from l3tui.config.errors import ConfigError
    from l3tui.errors import L3Error

    try:
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
    except Exception as exc:
        return _internal_error(exc)


def _internal_error(exc: BaseException) -> int:
    import tempfile
    import time
    import traceback

    if os.environ.get("L3TUI_DEBUG"):
        traceback.print_exc()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = os.path.join(tempfile.gettempdir(), f"l3tui-crash-{stamp}.txt")
    try:
        with open(path, "w", encoding="utf-8") as fh:
            traceback.print_exception(exc, file=fh)
        where = f"details in {path}"
    except OSError:
        where = "set L3TUI_DEBUG=1 to see details"
    print(f"l3tui: internal error: {type(exc).__name__}: {exc} ({where})", file=sys.stderr)
    return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
