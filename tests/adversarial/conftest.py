"""Fixtures shared with tests/integration/app: the stand-in Hub (a real HTTP server on 127.0.0.1) and the main
window on the real engine worker."""

from tests.integration.app.conftest import make_window  # noqa: F401 (a fixture)
from tests.integration.app.test_hub_download import fake_hub  # noqa: F401 (a fixture)
