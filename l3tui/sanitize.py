"""Text from tasks made safe to draw: no escape or control sequence survives (a task cannot
retitle the window, move the cursor or start a hyperlink), and a line rewritten in place
shows what a terminal would show at its end. Shared by the engine (output events and a
task's last line), the CLI (`logs`, `run`) and the console, so every view agrees. Pure
functions; no I/O.

The rule for a line rewritten in place (progress bars, spinners): `\\r` moves the cursor to
column 0 and later text overwrites from there, keeping what it did not reach, as a terminal
(and `less -R`) shows it: `"downloading 10%\\rdone"` ends as `"doneloading 10%"`, and a
progress bar printing `"\\r 42%"` over and over ends as its last state. Backspace moves the
cursor one column left; erase-in-line (`ESC[K`, `ESC[1K`, `ESC[2K`) erases as a terminal
does, so the common `"\\r\\x1b[K"` redraw leaves only the new text. Columns count characters,
not terminal cells: a wide character overwritten by a narrow one is an approximation. Only
`\\n` ends a line; other controls (C0 except tab, DEL, C1) are removed.
"""

from __future__ import annotations

import re

# Every sequence a terminal would act on, as one character class followed by what that
# character introduces: `re` scans for a leading class at C speed (about 3 ms a MiB here; the
# same pattern written as alternatives was 15 times slower). Bodies never cross a `\n`, so
# cleaning a block of lines at once gives the same lines as cleaning each one.
_INTRO = r"[\x00-\x08\x0b-\x1f\x7f-\x9f]"  # C0 (tab and newline are text), DEL, C1
_BODY = (
    r"(?:(?<=\x1b)(?:"
    r"\[[0-?]*[ -/]*[@-~]"  # CSI (colours, cursor moves)
    r"|\][^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"  # OSC (window title, hyperlinks)
    r"|[PX^_][^\x1b\x9c\n]*(?:\x1b\\|\x9c)?"  # DCS, SOS, PM, APC strings
    r"|[ -/]*[0-~]?)"  # other escapes (ESC 7, ESC c, ESC ( B), or a lone ESC
    r"|(?<=\x9b)[0-?]*[ -/]*[@-~]"  # 8-bit CSI
    r"|(?<=\x9d)[^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"  # 8-bit OSC
    r"|(?<=[\x90\x98\x9e\x9f])[^\x1b\x9c\n]*(?:\x1b\\|\x9c)?"  # 8-bit strings
    r")?"
)
_CONTROL = re.compile(_INTRO + _BODY)
_C0_DEL = bytes(range(0x00, 0x09)) + bytes(range(0x0B, 0x20)) + b"\x7f"
_MOVES = re.compile(r"[\r\x08\x1b\x9b](?:(?<=[\r\x08])|(?<=\x1b)\[[12]K|(?<=\x9b)[12]K)")
"""What makes a line more than its text minus sequences: the cursor moved back, or part of
the line was erased (erasing to the end without moving back erases nothing)."""
_LINE_OPS = re.compile(r"(\r)|(\x08)|(?:\x1b\[|\x9b)([012]?)K|" + _INTRO + _BODY)
_ERASED = "\0"  # a cell erased by ESC[K: blank inside the line, nothing at its end


def clean(text: str) -> str:
    """`text` without control sequences; a line rewritten in place as its last state (each
    line of a multi-line `text` on its own)."""
    if not _CONTROL.search(text):
        return text
    if "\n" in text:
        return "\n".join(_clean_line(line) for line in text.split("\n"))
    return _clean_line(text)


def split_lines(data: bytes) -> list[str]:
    """Task output (UTF-8 bytes, undecodable ones replaced) as lines: split at each `\n`,
    each line cleaned as `clean` does. The one way output becomes lines (engine, log view,
    CLI); a block without control characters, most output, costs one scan and one split.
    `data` holds whole lines: without the end of its last one, which the caller keeps."""
    if b"\r" in data:  # a CR right before the line end rewrites nothing
        data = data.replace(b"\r\n", b"\n")
    text = data.decode("utf-8", "replace")
    # C0 and DEL are single bytes, C1 in UTF-8 starts with 0xC2: bytes are checked at C
    # speed (0.5 ms a MiB here, the regex scan 2.8 ms).
    if len(data.translate(None, _C0_DEL)) == len(data) and b"\xc2" not in data:
        return text.split("\n")
    if not _CONTROL.search(text):
        return text.split("\n")
    if not _MOVES.search(text):
        return _CONTROL.sub("", text).split("\n")
    return [_clean_line(line) for line in text.split("\n")]


def _clean_line(line: str) -> str:
    if not _MOVES.search(line):
        return _CONTROL.sub("", line)
    if "\x1b" in line or "\x08" in line or "\x9b" in line:
        return _last_state(line)
    shown = ""  # carriage returns only (a plain progress bar): overlay the parts
    for part in line.split("\r"):
        part = _CONTROL.sub("", part)
        shown = part + shown[len(part) :]
    return shown


def _last_state(line: str) -> str:
    """What a terminal shows of `line` once it is written: a one-line screen."""
    cells: list[str] = []
    cursor = 0
    pos = 0
    for op in _LINE_OPS.finditer(line):
        if op.start() > pos:
            cursor = _write(cells, cursor, line[pos : op.start()])
        pos = op.end()
        if op.group(1):
            cursor = 0
        elif op.group(2):
            cursor = max(cursor - 1, 0)
        elif op.group(3) is not None:
            mode = op.group(3) or "0"
            if mode == "0":
                del cells[cursor:]
            elif mode == "1":
                reach = min(cursor + 1, len(cells))
                cells[:reach] = _ERASED * reach
            else:
                cells[:] = _ERASED * len(cells)
        # anything else is a sequence or control a terminal draws as nothing
    if pos < len(line):
        _write(cells, cursor, line[pos:])
    return "".join(cells).rstrip(_ERASED).replace(_ERASED, " ")


def _write(cells: list[str], cursor: int, text: str) -> int:
    if cursor > len(cells):
        cells.extend(_ERASED * (cursor - len(cells)))
    cells[cursor : cursor + len(text)] = text
    return cursor + len(text)
