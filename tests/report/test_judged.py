"""The four tables of what was judged: span coverage, input schemas, cardinality, drill (from evidence/)."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gatewatch.sinks.report.build import build_report
from gatewatch.sinks.worm.evidence_files import evidence_docs
from tests.evidence.test_bundle_evidence import CARD, COVERAGE, DRILL, SCHEMAS, _evidence
from tests.report.test_html import render


def test_four_tables_with_verdicts():
    docs = {"span_coverage": COVERAGE, "input_schemas": SCHEMAS, "cardinality": CARD, "drill": DRILL}
    html = render(judged=docs)
    for sid, title in (("span-coverage", "Span coverage"), ("schemas", "Input schema versions"),
                       ("cardinality", "Cardinality vs budgets"), ("drill", "Drill results")):
        assert f'<section id="{sid}"><h2>{title}</h2>' in html
    cov = html[html.index('id="span-coverage"'):html.index('id="schemas"')]
    assert "<td>checkout</td><td class=num>20</td><td class=num>19</td><td class=num>95.00 %</td>" in cov
    assert '<span class="ok">PASS</span>' in cov and "b (1)" in cov
    assert "<td>gauge_sample</td>" in html and "<td>DEC</td><td class=num>1</td><td class=num>2000</td>" in html
    assert "<td>cdc_lag</td><td>hook</td><td>cdc_freeze</td>" in html
    assert render(judged=docs) == html  # same input, same bytes


def test_a_failing_service_and_absent_files_show():
    failing = dict(COVERAGE, services={"checkout": dict(COVERAGE["services"]["checkout"], status="FAIL")})
    html = render(judged={"span_coverage": failing})
    assert '<span class="bad">FAIL</span>' in html
    assert "No drill report in this bundle" in html and "No cardinality report in this bundle" in html


def test_the_bundle_files_reach_the_report(tmp_path):
    from gatewatch.sinks.worm import checkpoint as cp
    from gatewatch.sinks.worm.evidence import build_files, write_bundle
    from gatewatch.streams.runtime.keys import public_keys
    from tests.worm import factory
    keys = factory.keys(tmp_path)
    store = factory.log_with_quorum(str(tmp_path / "w.db"), keys, n_actions=2)
    files = build_files(store, cp.default_policy(keys_path=keys), public_keys(keys), None, (),
                        factory.load_signing_key("log", keys), _evidence())
    store.close()
    write_bundle(files, str(tmp_path / "b.tar.gz"))
    html = build_report(tmp_path / "b.tar.gz", None, tmp_path / "r.html", trusted_keys=keys).read_text()
    assert "EVIDENCE VERIFIED" in html and "span coverage: PASS (1 services, 20 traces, target 95 %)" in html
    assert "No drill report" not in html and "<td>cdc_lag</td>" in html and "<td>gauge_sample</td>" in html
    assert evidence_docs(files)["span_coverage"] == COVERAGE
    assert evidence_docs({"evidence/drill.json": b"{broken"}) == {}


def _bundle_with(tmp_path, evidence: dict[str, bytes]):
    """A bundle whose evidence files are replaced after signing (so it fails verify)."""
    from gatewatch.sinks.worm import checkpoint as cp
    from gatewatch.sinks.worm.evidence import build_files, write_bundle
    from gatewatch.streams.runtime.keys import public_keys
    from tests.worm import factory
    keys = factory.keys(tmp_path)
    store = factory.log_with_quorum(str(tmp_path / "w.db"), keys, n_actions=2)
    files = build_files(store, cp.default_policy(keys_path=keys), public_keys(keys), None, (),
                        factory.load_signing_key("log", keys), _evidence())
    store.close()
    write_bundle({**files, **evidence}, str(tmp_path / "b.tar.gz"))
    return tmp_path / "b.tar.gz", keys


def test_a_bundle_that_fails_verification_reports_exit_1_not_a_crash(tmp_path, capsys):
    """Review finding 8: malformed evidence documents in a bundle that fails verify."""
    import orjson

    from gatewatch.sinks.worm import evidence_files as ef
    from gatewatch.streams.cli.main import main
    bad = {ef.COVERAGE: ef.encode({**COVERAGE, "services": {"a": 1}}),
           ef.SCHEMAS: ef.encode({**SCHEMAS, "rows": [{}]}),
           ef.CARDINALITY: ef.encode({**CARD, "domains": ["x"]}),
           ef.DRILL: orjson.dumps({**DRILL, "hooks": [{"expected": "x"}]})}
    bundle, keys = _bundle_with(tmp_path, bad)
    out = tmp_path / "r.html"
    assert main(["report", "--bundle", str(bundle), "--out", str(out), "--trusted-keys", keys]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not verify" in err[0] and "Traceback" not in err[0]
    html = out.read_text()
    assert "EVIDENCE NOT VERIFIED" in html
    assert "Span coverage not shown: the bundle failed verification." in html and "<td>a</td>" not in html


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=4),
                    max_leaves=15)


def _mangled(base: dict):
    """The document with one field, or one field of its first nested row, replaced by any JSON."""
    def nested(doc, key, value):
        out = dict(doc)
        inner = out.get(key)
        if isinstance(inner, dict) and inner:
            first = next(iter(inner))
            out[key] = {**inner, first: value}
        elif isinstance(inner, list) and inner:
            out[key] = [value, *inner[1:]]
        else:
            out[key] = value
        return out
    return (st.builds(lambda k, v: {**base, k: v}, st.sampled_from(sorted(base)), JSON)
            | st.builds(nested, st.just(base), st.sampled_from(sorted(base)), JSON) | JSON)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_the_judged_tables_render_any_document_shape_never_a_crash(data):
    from gatewatch.sinks.report.judged import judged_sections
    docs = {"span_coverage": data.draw(_mangled(COVERAGE)), "input_schemas": data.draw(_mangled(SCHEMAS)),
            "cardinality": data.draw(_mangled(CARD)), "drill": data.draw(_mangled(DRILL))}
    assert len(judged_sections(docs)) == 4


def test_the_coverage_target_shows_as_written():
    html = render(judged={"span_coverage": COVERAGE})
    assert "<td class=num>95.00 %</td><td class=num>95 %</td>" in html
