"""The judged-inputs evidence of a bundle: span coverage, input schema versions, cardinality, drill.

    evidence/span_coverage.json   gatewatch.processors.span_coverage report (per service vs target)
    evidence/input_schemas.json   gatewatch.processors.input_schemas report (schema per input read)
    evidence/cardinality.json     gatewatch.processors.cardinality report over the judged signals
    evidence/drill.json           a `gatewatch drill` report (gatewatch.drill/1)

They are computed at export from the inputs, signals and drill run the caller names (not from the
log: signals and inputs are not logged), so what binds them is the manifest signature by the log
key, like include/ files: an edited file fails `verify` by name. Beyond the hash, verify checks
each is well formed: written as the exporter writes it (indent 2, sorted keys) and internally
consistent (coverage = covered/traces and the verdicts follow from the numbers), so a file
re-signed by a holder of the log key still cannot state a pass its own numbers contradict.
"""
from __future__ import annotations

import orjson

from gatewatch.processors import cardinality, input_schemas, span_coverage
from gatewatch.sinks.worm.bundle import BundleError, load_json

EVIDENCE_JSON = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
COVERAGE, SCHEMAS, CARDINALITY, DRILL = ("evidence/span_coverage.json", "evidence/input_schemas.json",
                                         "evidence/cardinality.json", "evidence/drill.json")
DRILL_FORMAT = "gatewatch.drill/1"


def encode(doc: dict) -> bytes:
    return orjson.dumps(doc, option=EVIDENCE_JSON)


def _need(ok: bool, name: str, why: str) -> None:
    if not ok:
        raise BundleError(f"file {name}: {why}")


def _int(v) -> bool:
    return type(v) is int and v >= 0


def check_coverage(doc) -> str:
    n = COVERAGE
    _need(isinstance(doc, dict) and doc.get("format") == span_coverage.FORMAT, n, "not a span coverage report")
    target, services = doc.get("target"), doc.get("services")
    _need(isinstance(target, (int, float)) and 0 <= target <= 1 and isinstance(services, dict), n, "bad target or services")
    essential = doc.get("essential")
    _need(isinstance(essential, dict) and all(isinstance(v, list) and v and all(isinstance(x, str) for x in v)
                                              for v in essential.values()), n, "bad essential span declaration "
          "(each pattern needs at least one span name)")
    failing = []
    for svc, r in sorted(services.items()):
        _need(isinstance(r, dict) and _int(r.get("traces")) and _int(r.get("covered"))
              and 0 < r["traces"] and r["covered"] <= r["traces"], n, f"service {svc}: bad trace counts")
        _need(r.get("coverage") == round(r["covered"] / r["traces"], 6), n, f"service {svc}: coverage is not covered/traces")
        names = span_coverage.essential_for(svc, essential)
        _need((r.get("essential"), r.get("declared")) == (list(names or ()), names is not None), n,
              f"service {svc}: essential spans differ from the declaration")
        ws = r.get("windows")
        _need(isinstance(ws, list) and all(
            isinstance(w, dict) and _int(w.get("traces")) and _int(w.get("covered")) and 0 < w["traces"]
            and w["covered"] <= w["traces"] and w.get("coverage") == round(w["covered"] / w["traces"], 6) for w in ws)
            and sum(w["traces"] for w in ws) <= r["traces"] and sum(w["covered"] for w in ws) <= r["covered"],
            n, f"service {svc}: windows malformed or beyond the service's counts")
        want = ("PASS" if r["coverage"] >= target else "FAIL") if r.get("declared") is True else "UNDECLARED"
        _need(r.get("status") == want, n, f"service {svc}: status {r.get('status')} contradicts coverage and target")
        failing += [svc] if want == "FAIL" else []
    status = span_coverage.overall_status(services, failing)
    _need(doc.get("status") == status and doc.get("failing") == failing, n, "overall status contradicts the services")
    _need(doc.get("traces") == sum(r["traces"] for r in services.values()), n, "trace total differs from the services")
    return (f"span coverage: {status} ({len(services)} services, {doc['traces']} traces, target "
            f"{target * 100:g} %{', failing ' + ', '.join(failing) if failing else ''})")


