"""Cold start: wall time of the commands people type most, against a bare interpreter
start measured in the same run, and the heaviest imports of each (so a regression points at
the import that caused it). Informational; the import-linter contracts are the guard."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
L3TUI = str(Path(PY).parent / "l3tui")
RUNS = 5


def wall(argv: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)  # fmt: skip
        times.append(time.perf_counter() - started)
    return min(times)


def heaviest_imports(module: str, count: int = 6) -> list[tuple[str, float]]:
    """Self import time summed by top-level package, heaviest first."""
    out = subprocess.run([PY, "-X", "importtime", "-c", f"import {module}"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stderr  # fmt: skip
    totals: dict[str, float] = {}
    for line in out.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if match:
            package = match.group(2).split(".")[0]
            totals[package] = totals.get(package, 0.0) + int(match.group(1)) / 1e6
    return sorted(totals.items(), key=lambda r: r[1], reverse=True)[:count]


def main() -> None:
    env_state = {**os.environ}
    base = wall([PY, "-c", "pass"])
    version = wall([L3TUI, "--version"])
    validate = wall([L3TUI, "validate", "--config", str(ROOT / "config")])
    print(f"python -c pass      {base * 1e3:7.1f} ms")
    print(f"l3tui --version     {version * 1e3:7.1f} ms")
    print(f"l3tui validate      {validate * 1e3:7.1f} ms")
    for module in ("l3tui.commands.validate", "l3tui.commands.run", "l3tui.runtime"):
        heavy = ", ".join(f"{name} {secs * 1e3:.0f}ms" for name, secs in heaviest_imports(module))
        print(f"import {module}: {heavy}")
    textual = subprocess.run(
        [PY, "-c", "import sys, l3tui.commands.run, l3tui.commands.validate; "
                   "print(any(m.startswith('textual') for m in sys.modules))"],
        cwd=ROOT, capture_output=True, text=True, check=True, env=env_state,
    ).stdout.strip()  # fmt: skip
    print(f"textual imported by run/validate: {textual}")
    print(
        f"RESULT validate_ms={validate * 1e3:.0f} version_ms={version * 1e3:.0f} "
        f"python_ms={base * 1e3:.0f} validate_ratio={validate / base:.1f}"
    )


if __name__ == "__main__":
    main()
