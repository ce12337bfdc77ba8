"""Flagger webhook semantics (docs.flagger.app/usage/webhooks, pkg/controller/webhook.go): Flagger
POSTs {name, namespace, phase, checksum, metadata} and treats HTTP 200-202 as success, anything
else (or a timeout) as failure. What success means depends on the hook type:

  confirm-rollout, confirm-traffic-increase
                     success lets the canary start / its weight grow; a failure only halts (Flagger
                     asks again at the next interval), so: go unless the release's gate failed.
  pre-rollout, rollout
                     a failure halts and counts a failed check (rollback at the threshold): go unless
                     the gate failed; a gate still pending or not yet published is no failure.
  confirm-promotion  success promotes: 200 only on verdict pass; pending -> 409 (Flagger keeps
                     waiting and keeps running the analysis), fail -> 403, no gate -> 404.
  post-rollout       called after promotion or rollback; a failure is only logged: 200 (an
                     acknowledgement carrying the verdict), 404 when there is no gate.
  rollback           success makes Flagger roll back: 200 only on verdict fail, else 409 (404
                     when there is no gate: never roll back on a gate nobody published).

Fail-closed where it matters: nothing but a `pass` verdict promotes.
Which gate: scope = metadata.scope, else the Canary's name; release = metadata.release, else the
latest release of the scope (see docs/integrations/flagger.md: set metadata.release).
"""
from __future__ import annotations

GO_UNLESS_FAILED = ("confirm-rollout", "confirm-traffic-increase", "pre-rollout", "rollout")
HOOKS = (*GO_UNLESS_FAILED, "confirm-promotion", "post-rollout", "rollback")


class PayloadError(ValueError):
    """A webhook body that is not Flagger's payload shape (400)."""


def target(payload) -> tuple[str, str | None]:
    """(scope, release or None) named by a Flagger payload."""
    if not isinstance(payload, dict):
        raise PayloadError("the body must be a JSON object {name, namespace, phase, checksum, metadata}")
    name = payload.get("name")
    if not isinstance(name, str) or not name:
        raise PayloadError("'name' (the Canary's name) must be a non-empty string")
    md = payload.get("metadata")
    if md is None:
        md = {}
    if not isinstance(md, dict):
        raise PayloadError("'metadata' must be an object of strings")
    for k, v in md.items():  # Flagger's metadata is a map of strings
        if not isinstance(v, str):
            raise PayloadError(f"'metadata.{k}' must be a string")
    for k in ("namespace", "phase", "checksum"):
        if payload.get(k) is not None and not isinstance(payload[k], str):
            raise PayloadError(f"'{k}' must be a string")
    if md.get("release") == "" or md.get("scope") == "":  # an unset value in the Canary: not "the latest"
        raise PayloadError("'metadata.release' and 'metadata.scope' must not be empty (leave one out to "
                           "mean the latest release / the Canary's name)")
    return md.get("scope") or name, md.get("release") or None


def decide(hook: str, gate: dict | None) -> tuple[int, str]:
    """(HTTP status, one-line reason) for a hook type and the gate it asks about (None: no gate)."""
    v = gate["verdict"] if gate is not None else None
    if hook in GO_UNLESS_FAILED:
        if v == "fail":
            return 403, "gate failed: halt"
        return 200, "no gate record yet: go (promotion still needs pass)" if v is None else f"gate {v}: go"
    if hook == "confirm-promotion":
        return {"pass": (200, "gate passed: promote"), "fail": (403, "gate failed: do not promote"),
                "pending": (409, "gate pending: wait")}.get(v, (404, "no gate record: do not promote"))
    if hook == "post-rollout":
        return (404, "no gate record") if v is None else (200, f"acknowledged; gate {v}")
    if hook == "rollback":
        if v is None:
            return 404, "no gate record: no rollback"
        return (200, "gate failed: roll back") if v == "fail" else (409, f"gate {v}: no rollback")
    raise KeyError(hook)


def summary(gate: dict | None) -> dict:
    """What the response body carries (Flagger puts a failing body into its events and logs)."""
    if gate is None:
        return {}
    return {"scope": gate["scope"], "release": gate["release"], "state": gate.get("state"),
            "verdict": gate["verdict"], "missing": gate.get("missing", []),
            "reasons": [r.get("detail") for r in gate.get("reasons", [])]}
