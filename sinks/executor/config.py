"""configs/executor.yml: named backends, routes (action / kind / scope -> backend), consumer settings."""
from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from nacl.signing import SigningKey, VerifyKey

from gatewatch.processors import safe_yaml
from gatewatch.processors.signing import (
    DEFAULT_MAX_LIFETIME_MS,
    MAX_LEEWAY_MS,
    MAX_LIFETIME_CEILING_MS,
    key_id,
)
from gatewatch.processors.timefmt import TimeFormatError, parse_duration_ms
from gatewatch.sinks.executor.backends import (
    MIN_ATTEMPT_S,
    CommandBackend,
    DryRunBackend,
    WebhookBackend,
    shell_in_argv,
)
from gatewatch.streams.runtime import keys as keyfiles
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.errors import GatewatchError

_ROUTE_KEYS = ("action", "kind", "scope")


@dataclass
class Route:
    backend: str
    action: str | None = None
    kind: str | None = None
    scope: str | None = None

    def matches(self, record: dict) -> bool:
        return all(getattr(self, k) in (None, record.get(k)) for k in _ROUTE_KEYS)


@dataclass
class ExecutorConfig:
    group: str = field(default_factory=lambda: topics.group_id("executor"))
    concurrency: int = 8
    batch_size: int = 500
    max_pending: int = 2000
    commit_interval_s: float = 0.2
    assignment: str = "static"          # static: own the listed partitions (default all) | group
    partitions: list[int] | None = None
    keys_dir: str | None = None
    trusted_deciders: list[str] = field(default_factory=list)   # extra hex Ed25519 public keys
    permit_leeway_s: float = 0.0        # tolerated decider/executor clock skew on permit times (<= 10 min)
    permit_max_lifetime_s: float = DEFAULT_MAX_LIFETIME_MS / 1000  # expires - not_before at most (<= 24 h)
    intent_publish_timeout_s: float = 5.0  # wait this long for INTENT on Kafka before the effect (0 = no wait)
    backends: dict = field(default_factory=lambda: {"dry-run": {"type": "dry-run"}})
    routes: list[Route] = field(default_factory=list)
    default_backend: str = "dry-run"

    def backend_for(self, record: dict) -> str:
        """First matching route wins; otherwise the default backend."""
        for r in self.routes:
            if r.matches(record):
                return r.backend
        return self.default_backend

    def trusted_keys(self) -> dict[str, VerifyKey]:
        out = {}
        pub = keyfiles.keys_dir(self.keys_dir) / "decider.pub"
        if pub.exists():
            vk = keyfiles.load_verify_key("decider", self.keys_dir)
            out[key_id(vk)] = vk
        for hexkey in self.trusted_deciders:
            try:
                vk = VerifyKey(bytes.fromhex(hexkey))
            except ValueError:
                raise GatewatchError(f"trusted_deciders: {hexkey!r} is not a hex Ed25519 public key") from None
            out[key_id(vk)] = vk
        if not out:
            raise GatewatchError(f"no trusted decider key: neither {pub} nor executor.trusted_deciders")
        return out

    def signing_key(self) -> SigningKey:
        return keyfiles.load_signing_key("executor", self.keys_dir)

    def build_backends(self, signing_key: SigningKey) -> dict:
        built = {name: _backend(name, spec, signing_key) for name, spec in self.backends.items()}
        for name in [self.default_backend, *(r.backend for r in self.routes)]:
            if built.get(name) is None:  # a webhook whose url_env is unset: fine until it is routed to
                raise GatewatchError(f"backends.{name}: url_env {self.backends[name]['url_env']} is not set")
        return {name: b for name, b in built.items() if b is not None}


def _seconds(spec: dict, key: str, default: float, where: str, above: float | None = None) -> float:
    if key not in spec:
        return default
    try:
        value = parse_duration_ms(spec[key]) / 1000
    except TimeFormatError as e:
        raise GatewatchError(f"{where}.{key}: {e}") from None
    except (ValueError, OverflowError, TypeError):
        raise GatewatchError(f"{where}.{key}: not a duration: {spec[key]!r}") from None
    if above is not None and value <= above:  # the backend would give up before its first attempt
        raise GatewatchError(f"{where}.{key}: must be longer than {above * 1000:g}ms (got {spec[key]!r})")
    if value < 0 or value > 366 * 86_400:
        raise GatewatchError(f"{where}.{key}: must be at least 0 and at most 366d (got {spec[key]!r})")
    return value


