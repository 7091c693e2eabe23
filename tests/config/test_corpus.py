"""The broken-config corpus: each `tests/data/config/<what-is-wrong>/` holds the file(s) that
differ from the valid `_base/` config plus `expected.txt`, the exact lines `l3tui validate`
must print. Every case runs through `load_config` and through the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from l3tui.config import ConfigError, load_config

DATA = Path(__file__).resolve().parents[1] / "data" / "config"
BASE = DATA / "_base"
L3TUI = Path(sys.executable).parent / "l3tui"
MB = 2**20


def _write_oversized(config: Path) -> None:
    """A valid workflows file padded with comments to 5.5 MB (too big to keep in git)."""
    path = config / "l3-workflows.yml"
    text = path.read_text(encoding="utf-8")
    line = "# " + "padding " * 12 + "\n"
    padding = line * ((int(5.5 * MB) - len(text.encode())) // len(line) + 1)
    path.write_text(text + padding, encoding="utf-8")


GENERATED: dict[str, tuple[Callable[[Path], None], list[str]]] = {
    "file_over_5mb": (
        _write_oversized,
        ["l3-workflows.yml:1:1: file is 5.5 MB, over the 5 MB limit for config files"],
    ),
}
"""Cases built at test time instead of stored: name -> (writer, expected lines)."""

STORED = sorted(p.name for p in DATA.iterdir() if p.is_dir() and not p.name.startswith("_"))
CASES = sorted([*STORED, *GENERATED])


def build_case(root: Path, case: str) -> Path:
    """The base config with the case's files laid over it, in `root/case`."""
    config = root / case
    shutil.copytree(BASE, config)
    if case in GENERATED:
        GENERATED[case][0](config)
        return config
    for path in (DATA / case).iterdir():
        if path.name != "expected.txt":
            shutil.copyfile(path, config / path.name)
    return config


def expected_lines(case: str) -> list[str]:
    if case in GENERATED:
        return GENERATED[case][1]
    text = (DATA / case / "expected.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


def rendered(issue: object, config: Path) -> str:
    """An issue as the CLI prints it, with the file named relative to the config dir."""
    return str(issue).removeprefix(f"{config}{os.sep}")


def test_corpus_is_large_and_every_case_documents_what_it_expects() -> None:
    assert len(CASES) >= 30
    for case in STORED:
        files = {p.name for p in (DATA / case).iterdir()}
        assert "expected.txt" in files, case
        assert files - {"expected.txt"}, f"{case} changes no file"
        assert files <= {"expected.txt", *(p.name for p in BASE.iterdir())}, case


def test_base_config_is_valid() -> None:
    config = load_config(BASE)
    assert config.warnings == [] or all(w.severity == "warning" for w in config.warnings)
    assert set(config.workflows.workflows) == {"build", "nightly_check"}


@pytest.mark.parametrize("case", CASES)
def test_loader_reports_exact_lines(case: str, tmp_path: Path) -> None:
    config = build_case(tmp_path, case)
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    issues = caught.value.issues
    for issue in issues:
        assert issue.file.parent == config
        assert issue.line >= 1 and issue.col >= 1
    assert [rendered(i, config) for i in issues] == expected_lines(case)


# The CLI: every case through `l3tui`'s own console script. One Python process runs the
# script once per case (as the shell would, with argv and stdio of its own), so the whole
# corpus costs one interpreter start instead of fifty; a few cases below also run as
# separate `l3tui` processes.
RUNNER = textwrap.dedent(
    """
    import contextlib, io, json, runpy, sys, traceback
    script, dirs = sys.argv[1], sys.argv[2:]
    results = {}
    for config in dirs:
        out, err, code = io.StringIO(), io.StringIO(), None
        sys.argv = [script, "validate", "--config", config]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_path(script, run_name="__main__")
            except SystemExit as exc:
                code = exc.code
            except BaseException:
                traceback.print_exc(file=err)
        results[config] = {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}
    print(json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    root = tmp_path_factory.mktemp("corpus")
    dirs = {case: build_case(root, case) for case in CASES}
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, str(L3TUI), *map(str, dirs.values())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    return {case: {**results[str(path)], "dir": str(path)} for case, path in dirs.items()}


def _error_count(lines: list[str]) -> int:
    return sum(1 for line in lines if ": warning: " not in line)


@pytest.mark.parametrize("case", CASES)
def test_cli_prints_exact_lines_and_exits_1(
    case: str, cli_results: dict[str, dict[str, object]]
) -> None:
    result = cli_results[case]
    stderr = str(result["stderr"])
    assert "Traceback" not in stderr
    assert result["code"] == 1, stderr
    assert result["stdout"] == ""
    lines = [line.removeprefix(f"{result['dir']}{os.sep}") for line in stderr.splitlines()]
    expected = expected_lines(case)
    assert lines == [*expected, f"l3tui: {_error_count(expected)} error(s) in config"]


@pytest.mark.parametrize(
    "case", ["unquoted_cron_star", "errors_in_several_files", "billion_laughs", "binary_file"]
)
def test_cli_process_reports_case(case: str, tmp_path: Path) -> None:
    config = build_case(tmp_path, case)
    proc = subprocess.run(
        [str(L3TUI), "validate", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 1
    lines = [line.removeprefix(f"{config}{os.sep}") for line in proc.stderr.splitlines()]
    expected = expected_lines(case)
    assert lines == [*expected, f"l3tui: {_error_count(expected)} error(s) in config"]


def test_billion_laughs_fails_fast_without_eating_memory(tmp_path: Path) -> None:
    """Measured in a fresh interpreter: peak RSS before and after loading the bomb."""
    config = build_case(tmp_path, "billion_laughs")
    probe = textwrap.dedent(
        """
        import json, sys, time
        from l3tui.config import ConfigError, load_config
        from l3tui.engine.executors.procs import vm_hwm_kib  # not ru_maxrss: holds pytest's
        load_config(sys.argv[2])  # warm up imports (pydantic, croniter) on a valid config
        before = vm_hwm_kib()
        start = time.process_time()  # CPU time: what the bomb costs, however busy the machine
        try:
            load_config(sys.argv[1])
            message = None
        except ConfigError as exc:
            message = [i.message for i in exc.issues]
        elapsed = time.process_time() - start
        after = vm_hwm_kib()
        print(json.dumps({"elapsed": elapsed, "grew_kb": after - before, "message": message}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(config), str(BASE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["message"] and "billion laughs" in result["message"][0]
    assert result["elapsed"] < 0.5  # it took 0.73 s when aliases were expanded to a budget
    assert result["grew_kb"] < 20 * 1024  # 49 MB when expanded to a budget; fully, gigabytes


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    config = build_case(tmp_path, "empty_file")
    (config / "l3-workflows.yml").write_text("workflows: &w\n  loop: *w\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert [rendered(i, config) for i in caught.value.issues] == [
        "l3-workflows.yml:1:12: an alias refers to a node that contains it; "
        "a config cannot be recursive"
    ]


def test_deep_nesting_is_refused_without_recursion_error(tmp_path: Path) -> None:
    config = build_case(tmp_path, "empty_file")
    (config / "l3-workflows.yml").write_text(
        "workflows: " + "[" * 2000 + "]" * 2000 + "\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert [i.message for i in caught.value.issues] == ["YAML nesting is too deep"]
