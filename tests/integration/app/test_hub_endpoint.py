"""The Hub address in the settings reaches the engine's tokenizer fetch: a package that came without
its tokenizer files, loaded from the window, fetches them from the stand-in Hub (a local HTTP server
on 127.0.0.1) the settings name, through ``LoadModel`` and the worker. huggingface_hub's own default
points at a closed local port meanwhile: the real Hub is never asked, and a load that forgot the
setting fails instead of going out."""

from __future__ import annotations

import logging
import shutil
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from app.settings.app_settings import AppSettings, settings_from_dict, settings_to_dict
from engine.package import metadata as meta
from tests.fixtures.fake_hub import SHA, FakeHub, _handler

MODEL_ID = "someone/tiny-mistral"
LOAD_TIMEOUT_MS = 120_000
CLOSED_PORT = "http://127.0.0.1:9"  # discard: nothing listens there


@pytest.fixture
def tokenizer_hub(tiny_chat_model: Path, monkeypatch: pytest.MonkeyPatch):
    import huggingface_hub.constants

    # HF_ENDPOINT's value, read at import (the URL template too: an endpoint= replaces its start)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", CLOSED_PORT)
    monkeypatch.setattr(
        huggingface_hub.constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        CLOSED_PORT + "/{repo_id}/resolve/{revision}/{filename}",
    )
    files = {
        name: (tiny_chat_model / name).read_bytes()
        for name in (meta.TOKENIZER_FILE, meta.TOKENIZER_CONFIG_FILE)
    }
    hub = FakeHub({MODEL_ID: files})
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    yield hub
    server.shutdown()
    server.server_close()


def _package_alone(model_folder: Path, destination: Path) -> Path:
    """The converted package copied without its tokenizer files, its source model ``MODEL_ID``."""
    from coremltools.proto import Model_pb2  # the test process may; the GUI process never does

    (source,) = model_folder.glob("*.mlpackage")
    package = Path(shutil.copytree(source, destination / "alone" / source.name))
    spec_file = package / "Data" / "com.apple.CoreML" / "model.mlmodel"
    spec = Model_pb2.Model()
    spec.ParseFromString(spec_file.read_bytes())
    spec.description.metadata.userDefined[meta.SOURCE_MODEL_ID] = MODEL_ID
    spec_file.write_bytes(spec.SerializeToString())
    return package


def test_a_load_fetches_the_tokenizer_from_the_hub_endpoint_in_the_settings(
    qtbot, make_window, tokenizer_hub, tiny_chat_model: Path, tmp_path: Path
) -> None:
    package = _package_alone(tiny_chat_model, tmp_path)
    window = make_window(loaded=False, in_process=True)
    errors: list[object] = []
    window.bridge.engineError.connect(errors.append)
    window.settings_store.update(hub_endpoint=tokenizer_hub.url)
    window.load_model(str(package.parent))
    qtbot.waitUntil(
        lambda: window.bridge.model_info is not None or bool(errors), timeout=LOAD_TIMEOUT_MS
    )
    assert errors == []
    resolved = [path for _method, path, _headers in tokenizer_hub.requests if "/resolve/" in path]
    assert {path.rsplit("/", 1)[1] for path in resolved} == {
        meta.TOKENIZER_FILE,
        meta.TOKENIZER_CONFIG_FILE,
    }
    assert all(path.startswith(f"/{MODEL_ID}/resolve/{SHA}/") for path in resolved)


def test_the_hub_endpoint_setting_is_kept_and_a_bad_one_falls_back(caplog) -> None:
    kept = settings_from_dict(settings_to_dict(AppSettings(hub_endpoint="https://hf-mirror.com")))
    assert kept.hub_endpoint == "https://hf-mirror.com"
    with caplog.at_level(logging.WARNING):
        bad = settings_from_dict({"hub_endpoint": "hf-mirror.com"})
    assert bad.hub_endpoint == ""
    assert "expected empty or an http(s):// address" in caplog.text
