"""The seed's Task Scheduler: one queue ordered by priority, deadline and arrival
(scheduler.py), the causes a task waits on (admission.py, slots.py), aging, the clock-driven
loop (timing.py), the queue report, cron and recurring tasks. Never imports the workflow
engine: it is handed entries and calls `on_admit`."""
