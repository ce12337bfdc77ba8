"""The report's I/O: read the evidence bundle (verified with gatewatch.sinks.worm.evidence) and a signals file,
render with gatewatch.sinks.report.html, write the page atomically.

Order with `gatewatch evidence --include`: a bundle cannot contain a report of itself (the report
shows the bundle's sha256), so the report is built from an exported bundle and the bundle is then
re-exported with `--include report.html`. The second bundle has the same log entries, checkpoint and
root (INV1 holds for both); only its file list and sha256 differ. The report names the bundle it was
built from; `gatewatch verify` on the final bundle checks the included report's hash like any file.
"""
from __future__ import annotations

import base64
import os
from pathlib import Path

import orjson

from gatewatch.sinks.report.html import render_report
from gatewatch.sinks.report.series import thresholds_from_rules
from gatewatch.streams.runtime.errors import GatewatchError

# ---------------------------------------------------------------- signals file

def _signals_of(value) -> list[dict]:
    if isinstance(value, dict):
        if isinstance(value.get("signals"), list):  # a batch
            return [s for s in value["signals"] if isinstance(s, dict) and "name" in s]
        if "name" in value and "value" in value:
            return [value]
    return []


def parse_signal_line(line: bytes) -> list[dict]:
    """Signal records in one NDJSON line: replay/tail output {"topic","key","value"}, a kcat -J
    envelope {"topic","payload": "<json>"}, a batch {"signals": [...]}, or a bare signal record."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(doc, dict):
        return []
    if "topic" in doc and ("value" in doc or "payload" in doc):
        if not str(doc["topic"]).endswith("signals"):
            return []
        value = doc.get("value", doc.get("payload"))
        if isinstance(value, str):
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                return []
        return _signals_of(value)
    return _signals_of(doc)


def read_signals(path: str | os.PathLike) -> list[dict]:
    out: list[dict] = []
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                out.extend(parse_signal_line(line))
    return out


# ---------------------------------------------------------------- bundle

def bundle_records(files: dict[str, bytes]) -> tuple[list[dict], list[dict]]:
    """(actions, receipts) logged in the bundle's entries.ndjson, in log order."""
    from gatewatch.sinks.worm.store import is_action, is_receipt
    actions, receipts = [], []
    for line in files.get("entries.ndjson", b"").splitlines():
        try:
            e = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        v, topic = e.get("value") if isinstance(e, dict) else None, str(e.get("topic", "")) if isinstance(e, dict) else ""
        if not isinstance(v, dict):
            continue
        if is_receipt(v):  # by shape first, as verify classifies them
            receipts.append(v)
        elif is_action(topic, v):
            actions.append(v)
    return actions, receipts


def bundle_policy(files: dict[str, bytes]) -> tuple[str | None, list[dict], str]:
    """(composed policy hash, threshold lines of its rules, gate cohort) from the bundled policies/."""
    from gatewatch.processors.policy.grammar import conds
    from gatewatch.streams.runtime.policy_files import FIRST, compose
    names = {k[len("policies/"):]: v for k, v in files.items()
             if k.startswith("policies/") and "/" not in k[len("policies/"):] and k.endswith((".yml", ".yaml"))}
    recorded = None
    try:
        ph = orjson.loads(files.get("policy_hashes.json", b"null"))
        recorded = ph.get("composed") or (ph["actions"][0] if len(ph.get("actions", [])) == 1 else None)
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
        pass
    if not names:
        return recorded, [], "canary"
    order = [n for n in FIRST if n in names] + sorted(n for n in names if n not in FIRST)
    try:
        policy = compose([(n, names[n].decode("utf-8")) for n in order])
    except Exception:  # noqa: BLE001 - an unparsable policy shows as "no thresholds"; verify names the problem
        return recorded, [], "canary"
    rules = [{"id": r.id, "conds": [{"signal": c.signal, "op": c.op, "threshold": c.threshold, "for_ms": c.for_ms}
                                    for c in conds(r.expr)]} for r in policy.rules]
    return policy.hash, thresholds_from_rules(rules), policy.cohort


