"""The chat template rendered without transformers gives the token ids transformers gives."""

from __future__ import annotations

import pytest

from engine.messages import ChatMessage
from engine.text.chat_template import ChatTemplateError, render_chat_template
from engine.text.tokenizer import ChatTokenizer

CONVERSATIONS = [
    [ChatMessage("user", "Hello there!")],
    [
        ChatMessage("user", "What is 2+2?"),
        ChatMessage("assistant", "It is 4."),
        ChatMessage("user", "And 3+3? Answer in 日本語 please 😀"),
    ],
    [
        ChatMessage("system", "You are terse."),
        ChatMessage("user", "Name a colour."),
        ChatMessage("assistant", " Blue. "),
        ChatMessage("user", "Another."),
    ],
]


@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=["one", "multi-turn", "system"])
def test_prompt_ids_equal_transformers_apply_chat_template(real_tokenizer_dir, conversation):
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(str(real_tokenizer_dir))
    ours = ChatTokenizer.from_folder(real_tokenizer_dir)
    payload = [{"role": m.role, "content": m.content} for m in conversation]
    expected = reference.apply_chat_template(payload, add_generation_prompt=True, tokenize=True)
    if hasattr(expected, "keys"):
        expected = expected["input_ids"]
    text = reference.apply_chat_template(payload, add_generation_prompt=True, tokenize=False)
    assert ours.render(conversation) == text
    assert ours.encode_chat(conversation) == list(expected)


def test_without_generation_prompt_matches_too(real_tokenizer_dir):
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(str(real_tokenizer_dir))
    ours = ChatTokenizer.from_folder(real_tokenizer_dir)
    conversation = CONVERSATIONS[1][:2]
    payload = [{"role": m.role, "content": m.content} for m in conversation]
    expected = reference.apply_chat_template(payload, add_generation_prompt=False, tokenize=False)
    assert ours.render(conversation, add_generation_prompt=False) == expected


def test_template_errors_are_reported(mistral_v3_tokenizer_dir):
    tokenizer = ChatTokenizer.from_folder(mistral_v3_tokenizer_dir)
    with pytest.raises(ChatTemplateError, match="roles must alternate"):
        tokenizer.encode_chat([ChatMessage("user", "a"), ChatMessage("user", "b")])


def test_a_template_that_does_not_parse_says_so():
    with pytest.raises(ChatTemplateError, match="does not parse"):
        render_chat_template("{% for m in messages %}", [])


def test_helpers_and_variables_as_transformers_defines_them():
    template = (
        "{{ bos_token }}{% if tools is none and documents is none %}no tools{% endif %}|"
        "{{ messages[0] | tojson }}|{% generation %}{{ messages[0].content }}{% endgeneration %}|"
        "{% set ns = namespace(count=0) %}{% for m in messages %}{% set ns.count = ns.count + 1 %}"
        "{% if loop.index > 5 %}{% break %}{% endif %}{% endfor %}{{ ns.count }}|"
        "{{ dict(a=1) | tojson }}|{{ strftime_now('%Y') | length }}"
        "{% if add_generation_prompt %}>{% endif %}"
    )
    rendered = render_chat_template(
        template,
        [{"role": "user", "content": "héllo 😀"}],
        add_generation_prompt=True,
        special_tokens={"bos_token": "<s>"},
    )
    assert rendered == '<s>no tools|{"role": "user", "content": "héllo 😀"}|héllo 😀|1|{"a": 1}|4>'


def test_the_sandbox_refuses_unsafe_templates():
    with pytest.raises(ChatTemplateError):
        render_chat_template("{{ messages.__class__.__mro__ }}", [])
    with pytest.raises(ChatTemplateError):
        render_chat_template("{% set ns = namespace(_x=1) %}", [])
    with pytest.raises(ChatTemplateError, match="custom failure"):
        render_chat_template("{{ raise_exception('custom failure') }}", [])


@pytest.mark.parametrize("template", ["{{ 300000000 * 'a' }}", "{{ 'a' * 300000000 }}"])
def test_a_repeated_string_is_refused_before_it_is_made_whichever_side_the_count_is(template):
    """The size check runs before ``*`` does, for both operand orders: a later check (of the
    rendered output) would refuse it too, but only after 286 MB were allocated."""
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(ChatTemplateError, match="repeated value"):
            render_chat_template(template, [])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 1024 * 1024
