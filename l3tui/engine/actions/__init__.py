"""What a task's `action` runs: the registry that turns an action and its parameters into
a job (registry.py) and the built-in maintenance actions (builtins.py)."""
