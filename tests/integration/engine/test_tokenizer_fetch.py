"""Fetching the tokenizer of a package that came alone (the Hub's ``apple/mistral-coreml``), against
a stand-in Hub: the local HTTP server of ``tests/app/test_hub_download.py`` that huggingface_hub
accepts, on 127.0.0.1. No traffic leaves the machine; the real Hub is never asked."""

from __future__ import annotations

import io
import json
import logging
import shutil
import socket
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from engine.package import metadata as meta
from engine.package.model import ModelLoadError
from engine.text.tokenizer import ChatTokenizer
from engine.text.tokenizer_files import (
    ENV_TOKEN_HINT,
    SOURCE_RECORD,
    cached_tokenizer_folder,
    tokenizer_folder,
)
from tests.fixtures.fake_hub import SHA, FakeHub, _handler

MODEL_ID = "mistralai/Mistral-7B-Instruct-v0.3"
TEMPLATE = "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"


class StandinHub(FakeHub):
    """The stand-in Hub, answering 429 (too many requests) to the first ``fail_resolves`` file
    downloads: what huggingface_hub retries, with a warning each time."""

    fail_resolves: int = 0


def _server(hub: StandinHub) -> ThreadingHTTPServer:
    base = _handler(hub)

    class Flaky(base):  # type: ignore[misc, valid-type]
        def _serve(self, *, body: bool) -> None:
            if self.command == "GET" and "/resolve/" in self.path and hub.fail_resolves > 0:
                hub.fail_resolves -= 1
                hub.requests.append((self.command, self.path, {}))
                return self._error(429, "TooManyRequests")
            return super()._serve(body=body)

    return ThreadingHTTPServer(("127.0.0.1", 0), Flaky)


@pytest.fixture
def hub(mistral_v3_tokenizer_dir: Path):
    files = {
        name: (mistral_v3_tokenizer_dir / name).read_bytes()
        for name in (meta.TOKENIZER_FILE, meta.TOKENIZER_CONFIG_FILE)
    }
    hub = StandinHub(
        {
            MODEL_ID: {**files, "chat_template.jinja": TEMPLATE.encode()},
            "someone/no-template": dict(files),
        },
        gated={"gated/model"},
    )
    hub.repos["gated/model"] = dict(files)
    server = _server(hub)
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    yield hub
    server.shutdown()
    server.server_close()


def _alone(tmp_path: Path) -> Path:
    package = tmp_path / "model" / "Mistral7B.mlpackage"
    package.mkdir(parents=True)
    return package


def _resolved(hub: StandinHub) -> list[str]:
    return [path for _method, path, _headers in hub.requests if "/resolve/" in path]


def test_the_tokenizer_and_its_chat_template_come_from_one_recorded_commit(hub, tmp_path):
    package = _alone(tmp_path)
    folder = tokenizer_folder(package, {meta.SOURCE_MODEL_ID: MODEL_ID}, endpoint=hub.url)
    assert folder == cached_tokenizer_folder(MODEL_ID)
    assert (folder / "chat_template.jinja").read_text() == TEMPLATE
    assert ChatTokenizer.from_folder(folder).chat_template == TEMPLATE
    record = json.loads((package.parent / SOURCE_RECORD).read_text())
    assert record == {"model_id": MODEL_ID, "revision": SHA}
    assert _resolved(hub) and all(f"/resolve/{SHA}/" in path for path in _resolved(hub))

    # The repository moves on; the cache is cleared: the recorded commit is asked for again.
    hub.sha = "f" * 40
    hub.requests.clear()
    shutil.rmtree(folder)
    assert tokenizer_folder(package, {meta.SOURCE_MODEL_ID: MODEL_ID}, endpoint=hub.url) == folder
    assert any(path == f"/api/models/{MODEL_ID}/revision/{SHA}" for _m, path, _h in hub.requests)
    assert all(f"/resolve/{SHA}/" in path for path in _resolved(hub))
    assert json.loads((package.parent / SOURCE_RECORD).read_text())["revision"] == SHA


def test_a_repository_without_a_chat_template_file_is_fetched_without_one(hub, tmp_path):
    package = _alone(tmp_path)
    folder = tokenizer_folder(
        package, {meta.SOURCE_MODEL_ID: "someone/no-template"}, endpoint=hub.url
    )
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "tokenizer.json",
        "tokenizer_config.json",
    ]


