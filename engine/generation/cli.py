"""``coreml-chat-generate MODEL --prompt TEXT``: one answer from a model folder, like the blog's generate.py."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from engine.generation.generate import stream_generate
from engine.generation.open_chat import open_chat
from engine.messages import ChatMessage, GenerationConfig
from engine.package.model import COMPUTE_UNITS, ModelLoadError
from engine.text.chat_template import ChatTemplateError
from engine.text.tokenizer_files import ENV_TOKEN_HINT


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coreml-chat-generate", description=__doc__)
    parser.add_argument("model", type=Path, help="model folder or .mlpackage")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--system", default=None, help="system prompt")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.0, help="0 is greedy (default)")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--compute-units", choices=COMPUTE_UNITS, default="cpu_and_gpu")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    return parser


_OPTIONS = {"max_new_tokens": "--max-new-tokens", "temperature": "--temperature",
            "top_p": "--top-p", "seed": "--seed"}  # fmt: skip


def _text_problem(option: str, text: str | None) -> str | None:
    """argv that is not UTF-8 arrives with surrogate escapes (one per undecodable byte): the
    tokenizer cannot take them, so say which byte instead of failing deep inside it."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        code = ord(text[error.start])
        found = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"U+{code:04X}"
        return f"{option} must be UTF-8 text; found {found} at character {error.start}"
    return None


def _config(parser: argparse.ArgumentParser, args: argparse.Namespace) -> GenerationConfig:
    """The generation config, checked by the engine's own rules (one line per bad option)."""
    for option, text in (("--prompt", args.prompt), ("--system", args.system)):
        problem = _text_problem(option, text)
        if problem:
            parser.error(problem)
    config = GenerationConfig(
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
        context_policy="stop",
    )
    problems = config.problems()
    if problems:
        parser.error("; ".join(f"{_OPTIONS.get(n, n)} {text}" for n, text in problems.items()))
    return config


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = _config(parser, args)
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s: %(message)s"
    )
    try:
        session = open_chat(args.model, compute_units=args.compute_units, token_hint=ENV_TOKEN_HINT)
        cache = session.new_cache()
    except (ModelLoadError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except MemoryError:
        print("error: out of memory allocating the model's kv-cache state", file=sys.stderr)
        return 1
    messages = [ChatMessage("user", args.prompt)]
    if args.system:
        messages.insert(0, ChatMessage("system", args.system))
    pieces, tokens, last = [], [], None
    try:
        for response in stream_generate(session, cache, tuple(messages), config):
            pieces.append(response.text)
            if response.token >= 0:
                tokens.append(response.token)
            if not args.json and response.text:
                print(response.text, end="", flush=True)
            last = response
    except (ChatTemplateError, ModelLoadError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ncancelled", file=sys.stderr)
        return 130
    if last is None or last.stats is None:
        return 1
    if last.finish_reason == "context_full" and not tokens:  # the prompt alone does not fit
        print(f"error: {last.message}", file=sys.stderr)
        return 1
    if last.finish_reason == "context_full":  # the answer filled it: print it, then say so
        print(f"note: {last.message}", file=sys.stderr)
    if args.json:
        result = {
            "text": "".join(pieces),
            "token_ids": tokens,
            "prompt_tokens": last.stats.prompt_tokens,
            "time_to_first_token": round(last.stats.time_to_first_token, 4),
            "prefill_tokens_per_second": round(last.stats.prefill_tokens_per_second, 2),
            "decode_tokens_per_second": round(last.stats.decode_tokens_per_second, 2),
            "finish_reason": last.finish_reason,
            "runtime": session.model.description.runtime_name,
        }
        print(json.dumps(result, ensure_ascii=False))
    else:
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
