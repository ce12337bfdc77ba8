import pytest

from tests.report.chromium import ensure_chromium
from tests.report.factory import make_bundle


@pytest.fixture(scope="session")
def spike(tmp_path_factory):
    """The spike scenario decided, executed and logged: bundle, signals file, actions, receipts."""
    return make_bundle(tmp_path_factory.mktemp("report-spike"))


@pytest.fixture(scope="session")
def chromium():
    """Headless Chromium, installed with apt-get on first use; a clear failure (never a skip) otherwise."""
    try:
        return ensure_chromium()
    except RuntimeError as e:
        pytest.fail(f"screenshot test needs chromium: {e}", pytrace=False)
