"""Policy files on disk -> a composed Policy (processors.policy does the composing, pure).

A directory holds project.yml, env.yml, then every other *.yml / *.yaml in sorted order (later
wins); services/*.yml are per-service overlays (processors.policy.overlays). The quality policy (trajectories) is one YAML file, configs/quality.yml by default.
"""
from __future__ import annotations

from pathlib import Path

from gatewatch.processors import safe_yaml
from gatewatch.processors.policy import Policy, PolicyError
from gatewatch.processors.policy import compose as compose_layers
from gatewatch.processors.policy.overlays import Overlay, check_overlay, selector_patterns
from gatewatch.processors.quality import CyclePolicy
from gatewatch.streams.runtime.errors import GatewatchError
from gatewatch.streams.runtime.paths import config_path

FIRST = ("project.yml", "env.yml")
BUILTIN_NAME = "<builtin>"
_BUILTIN: list[str] = []


def builtin_layer() -> tuple[str, str]:
    """(name, text) of the built-in layer, configs/builtin.yml, read once."""
    if not _BUILTIN:
        _BUILTIN.append(config_path("builtin.yml").read_text(encoding="utf-8"))
    return BUILTIN_NAME, _BUILTIN[0]


def compose(sources: list[tuple[str, str]]) -> Policy:
    """Policy files (name, YAML text), in precedence order, over the built-in layer."""
    return compose_layers(sources, builtin_layer())


def policy_files(path: str | Path) -> list[Path]:
    d = Path(path)
    if not d.is_dir():
        where = "" if d.is_absolute() else f" (under {Path.cwd()})"
        raise GatewatchError(f"policy directory not found: {d}{where}; name the one to use "
                             f"(the default policy gatewatch ships is in {config_path('policies')})")
    first = [d / n for n in FIRST if (d / n).is_file()]
    rest = sorted(p for p in d.iterdir()
                  if p.is_file() and p.suffix in (".yml", ".yaml") and p.name not in FIRST)
    files = first + rest
    if not files:
        raise GatewatchError(f"no policy files (*.yml) in {d}")
    return files


def _read(p: Path, name: str) -> tuple[str, str]:
    try:
        return name, p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PolicyError(name, None, f"cannot read: {e}") from None


def load_policy_dir(path: str | Path) -> Policy:
    """Read and compose a policy directory, with its per-service overlays (services/*.yml,
    processors.policy.overlays) on `.overlays`. Raises PolicyError (a ValueError) on a bad file."""
    sources = [_read(p, p.name) for p in policy_files(path)]
    base = compose(sources)
    if "selector" in base.doc:
        raise PolicyError(base.origins["selector"].file, base.origins["selector"].line,
                          "`selector` belongs in an overlay under services/, not in the base files")
    d = Path(path) / "services"
    if not d.is_dir():
        return base
    n_first = sum(1 for name, _ in sources if name in FIRST)
    overlays = []
    for p in sorted(q for q in d.iterdir() if q.is_file() and q.suffix in (".yml", ".yaml")):
        layer = _read(p, f"services/{p.name}")
        pol = compose(sources[:n_first] + [layer] + sources[n_first:])
        ov = Overlay(layer[0], selector_patterns(layer[0], pol.doc), pol)
        check_overlay(base, ov)
        overlays.append(ov)
    base.overlays = tuple(overlays)
    return base


def reload_policy(path: str | Path, current: Policy | None) -> tuple[Policy | None, str | None]:
    """For running workers: (new policy, None), or (current, one-line reason) when the
    directory is refused, so the worker keeps the last good policy."""
    try:
        return load_policy_dir(path), None
    except (PolicyError, GatewatchError) as e:
        return current, str(e)


def load_policy_or_fail(path) -> Policy:
    """load_policy_dir with a refusal as a one-line GatewatchError (CLI and worker start)."""
    try:
        return load_policy_dir(path)
    except PolicyError as e:
        raise GatewatchError(f"policy refused: {e}") from None



DEFAULT_QUALITY_POLICY = config_path("quality.yml")


def load_quality_policy(path: str | Path | None) -> CyclePolicy:
    p = Path(path) if path else DEFAULT_QUALITY_POLICY
    try:
        doc = safe_yaml.load(p.read_text(), str(p)) if p.exists() else None
    except safe_yaml.SafeYamlError as e:
        raise GatewatchError(f"policy {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise GatewatchError(f"policy {p}: {e}".splitlines()[0]) from None
    if path and not p.exists():
        raise GatewatchError(f"policy {p}: no such file")
    try:
        return CyclePolicy.from_dict(doc)
    except (ValueError, TypeError) as e:
        raise GatewatchError(f"policy {p}: {e}") from None


class PolicyWatch:
    """Whether a policy directory changed since the last look (file names and mtimes, overlays
    under services/ included): what running workers poll to reload their policy."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._seen = self._stamp()

    def _stamp(self) -> list:
        try:
            return sorted((str(p.relative_to(self.path)), p.stat().st_mtime_ns)
                          for p in self.path.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
        except OSError:
            return []

    def changed(self) -> bool:
        now = self._stamp()
        if now == self._seen:
            return False
        self._seen = now
        return True
