from __future__ import annotations

import pytest

from gatewatch.streams.app.serve import Serve


@pytest.fixture
def start_serve(kafka_bootstrap, topic_prefix):
    """start_serve(**kw) -> a running in-process Serve on a free loopback port (stopped at teardown)."""
    started = []

    def start(**kw) -> Serve:
        kw.setdefault("port", 0)
        s = Serve(kafka_bootstrap, **kw).start()
        started.append(s)
        assert s.materializer.wait_ready(60), "serve did not catch up with the gates topic"
        return s

    yield start
    for s in started:
        s.stop()
