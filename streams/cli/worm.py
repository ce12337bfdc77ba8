"""`gatewatch worm run|policy`, `gatewatch witness`, `gatewatch evidence`, `gatewatch verify`."""
from __future__ import annotations

import click

from gatewatch.streams.runtime.errors import ExitStatus, GatewatchError


def _existing_log(db: str) -> str:
    """db, if it holds a WORM log: opening any other SQLite file as one would add the log's
    tables (and their no-update triggers) to it, e.g. to the executor's ledger."""
    import sqlite3
    from pathlib import Path
    try:
        with sqlite3.connect(Path(db).resolve().as_uri() + "?mode=ro", uri=True) as con:
            found = con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='entries'").fetchone()
    except sqlite3.DatabaseError as e:
        raise GatewatchError(f"{db}: not a WORM log ({e})") from None
    if not found:
        raise GatewatchError(f"{db}: not a WORM log (no entries table); pass the worm sink's --db")
    return db


def _policy(origin: str, policy_file: str | None, keys_dir: str | None, quorum: int):
    from gatewatch.sinks.worm import checkpoint as cp
    if policy_file:
        try:
            with open(policy_file) as f:
                return cp.parse_policy(f.read())
        except (OSError, cp.NoteError) as e:
            raise GatewatchError(f"policy {policy_file}: {e}") from None
    return cp.default_policy(origin, keys_dir, quorum)


_origin = click.option("--origin", default="gatewatch.local/worm", show_default=True,
                       help="Log origin (checkpoint first line; the log key signs under this name).")
_keys = click.option("--keys-dir", default=None, help="Key directory (default: $GATEWATCH_KEYS_DIR or .gatewatch/keys).")
_witness_policy = click.option("--witness-policy", "witness_policy", default=None, type=click.Path(dir_okay=False),
                               help="Checkpoint policy file (log/witness/group/quorum lines); default: witness-1..3, 2 of 3.")


@click.group()
def worm() -> None:
    """The WORM log: Merkle-rooted, append-only, co-signed checkpoints."""


@worm.command("run")
@click.option("--db", required=True, type=click.Path(dir_okay=False), help="SQLite store (created if missing).")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None, help="Serve /metrics, /healthz, /readyz.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=5000, show_default=True,
              help="Records per consume call = entries per durable commit (at most).")
@click.option("--checkpoint-every", type=click.IntRange(1), default=1000, show_default=True,
              help="Publish a checkpoint after this many new entries...")
@click.option("--checkpoint-interval", type=click.FloatRange(0.1), default=10.0, show_default=True,
              help="...or after this many seconds with new entries.")
@click.option("--exit-when-idle", type=click.FloatRange(0.1), default=None,
              help="Stop after this many seconds without records (tests, demos).")
@click.option("--group", default=None, help="Consumer group (default: <topic prefix>worm).")
@_origin
@_keys
@_witness_policy
def worm_run(db, metrics_port, batch_size, checkpoint_every, checkpoint_interval, exit_when_idle, group, origin,
             keys_dir, witness_policy) -> None:
    """Consume actions, receipts and diamond candidates into the log until SIGTERM/SIGINT."""
    from gatewatch.sinks.worm.sink import SinkConfig, WormSink
    from gatewatch.streams.runtime.process import run_stage
    sink = WormSink(SinkConfig(db=db, origin=origin, group=group, batch_size=batch_size,
                               checkpoint_every=checkpoint_every, checkpoint_interval_s=checkpoint_interval,
                               exit_when_idle_s=exit_when_idle, keys_dir=keys_dir, policy_file=witness_policy))
    run_stage(sink, metrics_port=metrics_port, assignment="group", exit_when_idle_s=exit_when_idle)


