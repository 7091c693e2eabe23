"""One module per CLI command; each exposes `run(args) -> int` and imports what it needs."""
