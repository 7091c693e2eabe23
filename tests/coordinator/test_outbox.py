"""The outbox file on its own: lines written after the booked mark are found again after a
crash, across a rotation in the middle of a batch, and a torn last line is cut."""

from __future__ import annotations

import json
import time
from pathlib import Path

from l3tui.config.events_schema import OutboxSettings
from l3tui.coordinator.outbox import Outbox


def line(execution_id: str, size: int = 200) -> bytes:
    data = {"execution_id": execution_id, "decision_id": f"d-{execution_id}",
            "outcome": "succeeded", "pad": "x" * size}  # fmt: skip
    return json.dumps(data).encode() + b"\n"


def outbox(tmp_path: Path, max_mb: float) -> Outbox:
    box = Outbox(tmp_path / "outbox", OutboxSettings(max_mb=max_mb, keep=5), None,  # type: ignore[arg-type]
                 None, time.time)  # type: ignore[arg-type]
    box._open()
    return box


def test_lines_after_the_mark_are_found_across_a_rotation(tmp_path: Path) -> None:
    box = outbox(tmp_path, max_mb=0.0006)  # ~629 bytes: two lines a file
    box._append([line("a"), line("b")])
    mark = box._mark()  # booked up to here
    offsets = box._append([line("c"), line("d"), line("e")])  # rotates before "c" and "e"
    assert len(offsets) == 3
    found = box._recover(mark)
    assert [f[0] for f in found] == ["c", "d", "e"]
    assert sorted(p.name for p in (tmp_path / "outbox").iterdir()) == [
        "results.jsonl", "results.jsonl.1", "results.jsonl.2"]
    box.close()


def test_a_torn_last_line_is_cut_and_the_whole_ones_are_kept(tmp_path: Path) -> None:
    box = outbox(tmp_path, max_mb=1)
    box._append([line("a")])
    mark = box._mark()
    box._append([line("b")])
    with open(box.path, "ab") as fh:
        fh.write(line("c")[:40])
    found = box._recover(mark)
    assert [f[0] for f in found] == ["b"]
    text = box.path.read_text()
    assert text.endswith("\n") and [json.loads(x)["execution_id"] for x in text.splitlines()] \
        == ["a", "b"]
    box.close()


def test_without_a_mark_the_current_file_is_checked(tmp_path: Path) -> None:
    box = outbox(tmp_path, max_mb=1)
    box._append([line("a"), line("b")])
    assert [f[0] for f in box._recover(None)] == ["a", "b"]
    box.close()
