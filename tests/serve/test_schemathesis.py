"""schemathesis against a running serve (issue 20 acceptance): every operation of docs/openapi.json,
with generated paths, queries and bodies, over real HTTP; no 5xx, no status or body outside the
documented responses, and the checked-in document is the one the server serves."""
import json
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from gatewatch.streams.app.serve.openapi import OPENAPI
from gatewatch.streams.app.serve.server import Api, HttpServer
from tests.serve.test_fuzz import _store

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
schema = schemathesis.openapi.from_dict(OPENAPI)


@pytest.fixture(scope="module")
def server():
    srv = HttpServer(Api(_store(), lambda: True, token=None, openapi=OPENAPI), port=0).start()
    yield srv
    srv.stop()


def test_the_checked_in_document_is_the_served_one():
    assert json.loads(DOC.read_text()) == OPENAPI


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms(case, server):
    case.call_and_validate(base_url=server.url)
