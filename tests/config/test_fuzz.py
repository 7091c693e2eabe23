"""Whatever is in l3-workflows.yml, `load_config` returns a Config or raises ConfigError:
never another exception (which the CLI would turn into an internal error)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l3tui.config import Config, ConfigError, load_config

BASE = Path(__file__).resolve().parents[1] / "data" / "config" / "_base"
BASE_WORKFLOWS = (BASE / "l3-workflows.yml").read_text(encoding="utf-8")

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Keys and values the schema knows, so generated documents get past the YAML layer and
# into validation and the cross-file checks.
KEYS = st.sampled_from(
    [
        "workflows", "templates", "tasks", "id", "name", "action", "dependencies", "timeout",
        "retries", "params", "parameters", "conditions", "upstream", "resources", "pools",
        "builder", "priority", "triggers", "after", "cron", "type", "target", "build", "fetch",
        "compile", "noop", "health_check", "checks", "default", "required", "<<", "أ",
    ]
)  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=12)
    | st.sampled_from(["${target}", "${x", "fetch", "build", "high", "0 2 * * *", "5m", "نص"])
)
DOCS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=25,
)


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz") / "config"
    shutil.copytree(BASE, root)
    return root


def load_or_config_error(config_dir: Path, data: bytes) -> Config | ConfigError:
    (config_dir / "l3-workflows.yml").write_bytes(data)
    try:
        return load_config(config_dir)
    except ConfigError as exc:
        assert exc.issues, "a ConfigError must say what is wrong"
        for issue in exc.issues:
            assert issue.line >= 1 and issue.col >= 1
            assert "\n" not in str(issue)
        return exc


@SETTINGS
@given(text=st.text())
def test_any_text_loads_or_is_a_config_error(config_dir: Path, text: str) -> None:
    load_or_config_error(config_dir, text.encode("utf-8", errors="surrogatepass"))


@SETTINGS
@given(data=st.binary())
def test_any_bytes_load_or_are_a_config_error(config_dir: Path, data: bytes) -> None:
    load_or_config_error(config_dir, data)


@SETTINGS
@given(doc=st.dictionaries(KEYS, DOCS, max_size=4))
def test_any_schema_like_document_loads_or_is_a_config_error(
    config_dir: Path, doc: dict[str, Any]
) -> None:
    text = yaml.safe_dump(doc, allow_unicode=True)
    load_or_config_error(config_dir, text.encode("utf-8", errors="surrogatepass"))


@SETTINGS
@given(
    start=st.integers(0, len(BASE_WORKFLOWS)),
    length=st.integers(0, 40),
    insert=st.text(alphabet=st.sampled_from(list(" \n\t:-[]{}*&!#'\"$,ab1")), max_size=8),
)
def test_any_edit_of_a_valid_file_loads_or_is_a_config_error(
    config_dir: Path, start: int, length: int, insert: str
) -> None:
    text = BASE_WORKFLOWS[:start] + insert + BASE_WORKFLOWS[start + length :]
    load_or_config_error(config_dir, text.encode("utf-8"))
