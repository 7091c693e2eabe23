"""Configuration: the four YAML files as validated pydantic models, with precise errors."""

from l3tui.config.errors import ConfigError, ConfigIssue
from l3tui.config.loader import Config, load_config, resolve_config_dir, resolve_state_dir

__all__ = [
    "Config", "ConfigError", "ConfigIssue", "load_config", "resolve_config_dir",
    "resolve_state_dir",
]  # fmt: skip
