"""Tokens fed to the model ÷ new tokens, over a scripted 10-turn chat (goal ≤ 1.1).

New tokens are what a turn adds: the new user message (as the template renders it) and the answer.
Re-prefilling the whole conversation every turn (swift-transformers, Anemll) feeds the sum of all
prompts; both figures are printed. Runs on the demo model (SmolLM2-135M-Instruct int4).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # make bench runs files

from benchmarks._goals import at_most, report
from benchmarks._models import demo_model_folder
from engine.generation.generate import stream_generate
from engine.generation.open_chat import open_chat
from engine.messages import ChatMessage, GenerationConfig

QUESTIONS = [
    "Hi! Who are you?",
    "What is the capital of France?",
    "And of Italy?",
    "Name a famous painter.",
    "What did they paint?",
    "Give me a short poem about the sea.",
    "Make it about the mountains instead.",
    "What is 12 times 7?",
    "Thanks. Suggest a book to read.",
    "Goodbye!",
]


def main() -> int:
    folder = demo_model_folder()
    session = open_chat(folder)
    config = GenerationConfig(temperature=0.0, max_new_tokens=24, context_policy="stop")
    cache = session.new_cache()
    messages: list[ChatMessage] = []
    new = reprefill = 0
    previous_prompt = 0
    for question in QUESTIONS:
        messages.append(ChatMessage("user", question))
        pieces, last = [], None
        for response in stream_generate(session, cache, tuple(messages), config):
            pieces.append(response.text)
            last = response
        if last is None or last.stats is None:
            raise RuntimeError("no finished response")
        new += (last.stats.prompt_tokens - previous_prompt) + last.stats.generated_tokens
        reprefill += last.stats.prompt_tokens + last.stats.generated_tokens
        messages.append(ChatMessage("assistant", "".join(pieces)))
        previous_prompt = last.stats.prompt_tokens + last.stats.generated_tokens
    fed = session.tokens_fed_total  # every token that went through predict
    report(
        "chat_feed_ratio",
        {"fed_over_new": at_most(fed / new, 1.1)},
        {
            "turns": len(QUESTIONS),
            "tokens_fed": fed,
            "new_tokens": new,
            "reprefill_fed_over_new": round(reprefill / new, 3),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
