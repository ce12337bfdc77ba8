"""Evidence report: one self-contained HTML page (inline CSS + inline SVG, no scripts) built from
signals, actions, receipts and the bundle's verification summary.

`html.render_report` is pure (data in, HTML string out); `build.build_report` does the I/O.
"""