@worm.command("status")
@click.option("--db", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@_origin
@_keys
@_witness_policy
def worm_status(db, as_json, origin, keys_dir, witness_policy) -> None:
    """Log size and root, the last published checkpoint, the newest quorum checkpoint and its witnesses,
    and the decision root: the actions alone in id order, comparable with `gatewatch replay --keys-dir`'s.
    While witnesses have not yet cosigned the tail, also the decision root at the quorum checkpoint,
    which is the one `gatewatch verify` prints for a bundle exported now. Scans the whole log, and
    exits 1 when it was altered on disk (a leaf that no longer hashes to its logged hash, a missing
    entry, or no longer the tree of the last checkpoint it signed)."""
    import base64

    import orjson

    from gatewatch.sinks.worm import checkpoint as cp
    from gatewatch.sinks.worm.evidence import latest_quorum_note
    from gatewatch.sinks.worm.store import WormStore, decision_root

    def b64(h: bytes) -> str:
        return base64.b64encode(h).decode()
    db = _existing_log(db)
    policy = _policy(origin, witness_policy, keys_dir, 2)
    with WormStore(db) as store:
        logs = store.notes("log")
        altered = store.alteration() or _unlike_signed(store, logs)
        if altered:  # first: the decisions below parse every leaf, and an edited one may not parse
            raise ExitStatus(1, f"WORM log {db}: {altered}")  # for a monitor: exit 1, as verify's "tampered"
        q = latest_quorum_note(store, policy)
        q_size = cp.parse_checkpoint(q.body).size if q else None
        acts = store.decisions()
        decisions = [(e.id, e.leaf) for e in acts]
        # a bundle exported now covers the quorum checkpoint's entries only
        covered = [(e.id, e.leaf) for e in acts if q_size is None or e.index < q_size]
        doc = {"size": store.size, "root": b64(store.root()),
               "decisions": len(decisions), "decision_root": b64(decision_root(decisions)),
               "last_checkpoint": logs[-1]["size"] if logs else None,
               "quorum_checkpoint": q_size,
               "quorum_decisions": len(covered) if q else None,
               "quorum_decision_root": b64(decision_root(covered)) if q else None,
               "witnesses": policy.evaluate(q)[2] if q else []}
    if as_json:
        click.echo(orjson.dumps(doc).decode())
    else:
        click.echo(f"size {doc['size']}  root {doc['root']}")
        click.echo(f"decisions {doc['decisions']}  decision root {doc['decision_root']}")
        click.echo(f"last checkpoint {doc['last_checkpoint']}  quorum checkpoint {doc['quorum_checkpoint']}"
                   f"  witnesses {', '.join(doc['witnesses']) or '-'}")
        if q_size is not None and q_size < doc["size"]:
            click.echo(f"at the quorum checkpoint: decisions {doc['quorum_decisions']}  decision root "
                       f"{doc['quorum_decision_root']} (what a bundle exported now verifies)")


def _unlike_signed(store, logs: list[dict]) -> str | None:
    """Why the store no longer holds the tree of the last checkpoint it signed, or None."""
    from gatewatch.sinks.worm import checkpoint as cp
    if not logs:
        return None
    c = cp.parse_checkpoint(cp.parse_note(logs[-1]["note"]).body)
    if store.matches(c.size, c.root):
        return None
    return f"it holds {store.size} entries, not the tree it signed at size {c.size} (truncated or rewritten)"


@worm.command("policy")
@_origin
@_keys
@click.option("--quorum", type=click.IntRange(1, 3), default=2, show_default=True)
def worm_policy(origin, keys_dir, quorum) -> None:
    """Print the checkpoint policy for the configured keys (witness-1..3, QUORUM of 3)."""
    click.echo(_policy(origin, None, keys_dir, quorum).text(), nl=False)


@click.command()
@click.option("--name", required=True, help="Witness key role, e.g. witness-1.")
@click.option("--state", required=True, type=click.Path(dir_okay=False), help="State file (last cosigned checkpoint).")
@click.option("--exit-when-idle", type=click.FloatRange(0.1), default=None)
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None, help="Serve /metrics, /healthz, /readyz.")
@_origin
@_keys
def witness(name, state, exit_when_idle, metrics_port, origin, keys_dir) -> None:
    """Cosign log checkpoints that are consistent with the last one this witness cosigned."""
    from gatewatch.sinks.worm.witness import Witness
    from gatewatch.streams.runtime.process import run_stage
    run_stage(Witness(name, state, origin=origin, keys_dir=keys_dir), metrics_port=metrics_port,
              assignment="group", exit_when_idle_s=exit_when_idle)