def test_a_local_folder_name_is_never_fetched_for(hub, tmp_path):
    """Our converter records the folder's name when the source was local: ``Mistral-7B-v0.3``
    could be anybody's repository on the Hub."""
    package = _alone(tmp_path)
    for source in ("Mistral-7B-Instruct-v0.3", "SmolLM2-135M-Instruct.Q4_1.gguf"):
        with pytest.raises(
            ModelLoadError, match=r"not a Hugging Face model id \(expected owner/name"
        ):
            tokenizer_folder(package, {meta.SOURCE_MODEL_ID: source}, endpoint=hub.url)
    assert hub.requests == []


def test_an_unreachable_hub_gives_a_clear_error_and_leaves_nothing(tmp_path):
    with socket.socket() as closed:  # a port nobody listens on once it is closed
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    package = _alone(tmp_path)
    with pytest.raises(ModelLoadError, match=r"cannot reach the Hugging Face Hub .*ConnectError"):
        tokenizer_folder(
            package, {meta.SOURCE_MODEL_ID: MODEL_ID}, endpoint=f"http://127.0.0.1:{port}"
        )
    assert not cached_tokenizer_folder(MODEL_ID).exists()
    assert not (package.parent / SOURCE_RECORD).exists()


def test_each_hub_retry_is_logged_once(hub, tmp_path):
    """huggingface_hub's own stderr handler and ours both printed every retry warning."""
    import huggingface_hub  # noqa: F401  (its logger's handler is added at import)

    ours = io.StringIO()
    root_handler = logging.StreamHandler(ours)
    theirs = io.StringIO()
    library = logging.getLogger("huggingface_hub")
    # the handler huggingface_hub adds at import (an earlier test's fetch may have removed it)
    added = logging.StreamHandler(theirs)
    library.addHandler(added)
    streams = [
        (h, h.setStream(theirs)) for h in library.handlers if type(h) is logging.StreamHandler
    ]
    root = logging.getLogger()
    root.addHandler(root_handler)
    try:
        hub.fail_resolves = 1
        tokenizer_folder(_alone(tmp_path), {meta.SOURCE_MODEL_ID: MODEL_ID}, endpoint=hub.url)
    finally:
        root.removeHandler(root_handler)
        library.removeHandler(added)
        for handler, stream in streams:
            handler.setStream(stream)
    printed = ours.getvalue() + theirs.getvalue()
    assert printed.count("Retrying in") == 1


def test_open_chat_reads_the_tokenizer_before_loading_the_model(
    hub, tmp_path, converted_package, monkeypatch
):
    """A package alone whose tokenizer cannot be fetched fails in a second, before any load, and
    says how to give a token: Settings in the app, HF_TOKEN on the command line."""
    from coremltools.proto import Model_pb2

    from engine.generation import cli as generate_cli
    from engine.generation.open_chat import open_chat

    (source,) = converted_package("mistral", "int4").glob("*.mlpackage")
    package = Path(shutil.copytree(source, tmp_path / "alone" / "Mistral7B.mlpackage"))
    spec_file = package / "Data" / "com.apple.CoreML" / "model.mlmodel"
    spec = Model_pb2.Model()
    spec.ParseFromString(spec_file.read_bytes())
    spec.description.metadata.userDefined[meta.SOURCE_MODEL_ID] = "gated/model"
    spec_file.write_bytes(spec.SerializeToString())

    loads: list[Path] = []

    def load(path, *, compute_units="cpu_and_gpu"):
        loads.append(path)
        raise AssertionError("the model was loaded before its tokenizer was read")

    with pytest.raises(ModelLoadError, match=r"gated: .* add an access token in Settings"):
        open_chat(package, load=load, hub_endpoint=hub.url)
    assert loads == []

    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub.url)  # HF_ENDPOINT, read early
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    errors = io.StringIO()
    monkeypatch.setattr("sys.stderr", errors)
    assert generate_cli.main([str(package), "--prompt", "hi"]) == 1
    assert ENV_TOKEN_HINT in errors.getvalue() and "Settings" not in errors.getvalue()
