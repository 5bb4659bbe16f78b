"""``coreml-chat-generate MODEL --prompt TEXT``: one answer from a model folder, like the blog's generate.py."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from engine.chat_template import ChatTemplateError
from engine.generate import stream_generate
from engine.messages import ChatMessage, GenerationConfig
from engine.model_package import COMPUTE_UNITS, ModelLoadError
from engine.runtime import open_chat
from engine.tokenizer_files import ENV_TOKEN_HINT


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


def _check_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.max_new_tokens < 1:
        parser.error(f"--max-new-tokens must be at least 1, not {args.max_new_tokens}")
    if args.temperature < 0:
        parser.error(f"--temperature must be 0 (greedy) or more, not {args.temperature}")
    if not 0 < args.top_p <= 1:
        parser.error(f"--top-p must be in (0, 1], not {args.top_p}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_options(parser, args)
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s: %(message)s"
    )
    try:
        session = open_chat(args.model, compute_units=args.compute_units, token_hint=ENV_TOKEN_HINT)
    except (ModelLoadError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    messages = [ChatMessage("user", args.prompt)]
    if args.system:
        messages.insert(0, ChatMessage("system", args.system))
    config = GenerationConfig(
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
        context_policy="stop",
    )
    cache = session.new_cache()
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
    if last is None:
        return 1
    if last.finish_reason == "context_full" and last.message:
        print(f"error: {last.message}", file=sys.stderr)
        return 1
    if args.json:
        result = {
            "text": "".join(pieces),
            "token_ids": tokens,
            "prompt_tokens": last.prompt_tokens,
            "time_to_first_token": round(last.time_to_first_token, 4),
            "prefill_tokens_per_second": round(last.prefill_tokens_per_second, 2),
            "decode_tokens_per_second": round(last.decode_tokens_per_second, 2),
            "finish_reason": last.finish_reason,
            "runtime": session.model.description.runtime_name,
        }
        print(json.dumps(result, ensure_ascii=False))
    else:
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
