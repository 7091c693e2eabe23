"""l3tui: the L3 Execution Layer of Baseer (بصير) as a terminal console and headless engine."""

__version__ = "0.1.0"
