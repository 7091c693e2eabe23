"""The seed design's three YAML blocks, copied byte for byte into tests/seed/, against the
loader, the CLI and the bundled config/."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from l3tui.config import ConfigError, load_config

TESTS = Path(__file__).resolve().parents[1]
SEED = TESTS / "seed"
BUNDLED = TESTS.parent / "config"
L3TUI = Path(sys.executable).parent / "l3tui"
SEED_FILES = ("l3-workflows.yml", "l3-scheduling.yml", "l3-dashboard.yml")

# The seed's daily job names this workflow but the seed never defines it.
SYSTEM_HEALTH_CHECK = """
  system_health_check:
    name: "فحص صحة النظام"
    tasks:
      - id: "check_disk"
        name: "فحص القرص"
        type: "system"
        action: "health_check"
        parameters: {checks: [disk]}
"""


def seed_text(name: str) -> str:
    return (SEED / name).read_text(encoding="utf-8")


def seed_dir(root: Path, *, with_health_check: bool) -> Path:
    """The seed's three files verbatim, the bundled actions, and optionally the workflow
    the seed's scheduling refers to, appended so the seed text stays a verbatim prefix."""
    root.mkdir()
    for name in SEED_FILES:
        shutil.copyfile(SEED / name, root / name)
    shutil.copyfile(BUNDLED / "l3-actions.yml", root / "l3-actions.yml")
    if with_health_check:
        with (root / "l3-workflows.yml").open("a", encoding="utf-8") as fh:
            fh.write(SYSTEM_HEALTH_CHECK)
    return root


def test_seed_copies_are_the_seed_blocks() -> None:
    """Each copy is one YAML block whose first line names the file it is."""
    for name in SEED_FILES:
        text = seed_text(name)
        assert text.splitlines()[0] == f"# .kiro/config/{name}"
        assert text.endswith("\n") and "```" not in text


