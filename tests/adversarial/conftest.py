"""The stand-in Hub (a real HTTP server on 127.0.0.1) shared with tests/app/test_hub_download.py."""

from tests.app.test_hub_download import fake_hub  # noqa: F401 (a fixture)
