"""`l3tui schema decision`: the JSON Schema of what l3tui accepts from other programs, for
them to validate against (or generate code from). Prints; reads no config or state."""

from __future__ import annotations

import argparse
import json


def run(args: argparse.Namespace) -> int:
    from l3tui.coordinator.decisions import json_schema

    print(json.dumps(json_schema(), ensure_ascii=False, indent=2))
    return 0
