"""The console's small rules: task output is stripped of control sequences exactly as the
engine strips it, right-to-left names are cut from their end, keys remap by id, the refresh
cadence has a floor and slows over SSH, the theme follows the terminal, and the headless
modules this issue added never import Textual."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.cells import cell_len

from l3tui import textdir
from l3tui.dashboard import keymap
from l3tui.dashboard.cadence import cadence, over_ssh
from l3tui.dashboard.text import clean, duration, fit, size
from l3tui.dashboard.themes import load_themes, pick_theme
from l3tui.dashboard.widgets.base import Column, allocate
from l3tui.dashboard.widgets.log_view import LogBuffer, read_log
from l3tui.dashboard.widgets.metrics_chart import downsample
from l3tui.engine.executors.output import clean as engine_clean
from l3tui.errors import UsageError
from l3tui.sanitize import clean as sanitize_clean
from l3tui.sanitize import split_lines

NASTY = [
    "\x1b]0;new window title\x07after",
    "\x1b[2J\x1b[Hcleared screen",
    "\x1b[31mred\x1b[0m and \x1b[1;32mbold green\x1b[0m",
    "progress 10%\rprogress 55%\rprogress 100%",
    "bell\x07 and backspace\x08 and nul\x00",
    "\x1bP+q544e\x1b\\device control",
    "\x1b]8;;https://example.com\x1b\\link\x1b]8;;\x1b\\",
    "c1 \x9b31m controls",
    "plain عربي text",
]


@pytest.mark.parametrize("line", NASTY)
def test_clean_matches_the_engines_rule_and_leaves_no_escape(line: str) -> None:
    shown = clean(line)
    assert shown == engine_clean(line)
    assert not any(ord(ch) < 32 or 0x7F <= ord(ch) <= 0x9F for ch in shown)


@pytest.mark.parametrize(("line", "shown"), [
    ("progress 10%\rprogress 55%\rprogress 100%", "progress 100%"),
    ("downloading 10%\rdone", "doneloading 10%"),  # what a terminal shows: no erase
    ("downloading 10%\r\x1b[Kdone", "done"),  # the usual redraw erases first
    ("old text\x1b[2K\rnew", "new"),
    ("abc\x08\x08X", "aXc"),
    ("abc\x1b[2Kd", "   d"),  # erased cells before the cursor stay blank
    ("windows line\r", "windows line"),
    ("\x9b31mred\x9b0m \x9d0;title\x9c end", "red  end"),  # 8-bit CSI and OSC go whole
    ("\x1bc\x1b(Breset", "reset"),
])
def test_a_rewritten_line_shows_its_last_state(line: str, shown: str) -> None:
    assert clean(line) == shown


@given(st.lists(st.text(alphabet="ab \t\r\x08\x1b[]0;2Kmc\x07\x9b\x9d\x9c\x85é",
                        max_size=30), max_size=8))
def test_a_block_of_output_splits_as_its_lines_clean_one_by_one(lines: list[str]) -> None:
    """The engine and the log view clean a block at once (fast paths); it must give what
    cleaning each line gives."""
    data = "\n".join(lines).encode()
    assert split_lines(data) == [sanitize_clean(line) for line in
                                 data.replace(b"\r\n", b"\n").decode().split("\n")]


def test_names_from_config_lose_control_sequences_before_display() -> None:
    from l3tui.dashboard.text import Bidi

    assert Bidi(True)("\x1b]0;owned\x07build") == "build"
    assert Bidi(False)("\x1b[2Jname") == "name"


def test_clean_turns_tabs_into_spaces() -> None:
    assert clean("a\tb") == "a   b"


def test_fit_pads_and_cuts_to_exact_cells() -> None:
    assert fit("abc", 5) == "abc  " and fit("abc", 5, "right") == "  abc"
    assert fit("abcdef", 4) == "abc…"
    wide = fit("日本語テキスト", 6)
    assert cell_len(wide) == 6


def test_fit_cuts_right_to_left_text_from_its_logical_end() -> None:
    name = "اختبارات الوحدات"
    shown = textdir.display(name)
    cut = fit(f"  ├ ▶ {shown}", 14)
    assert cell_len(cut) == 14
    assert cut.startswith("  ├ ▶ …")  # icons stay; the ellipsis stands where the end was
    assert cut.endswith(shown[-5:])  # the start of the name (drawn on the right) stays


def test_durations_and_sizes_read_short() -> None:
    assert [duration(s) for s in (5, 125, 3720, 90000)] == ["5s", "2m05s", "1h02m", "1d01h"]
    assert [size(n) for n in (512, 2048, 5 * 2**20, 3 * 2**30)] == ["512B", "2.0K", "5.0M",
                                                                   "3.0G"]  # fmt: skip


def test_columns_drop_the_least_needed_first_when_narrow() -> None:
    cols = [Column("a", 10), Column("b", 10, flex=1, drop=2), Column("c", 10, drop=1)]
    assert allocate(cols, 40) == [10, 18, 10]
    assert allocate(cols, 25) == [10, 0, 10]  # the flexible column went first


def test_keymap_remaps_by_id_and_rejects_unknown_ids() -> None:
    assert keymap.parse_keymap("pause=P, cancel=ctrl+k") == {"pause": "P", "cancel": "ctrl+k"}
    with pytest.raises(UsageError, match="unknown key id 'pasue'"):
        keymap.parse_keymap("pasue=P")
    with pytest.raises(UsageError, match="expected ID=KEY"):
        keymap.parse_keymap("pause")
    ids = [b.id for b in keymap.bindings()]
    assert len(ids) == len(set(ids)) and {"pause", "resume", "cancel", "run"} <= set(ids)


def test_keymap_that_binds_one_key_twice_is_refused_naming_both() -> None:
    """The README's old example took ctrl+r from reload without a word (issue 11)."""
    with pytest.raises(UsageError, match=r"key 'ctrl\+r' would do two things: resume and "
                       r"reload; give resume another key"):  # fmt: skip
        keymap.parse_keymap("pause=P,resume=ctrl+r")
    with pytest.raises(UsageError, match="key 'x' would do two things: pause and cancel"):
        keymap.parse_keymap("pause=x,cancel=x")
    with pytest.raises(UsageError, match="'k' would do two things: pause and cursor_up"):
        keymap.parse_keymap("pause=k")  # a list key: the focused list would take it
    with pytest.raises(UsageError, match="'ctrl\\+p' would do two things: the command palette"):
        keymap.parse_keymap("pause=ctrl+p")
    with pytest.raises(UsageError, match="'slash' would do two things: filter and help"):
        keymap.parse_keymap("help=/")  # `/` is Textual's `slash`
    assert keymap.parse_keymap("pause=r,resume=p") == {"pause": "r", "resume": "p"}
    assert keymap.parse_keymap("pause=P,resume=U") == {"pause": "P", "resume": "U"}


