"""The headless core: the seed's Workflow Engine, Task Scheduler, Resource Manager and Event
Publisher. Imports `l3tui.config` only (never the store, the monitor or Textual); the
Runtime (`l3tui.runtime`) wires it to everything else.

    events.py bus.py      typed events and the EventBus (the Event Publisher)
    model.py api.py       records and states; the Runtime's public face (views, commands)
    clock.py              the Clock protocol (a fake one for tests)
    workflow/             the Workflow Engine
    scheduling/           the Task Scheduler
    resources/            the Resource Manager
    actions/              what a task's `action` runs
    executors/            where a command runs (the Executor protocol, local processes)
"""
