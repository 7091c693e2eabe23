"""The composition root: the one place that wires the engine, store, monitor and (as they
land) coordinator and executors together. Consoles, `l3tui run` and the daemon build a
`Runtime` and talk to it; nothing below this package knows it exists.

    async with Runtime(config, state_dir) as rt:
        result = await rt.run_workflow("demo_pipeline")
        await rt.wait(result.execution_id)
"""

from l3tui.runtime.root import Runtime

__all__ = ["Runtime"]