def check_schemas(doc) -> str:
    n = SCHEMAS
    _need(isinstance(doc, dict) and doc.get("format") == input_schemas.FORMAT and isinstance(doc.get("rows"), list),
          n, "not an input schema report")
    keys = {"service", "input", "schema", "version", "histogram", "records"}
    for row in doc["rows"]:
        _need(isinstance(row, dict) and set(row) == keys and _int(row["records"])
              and all(isinstance(row[k], str) for k in keys - {"records"}), n, "malformed row")
    # each input record is in one row at least and in several only when it carries several schemas
    # (an OTLP export with resources of different schema_urls): max(row) <= records <= sum(rows)
    rows = [r["records"] for r in doc["rows"]]
    _need(_int(doc.get("records")) and max(rows, default=0) <= doc["records"] <= sum(rows), n,
          "record total contradicts the rows")
    source = doc.get("input")
    if source is not None:  # the exporter's own count of what it read, minus records of other topics
        files_ = source.get("files") if isinstance(source, dict) else None
        skipped = source.get("skipped") if isinstance(source, dict) else None
        _need(isinstance(files_, list) and all(isinstance(f, dict) and _int(f.get("records")) for f in files_)
              and isinstance(skipped, dict) and _int(skipped.get("not_an_input_topic", 0)), n, "malformed input")
        _need(sum(f["records"] for f in files_) - skipped.get("not_an_input_topic", 0) == doc["records"], n,
              "record total differs from the input files' records")
    hist = sorted({r["histogram"] for r in doc["rows"] if r["histogram"] != input_schemas.NO_HISTOGRAM})
    _need(doc.get("histogram_schemas") == hist, n, "histogram_schemas differs from the rows")
    return f"input schemas: {len(doc['rows'])} (service, input, schema) rows over {doc['records']} records; " \
           f"histograms: {', '.join(hist) or 'none'}"


def check_cardinality(doc) -> str:
    n = CARDINALITY
    _need(isinstance(doc, dict) and doc.get("format") == cardinality.FORMAT and isinstance(doc.get("domains"), dict),
          n, "not a cardinality report")
    total, over = 0, []
    for dom, r in doc["domains"].items():
        _need(isinstance(r, dict) and _int(r.get("series")) and (r.get("budget") is None or _int(r["budget"])),
              n, f"domain {dom}: malformed")
        total += r["series"]
        want = "OK" if r.get("budget") is None or r["series"] <= r["budget"] else "OVER"
        _need(r.get("status") == want, n, f"domain {dom}: status contradicts series and budget")
        over += [dom] if want == "OVER" else []
    g = doc.get("budget_global")
    _need(_int(g) and doc.get("series_active") == total, n, "series_active differs from the domains")
    status = "OVER" if over or total > g else "OK"
    _need(doc.get("status") == status, n, "status contradicts the domains and the global budget")
    return f"cardinality: {status} (series_active={total}, budget_global={g})"


def check_drill(doc) -> str:
    n = DRILL
    _need(isinstance(doc, dict) and doc.get("format") == DRILL_FORMAT and isinstance(doc.get("hooks"), list),
          n, "not a drill report")
    statuses = [h.get("status") if isinstance(h, dict) else None for h in doc["hooks"]]
    _need(all(s in ("PASS", "FAIL") for s in statuses), n, "malformed hook result")
    _need(bool(statuses), n, "no hook was drilled (a drill of nothing proves nothing)")
    n_pass = statuses.count("PASS")
    _need((doc.get("pass"), doc.get("fail"), doc.get("ok")) == (n_pass, len(statuses) - n_pass, n_pass == len(statuses)),
          n, "pass/fail counts contradict the hook results")
    scope = doc.get("subset")
    return (f"drill: {n_pass} PASS, {len(statuses) - n_pass} FAIL (policy {str(doc.get('policy_hash'))[:12]}"
            f"{', subset: ' + str(scope) if scope else ''})")


CHECKS = {COVERAGE: check_coverage, SCHEMAS: check_schemas, CARDINALITY: check_cardinality, DRILL: check_drill}


def check_evidence(files: dict[str, bytes], policy_hash: str | None = None, require: bool = False) -> list[str]:
    """One verify line per evidence file (present: well formed, else BundleError; absent: said so).
    Any other evidence/ file is refused: the verifier would not know what it attests. With the
    bundled policy's hash, a drill must have been run under that policy (else it proves nothing
    about the rules the bundle carries). require: a missing one is a BundleError too."""
    for name in sorted(files):
        if name.startswith("evidence/") and name not in CHECKS:
            raise BundleError(f"file {name}: not a known evidence file")
    lines = []
    for name, check in CHECKS.items():
        if name in files:
            doc = load_json(files, name, EVIDENCE_JSON)
            lines.append(check(doc))
            if require and name == COVERAGE and doc["status"] in ("NO_DATA", "UNDECLARED"):
                raise BundleError(f"file {name}: span coverage {doc['status']}: no declared service was judged "
                                  "(evidence required)")
            if name == DRILL and policy_hash is not None and doc.get("policy_hash") != policy_hash:
                raise BundleError(f"file {DRILL}: drilled policy {str(doc.get('policy_hash'))[:12]}, "
                                  f"the bundled policy is {policy_hash[:12]}")
        elif require:
            raise BundleError(f"file {name}: missing (evidence required)")
        else:
            lines.append(f"{name.split('/')[1].removesuffix('.json').replace('_', ' ')}: not in this bundle")
    return lines


def evidence_docs(files: dict[str, bytes]) -> dict[str, dict]:
    """The evidence documents a bundle holds (for the report), by short name: only those that pass
    their check (so the report's tables can rely on their shape); unreadable or malformed ones left out."""
    out = {}
    for name, check in CHECKS.items():
        try:
            doc = orjson.loads(files[name])
            check(doc)
        except (KeyError, orjson.JSONDecodeError, BundleError):
            continue
        out[name.split("/")[1].removesuffix(".json")] = doc
    return out
