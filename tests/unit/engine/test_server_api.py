"""The HTTP API's leniency and strictness, over a scripted engine (no model): any model name,
both route spellings, a public health check, unknown fields ignored, bad values and hostile bodies
answered with OpenAI's error object, CORS for the OpenAI SDKs' headers."""

from __future__ import annotations

import logging

import pytest

from tests.unit.engine.server_fakes import API_KEY, MODEL_INFO, ScriptedEngine, start_fake_server

ORIGIN = "http://localhost:5173"


@pytest.fixture(scope="module")
def server():
    running = start_fake_server(ScriptedEngine(), cors_origins=(ORIGIN,))
    yield running
    running.host.stop()


def chat(model: str = "gpt-4o", **extra: object) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "Hi"}], **extra}


def test_any_model_name_is_served_by_the_loaded_model_and_named_in_the_answer(server):
    import openai

    client = openai.OpenAI(base_url=server.host.url, api_key=API_KEY, max_retries=0)
    answer = client.chat.completions.create(model="gpt-4o", messages=chat()["messages"])
    assert answer.model == MODEL_INFO.name
    assert answer.choices[0].message.content == "Hello, world"
    streamed = list(client.completions.create(model="llama3", prompt="x", stream=True))
    assert {chunk.model for chunk in streamed} == {MODEL_INFO.name}


@pytest.mark.parametrize("prefix", ["/v1", ""])
def test_every_route_answers_with_and_without_v1(server, prefix):
    status, _, body = server.request(f"{prefix}/models")
    assert status == 200 and [m["id"] for m in body["data"]] == [MODEL_INFO.name]
    status, _, body = server.request(f"{prefix}/models/some-client-default")
    assert status == 200 and body["id"] == MODEL_INFO.name and body["object"] == "model"
    status, _, body = server.request(f"{prefix}/chat/completions", body=chat())
    assert status == 200 and body["choices"][0]["message"]["content"] == "Hello, world"
    status, _, body = server.request(f"{prefix}/completions", body={"model": "m", "prompt": "x"})
    assert status == 200 and body["choices"][0]["text"] == "Hello, world"


def test_a_model_by_id_needs_the_key(server):
    status, _, body = server.request("/v1/models/x", key=None)
    assert status == 401 and body["error"]["code"] == "invalid_api_key"


def test_health_is_public_and_says_whether_a_model_is_loaded(server):
    status, _, body = server.request("/health", key=None)
    assert (status, body) == (200, {"status": "ok"})
    empty = start_fake_server(ScriptedEngine(info=None))
    try:
        status, _, body = empty.request("/health", key=None)
        assert status == 503 and body == {"status": "no model loaded"}
    finally:
        empty.host.stop()


def test_unknown_fields_are_ignored_and_logged_once_per_name(server, caplog):
    caplog.set_level(logging.INFO, logger="engine.server.api")
    for _ in range(3):
        status, _, body = server.request(
            "/v1/chat/completions",
            body=chat(cache_prompt=True, reasoning_effort="low", frobnicate={"a": 1}),
        )
        assert status == 200, body
    logged = [r.getMessage() for r in caplog.records if "ignoring the request field" in r.message]
    assert sorted(logged) == sorted(
        f"ignoring the request field {name!r} (not used by this server)"
        for name in ("cache_prompt", "reasoning_effort", "frobnicate")
    )


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"temperature": "hot"}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stream": "yes"}, "stream"),
        ({"model": 7}, "model"),
        ({"stop": 3}, "stop"),
        ({"n": 9}, "n"),
    ],
)
def test_a_known_field_with_a_bad_value_is_a_400_naming_it(server, extra, named):
    status, _, body = server.request("/v1/chat/completions", body=chat(**extra))
    assert status == 400
    assert body["error"]["param"] == named and named in body["error"]["message"]
    assert body["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("content_type", ["text/plain", "text/plain;charset=UTF-8"])
def test_a_text_plain_body_is_never_read_as_json(server, content_type):
    """What a web page may send cross-origin without a preflight is refused, however it parses."""
    import json

    status, _, body = server.request(
        "/v1/chat/completions",
        raw=json.dumps(chat()).encode(),
        headers={"Content-Type": content_type},
    )
    assert status == 415 and "application/json" in body["error"]["message"]


def test_a_body_nested_200000_deep_is_a_400_with_an_error_object(server):
    status, headers, body = server.request("/v1/chat/completions", raw=b"[" * 200_000)
    assert status == 400, body
    assert headers["content-type"] == "application/json"
    assert "nests too deeply" in body["error"]["message"]


def test_nesting_beyond_the_bound_is_a_400_naming_the_field(server):
    from engine.server.requests import MAX_JSON_DEPTH

    deep: object = "x"
    for _ in range(MAX_JSON_DEPTH + 1):
        deep = [deep]
    status, _, body = server.request("/v1/chat/completions", body=chat(metadata=deep))
    assert status == 400
    assert body["error"]["param"] == "metadata"
    assert f"deeper than {MAX_JSON_DEPTH}" in body["error"]["message"]


def test_a_lone_surrogate_is_a_400_naming_the_field(server):
    raw = b'{"model": "m", "messages": [{"role": "user", "content": "a\\ud800b"}]}'
    status, _, body = server.request("/v1/chat/completions", raw=raw)
    assert status == 400, body
    assert body["error"]["param"] == "messages[0].content"
    # A surrogate pair is one character, and is served.
    pair = b'{"model": "m", "messages": [{"role": "user", "content": "\\ud83d\\ude00"}]}'
    assert server.request("/v1/chat/completions", raw=pair)[0] == 200


def test_an_unknown_route_is_a_404_error_object(server):
    status, _, body = server.request("/v2/chat")
    assert status == 404 and body["error"]["code"] == "not_found"


def _preflight(server, origin: str, headers: str):
    return server.request(
        "/v1/chat/completions",
        method="OPTIONS",
        key=None,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": headers,
        },
    )


def test_cors_allows_the_openai_sdk_headers_from_an_allowed_origin(server):
    requested = "authorization, content-type, x-stainless-lang, x-stainless-retry-count"
    status, headers, _ = _preflight(server, ORIGIN, requested)
    assert status == 200
    allowed = {h.strip().lower() for h in headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "x-stainless-lang", "x-stainless-retry-count"} <= (
        allowed
    )
    assert headers["access-control-allow-origin"] == ORIGIN


def test_cors_refuses_another_origin_and_other_headers(server):
    assert _preflight(server, "http://evil.example", "x-stainless-lang")[0] == 400
    assert _preflight(server, ORIGIN, "x-stainless-lang, x-secret")[0] == 400
