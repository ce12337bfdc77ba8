"""One import name (issue 18): every package folder of the design is installed under `gatewatch.`,
and nothing else is listed as a package, so a user's site-packages gets only `gatewatch`."""
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"streams": "gatewatch.streams", "processors": "gatewatch.processors", "sinks": "gatewatch.sinks",
           "schemas": "gatewatch.schemas", "configs": "gatewatch.configs", "gatewatch": "gatewatch"}


def test_every_package_folder_is_installed_under_gatewatch():
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(tool["packages"])
    assert all(p == "gatewatch" or p.startswith("gatewatch.") for p in listed)
    assert tool["package-dir"] == {v: k for k, v in FOLDERS.items()}
    found = set()
    for folder, name in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *rel)))
    assert found == listed, f"not listed: {sorted(found - listed)}; listed without a folder: {sorted(listed - found)}"
