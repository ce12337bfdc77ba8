"""`gatewatch report`: the evidence bundle (+ recorded signals) as one static HTML page."""
from __future__ import annotations

import click

from gatewatch.sinks.report.build import build_report  # noqa: F401 - the demo imports it from here
from gatewatch.streams.runtime.errors import GatewatchError


@click.command()
@click.option("--bundle", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Evidence bundle (.tar.gz from `gatewatch evidence`); verified to fill the status table.")
@click.option("--signals", "signals_path", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Signals NDJSON: `gatewatch replay`/`tail` output lines or plain signal records.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="HTML file to write.")
@click.option("--title", default=None, help="Page title (default: gatewatch evidence report).")
@click.option("--trusted-keys", default=None, type=click.Path(exists=True, file_okay=False),
              help="The verifier's key directory (as `gatewatch verify --trusted-keys`); without it the bundle "
                   "is at best self-consistent, not verified.")
@click.option("--scope", default=None, help="Scope the charts show (default: the one with the most actions).")
@click.option("--release", default=None,
              help="Release the charts show (default: that of the scope's last abort, else of its last action); "
                   "records of other releases are left out, those without a release (the baseline) stay.")
def report(bundle, signals_path, out, title, trusted_keys, scope, release) -> None:
    """Write a self-contained HTML evidence report (inline SVG charts, no scripts, renders offline).

    To ship the report inside the bundle: export, report, then export again with
    `gatewatch evidence ... --include report.html` (same log entries and root; see sinks/report/build.py).
    Exits 1 (after writing the page, which shows why) when the bundle does not verify.
    """
    from gatewatch.sinks.report.build import verification_summary
    summary = verification_summary(bundle, trusted_keys)
    try:
        path = build_report(bundle, signals_path, out, title, summary, scope=scope, release=release)
    except OSError as e:
        raise GatewatchError(f"report: {e}") from None
    if not summary["ok"]:
        raise GatewatchError(f"report written to {path}, but the bundle does not verify: {summary['error']}")
    click.echo(f"report written to {path} (bundle verified, {summary.get('size')} entries, "
               f"quorum {', '.join(summary['quorum'].get('signers') or [])})")


commands = [report]