def _headers(headers, where: str) -> dict:
    if headers is None:
        return {}
    if not isinstance(headers, dict) or any(
            not isinstance(v, (str, int)) or any(c in str(k) + str(v) for c in "\r\n\0") for k, v in headers.items()):
        raise GatewatchError(f"{where}.headers: a mapping of header name -> value, without line breaks")
    return {str(k): str(v) for k, v in headers.items()}


def _webhook_url(url, where: str) -> str:
    """http(s) URLs only, taken literally: no $ENV expansion (a URL must not pull secrets or hosts
    from the environment behind the config reader's back)."""
    if not isinstance(url, str):
        raise GatewatchError(f"{where}.url: must be a string")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GatewatchError(f"{where}.url: only http:// and https:// URLs with a host are allowed (got {url!r})")
    if "$" in url:
        raise GatewatchError(f"{where}.url: '$' is not expanded in URLs; write the URL literally (got {url!r})")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise GatewatchError(f"{where}.url: whitespace or control characters in the URL")
    return url


def _ack(spec, where: str) -> dict:
    """`ack: {public_key: <hex or base64 Ed25519 key> | public_key_file: <.pub file>, required: true|false}`:
    the recipient key whose signed acknowledgement confirms a delivery (docs/integrations/acks.md)."""
    if spec is None:
        return {}
    if not isinstance(spec, dict) or set(spec) - {"public_key", "public_key_file", "required"} \
            or ("public_key" in spec) == ("public_key_file" in spec):
        raise GatewatchError(f"{where}: a mapping with public_key (hex or base64) or public_key_file, "
                             f"and optionally required: true|false")
    if not isinstance(spec.get("required", True), bool):
        raise GatewatchError(f"{where}.required: true or false")
    if "public_key_file" in spec:
        path = Path(str(spec["public_key_file"]))
        if path.suffix != ".pub":
            raise GatewatchError(f"{where}.public_key_file: a <name>.pub file of 64 hex digits (got {str(path)!r})")
        try:
            vk = keyfiles.load_verify_key(path.stem, path.parent)
        except GatewatchError as e:
            raise GatewatchError(f"{where}.public_key_file: {e}") from None
    else:
        text = str(spec["public_key"]).strip()
        try:
            raw = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
        except (ValueError, binascii.Error):
            raw = b""
        if len(raw) != 32:
            raise GatewatchError(f"{where}.public_key: not an Ed25519 public key (64 hex digits or 44 base64 characters)")
        vk = VerifyKey(raw)
    return {"ack_keys": {key_id(vk): vk}, "ack_required": spec.get("required", True)}


def _backend(name: str, spec: dict, signing_key: SigningKey):
    where = f"backends.{name}"
    if not isinstance(spec, dict):
        raise GatewatchError(f"{where}: expected a mapping with a 'type'")
    kind = spec.get("type")
    if kind == "dry-run":
        return DryRunBackend(name)
    if kind == "webhook":
        if bool(spec.get("url")) == bool(spec.get("url_env")):
            raise GatewatchError(f"{where}: a webhook needs a url (or url_env: the name of a variable holding it)")
        url = spec.get("url")
        if spec.get("url_env"):  # explicit: the whole URL from one named variable, validated like any URL
            url = os.environ.get(str(spec["url_env"]))
            if not url:
                return None
        return WebhookBackend(name=name, url=_webhook_url(url, where), signing_key=signing_key,
                              timeout_s=_seconds(spec, "timeout", 2.0, where, above=MIN_ATTEMPT_S),
                              deadline_s=_seconds(spec, "deadline", 30.0, where, above=MIN_ATTEMPT_S),
                              backoff_base_s=_seconds(spec, "backoff_base", 0.1, where),
                              backoff_max_s=_seconds(spec, "backoff_max", 5.0, where),
                              headers=_headers(spec.get("headers"), where),
                              **_ack(spec.get("ack"), f"{where}.ack"))
    if kind == "command":
        argv = spec.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise GatewatchError(f"{where}: a command needs argv, a non-empty list of strings")
        why = shell_in_argv(argv)
        if why:
            raise GatewatchError(f"{where}.argv: {why}; give the program and its arguments as a list (no shell)")
        env = spec.get("env") or []
        if not isinstance(env, list) or not all(isinstance(e, str) and e.isidentifier() for e in env):
            raise GatewatchError(f"{where}.env: a list of environment variable names to pass to the command")
        return CommandBackend(name=name, argv=argv, timeout_s=_seconds(spec, "timeout", 60.0, where, above=0.0),
                              env_allow=tuple(env))
    raise GatewatchError(f"{where}: unknown type {kind!r} (webhook, command, dry-run)")


