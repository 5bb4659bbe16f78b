"""Hostile input to the engine: chat templates that try to hang or exhaust it, and bad command lines.

Each case must end with one clear line (``ChatTemplateError``, an ``EngineError``, ``error:`` and a
non-zero exit) in bounded time and memory, and the engine must go on serving.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time

import pytest

from engine.generation.cli import main
from engine.generation.generate import stream_generate
from engine.messages import (
    ChatMessage,
    EngineError,
    Generate,
    GenerationConfig,
    GenerationFinished,
    LoadModel,
    ModelLoaded,
)
from engine.text import template_sandbox
from engine.text.chat_template import ChatTemplateCancelled, ChatTemplateError, render_chat_template
from engine.text.template_sandbox import RenderLimits
from engine.text.tokenizer import ChatTokenizer

MESSAGES = [{"role": "user", "content": "Hello"}]
NESTED_RANGES = (
    "{% for a in range(100000) %}{% for b in range(100000) %}{% for c in range(100000) %}"
    "{% endfor %}{% endfor %}{% endfor %}"
)

HOSTILE = {
    "huge-power": ("{{ 10 ** (10 ** 8) }}", "bits"),
    "power-in-steps": ("{{ (10 ** 10000) ** 10000 }}", "bits"),
    "huge-repeat": ("{{ 'A' * 2000000000 }}", "repeated value"),
    "huge-list": ("{{ [1] * 10 ** 8 }}", "repeated value"),
    "nested-ranges": (NESTED_RANGES, "looped more than|took longer than"),
    "recursive-loop": (
        "{% for x in range(100000) recursive %}{% if loop.depth < 4 %}{{ loop(range(100000)) }}"
        "{% endif %}{% endfor %}",
        "looped more than|took longer than",  # whichever comes first on this machine
    ),
    "center": ("{{ 'x' | center(10 ** 9) }}", "center width"),
    "indent": ("{{ 'a\nb' | indent(10 ** 10) }}", "indent width"),
    "batch-fill": ("{{ [1] | batch(10 ** 9, 'x') | list }}", "batch width"),
    "ljust": ("{{ 'x'.ljust(10 ** 9) }}", "padded value"),
    "str-format-width": ("{{ '{:>999999999}'.format(1) }}", "padded value"),
    "percent-width": ("{{ '%999999999s' % 'x' }}", "padded value"),
    "percent-star": ("{{ '%*s' % (999999999, 'x') }}", "padded value"),
    "replace": ("{{ ('x' * 1000000).replace('', 'y' * 100) }}", "characters"),
    "join": ("{{ ('y' * 1000000).join(range(100) | map('string')) }}", "joined value"),
    "join-filter": ("{{ range(1000) | join('y' * 1000000) }}", "joined value"),
    "macro-doubling": (
        "{% macro d(s, n) %}{{ d(s ~ s, n - 1) if n else s }}{% endmacro %}{{ d('x', 40) }}",
        "argument",
    ),
    "namespace-doubling": (
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}",
        "namespace value",
    ),
    "set-block-doubling": (
        "{% set ns = namespace(s='x' * 1000000) %}{% for i in range(40) %}{% set block %}"
        "{{ ns.s }}{{ ns.s }}{% endset %}{% set ns.s = block %}{% endfor %}",
        "characters",
    ),
    "huge-output": ("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", "a prompt of"),
    "recursion": ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursion"),
    "float-overflow": ("{{ 10.0 ** 400 }}", "range"),
    "zero-division": ("{{ 1 / 0 }}", "division"),
    "type-error": ("{{ 1 + 'a' }}", "unsupported"),
    "lipsum": ("{{ lipsum(10 ** 9) }}", "undefined"),
    "deep-nesting": ("{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}", "does not parse"),
    "multi-line-message": ("{{ raise_exception('line one\nline two') }}", "line one line two"),
}


@pytest.mark.parametrize(("template", "expected"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_templates_fail_with_one_line(template, expected):
    with pytest.raises(ChatTemplateError) as failure:
        render_chat_template(template, MESSAGES)
    message = str(failure.value)
    assert re.search(expected, message) and "\n" not in message and len(message) <= 300


def test_a_render_past_its_deadline_stops_even_without_output():
    limits = RenderLimits(seconds=0.2, max_iterations=10**12)
    with pytest.raises(ChatTemplateError, match=r"took longer than 0\.2 s"):
        render_chat_template(NESTED_RANGES, MESSAGES, limits=limits)


def test_cancel_stops_a_render_in_progress():
    cancel = threading.Event()
    outcome: list[BaseException] = []

    def render() -> None:
        limits = RenderLimits(seconds=3600, max_iterations=10**12)
        try:
            render_chat_template(NESTED_RANGES, MESSAGES, cancel=cancel, limits=limits)
        except ChatTemplateError as error:
            outcome.append(error)

    thread = threading.Thread(target=render, daemon=True)
    thread.start()
    thread.join(0.3)
    assert thread.is_alive()  # still rendering: only Stop can end it
    cancel.set()
    thread.join(60)  # a watchdog, not a speed check: without the cancel check it runs an hour
    assert not thread.is_alive() and isinstance(outcome[0], ChatTemplateCancelled)


def test_bounded_sandbox_keeps_ordinary_template_work():
    template = (
        "{% set ns = namespace(text='') %}{% for m in messages %}{% set ns.text = ns.text + "
        "m.content | upper %}{% endfor %}{{ ns.text }}|{{ '-' * 3 }}|{{ 2 ** 10 }}|"
        "{{ '%5s' % 'ab' }}|{{ '{:>4}'.format(7) }}|{{ 'a b'.replace(' ', '_') }}|"
        "{{ ', '.join(['x', 'y']) }}|{{ [1, 2] | join('+') }}|{{ 'ab' | center(6) }}|"
        "{% for x in [[1, [2]]] recursive %}{% if x is iterable %}{{ loop(x) }}{% else %}{{ x }}"
        "{% endif %}{% endfor %}"
    )
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    assert render_chat_template(template, messages) == (
        "HIYO|---|1024|   ab|   7|a_b|x, y|1+2|  ab  |12"
    )


# --- The engine worker: Stop ends a stuck render, and the next request is served ----------------

HANG_WHEN_ASKED = "{% if messages[-1].content == 'hang' %}" + NESTED_RANGES + "{% endif %}"


def _model_with_template(source, folder, template):
    """A copy of the model folder ``source`` whose chat template is ``template`` put before the
    real one (``chat_template.jinja`` wins over tokenizer_config.json, as in transformers 5)."""
    shutil.copytree(source, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    (folder / "chat_template.jinja").write_text(template + config["chat_template"], "utf-8")
    return folder


@pytest.fixture
def hostile_model(converted_package, tmp_path):
    return _model_with_template(
        converted_package("mistral", "none"), tmp_path / "hostile", HANG_WHEN_ASKED
    )


def _serves_the_next_request(engine, events):
    engine.submit(
        Generate(9, "c", (ChatMessage("user", "Hello"),), GenerationConfig(max_new_tokens=3))
    )
    finished, _ = events.until(GenerationFinished, 9)
    assert isinstance(finished, GenerationFinished)
    assert finished.stats.finish_reason in ("eos", "max_tokens") and finished.stats.generated_tokens


def test_stop_ends_a_generation_stuck_rendering(worker, hostile_model, monkeypatch):
    # Without Stop this render would run for an hour.
    monkeypatch.setattr(
        template_sandbox, "DEFAULT_LIMITS", RenderLimits(seconds=3600, max_iterations=10**12)
    )
    engine, events = worker
    engine.submit(LoadModel(1, str(hostile_model)))
    events.until(ModelLoaded, 1)
    engine.submit(Generate(2, "c", (ChatMessage("user", "hang"),)))
    time.sleep(0.5)  # let the render start (if Stop came first the request ends unrun, also fine)
    engine.cancel(2)
    finished, _ = events.until(GenerationFinished, 2)
    assert isinstance(finished, GenerationFinished) and finished.stats.finish_reason == "cancelled"
    _serves_the_next_request(engine, events)


def test_a_render_past_its_time_limit_is_an_error_and_the_engine_goes_on(
    worker, hostile_model, monkeypatch
):
    monkeypatch.setattr(
        template_sandbox, "DEFAULT_LIMITS", RenderLimits(seconds=0.5, max_iterations=10**12)
    )
    engine, events = worker
    engine.submit(LoadModel(1, str(hostile_model)))
    events.until(ModelLoaded, 1)
    engine.submit(Generate(2, "c", (ChatMessage("user", "hang"),)))
    error, _ = events.until(GenerationFinished, 2)
    assert isinstance(error, EngineError)
    assert "took longer than 0.5 s" in error.message and "\n" not in error.message
    _serves_the_next_request(engine, events)


# --- coreml-chat-generate ------------------------------------------------------------------------


def test_cli_refuses_a_prompt_that_is_not_utf8(tmp_path):
    command = [sys.executable.encode(), b"-m", b"engine.generation.cli", bytes(tmp_path),
               b"--prompt", b"caf\xe9"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, timeout=120)
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 2 and "Traceback" not in stderr
    assert "--prompt must be UTF-8 text; found byte 0xe9 at character 3" in stderr


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--temperature", "nan", "--temperature must be 0 (greedy) or a finite number"),
        ("--temperature", "inf", "--temperature must be 0 (greedy) or a finite number"),
        ("--temperature", "-1", "--temperature must be 0 (greedy) or a finite number"),
        ("--top-p", "nan", "--top-p must be a number from 0.0 to 1.0"),
        ("--seed", "-1", "--seed must be none or a whole number from 0 to 2147483647"),
    ],
)
def test_cli_refuses_non_finite_and_out_of_range_sampler_values(capsys, option, value, expected):
    with pytest.raises(SystemExit) as exit_info:
        main(["model", "--prompt", "x", option, value])
    assert exit_info.value.code == 2 and expected in capsys.readouterr().err


def test_the_engine_refuses_a_nan_temperature_too(converted_package):
    # The window and the HTTP server go through stream_generate: the same check as the CLI.
    from engine.generation.session import ChatSession
    from engine.runtime import load_model

    folder = converted_package("mistral", "none")
    session = ChatSession(load_model(folder), ChatTokenizer.from_folder(folder))
    config = GenerationConfig(temperature=float("nan"))
    conversation = (ChatMessage("user", "Hi"),)
    with pytest.raises(ValueError, match=r"temperature must be 0 \(greedy\) or a finite number"):
        next(stream_generate(session, session.new_cache(), conversation, config))


def test_cli_template_error_is_one_line(converted_package, tmp_path, capsys):
    folder = _model_with_template(converted_package("mistral", "none"), tmp_path / "m", "{{ 1/0 }}")
    assert main([str(folder), "--prompt", "hi"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: the model's chat template failed: division by zero"


def test_cli_absurd_state_shapes_are_one_line(converted_package, tmp_path, capsys):
    from coremltools.proto import Model_pb2

    folder = tmp_path / "absurd"
    shutil.copytree(converted_package("mistral", "none"), folder)
    spec_file = next(folder.rglob("model.mlmodel"))
    spec = Model_pb2.Model()
    spec.ParseFromString(spec_file.read_bytes())
    for state in spec.description.state:
        state.type.stateType.arrayType.shape[3] = 10**12  # context positions
    spec_file.write_bytes(spec.SerializeToString())
    assert main([str(folder), "--prompt", "hi"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "more than this machine's memory" in err[0]


def test_cli_json_prints_an_answer_that_filled_the_context(converted_package, capsys):
    folder = converted_package("mistral", "none")
    prompt = "Tell me a long story about a cat. " * 12
    assert main([str(folder), "--prompt", prompt, "--max-new-tokens", "1000", "--json"]) == 0
    captured = capsys.readouterr()
    output = json.loads(captured.out)
    assert output["finish_reason"] == "context_full" and output["token_ids"]
    # Every position of the context of 256 was used; the last token came from the last one.
    assert output["prompt_tokens"] + len(output["token_ids"]) == 256 + 1
    tokenizer = ChatTokenizer.from_folder(folder)
    assert output["text"] == tokenizer.decode(output["token_ids"])
    assert "filled the model's context" in captured.err


# --- Issue 21: templates that spend their time inside one C call holding the GIL ----------------
# The sandbox checks its budget between Python steps; these never take one, so in the engine's
# own process neither the time limit nor Stop (the pipe's reader thread needs the GIL) could end
# them. The engine renders in a child it kills (engine/text/render_process.py).

SELF_NESTED_LIST = (
    "{% set ns = namespace(d=[]) %}{% for i in range(40) %}{% set ns.d = [ns.d, ns.d] %}"
    "{% endfor %}{{ ns.d }}"
)
SELF_NESTED_DICT = (
    "{% set ns = namespace(d={}) %}{% for i in range(40) %}{% set ns.d = {'a': ns.d, 'b': ns.d} %}"
    "{% endfor %}{{ ns.d | tojson }}"
)
WORDWRAP = "{{ ('a ' * 8000000) | wordwrap(1) }}"
GIL_HOLDING = {"self-nested-list": SELF_NESTED_LIST, "self-nested-dict": SELF_NESTED_DICT,
               "wordwrap": WORDWRAP}  # fmt: skip


def _when_asked(template: str) -> str:
    return "{% if messages[-1].content == 'hang' %}" + template + "{% endif %}"


@pytest.fixture(params=GIL_HOLDING.values(), ids=GIL_HOLDING.keys())
def gil_holding_model(request, converted_package, tmp_path):
    return _model_with_template(
        converted_package("mistral", "none"), tmp_path / "gil", _when_asked(request.param)
    )


def test_a_render_inside_one_c_call_ends_at_its_time_limit(worker, gil_holding_model, monkeypatch):
    monkeypatch.setattr(template_sandbox, "DEFAULT_LIMITS", RenderLimits(seconds=1.0))
    engine, events = worker
    engine.submit(LoadModel(1, str(gil_holding_model)))
    events.until(ModelLoaded, 1)
    started = time.monotonic()
    engine.submit(Generate(2, "c", (ChatMessage("user", "hang"),)))
    error, _ = events.until(GenerationFinished, 2, timeout=30)  # unbounded before: 25-90+ s
    elapsed = time.monotonic() - started
    assert isinstance(error, EngineError) and "\n" not in error.message
    assert "took longer than 1 s to render" in error.message
    assert elapsed < 1.0 + 3.0  # the limit, the kill's grace, a new renderer on a loaded machine
    _serves_the_next_request(engine, events)


def test_stop_ends_a_render_inside_one_c_call_within_two_seconds(
    worker, converted_package, tmp_path, monkeypatch
):
    monkeypatch.setattr(template_sandbox, "DEFAULT_LIMITS", RenderLimits(seconds=3600))
    model = _model_with_template(
        converted_package("mistral", "none"), tmp_path / "gil", _when_asked(SELF_NESTED_LIST)
    )
    engine, events = worker
    engine.submit(LoadModel(1, str(model)))
    events.until(ModelLoaded, 1)
    engine.submit(Generate(2, "c", (ChatMessage("user", "hang"),)))
    time.sleep(1.0)  # well inside the one C call
    stopped = time.monotonic()
    engine.cancel(2)
    finished, _ = events.until(GenerationFinished, 2, timeout=30)
    assert isinstance(finished, GenerationFinished) and finished.stats.finish_reason == "cancelled"
    assert time.monotonic() - stopped < 2.0
    _serves_the_next_request(engine, events)


def test_the_renderer_costs_little_per_turn_on_a_real_template(smollm2_tokenizer_dir):
    """One pipe round trip per render: measured against the same renders in process, same run."""
    from engine.text.render_process import RenderProcess

    renderer = RenderProcess()
    isolated = ChatTokenizer.from_folder(smollm2_tokenizer_dir, render_template=renderer.render)
    in_process = ChatTokenizer.from_folder(smollm2_tokenizer_dir)
    conversation = [ChatMessage("system", "Be brief.")] + [
        ChatMessage("user" if turn % 2 == 0 else "assistant", "a few words " * 60)
        for turn in range(20)
    ]
    try:
        assert isolated.encode_chat(conversation) == in_process.encode_chat(conversation)

        def per_turn(tokenizer: ChatTokenizer) -> float:
            started = time.perf_counter()
            for _ in range(20):
                tokenizer.render_parts(conversation)
            return (time.perf_counter() - started) / 20

        extra = min(per_turn(isolated) for _ in range(3)) - min(
            per_turn(in_process) for _ in range(3)
        )
        assert extra < 0.005  # seconds per turn (about 0.4 ms measured on a loaded 2-core machine)
        assert renderer.started == 1  # one child for every render
    finally:
        renderer.close()


# --- Issue 21: the engine pipe bounds what it decodes, on both ends --------------------------------

DEEP_LINE = b"[" * 100_000 + b"]" * 100_000 + b"\n"


def test_decode_refuses_deep_nesting_with_a_wire_error():
    from engine import wire

    with pytest.raises(wire.WireError, match="nested at most 32 deep"):
        wire.decode(DEEP_LINE)
    nested = {"type": "EngineError", "fields": {"request_id": None, "message": "x"}}
    for _ in range(40):  # within json's recursion limit, past ours
        nested = {"type": "EngineError", "fields": {"request_id": None, "message": [nested]}}
    with pytest.raises(wire.WireError, match="nested at most 32 deep"):
        wire.decode(json.dumps(nested))


def test_a_line_past_the_size_limit_is_skipped_whole_and_the_next_one_is_read(monkeypatch):
    import io

    from engine import wire
    from engine.messages import Cancel

    monkeypatch.setattr(wire, "MAX_LINE_BYTES", 1000)
    stream = io.BytesIO(b'{"type": "Cancel", ' + b"x" * 5000 + b"}\n" + wire.encode(Cancel(3)))
    with pytest.raises(wire.WireError, match="at most 1,000 bytes, found 5,021"):
        wire.read_line(stream)
    assert wire.decode(wire.read_line(stream)) == Cancel(3)
    assert wire.read_line(stream) == b""


def test_the_engine_process_survives_a_deeply_nested_request_line(tmp_path):
    from engine import wire

    engine = subprocess.Popen(
        [sys.executable, "-m", "app", "--engine"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        engine.stdin.write(DEEP_LINE + wire.encode(LoadModel(7, str(tmp_path / "missing"))))
        engine.stdin.flush()
        answer = wire.decode(engine.stdout.readline())  # b"" (the process ended) before the fix
        assert isinstance(answer, EngineError) and answer.request_id == 7
    finally:
        engine.kill()
        engine.wait()
