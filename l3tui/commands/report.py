"""`l3tui report [--since 7d] [--format md|json|html] [-o FILE]`: what the store says about
a period, for people (Markdown with terminal charts, HTML with inline SVG) or scripts
(JSON). Read-only: works while another l3tui runs."""

from __future__ import annotations

import argparse
import json
import sys
import time

from l3tui.commands._stored import open_store, parse_since
from l3tui.errors import UsageError
from l3tui.monitor.reports import build_report, render_html, render_markdown


def run(args: argparse.Namespace) -> int:
    fmt = "json" if args.json else args.format
    now = time.time()
    since = parse_since(args.since, now)
    assert since is not None  # --since has a default
    conn = open_store(args)
    try:
        report = build_report(conn, since, now)
    finally:
        conn.close()
    if fmt == "json":
        text = json.dumps(report, ensure_ascii=False, indent=2, default=str) + "\n"
    elif fmt == "html":
        text = render_html(report)
    else:
        text = render_markdown(report) + "\n"
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror}") from None
        print(f"report written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