def test_readme_keymap_example_is_accepted() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    examples = re.findall(r'L3TUI_KEYMAP="([^"]+)"', readme)
    assert examples
    for example in examples:
        keymap.parse_keymap(example)


def test_refresh_has_a_floor_and_slows_over_ssh() -> None:
    local = cadence(30_000, ssh=False)
    assert (local.full_s, local.live_s) == (30.0, 1.0)
    assert cadence(50, ssh=False).full_s == 0.25
    remote = cadence(1000, ssh=True)
    assert remote.full_s == 2.0 and remote.live_s == 2.0 and remote.log_s > local.log_s
    assert over_ssh({"SSH_CONNECTION": "10.0.0.7 5000 10.0.0.1 22"})
    assert not over_ssh({"TERM": "xterm"})


def test_auto_theme_is_ansi_without_truecolor() -> None:
    assert pick_theme("auto", {"COLORTERM": "truecolor", "TERM": "xterm-256color"}) == "l3-dark"
    assert pick_theme("auto", {"TERM": "xterm-256color"}) == "l3-ansi"  # SSH drops COLORTERM
    assert pick_theme("auto", {"COLORTERM": "24bit", "TERM": "linux"}) == "l3-ansi"
    assert pick_theme("light", {}) == "l3-light"


def test_bundled_themes_load_and_the_ansi_one_uses_only_ansi_colours() -> None:
    themes = {t.name: t for t in load_themes()}
    assert set(themes) == {"l3-dark", "l3-light", "l3-ansi"}
    ansi = themes["l3-ansi"]
    assert ansi.ansi
    colours = [ansi.primary, ansi.secondary, ansi.error, ansi.warning, ansi.success,
               ansi.background, *ansi.variables.values()]  # fmt: skip
    assert all(c.startswith("ansi_") or c in ("none", "reverse") for c in colours)


def test_log_buffer_is_bounded_and_counts_what_it_dropped() -> None:
    buffer = LogBuffer(100)
    buffer.extend(f"line {n}" for n in range(250))
    assert len(buffer.lines) == 100 and buffer.dropped == 150
    assert buffer.at(buffer.first) == "line 150" and buffer.end == 250


def test_a_log_file_is_read_in_whole_lines_each_once(tmp_path) -> None:
    log = tmp_path / "task.log"
    log.write_bytes(b"\x1b[1mone\x1b[0m\ntwo\nthr")
    first = read_log(str(log), 0, 100)
    assert first.lines == ["one", "two"] and first.partial == "thr" and first.skipped == 0
    with log.open("ab") as fh:
        fh.write(b"ee\nfour")
    second = read_log(str(log), first.offset, 100)
    assert second.lines == ["three"] and second.partial == "four"
    last = read_log(str(log), second.offset, 100, final=True)
    assert last.lines == ["four"] and last.partial == "" and last.offset == log.stat().st_size


def test_charts_average_down_to_their_resolution() -> None:
    points = [(float(t), float(t % 10)) for t in range(1000)]
    squeezed = downsample(points, now=1000.0, window_s=1000.0, columns=100)
    assert len(squeezed) == 100
    assert all(abs(v - 4.5) < 1e-9 for _, v in squeezed)


@pytest.mark.parametrize("module", ["l3tui.monitor.alerts", "l3tui.runtime.reload",
                                    "l3tui.runtime"])  # fmt: skip
def test_headless_modules_never_import_textual(module: str) -> None:
    code = f"import sys, {module}; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)  # fmt: skip
    assert out.stdout.strip() == "False"