def verification_summary(bundle_path: str | os.PathLike, trusted_keys: str | None = None) -> dict:
    """verify_bundle's verdict plus per-key signature status of the bundled checkpoint (shown even
    when verification fails, so the table says which signature is bad). "ok" (verified) only
    against the verifier's trusted keys directory; without it a self-consistent bundle is not ok."""
    from gatewatch.sinks.worm import checkpoint as cp
    from gatewatch.sinks.worm.evidence import BundleError, read_bundle, verify_bundle
    summary: dict = {"ok": False, "error": None, "inv1": False, "signatures": [], "quorum": {}, "lines": []}
    try:
        from gatewatch.sinks.worm.trust import trust_from_dir
        rep = verify_bundle(str(bundle_path), trust_from_dir(trusted_keys) if trusted_keys else None)
        if not rep.pinned:
            summary["error"] = "self-consistent, NOT verified against trusted keys (signers not pinned)"
        summary.update(ok=rep.pinned, inv1=rep.pinned, bundle_sha256=rep.bundle_sha256, origin=rep.origin, size=rep.size,
                       root=rep.root, actions_verified=rep.actions, files=rep.files, lines=rep.lines,
                       decision_root=rep.decision_root)
    except BundleError as e:
        summary["error"] = str(e)
    except GatewatchError as e:  # a trusted keys directory without a key
        summary["error"] = str(e)
    try:
        files, sha = read_bundle(str(bundle_path))
    except BundleError:
        return summary
    summary.setdefault("bundle_sha256", sha)
    try:
        policy = cp.parse_policy(files["policy/witness.policy"].decode())
        note = cp.parse_note(files["checkpoint.note"].decode())
        c = cp.parse_checkpoint(note.body)
    except (KeyError, UnicodeDecodeError, cp.NoteError):
        return summary
    summary.setdefault("origin", c.origin)
    summary.setdefault("size", c.size)
    summary.setdefault("root", base64.b64encode(c.root).decode())
    verifiers = [("log", policy.log)] + [("witness", v) for _, v in sorted(policy.witnesses.items())]
    sigs = []
    for role, v in verifiers:
        present = any(n == v.name and kid == v.key_id for n, kid, _ in note.signatures)
        valid = v.name in cp.valid_signers(note, [v])
        sigs.append({"role": role, "name": v.name, "key_id": v.key_id.hex(),
                     "status": "valid" if valid else "invalid" if present else "missing"})
    known = {(v.name, v.key_id) for _, v in verifiers}
    for n, kid, _ in note.signatures:
        if (n, kid) not in known:
            sigs.append({"role": "unknown", "name": n, "key_id": kid.hex(), "status": "unknown key"})
    log_ok, met, signers = policy.evaluate(note)
    k, _ = policy.groups.get(policy.quorum, (1, ()))
    summary["signatures"] = sigs
    summary["quorum"] = {"k": k, "n": len(policy.witnesses), "met": bool(log_ok and met), "signers": signers}
    return summary


def render_from_bundle(bundle_path: str | os.PathLike, signals: list[dict], title: str | None = None,
                       verification: dict | None = None, scope: str | None = None,
                       release: str | None = None) -> str:
    from gatewatch.sinks.worm.evidence import BundleError, read_bundle
    try:
        files, _ = read_bundle(str(bundle_path))
    except BundleError:
        files = {}
    actions, receipts = bundle_records(files)
    policy_hash, thresholds, cohort = bundle_policy(files)
    kwargs = {"title": title} if title else {}
    kwargs.update(scope=scope, release=release)
    if verification is None:
        verification = verification_summary(bundle_path)
    from gatewatch.sinks.worm.evidence_files import evidence_docs
    # the judged tables only from a bundle verify_bundle accepted (its "lines"; self-consistent at
    # least): an edited evidence file must not be shown as what the gate judged
    checked = bool(verification.get("ok") or verification.get("lines"))
    return render_report(signals, actions, receipts, verification, policy_hash,
                         thresholds=thresholds, cohort=cohort, judged=evidence_docs(files) if checked else None,
                         judged_withheld=None if checked else "the bundle failed verification", **kwargs)


def build_report(bundle_path: str | os.PathLike, signals_path: str | os.PathLike | None,
                 out_path: str | os.PathLike, title: str | None = None, verification: dict | None = None,
                 trusted_keys: str | None = None, scope: str | None = None, release: str | None = None) -> Path:
    """Write the HTML report for a bundle (and optionally a signals NDJSON file); returns out_path.
    verification: a verification_summary(bundle_path) already computed (else computed here)."""
    signals = read_signals(signals_path) if signals_path else []
    if verification is None:
        verification = verification_summary(bundle_path, trusted_keys)
    html = render_from_bundle(bundle_path, signals, title, verification, scope, release).encode("utf-8")
    out = Path(out_path)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(html)
    os.replace(tmp, out)
    return out