def test_seed_config_loads_and_validates(tmp_path: Path) -> None:
    config_dir = seed_dir(tmp_path / "seed", with_health_check=True)
    assert (
        (config_dir / "l3-workflows.yml")
        .read_text(encoding="utf-8")
        .startswith(seed_text("l3-workflows.yml"))
    )
    config = load_config(config_dir)

    flutter = config.workflows.workflows["flutter_optimization"]
    assert [t.id for t in flutter.tasks] == ["analyze_performance", "optimize_widgets", "run_tests"]
    assert [t.timeout for t in flutter.tasks] == [300000, 600000, 900000]
    assert flutter.task("run_tests").dependencies == ["optimize_widgets"]
    riverpod = config.workflows.workflows["riverpod_optimization"]
    # The seed gives riverpod no version and no timeouts: defaults fill them.
    assert riverpod.version == "1.0.0"
    assert [t.timeout for t in riverpod.tasks] == [None, None]
    assert riverpod.task("optimize_rebuilds").dependencies == ["analyze_providers"]

    sched = config.scheduling
    assert sched.priorities == {"critical": 10, "high": 8, "medium": 5, "low": 3, "background": 1}
    assert sched.resource_limits.max_concurrent_tasks == 20
    assert [(j.id, j.cron, j.workflow) for j in sched.recurring_tasks] == [
        ("daily_health_check", "0 2 * * *", "system_health_check"),
        ("weekly_optimization", "0 3 * * 0", "flutter_optimization"),
    ]
    dashboards = config.dashboard.dashboards
    assert [w.type for w in dashboards["main"].widgets] == [
        "metrics_chart", "task_queue", "workflow_status",
    ]  # fmt: skip
    assert dashboards["main"].refresh_interval == 30000
    assert [w.type for w in dashboards["performance"].widgets] == ["performance_metrics"]
    assert [w for w in config.warnings if w.severity == "error"] == []

    proc = subprocess.run(
        [str(L3TUI), "validate", "--config", str(config_dir)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "OK: configuration is valid" in proc.stdout


UNDEFINED_HEALTH_CHECK = (
    "l3-scheduling.yml:19:17: scheduling.recurring_tasks[daily_health_check].workflow: "
    "workflow 'system_health_check' is not defined in l3-workflows.yml"
)


def test_seed_scheduling_alone_names_the_undefined_workflow(tmp_path: Path) -> None:
    config_dir = seed_dir(tmp_path / "seed", with_health_check=False)
    line = seed_text("l3-scheduling.yml").splitlines()[18]
    assert line == '      workflow: "system_health_check"'  # line 19, value at column 17

    with pytest.raises(ConfigError) as caught:
        load_config(config_dir)
    [issue] = caught.value.issues
    assert (issue.file.name, issue.line, issue.col) == ("l3-scheduling.yml", 19, 17)
    assert issue.key == "scheduling.recurring_tasks[daily_health_check].workflow"
    assert str(issue) == f"{config_dir}/{UNDEFINED_HEALTH_CHECK}"

    proc = subprocess.run(
        [str(L3TUI), "validate", "--config", str(config_dir)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"{config_dir}/{UNDEFINED_HEALTH_CHECK}",
        "l3tui: 1 error(s) in config",
    ]


def contained(seed: Any, bundled: Any, where: str = "") -> list[str]:
    """Where `seed` is not found in `bundled`: mappings by key, lists as prefixes."""
    if isinstance(seed, dict):
        if not isinstance(bundled, dict):
            return [f"{where}: not a mapping in the bundled file"]
        missing = [f"{where}.{k}: missing" for k in seed if k not in bundled]
        return missing + [
            problem
            for k, v in seed.items()
            if k in bundled
            for problem in contained(v, bundled[k], f"{where}.{k}")
        ]
    if isinstance(seed, list):
        if not isinstance(bundled, list) or len(bundled) < len(seed):
            return [f"{where}: the seed's list is not a prefix of the bundled one"]
        return [p for i, v in enumerate(seed) for p in contained(v, bundled[i], f"{where}[{i}]")]
    return [] if seed == bundled else [f"{where}: seed has {seed!r}, bundled {bundled!r}"]


@pytest.mark.parametrize("name", SEED_FILES)
def test_bundled_config_holds_every_seed_key_and_value(name: str) -> None:
    seed = yaml.safe_load(seed_text(name))
    bundled = yaml.safe_load((BUNDLED / name).read_text(encoding="utf-8"))
    assert contained(seed, bundled) == []


def test_contained_notices_a_changed_value() -> None:
    seed = {"a": [{"x": 1}, {"y": "نص"}]}
    assert contained(seed, {"a": [{"x": 1}, {"y": "نص"}, {"z": 3}], "b": 2}) == []
    assert contained(seed, {"a": [{"x": 1}, {"y": "نصّ"}]}) == [
        ".a[1].y: seed has 'نص', bundled 'نصّ'"
    ]
    assert contained(seed, {"a": [{"x": 1}]}) == [
        ".a: the seed's list is not a prefix of the bundled one"
    ]


@pytest.mark.parametrize("name", ["l3-workflows.yml", "l3-scheduling.yml"])
def test_bundled_file_starts_with_the_seed_text(name: str) -> None:
    assert (BUNDLED / name).read_text(encoding="utf-8").startswith(seed_text(name))


def test_bundled_dashboard_keeps_the_seed_text_around_its_extra_widgets() -> None:
    """The main dashboard's widget list goes on after the seed's three widgets; apart from
    that insertion the seed's dashboard text is in the bundled file as written."""
    seed = seed_text("l3-dashboard.yml")
    head, tail = seed.split("  performance:\n")
    tail = "  performance:\n" + tail
    bundled = (BUNDLED / "l3-dashboard.yml").read_text(encoding="utf-8")
    assert head.rstrip("\n").endswith("show_recent: 5")
    assert bundled.startswith(head)
    assert bundled.find(tail) > len(head)