@click.command()
@click.option("--db", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Bundle file (.tar.gz).")
@click.option("--policy", "policy_dir", default=None, type=click.Path(exists=True, file_okay=False),
              help="Directory of the composed policy files, copied as given.")
@click.option("--include", "includes", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Reports, other files (repeatable).")
@click.option("--inputs", "input_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="kcat -J envelopes of the judged input topics, OTLP traces included (`gatewatch tail metrics`): "
                   "-> evidence/span_coverage.json and evidence/input_schemas.json (repeatable).")
@click.option("--signals", "signals_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="The judged signals (`gatewatch tail signals`) -> evidence/cardinality.json against the budgets.")
@click.option("--drill", "drill_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="A `gatewatch drill --out` report -> evidence/drill.json.")
@click.option("--evidence-config", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Essential spans and coverage target (default: the installed configs/evidence.yml).")
@click.option("--collect", is_flag=True,
              help="First read gw.checkpoints and store the witnesses' cosignatures (when the sink is not running).")
@_origin
@_keys
@_witness_policy
def evidence(db, out, policy_dir, includes, input_files, signals_file, drill_file, evidence_config, collect, origin,
             keys_dir, witness_policy) -> None:
    """Export an offline-verifiable evidence bundle up to the newest quorum checkpoint, with the
    span coverage, input schemas, cardinality and drill results of what was judged (evidence/)."""
    from gatewatch.sinks.worm.evidence import BundleError, build_files, write_bundle
    from gatewatch.sinks.worm.store import WormStore
    from gatewatch.streams.app.evidence_inputs import evidence_files
    from gatewatch.streams.runtime.keys import load_signing_key, public_keys
    db = _existing_log(db)
    policy = _policy(origin, witness_policy, keys_dir, 2)
    log_key = load_signing_key("log", keys_dir)
    extra = evidence_files(list(input_files), signals_file, drill_file, evidence_config)
    with WormStore(db) as store:
        if collect:
            from gatewatch.sinks.worm.sink import collect_cosignatures
            from gatewatch.streams.runtime.brokers import kafka_bootstrap
            with kafka_bootstrap() as bs:
                n = collect_cosignatures(store, policy, bs)
            click.echo(f"collected {n} cosigned notes", err=True)
        try:
            files = build_files(store, policy, public_keys(keys_dir), policy_dir, tuple(includes), log_key, extra)
        except BundleError as e:
            raise GatewatchError(str(e)) from None
    digest = write_bundle(files, out)
    click.echo(f"{out}: {len(files)} files, sha256 {digest}")


# `gatewatch verify` exit codes (docs/security.md)
VERIFIED, TAMPERED, USAGE, UNTRUSTED, UNPINNED = 0, 1, 2, 3, 4


@click.command()
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False))
@click.option("--trusted-keys", default=None, type=click.Path(exists=True, file_okay=False),
              help="The verifier's key directory (log.pub, witness-*.pub, decider.pub, executor.pub): the anchors. "
                   "Keys and the witness policy inside the bundle are only compared with these.")
@click.option("--trust-policy", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Pinned checkpoint policy (log/witness/group/quorum lines); overrides the log and witness keys "
                   "and the quorum taken from --trusted-keys.")
@click.option("--origin", default="gatewatch.local/worm", show_default=True,
              help="Pinned log origin (with --trusted-keys and no --trust-policy).")
@click.option("--quorum", type=click.IntRange(1, 3), default=2, show_default=True,
              help="Pinned witness quorum k of witness-1..3 (with --trusted-keys and no --trust-policy).")
@click.option("--require-evidence", is_flag=True,
              help="Fail (exit 1) unless span coverage, input schemas, cardinality and drill results are bundled.")
@click.option("--replay", is_flag=True,
              help="Also re-run every action from its attestation (recorded pre-state and inputs) with the "
                   "bundled policy and check the pre/post state hashes and the records (exit 1 names the action).")
def verify(bundle, trusted_keys, trust_policy, origin, quorum, require_evidence, replay) -> None:
    """Verify an evidence bundle offline against the verifier's pinned trust anchors.

    Exit 0: verified against the trusted keys. 1: tampered or invalid (names the first bad entry
    or file). 2: usage error. 3: untrusted signers (keys, witnesses or quorum differ from the
    pinned ones). 4: self-consistent but NOT verified (no --trusted-keys: signers not pinned)."""
    from gatewatch.sinks.worm.evidence import BundleError, verify_bundle
    from gatewatch.sinks.worm.trust import UntrustedError, trust_from_dir
    if trust_policy and not trusted_keys:
        raise click.UsageError("--trust-policy needs --trusted-keys DIR too (for the decider and executor keys)")
    try:
        trust = None
        if trusted_keys:  # the verifier's own anchors: a problem there is a usage error (2), not tampering
            text = None
            try:
                if trust_policy:
                    with open(trust_policy, encoding="utf-8") as f:
                        text = f.read((1 << 20) + 1)
                    if len(text) > 1 << 20:
                        raise GatewatchError(f"{trust_policy}: over 1 MiB, not a witness policy")
                trust = trust_from_dir(trusted_keys, origin, quorum, text, trust_policy or "policy")
            except (OSError, UnicodeDecodeError) as e:
                where = getattr(e, "filename", None) or trust_policy or trusted_keys
                raise click.UsageError(f"trusted anchors: cannot read {where}: {getattr(e, 'strerror', None) or e}")
            except GatewatchError as e:
                raise click.UsageError(f"trusted anchors: {e}") from None
        rep = verify_bundle(bundle, trust, require_evidence, replay=replay)
    except UntrustedError as e:
        raise ExitStatus(UNTRUSTED, f"verify failed: untrusted signers: {e}") from None
    except BundleError as e:
        raise ExitStatus(TAMPERED, f"verify failed: {e}") from None
    for line in rep.lines:
        click.echo(line)
    if not rep.pinned:
        raise ExitStatus(UNPINNED)


commands = [worm, witness, evidence, verify]
