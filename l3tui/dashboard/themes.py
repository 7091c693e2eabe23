"""The console's look: where `themes/` is, the colour themes in it (dark, light, ansi as
TOML files of Textual theme fields), and which one `--theme auto` picks for a terminal.
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from textual.theme import Theme

from l3tui.errors import UsageError

ThemeChoice = Literal["auto", "dark", "light", "ansi"]
THEME_NAMES = {"dark": "l3-dark", "light": "l3-light", "ansi": "l3-ansi"}


def themes_dir(env: Mapping[str, str] | None = None) -> Path:
    """`$L3TUI_THEMES`, else `themes/` of the repository checkout, else where an installed
    wheel put it (`<prefix>/share/l3tui/themes`)."""
    env = os.environ if env is None else env
    if env.get("L3TUI_THEMES"):
        return Path(env["L3TUI_THEMES"]).expanduser()
    checkout = Path(__file__).resolve().parents[2] / "themes"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "l3tui" / "themes"


def load_themes(directory: Path | None = None) -> list[Theme]:
    """The colour themes in `directory` (dark.toml, light.toml, ansi.toml)."""
    directory = directory or themes_dir()
    themes = []
    for choice in ("dark", "light", "ansi"):
        path = directory / f"{choice}.toml"
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(f"theme file missing: {path} (set L3TUI_THEMES to the themes "
                             "directory)") from None  # fmt: skip
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise UsageError(f"{path}: {exc}") from None
        variables = {str(k): str(v) for k, v in data.pop("variables", {}).items()}
        try:
            themes.append(Theme(**data, variables=variables))
        except TypeError as exc:
            raise UsageError(f"{path}: {exc}") from None
    return themes


def pick_theme(choice: ThemeChoice, env: Mapping[str, str] | None = None) -> str:
    """Theme name for `--theme`: auto is ansi unless the terminal says it has truecolor."""
    env = os.environ if env is None else env
    if choice != "auto":
        return THEME_NAMES[choice]
    if env.get("TERM") == "linux":
        return THEME_NAMES["ansi"]
    if env.get("COLORTERM", "").lower() not in ("truecolor", "24bit"):
        return THEME_NAMES["ansi"]
    return THEME_NAMES["dark"]
