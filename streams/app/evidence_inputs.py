"""The evidence/ files of `gatewatch evidence`: computed at export from the streams the gate judged.

- inputs: kcat -J envelopes (`gatewatch tail <input>`, kcat -C -J) of the input topics, OTLP
  traces included: each record's schema is counted (gatewatch.processors.input_schemas) and the
  OTLP trace records feed span coverage (gatewatch.processors.span_coverage);
- signals: the signals file the report reads too (`gatewatch tail signals`): the cardinality
  report against the seed budgets (gatewatch.processors.cardinality);
- drill: a `gatewatch drill --out` report, checked and carried as is.
Essential spans and the coverage target come from an evidence config (configs/evidence.yml):

    evidence:
      coverage_target: 0.95
      essential_spans: {"checkout*": [checkout.validate, ...]}
"""
from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Iterator

import orjson

from gatewatch.processors.input_schemas import schema_report, schemas_of
from gatewatch.processors.safe_yaml import SafeYamlError
from gatewatch.processors.safe_yaml import load as yaml_load
from gatewatch.processors.span_coverage import DEFAULT_TARGET, CoverageMeter
from gatewatch.sinks.worm import evidence_files as ef
from gatewatch.sinks.worm.bundle import BundleError
from gatewatch.streams.app.kcat_files import value_of
from gatewatch.streams.app.replay import logical_name, read_envelopes
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.errors import GatewatchError
from gatewatch.streams.runtime.paths import config_path

INPUT_NAMES = ("metrics", "rum", "cdc", "otlp", "otlp_metrics")
GATEWATCH_SCHEMAS = ("request_sample", "gauge_sample", "web_vitals", "debezium_envelope")


def load_config(path: str | None) -> tuple[dict[str, list[str]], float]:
    """(essential spans by service pattern, coverage target) from an evidence config file."""
    p = Path(path) if path else config_path("evidence.yml")
    try:
        doc = yaml_load(p.read_text(encoding="utf-8"), str(p)) or {}
    except (OSError, UnicodeDecodeError, SafeYamlError) as e:
        raise GatewatchError(f"evidence config {p}: {e}") from None
    ev = doc.get("evidence") if isinstance(doc, dict) else None
    essential = ev.get("essential_spans") if isinstance(ev, dict) else None
    target = ev.get("coverage_target", DEFAULT_TARGET) if isinstance(ev, dict) else None
    if not isinstance(essential, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(n, str) for n in v) for k, v in essential.items()):
        raise GatewatchError(f"evidence config {p}: evidence.essential_spans must map service patterns to span name lists")
    empty = [k for k, v in essential.items() if not v]
    if empty:  # every trace would cover an empty list: a 100 % PASS that judged nothing
        raise GatewatchError(f"evidence config {p}: evidence.essential_spans[{empty[0]!r}] is empty "
                             "(list at least one span name, or leave the pattern out to report UNDECLARED)")
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0 <= target <= 1:
        raise GatewatchError(f"evidence config {p}: evidence.coverage_target must be a share in [0, 1]")
    return essential, float(target)


def schema_versions() -> dict[str, str]:
    """gatewatch's own schemas versioned by content: sha256 (12 hex) of schemas/<name>.json."""
    from gatewatch.schemas import __file__ as schemas_init
    d = Path(schemas_init).parent
    return {n: "sha256:" + hashlib.sha256((d / f"{n}.json").read_bytes()).hexdigest()[:12] for n in GATEWATCH_SCHEMAS}


def _logical(full: str | None) -> str | None:
    if not full:
        return None
    for lg, t in topics.collector_topics().items():
        if full == t:
            return lg
    name = logical_name(full, topics.prefix())
    return name if name in INPUT_NAMES else None


def _hashed(f, digest) -> Iterator[bytes]:
    for line in f:
        digest.update(line)
        yield line


def input_docs(paths: list[str], essential: dict[str, list[str]], target: float) -> tuple[dict, dict]:
    """(span coverage report, input schema report) over the input envelopes in paths. Each names the
    files it read with their sha256 and record count: same files, same reports (recomputable)."""
    meter, counts, bad, read, judged = CoverageMeter(), Counter(), Counter(), [], 0
    for path in paths:
        digest, n = hashlib.sha256(), 0
        try:
            with open(path, "rb") as f:
                for env in read_envelopes(_hashed(f, digest), bad):
                    n += 1
                    lg = _logical(env.topic)
                    if lg is None:
                        bad["not_an_input_topic"] += 1
                        continue
                    value = value_of(env)
                    if value is None and env.payload_b64 is not None:
                        bad["bad_payload_b64"] += 1
                        continue
                    key = None if env.key is None else env.key.encode()
                    judged += 1
                    counts.update(set(schemas_of(lg, value, key)))  # rows count records, not resources
                    if lg == "otlp":
                        meter.add_record(value, key)
        except OSError as e:
            raise GatewatchError(f"inputs {path}: {e.strerror}") from None
        read.append({"file": Path(path).name, "sha256": digest.hexdigest(), "records": n})
    source = {"files": read, "skipped": dict(sorted(bad.items()))}
    cov = meter.report(essential, target)
    cov["input"] = source
    sch = schema_report(dict(counts), schema_versions(), records=judged)
    sch["input"] = source
    return cov, sch


def cardinality_doc(signals_path: str) -> dict:
    """The cardinality report (seed budgets) over the signals file's signal records."""
    from gatewatch.processors.cardinality import count_series, report
    from gatewatch.sinks.report.build import read_signals
    try:
        sigs = read_signals(signals_path)
    except OSError as e:
        raise GatewatchError(f"signals {signals_path}: {e.strerror}") from None
    if not sigs:  # as `gatewatch cardinality`: an all-zero table would read "OK" in the bundle
        raise GatewatchError(f"signals {signals_path}: no signal records (replay output or gw.signals envelopes "
                             "expected)")
    rep = report(count_series(sigs))
    digest = hashlib.sha256()
    with open(signals_path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    rep["input"] = {"file": Path(signals_path).name, "sha256": digest.hexdigest(), "signals": len(sigs)}
    return rep


def drill_doc(path: str) -> dict:
    try:
        doc = orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError) as e:
        raise GatewatchError(f"drill {path}: not a readable drill report ({e})") from None
    try:
        ef.check_drill(doc)
    except BundleError as e:
        raise GatewatchError(f"drill {path}: {str(e).split(': ', 1)[-1]}") from None
    return doc


def evidence_files(inputs: list[str], signals: str | None, drill: str | None, config: str | None) -> dict[str, bytes]:
    """The evidence/ files for build_files: only those whose source was given."""
    out: dict[str, bytes] = {}
    if inputs:
        cov, sch = input_docs(inputs, *load_config(config))
        out[ef.COVERAGE], out[ef.SCHEMAS] = ef.encode(cov), ef.encode(sch)
    if signals:
        out[ef.CARDINALITY] = ef.encode(cardinality_doc(signals))
    if drill:
        out[ef.DRILL] = ef.encode(drill_doc(drill))
    return out
