"""Reasoning (between <think> and </think>) is kept apart from the answer, however the stream cuts
the markers, and the template's enable_thinking is set only when the config says so."""

from __future__ import annotations

import pytest

from engine.generation.session import template_variables
from engine.messages import GenerationConfig
from engine.text.reasoning import ReasoningSplitter, split_reasoning


def _stream(text: str, size: int, *, started: bool = False) -> tuple[str, str]:
    splitter = ReasoningSplitter(started=started)
    parts = []
    for start in range(0, len(text), size):
        parts += splitter.feed(text[start : start + size])
    parts += splitter.finish()
    return "".join(t for t, r in parts if r), "".join(t for t, r in parts if not r)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 1000])
def test_reasoning_and_answer_whatever_the_pieces(size: int) -> None:
    text = "<think>\nIs 2<3? Yes.\n</think>\n\nThe answer is 4."
    assert _stream(text, size) == ("Is 2<3? Yes.\n", "The answer is 4.")
    assert _stream("hmm\n</think>\n\nYes", size, started=True) == ("hmm\n", "Yes")


@pytest.mark.parametrize("text", ["The answer <is> 4.", "  <thinking> no", "<b>bold</b>", ""])
def test_an_answer_without_reasoning_is_all_answer(text: str) -> None:
    for size in (1, 4, 1000):
        assert _stream(text, size) == ("", text)


def test_only_a_leading_block_is_reasoning() -> None:
    assert split_reasoning("Sure. <think>not this</think> ok") == (
        "",
        "Sure. <think>not this</think> ok",
    )


def test_unfinished_reasoning_stays_reasoning() -> None:
    assert split_reasoning("<think>still thinking") == ("still thinking", "")


def test_enable_thinking_reaches_the_template_only_when_set() -> None:
    assert template_variables(GenerationConfig()) == {}
    assert template_variables(GenerationConfig(enable_thinking=False)) == {"enable_thinking": False}
    assert GenerationConfig(enable_thinking="no").problems().keys() == {"enable_thinking"}  # type: ignore[arg-type]


def test_enable_thinking_false_reaches_a_qwen3_style_template() -> None:
    from engine.text.chat_template import render_chat_template

    template = (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n"
        "{% if enable_thinking is defined and enable_thinking is false %}"
        "<think>\n\n</think>\n\n{% endif %}{% endif %}"
    )
    messages = [{"role": "user", "content": "2+2?"}]
    off = template_variables(GenerationConfig(enable_thinking=False))
    assert render_chat_template(template, messages, variables=off).endswith(
        "assistant\n<think>\n\n</think>\n\n"
    )
    default = template_variables(GenerationConfig())
    assert render_chat_template(template, messages, variables=default).endswith("assistant\n")


def test_enable_thinking_reaches_the_template_in_the_render_process() -> None:
    """The engine renders templates in a child process: the variables travel there too."""
    from engine.text.render_process import RenderProcess

    renderer = RenderProcess()
    try:
        template = "{% if enable_thinking is defined and enable_thinking is false %}off{% endif %}"
        assert renderer.render(template, [], variables={"enable_thinking": False}) == "off"
        assert renderer.render(template, []) == ""
    finally:
        renderer.close()
