import pytest

from appliance.scan.testing import scan_small_slide


@pytest.fixture(scope="session")
def finished_scan(tmp_path_factory):
    """One small finished scan (ground-truth doubles), shared by the output tests."""
    return scan_small_slide(tmp_path_factory.mktemp("outputs"), seed=31)
