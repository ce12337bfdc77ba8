"""The report in headless Chromium: it renders offline to a full, non-blank page of the right size."""
from __future__ import annotations

import os
import shutil

from gatewatch.sinks.report.build import build_report
from tests.report.chromium import screenshot
from tests.report.png import colour_stats, read_png

WIDTH, HEIGHT = 1400, 2400
KEEP = os.environ.get("GATEWATCH_REPORT_SCREENSHOT")  # copy the PNG here to look at it


def _has(colours, rgb: tuple[int, int, int], tol: int = 40) -> bool:
    return any(sum(abs(c[i] - rgb[i]) for i in range(3)) <= tol for c in colours)


def test_screenshot(spike, chromium, tmp_path):
    html = build_report(spike["bundle"], spike["signals"], tmp_path / "report.html")
    text = html.read_text()
    for section in ('id="summary"', 'id="burn-rate"', 'id="cwv"', 'id="cdc"', 'id="actions"', 'id="evidence"'):
        assert section in text
    png = tmp_path / "report.png"
    run = screenshot(chromium, html, png, WIDTH, HEIGHT)
    assert run.returncode == 0 and png.is_file(), f"chromium failed ({run.returncode}): {run.stderr[-600:]}"
    if KEEP:
        shutil.copy(png, KEEP)
    width, height, bpp, rows = read_png(png.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    stats = colour_stats(rows, bpp)
    assert stats["distinct"] > 500, "the page looks blank or flat"
    busy = stats["busy_rows"]
    assert sum(busy) > len(busy) // 4, "most of the viewport is empty"
    assert all(any(busy[i:i + len(busy) // 4]) for i in range(0, len(busy), len(busy) // 4)), \
        "a quarter of the viewport is empty"
    colours = stats["colours"]
    assert _has(colours, (15, 23, 42)), "the summary header did not render"          # #0f172a
    assert _has(colours, (220, 38, 38), 60), "no threshold/breach red"                 # #dc2626
    assert _has(colours, (234, 88, 12), 60), "no canary orange"                        # #ea580c
    assert _has(colours, (100, 116, 139), 30), "no baseline slate"                     # #64748b
