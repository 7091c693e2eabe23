"""Hostile cases: floods, crashes, bad bytes; each test fails without its fix."""
