"""Engine overhead per decoded token, excluding ``predict`` (goal ≤ 0.3 ms).

Top-p sampling at temperature 0.8, the streaming detokenizer, stop-string checks: the time of each
decode step minus the time spent inside the model's ``predict``. Two models: the demo model
(SmolLM2-135M-Instruct, vocab 49152, a real model's peaked distributions) and a random 2-layer
Mistral with Mistral's real v3 tokenizer (vocab 32768), whose near-uniform distributions are the
worst case for top-p (nearly the whole vocabulary has to be sorted every token).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # make bench runs files

from benchmarks._models import demo_model_folder, tiny_mistral_folder
from engine.generate import stream_generate
from engine.messages import ChatMessage, GenerationConfig
from engine.runtime import load_model
from engine.session import ChatSession
from engine.tokenizer import ChatTokenizer


class TimedModel:
    """Wraps a model and adds up the time spent in ``predict``."""

    def __init__(self, model) -> None:
        self.model = model
        self.predict_seconds = 0.0
        self.calls = 0

    @property
    def description(self):
        return self.model.description

    def make_state(self):
        return self.model.make_state()

    def predict(self, inputs, state=None):
        started = time.perf_counter()
        try:
            return self.model.predict(inputs, state)
        finally:
            self.predict_seconds += time.perf_counter() - started
            self.calls += 1


def measure(folder) -> dict:
    model = TimedModel(load_model(folder))
    session = ChatSession(model, ChatTokenizer.from_folder(folder, model.description.metadata))
    config = GenerationConfig(
        temperature=0.8, top_p=0.9, max_new_tokens=300, seed=0, stop_strings=("\nUser:",)
    )
    messages = (ChatMessage("user", "Write a long story about a lighthouse keeper."),)
    cache = session.new_cache()
    session.prefill(cache, session.tokenizer.encode_chat(list(messages)))
    # Decode only: the step loop after the prompt is in the cache.
    model.predict_seconds, model.calls = 0.0, 0
    started = time.perf_counter()
    generated = 0
    for response in stream_generate(session, cache, messages, config):
        generated = response.generated_tokens
    total = time.perf_counter() - started
    overhead = (total - model.predict_seconds) / max(1, generated)
    return {
        "vocab": session.tokenizer.vocab_size,
        "generated_tokens": generated,
        "overhead_ms_per_token": round(overhead * 1000, 4),
        "predict_ms_per_call": round(model.predict_seconds / max(1, model.calls) * 1000, 3),
    }


def main() -> int:
    # Convert first (when not cached): the converter needs coremltools imported after torch, and
    # loading a model imports coremltools without it.
    demo, tiny = demo_model_folder(), tiny_mistral_folder()
    results = {
        "benchmark": "engine_overhead",
        "demo_model": measure(demo),
        "random_mistral_vocab_32768": measure(tiny),
        "goal_overhead_ms_per_token": 0.3,
    }
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
