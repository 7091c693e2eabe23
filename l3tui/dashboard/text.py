"""Text for the console's cells: control-sequence stripping, right-to-left display, compact
durations and sizes, and cell-exact fitting. Pure functions; it never touches the engine.
"""

from __future__ import annotations

from rich.cells import cell_len, set_cell_size

from l3tui import sanitize, textdir

STATE_ICONS = {
    "pending": "·", "waiting": "…", "queued": "◌", "running": "▶", "paused": "‖",
    "retrying": "↻", "succeeded": "✓", "failed": "✗", "timed_out": "⏱", "cancelled": "⊘",
    "skipped": "↷", "interrupted": "!",
}  # fmt: skip
SEVERITY_ICONS = {"critical": "▲", "error": "▲", "warning": "△", "info": "ℹ"}


def clean(text: str) -> str:
    """Text safe to draw: no escape or control sequences; tabs become spaces; a
    carriage-return progress line shows its last state."""
    text = sanitize.clean(text)
    return text.expandtabs(4) if "\t" in text else text


class Bidi:
    """Display form of names and titles: cleaned of control sequences, and right-to-left
    text shaped and reordered when enabled (on or off for the whole console)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str) -> str:
        # names come from config files and task output: never let a control sequence through
        return textdir.display(clean(text), self.enabled)


def duration(seconds: float | None) -> str:
    """3s, 2m05s, 1h02m, 3d04h."""
    if seconds is None:
        return ""
    s = max(int(seconds), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def size(n: float) -> str:
    """Bytes as 512B, 12.3K, 45.0M, 1.2G."""
    value = float(n)
    for unit in ("B", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}T"


def percent(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}%"


def fit(text: str, width: int, align: str = "left") -> str:
    """`text` in exactly `width` cells: padded, or cut with an ellipsis."""
    if width <= 0:
        return ""
    length = cell_len(text)
    if length > width:
        if width > 1 and textdir.has_rtl(text):
            return _cut_visual_rtl(text, width)
        return set_cell_size(text, width - 1) + "…" if width > 1 else "…"
    pad = " " * (width - length)
    return pad + text if align == "right" else text + pad


def _cut_visual_rtl(text: str, width: int) -> str:
    """Cut right-to-left text already in visual order: its start is on the right, so the
    left part goes (after any leading icons and tree lines, which stay)."""
    split = 0
    while split < len(text) and not text[split].isalnum():
        split += 1
    prefix, rest = text[:split], text[split:]
    room = width - cell_len(prefix) - 1
    if room <= 0:
        return set_cell_size(text, width - 1) + "…"
    kept = rest
    while cell_len(kept) > room:
        kept = kept[1:]
    return set_cell_size(prefix + "…" + kept, width)


def one_line(text: str) -> str:
    """First line of `text`, cleaned."""
    return clean(text.split("\n", 1)[0])
