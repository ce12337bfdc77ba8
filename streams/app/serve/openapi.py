"""The OpenAPI 3.1 description of `gatewatch serve`, served at /openapi.json and checked into
docs/openapi.json (tests/serve/test_api.py keeps the two equal)."""
from __future__ import annotations

from gatewatch.streams.app.serve.flagger import HOOKS

_ERROR = {"type": "object", "required": ["error", "status"],
          "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}}
_REASON = {"type": "object", "required": ["kind", "detail"], "properties": {
    "kind": {"enum": ["missing", "thin", "blocking", "waiting", "failed"]},
    "detail": {"type": "string"}, "rule": {"type": ["string", "null"]}, "text": {"type": ["string", "null"]},
    "signal": {"type": ["string", "null"]}, "value": {"type": ["number", "null"]},
    "op": {"type": ["string", "null"]}, "threshold": {"type": ["number", "null"]},
    "window_s": {"type": ["integer", "null"]}, "samples": {"type": ["integer", "null"]},
    "min_samples": {"type": ["integer", "null"]}}}
# processors.names' grammar; an empty value is refused (400), not read as "not given"
_NAME = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"}
_GATE = {"type": "object", "required": ["scope", "release", "state", "verdict", "reasons"], "properties": {
    "kind": {"const": "gate"}, "scope": {"type": "string"}, "release": {"type": "string"},
    "state": {"type": "string"}, "verdict": {"enum": ["pass", "fail", "pending"]},
    "reasons": {"type": "array", "items": {"$ref": "#/components/schemas/Reason"}},
    "missing": {"type": "array", "items": {"type": "string"}}, "policy_hash": {"type": "string"},
    "ts": {"type": "string"}, "since": {"type": "string"}, "actions": {"type": "array"},
    "steps": {"type": "integer"}, "dropped_steps": {"type": "integer"},
    # only when the scope has error budget signals (processors.policy.gatestatus)
    "error_budget": {"type": "object", "required": ["consumed", "remaining", "samples", "window_s", "at"],
                     "properties": {"consumed": {"type": ["number", "null"]},
                                    "remaining": {"type": ["number", "null"]},
                                    "samples": {"type": "integer"}, "window_s": {"type": ["integer", "null"]},
                                    "at": {"type": "string"}}}}}
_HOOK_ANSWER = {"type": "object", "required": ["hook", "go", "message", "scope"], "properties": {
    "hook": {"type": "string"}, "go": {"type": "boolean"}, "message": {"type": "string"},
    "scope": {"type": "string"}, "release": {"type": ["string", "null"]}, "state": {"type": ["string", "null"]},
    "verdict": {"enum": ["pass", "fail", "pending"]}, "missing": {"type": "array", "items": {"type": "string"}},
    "reasons": {"type": "array", "items": {"type": ["string", "null"]}}}}
_FLAGGER_PAYLOAD = {"type": "object", "required": ["name"], "properties": {
    "name": _NAME, "namespace": {"type": ["string", "null"]},
    "phase": {"type": ["string", "null"]}, "checksum": {"type": ["string", "null"]},
    "metadata": {"type": ["object", "null"], "additionalProperties": {"type": "string"},
                 "properties": {"scope": _NAME, "release": _NAME}}}}


def _json(ref_or_schema, description: str) -> dict:
    schema = {"$ref": f"#/components/schemas/{ref_or_schema}"} if isinstance(ref_or_schema, str) else ref_or_schema
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(description: str) -> dict:
    return _json("Error", description)


_SECURED = [{"bearer": []}, {}]

OPENAPI: dict = {
    "openapi": "3.1.0",
    "info": {"title": "gatewatch serve", "version": "1",
             "description": "Release gates per scope and release, materialized from the gates topic, for "
                            "Argo Rollouts (web metric) and Flagger (webhooks). See docs/serve.md."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                       "description": "required on /v1 when serve runs with --token-file"}},
        "schemas": {"Error": _ERROR, "Reason": _REASON, "Gate": _GATE, "HookAnswer": _HOOK_ANSWER,
                    "FlaggerPayload": _FLAGGER_PAYLOAD},
    },
    "paths": {
        "/v1/gates": {"get": {
            "summary": "Every gate held (one per scope and release)", "security": _SECURED,
            "responses": {"200": _json({"type": "object", "required": ["gates", "ready"], "properties": {
                "gates": {"type": "array", "items": {"$ref": "#/components/schemas/Gate"}},
                "ready": {"type": "boolean"}}}, "the gates"), "400": _err("a query parameter (this resource reads none)"),
                "401": _err("bearer token missing or wrong")}}},
        "/v1/gates/{scope}": {"get": {
            "summary": "The gate of one scope: a given release, else its latest release",
            "description": "A scope holding '/' (namespace/service) may be sent as is or percent-encoded.",
            "security": _SECURED,
            "parameters": [{"name": "scope", "in": "path", "required": True, "schema": _NAME},
                           {"name": "release", "in": "query", "required": False, "schema": _NAME}],
            "responses": {"200": _json("Gate", "the gate record; `verdict` is pass, fail or pending"),
                          "400": _err("bad scope or release name, an empty release, an unknown query parameter"),
                          "401": _err("bearer token missing or wrong"),
                          "404": _err("unknown scope, or no such release of it"),
                          "503": _err("not caught up with the gates topic yet: no answer (it may be stale)")}}},
        "/v1/actions": {"get": {
            "summary": "Recent actions (newest first)", "security": _SECURED,
            "parameters": [{"name": "scope", "in": "query", "required": False, "schema": _NAME},
                           {"name": "release", "in": "query", "required": False, "schema": _NAME},
                           {"name": "limit", "in": "query", "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
            "responses": {"200": _json({"type": "object", "required": ["actions"], "properties": {
                "actions": {"type": "array", "items": {"type": "object"}}}}, "the actions"),
                "400": _err("bad parameter"), "401": _err("bearer token missing or wrong")}}},
        "/v1/flagger/{hook}": {"post": {
            "summary": "Flagger webhook: 200 = go (for `rollback`: roll back); anything else = no",
            "security": _SECURED,
            "parameters": [{"name": "hook", "in": "path", "required": True, "schema": {"enum": list(HOOKS)}}],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/FlaggerPayload"}}}},
            "responses": {"200": _json("HookAnswer", "go"), "400": _err("not Flagger's payload"),
                          "401": _err("bearer token missing or wrong"),
                          "403": _json("HookAnswer", "the gate failed"),
                          "404": _json({"anyOf": [{"$ref": "#/components/schemas/HookAnswer"},
                                                  {"$ref": "#/components/schemas/Error"}]},
                                       "no gate for this scope/release (HookAnswer), or unknown hook type (Error)"),
                          "409": _json("HookAnswer", "the gate is pending (or, for rollback, did not fail)"),
                          "411": _err("Content-Length required"), "413": _err("body too large"),
                          "503": _json("HookAnswer", "not caught up with the gates topic yet")}}},
        "/": {"get": {"summary": "Status page: every gate, its state, verdict and reasons", "security": _SECURED,
                      "responses": {"200": {"description": "HTML", "content": {"text/html": {
                          "schema": {"type": "string"}}}}, "401": _err("bearer token missing or wrong")}}},
        "/healthz": {"get": {"summary": "Liveness", "responses": {"200": _json({"type": "object"}, "alive")}}},
        "/readyz": {"get": {"summary": "Ready once caught up with the gates topic", "responses": {
            "200": _json({"type": "object"}, "ready"), "503": _json({"type": "object"}, "not caught up yet")}}},
        "/metrics": {"get": {"summary": "Prometheus text: gatewatch_gate_state, gatewatch_gate_verdict, ...",
                             "responses": {"200": {"description": "Prometheus exposition format",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document",
                                  "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")}}},
    },
}
for _ops in OPENAPI["paths"].values():  # HEAD wherever GET (RFC 9110 9.3.2): the same answer, no body
    if "get" in _ops:
        _ops["head"] = dict(_ops["get"], summary=_ops["get"]["summary"] + " (HEAD: headers only)")
