"""Where the installed data lives: the default configs (policies, scenarios, quality, executor)."""
from __future__ import annotations

from pathlib import Path

import gatewatch.configs

CONFIG_DIR = Path(gatewatch.configs.__file__).resolve().parent


def config_path(*parts: str) -> Path:
    """A file or folder under configs/, e.g. config_path("policies")."""
    return CONFIG_DIR.joinpath(*parts)
