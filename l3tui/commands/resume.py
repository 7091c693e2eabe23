"""`l3tui resume EXEC`: a new execution of the definition EXEC ran (interrupted, failed or
cancelled), keeping its succeeded tasks and running the rest, linked to it; followed to the
end like `l3tui run`. EXEC may be a unique prefix. Exit codes as for `l3tui run`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from l3tui.commands.run import follow, output_mode
from l3tui.config import load_config, resolve_config_dir, resolve_state_dir
from l3tui.engine.api import OpResult

if TYPE_CHECKING:
    from l3tui.daemon.client import RemoteRuntime
    from l3tui.runtime import Runtime


def run(args: argparse.Namespace) -> int:
    config = load_config(resolve_config_dir(args.config))
    for warning in config.warnings:
        print(warning, file=sys.stderr)
    mode, bidi = output_mode(args)

    async def start(rt: Runtime | RemoteRuntime) -> OpResult:
        result = await rt.resume_interrupted(args.execution)
        if result.applied:
            print(result.message, file=sys.stderr, flush=True)
        return result

    return follow(config, resolve_state_dir(args.state), start, mode, bidi)
