"""Ctrl-C while `l3tui` is still starting (parsing arguments, importing the config models:
about half a second on a busy machine) ends it like Ctrl-C later does: one line, exit 130,
no traceback. Seen when a test sent SIGINT to an `l3tui run` that was still importing."""

from __future__ import annotations

import pytest

from l3tui import cli


def test_ctrl_c_during_start_up_is_one_line_and_exit_130(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]):
    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["run", "demo_pipeline"]) == cli.EXIT_INTERRUPTED
    out = capsys.readouterr()
    assert out.err == "l3tui: interrupted\n" and out.out == ""
