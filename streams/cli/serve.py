"""`gatewatch serve` (the gates over HTTP) and `gatewatch gate status` (one gate in a terminal).

`gate status` exit codes: 0 pass, 1 fail, 3 pending, 4 unknown scope or release, 2 usage,
5 could not ask (serve unreachable, 401, topic unreadable): a CI step can tell "no" from "broken".
(sys.exit, not click's Exit: click in standalone_mode=False returns Exit's code instead of raising.)
"""
from __future__ import annotations

import os
import signal
import sys
import threading

import click
import orjson

from gatewatch.streams.runtime.errors import GatewatchError

EXIT = {"pass": 0, "fail": 1, "pending": 3}
EXIT_UNKNOWN, EXIT_ERROR = 4, 5


def _bootstrap() -> str:
    bs = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bs:
        raise GatewatchError("KAFKA_BOOTSTRAP_SERVERS is not set: serve reads the gates topic of a running "
                             "pipeline (see `gatewatch broker` for a local one)")
    return bs


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback needs --token-file.")
@click.option("--port", type=click.IntRange(0, 65535), default=8088, show_default=True)
@click.option("--token-file", type=click.Path(dir_okay=False), envvar="GATEWATCH_SERVE_TOKEN_FILE",
              help="File holding the bearer token every /v1 request must carry [env GATEWATCH_SERVE_TOKEN_FILE].")
@click.option("--tls-cert", type=click.Path(dir_okay=False), default=None, help="PEM certificate (chain): serve HTTPS.")
@click.option("--tls-key", type=click.Path(dir_okay=False), default=None, help="PEM private key of --tls-cert.")
@click.option("--flagger-without-token", is_flag=True, envvar="GATEWATCH_SERVE_FLAGGER_WITHOUT_TOKEN",
              help="Answer /v1/flagger/* without the token: Flagger's webhooks carry no headers. Admit only "
                   "Flagger to serve's port (a NetworkPolicy); every other /v1 path still needs the token.")
def serve(host, port, token_file, tls_cert, tls_key, flagger_without_token) -> None:
    """Serve the release gates over HTTP for Argo Rollouts and Flagger (docs/serve.md).

    Materializes the gates topic (and recent actions) from the beginning; /readyz answers 200 once
    caught up. Stop with SIGTERM or Ctrl-C.
    """
    from gatewatch.streams.app.serve import Serve, check_bind, read_token
    if bool(tls_cert) != bool(tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    token = read_token(token_file)
    check_bind(host, token)
    svc = Serve(_bootstrap(), host, port, token, (tls_cert, tls_key) if tls_cert else None,
                flagger_without_token=flagger_without_token)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with svc:
        click.echo(f"gatewatch serve: {svc.url} (gates from {svc.materializer.gates_topic}; "
                   f"/readyz once caught up)", err=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass


@click.group()
def gate() -> None:
    """Ask about release gates."""


def _fetch(url: str, scope: str, release: str | None, token: str | None):
    """(HTTP status, JSON document) from serve."""
    import ssl
    import urllib.error
    import urllib.parse
    import urllib.request
    q = "?" + urllib.parse.urlencode({"release": release}) if release else ""
    if not url.startswith(("http://", "https://")):
        raise GatewatchError(f"cannot ask {url}: not an http:// or https:// URL")
    req = urllib.request.Request(f"{url.rstrip('/')}/v1/gates/{urllib.parse.quote(scope, safe='')}{q}")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    ctx = ssl.create_default_context(cafile=os.environ.get("GATEWATCH_SERVE_CA")) if url.startswith("https") else None
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
            return r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as e:
        try:
            return e.code, orjson.loads(e.read())
        except orjson.JSONDecodeError:
            return e.code, {"error": f"HTTP {e.code}"}
    except (urllib.error.URLError, OSError, orjson.JSONDecodeError, ValueError) as e:  # ValueError: not a URL
        raise GatewatchError(f"cannot ask {url}: {getattr(e, 'reason', e)}") from None


def _from_topic(scope: str, release: str | None):
    from gatewatch.streams.app.serve.store import GateStore
    from gatewatch.streams.runtime import topics
    from gatewatch.streams.runtime.kafka import read_to_end
    store = GateStore(max_actions=1)
    for m in read_to_end(_bootstrap(), topics.topic("gates")):
        store.apply_gate(m.key(), m.value())
    gate_rec = store.get(scope, release)
    if gate_rec is not None:
        return 200, gate_rec
    known = store.releases(scope)
    msg = f"scope {scope!r} has no release {release!r}" if known else f"unknown scope {scope!r}"
    return 404, {"error": msg, "releases": known}


def render(g: dict) -> str:
    lines = [f"{g['scope']}@{g['release']}: {g['verdict'].upper()}  (state {g.get('state')}, "
             f"since {g.get('since')}, at {g.get('ts')}, policy {str(g.get('policy_hash'))[:12]})"]
    if g.get("missing"):
        lines.append(f"  missing signals: {', '.join(g['missing'])}")
    for r in g.get("reasons") or []:
        extra = [f"{k}={r[k]}" for k in ("value", "threshold", "window_s", "samples") if r.get(k) is not None]
        lines.append(f"  {r.get('kind')}: {r.get('detail')}" + (f"  [{', '.join(extra)}]" if extra else ""))
    return "\n".join(lines)


@gate.command("status")
@click.argument("scope")
@click.option("--release", default=None, help="The release; default: the scope's latest.")
@click.option("--json", "as_json", is_flag=True, help="Print the gate record as JSON.")
@click.option("--url", default=None, envvar="GATEWATCH_SERVE_URL",
              help="Ask this `gatewatch serve` [env GATEWATCH_SERVE_URL]; without it, read the gates topic "
                   "directly (KAFKA_BOOTSTRAP_SERVERS).")
@click.option("--token-file", type=click.Path(dir_okay=False), envvar="GATEWATCH_SERVE_TOKEN_FILE",
              help="Bearer token for --url.")
def status(scope, release, as_json, url, token_file) -> None:
    """Print a gate's verdict and reasons. Exit 0 pass, 1 fail, 3 pending, 4 unknown, 5 could not ask."""
    from gatewatch.streams.app.serve import read_token
    from gatewatch.streams.app.serve.store import bad_name
    for what, text in (("scope", scope), ("release", release)):
        if text is not None and bad_name(what, text):
            raise click.BadParameter(bad_name(what, text), param_hint=what.upper() if what == "scope" else "--release")
    try:
        code, doc = _fetch(url, scope, release, read_token(token_file)) if url else _from_topic(scope, release)
    except GatewatchError as e:
        click.echo(f"gatewatch: error: {e}", err=True)
        sys.exit(EXIT_ERROR)
    if code == 200 and doc.get("verdict") in EXIT:
        click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() if as_json else render(doc))
        sys.exit(EXIT[doc["verdict"]])
    if as_json:
        click.echo(orjson.dumps(doc).decode())
    else:
        click.echo(f"gatewatch: {doc.get('error', f'HTTP {code}')}", err=True)
    sys.exit(EXIT_UNKNOWN if code == 404 else EXIT_ERROR)


commands = [serve, gate]
