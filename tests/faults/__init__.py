"""Hostile cases: attackers sharing a directory, failing disks, racing file systems, floods,
crashes, bad bytes; each test fails without its fix."""
