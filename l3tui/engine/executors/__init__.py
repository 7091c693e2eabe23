"""Where a command runs: the `Executor` protocol (base.py), local process groups (local.py,
output.py) and this machine's /proc (procs.py). Imports neither the workflow engine nor the
scheduler."""
