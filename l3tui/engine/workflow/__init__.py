"""The seed's Workflow Engine: executions and their progress (engine.py), one attempt's run
(attempts.py), operator commands (operations.py), the ready set (dag.py), conditions,
templates and definitions, deadlines and pausable timers."""
