"""Text from tasks made safe to draw: no escape or control sequences (a task cannot retitle
the window or move the cursor), and a carriage-return progress line shows its last state.
Shared by the engine (output events), the CLI and the console."""

from __future__ import annotations

import re

_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI (colours, cursor moves)
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC (window title, hyperlinks)
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC strings
    r"|\x1b[@-Z\\-_]?"  # other escapes, or a lone ESC
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"  # C0 and C1 controls (tab kept)
)


def clean(text: str) -> str:
    """`text` without control sequences; of a `\\r`-rewritten line, its last state."""
    if "\r" in text:
        text = text.rstrip("\r").rsplit("\r", 1)[-1]
    return _CONTROL.sub("", text) if _CONTROL.search(text) else text