def load_config(path: str | Path | None) -> ExecutorConfig:
    if path is None:
        return ExecutorConfig()
    try:
        doc = safe_yaml.load(Path(path).read_text(), str(path)) or {}
    except OSError as e:
        raise GatewatchError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise GatewatchError(f"{path}: not UTF-8 text") from None
    except safe_yaml.SafeYamlError as e:
        raise GatewatchError(str(e)) from None
    return config_from_dict(doc, str(path))


def config_from_dict(doc: dict, where: str = "config") -> ExecutorConfig:
    if not isinstance(doc, dict):
        raise GatewatchError(f"{where}: expected a mapping")
    ex = doc.get("executor") or {}
    if not isinstance(ex, dict):
        raise GatewatchError(f"{where}: executor must be a mapping")
    cfg = ExecutorConfig()
    for key in ("group", "keys_dir", "assignment"):
        if key in ex:
            if not isinstance(ex[key], str) and not (key == "keys_dir" and ex[key] is None):
                raise GatewatchError(f"{where}: executor.{key} must be a string")
            setattr(cfg, key, ex[key])
    for key in ("concurrency", "batch_size", "max_pending"):
        if key in ex:
            if isinstance(ex[key], bool) or not isinstance(ex[key], int) or ex[key] < 1:
                raise GatewatchError(f"{where}: executor.{key} must be a positive integer")
            setattr(cfg, key, ex[key])
    cfg.commit_interval_s = _seconds(ex, "commit_interval", cfg.commit_interval_s, f"{where}: executor")
    cfg.permit_leeway_s = _seconds(ex, "permit_leeway", 0.0, f"{where}: executor")
    if cfg.permit_leeway_s * 1000 > MAX_LEEWAY_MS:
        raise GatewatchError(f"{where}: executor.permit_leeway: at most {MAX_LEEWAY_MS // 60_000}m of clock skew "
                             f"(got {ex['permit_leeway']!r})")
    cfg.permit_max_lifetime_s = _seconds(ex, "permit_max_lifetime", cfg.permit_max_lifetime_s, f"{where}: executor",
                                         above=0.0)
    if cfg.permit_max_lifetime_s * 1000 > MAX_LIFETIME_CEILING_MS:
        raise GatewatchError(f"{where}: executor.permit_max_lifetime: at most {MAX_LIFETIME_CEILING_MS // 3_600_000}h "
                             f"(got {ex['permit_max_lifetime']!r})")
    cfg.intent_publish_timeout_s = _seconds(ex, "intent_publish_timeout", 5.0, f"{where}: executor")
    parts = ex.get("partitions", "all")
    if parts in (None, "all"):
        cfg.partitions = None
    elif isinstance(parts, list) and parts and all(
            isinstance(p, int) and not isinstance(p, bool) and 0 <= p < 100_000 for p in parts):
        cfg.partitions = sorted(set(parts))
    else:
        raise GatewatchError(f"{where}: executor.partitions must be 'all' or a non-empty list of partition numbers "
                             f"(integers >= 0), got {parts!r}")
    if cfg.assignment not in ("static", "group"):
        raise GatewatchError(f"{where}: executor.assignment must be static or group")
    deciders = ex.get("trusted_deciders") or []
    if not isinstance(deciders, list):
        raise GatewatchError(f"{where}: executor.trusted_deciders must be a list of hex public keys")
    cfg.trusted_deciders = [str(k) for k in deciders]
    if "backends" in doc:
        if not isinstance(doc["backends"], dict) or not doc["backends"]:
            raise GatewatchError(f"{where}: backends must be a mapping of name -> spec")
        cfg.backends = {"dry-run": {"type": "dry-run"}, **doc["backends"]}
    cfg.default_backend = doc.get("default_backend", "dry-run")
    if not isinstance(cfg.default_backend, str):
        raise GatewatchError(f"{where}: default_backend must be a backend name")
    if not isinstance(doc.get("routes") or [], list):
        raise GatewatchError(f"{where}: routes must be a list")
    routes = []
    for i, r in enumerate(doc.get("routes") or []):
        if not isinstance(r, dict) or "backend" not in r or set(r) - {"backend", *_ROUTE_KEYS}:
            raise GatewatchError(f"{where}: routes[{i}] needs 'backend' and only action/kind/scope to match")
        routes.append(Route(**{k: str(v) for k, v in r.items()}))
    cfg.routes = routes
    for name in [cfg.default_backend, *(r.backend for r in routes)]:
        if name not in cfg.backends:
            raise GatewatchError(f"{where}: unknown backend {name!r} (defined: {', '.join(cfg.backends)})")
    return cfg
