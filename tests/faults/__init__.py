"""Hostile cases: attackers sharing a directory, failing disks, racing file systems."""
