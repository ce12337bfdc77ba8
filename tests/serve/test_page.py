"""The status page at GET /: every gate with state, verdict and reasons, escaped, and rendered by
headless Chromium (a pending gate names its missing signal on the page)."""
from __future__ import annotations

import pytest

from tests.report.chromium import ensure_chromium, screenshot
from tests.report.png import colour_stats, read_png
from tests.serve.helpers import gate, http, publish

pytestmark = pytest.mark.integration


def _has(colours, rgb, tol=12) -> bool:
    return any(sum(abs(c[i] - rgb[i]) for i in range(3)) <= tol for c in colours)


def test_status_page_shows_every_gate_and_renders(kafka_bootstrap, start_serve, tmp_path):
    publish(kafka_bootstrap, [gate("checkout", "1.5.0", "pass"), gate("checkout", "1.6.0", "fail"),
                              gate("search", "2.0.0", "pending", missing=("latency_p95_ms",)),
                              gate("<script>x</script>", "1", "pending")])
    s = start_serve(token="tok")
    assert http("GET", s.url + "/")[0] == 401
    code, html = http("GET", s.url + "/", token="tok")
    assert code == 200 and html.startswith("<!doctype html>")
    for text in ("checkout", "1.5.0", "1.6.0", "CANARY_READY", "err5xx fired: rollback",
                 "latency_p95_ms: no signal at this step", "4 gates; caught up"):
        assert text in html, text
    assert "<script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    try:
        chromium = ensure_chromium()
    except RuntimeError as e:
        pytest.fail(f"the page screenshot needs chromium: {e}", pytrace=False)
    page, png = tmp_path / "gates.html", tmp_path / "gates.png"
    page.write_text(html)
    run = screenshot(chromium, page, png, 1200, 700)
    assert run.returncode == 0 and png.is_file(), run.stderr[-600:]
    width, height, bpp, rows = read_png(png.read_bytes())
    assert (width, height) == (1200, 700)
    colours = colour_stats(rows, bpp)["colours"]
    assert _has(colours, (0xd4, 0xf4, 0xdd)), "no pass badge"
    assert _has(colours, (0xfb, 0xd5, 0xd5)), "no fail badge"
    assert _has(colours, (0xfd, 0xf0, 0xc4)), "no pending badge"
