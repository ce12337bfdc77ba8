"""The trajectory quality policy (configs/quality.yml): linker, meter, per-tenant features and
guardrails. Parsed and validated here; processors.quality runs it."""
from __future__ import annotations

from dataclasses import dataclass, field

from gatewatch.processors.canonical import content_id
from gatewatch.processors.trajectory import LinkerPolicy

COMPONENTS = ("mass", "persistence", "verification")


# --- policy --------------------------------------------------------------------------------------
def _percentile(v) -> float:
    s = str(v).strip().lower()
    s = s[1:] if s.startswith("p") else s
    q = float(s)
    q = q / 100 if q > 1 else q
    if not 0 < q < 1:
        raise ValueError(f"quality_meter.percentile_target {v!r} is not in (p0, p100)")
    return q


@dataclass(frozen=True)
class MeterPolicy:
    weights: tuple[tuple[str, float], ...] = (("mass", 0.4), ("persistence", 0.3), ("verification", 0.3))
    percentile: float = 0.96
    min_score: float = 60.0
    min_samples: int = 50
    mass_half: float = 8.0
    persistence_half_ms: int = 2 * 3_600_000
    signal_step_ms: int = 60_000            # 0 = no trajectory_quality_* signals

    @classmethod
    def from_dict(cls, d: dict | None) -> "MeterPolicy":
        from gatewatch.processors.timefmt import parse_duration_ms
        d = dict(d or {})
        unknown = set(d) - {"weights", "percentile_target", "min_score", "min_samples", "mass_half",
                            "persistence_half", "signal_step"}
        if unknown:
            raise ValueError(f"quality_meter: unknown keys {sorted(unknown)}")
        w = dict(cls.weights)
        w.update(d.get("weights") or {})
        if set(w) != set(COMPONENTS) or any(float(x) < 0 for x in w.values()) or sum(w.values()) <= 0:
            raise ValueError("quality_meter.weights: mass, persistence, verification >= 0, sum > 0")
        p = cls(weights=tuple((k, float(w[k])) for k in COMPONENTS),
                percentile=_percentile(d.get("percentile_target", "p96")),
                min_score=float(d.get("min_score", 60)),
                min_samples=int(d.get("min_samples", 50)),
                mass_half=float(d.get("mass_half", 8)),
                persistence_half_ms=parse_duration_ms(d.get("persistence_half", "2h")),
                signal_step_ms=parse_duration_ms(d.get("signal_step", "60s") or 0))
        if p.mass_half <= 0 or p.persistence_half_ms <= 0 or p.min_samples < 1 or p.signal_step_ms < 0:
            raise ValueError("quality_meter: mass_half, persistence_half > 0, min_samples >= 1, signal_step >= 0")
        return p

    def to_dict(self) -> dict:
        from gatewatch.processors.timefmt import format_duration
        return {"weights": dict(self.weights), "percentile_target": f"p{self.percentile * 100:g}",
                "min_score": self.min_score, "min_samples": self.min_samples, "mass_half": self.mass_half,
                "persistence_half": format_duration(self.persistence_half_ms),
                "signal_step": format_duration(self.signal_step_ms)}


@dataclass(frozen=True)
class TenantSettings:
    trajectory: bool = True
    diamond: bool = True
    max_per_minute: int | None = 2000   # None or 0 = unlimited
    overflow_action: str = "shed_derived"


def _settings(base: TenantSettings, d: dict, where: str) -> TenantSettings:
    unknown = set(d) - {"features", "derived_events_perf"}
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    f = d.get("features") or {}
    g = d.get("derived_events_perf") or {}
    if set(f) - {"trajectory", "diamond"} or set(g) - {"max_per_minute", "overflow_action"}:
        raise ValueError(f"{where}: features takes trajectory/diamond; derived_events_perf takes "
                         "max_per_minute/overflow_action")
    s = TenantSettings(trajectory=bool(f.get("trajectory", base.trajectory)),
                       diamond=bool(f.get("diamond", base.diamond)),
                       max_per_minute=g.get("max_per_minute", base.max_per_minute),
                       overflow_action=g.get("overflow_action", base.overflow_action))
    if s.overflow_action != "shed_derived":
        raise ValueError(f"{where}.derived_events_perf.overflow_action: only 'shed_derived' is supported "
                         "(slow_ingest / reject_429 belong to a gateway)")
    if s.max_per_minute is not None and (not isinstance(s.max_per_minute, int) or s.max_per_minute < 0):
        raise ValueError(f"{where}.derived_events_perf.max_per_minute must be an integer >= 0")
    return s


@dataclass(frozen=True)
class CyclePolicy:
    """The composed trajectory/quality policy (configs/quality.yml)."""
    linker: LinkerPolicy = field(default_factory=LinkerPolicy)
    meter: MeterPolicy = field(default_factory=MeterPolicy)
    defaults: TenantSettings = field(default_factory=TenantSettings)
    tenants: tuple[tuple[str, TenantSettings], ...] = ()

    @classmethod
    def from_dict(cls, d: dict | None) -> "CyclePolicy":
        if d is not None and not isinstance(d, dict):
            raise ValueError(f"must be a mapping of sections (trajectory_linker, quality_meter, ...), "
                             f"not {type(d).__name__}")
        d = dict(d or {})
        unknown = set(d) - {"trajectory_linker", "quality_meter", "features", "derived_events_perf", "tenants"}
        if unknown:
            raise ValueError(f"policy: unknown keys {sorted(unknown)}")
        defaults = _settings(TenantSettings(), {k: d[k] for k in ("features", "derived_events_perf") if k in d},
                             "policy")
        tenants = tuple(sorted((str(t), _settings(defaults, v or {}, f"tenants.{t}"))
                               for t, v in (d.get("tenants") or {}).items()))
        return cls(LinkerPolicy.from_dict(d.get("trajectory_linker")), MeterPolicy.from_dict(d.get("quality_meter")),
                   defaults, tenants)

    def to_dict(self) -> dict:
        def s(t: TenantSettings) -> dict:
            return {"features": {"trajectory": t.trajectory, "diamond": t.diamond},
                    "derived_events_perf": {"max_per_minute": t.max_per_minute, "overflow_action": t.overflow_action}}
        out = {"trajectory_linker": self.linker.to_dict(), "quality_meter": self.meter.to_dict(), **s(self.defaults)}
        out["tenants"] = {name: s(t) for name, t in self.tenants}
        return out

    def policy_hash(self) -> str:
        return content_id(self.to_dict())


# --- score ---------------------------------------------------------------------------------------
