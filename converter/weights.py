"""Load a source model's weights in float16, and its tokenizer files, for the stateful module.

Safetensors are read tensor by tensor and cast to float16 on the way in, so the peak is the
float16 model plus one tensor; GGUF files go through transformers (``gguf_file=``), which
dequantizes them, and the transformers model is dropped as soon as its tensors are taken.
"""

from __future__ import annotations

import gc
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from converter.errors import ConversionError
from converter.source import ResolvedSource
from engine.package import metadata as meta

logger = logging.getLogger(__name__)

FractionReport = Callable[[float, str], None]


def load_weights(source: ResolvedSource, *, report: FractionReport) -> dict[str, torch.Tensor]:
    if source.gguf_file is not None:
        return _load_gguf_weights(source, report=report)
    files = _safetensors_files(source.folder)
    if not files:
        raise ConversionError(
            f"{source.folder} has no *.safetensors weights (pytorch_model.bin is not supported: "
            "convert it with transformers' save_pretrained first)"
        )
    from safetensors import SafetensorError, safe_open

    weights: dict[str, torch.Tensor] = {}
    for index, path in enumerate(files):
        try:
            with safe_open(str(path), framework="pt") as handle:
                for name in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                    tensor = handle.get_tensor(name)
                    weights[name] = (
                        tensor.to(torch.float16) if tensor.is_floating_point() else tensor
                    )
        except (SafetensorError, OSError, RuntimeError, ValueError) as error:
            raise ConversionError(
                f"cannot read weights {path.name}: {error} (the file is corrupt or truncated; "
                "download it again)"
            ) from error
        report((index + 1) / len(files), f"read {path.name}")
    return weights


def _safetensors_files(folder: Path) -> list[Path]:
    index_path = folder / "model.safetensors.index.json"
    if index_path.is_file():
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
            names = sorted(set(index["weight_map"].values()))
        except (OSError, ValueError, KeyError) as error:
            raise ConversionError(f"cannot read {index_path}: {error}") from error
        missing = [name for name in names if not (folder / name).is_file()]
        if missing:
            raise ConversionError(
                f"{folder} lacks weight shard {missing[0]} named by its index; download it again"
            )
        return [folder / name for name in names]
    return sorted(folder.glob("*.safetensors"))


def _load_gguf_weights(
    source: ResolvedSource, *, report: FractionReport
) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    report(0.05, f"dequantizing {source.gguf_file}")
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(source.folder), gguf_file=source.gguf_file, dtype=torch.float16
        )
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        raise ConversionError(f"cannot load {source.gguf_file}: {error}") from error
    weights = {name: tensor.detach() for name, tensor in model.state_dict().items()}
    del model
    gc.collect()
    report(1.0, f"loaded {source.gguf_file}")
    return weights


# Tokens that end a turn in chat templates, found by their text as llama.cpp does: a GGUF names one
# eos_token_id (Gemma's <eos>, Phi's <|endoftext|>), but a Gemma turn ends with <end_of_turn>,
# Phi's with <|end|>, Llama 3's with <|eot_id|>, ChatML's with <|im_end|>.
END_OF_TURN_TEXTS = ("<end_of_turn>", "<|end|>", "<|eot_id|>", "<|im_end|>")


def end_of_turn_ids(tokenizer_file: Path) -> list[int]:
    """Ids of ``END_OF_TURN_TEXTS`` that are special tokens of ``tokenizer_file`` (tokenizer.json)."""
    try:
        added = json.loads(tokenizer_file.read_text(encoding="utf-8")).get("added_tokens") or []
    except (OSError, ValueError):
        logger.warning("cannot read %s for its end-of-turn tokens", tokenizer_file)
        return []
    found = {
        token.get("content"): token.get("id")
        for token in added
        if isinstance(token, dict) and token.get("special")
    }
    return [found[text] for text in END_OF_TURN_TEXTS if isinstance(found.get(text), int)]


def special_token_ids(
    source: ResolvedSource, *, tokenizer_file: Path | None = None
) -> tuple[int | None, tuple[int, ...]]:
    """bos id and every eos id, from the config and generation_config.json, and the end-of-turn
    tokens of ``tokenizer_file`` (the tokenizer.json written beside the package)."""
    config = source.config
    eos: list[int] = []

    def add(value: Any) -> None:
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, int) and item not in eos:
                eos.append(item)

    add(config.get("eos_token_id"))
    generation_path = source.folder / "generation_config.json"
    if source.gguf_file is None and generation_path.is_file():
        try:
            add(json.loads(generation_path.read_text(encoding="utf-8")).get("eos_token_id"))
        except (OSError, ValueError):
            logger.warning("ignoring unreadable %s", generation_path)
    if tokenizer_file is not None:
        add(end_of_turn_ids(tokenizer_file))
    bos = config.get("bos_token_id")
    return (bos if isinstance(bos, int) else None), tuple(eos)


def export_tokenizer(source: ResolvedSource, destination: Path) -> None:
    """Write ``tokenizer.json`` and ``tokenizer_config.json`` (with the chat template) beside it."""
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory(prefix="coreml-chat-tokenizer-") as scratch:
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                str(source.folder), gguf_file=source.gguf_file
            )
            tokenizer.save_pretrained(scratch)
        except (OSError, ValueError, KeyError, TypeError) as error:
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise ConversionError(
                f"cannot read the tokenizer of {source.source_id}: {first_line} "
                "(the model folder needs tokenizer.json or tokenizer.model)"
            ) from error
        saved = Path(scratch)
        if not (saved / meta.TOKENIZER_FILE).is_file():
            raise ConversionError(
                f"{source.source_id} has no fast tokenizer (tokenizer.json); coreml-chat needs one"
            )
        config_path = saved / meta.TOKENIZER_CONFIG_FILE
        config = (
            json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
        )
        template_path = saved / "chat_template.jinja"
        if not config.get("chat_template") and template_path.is_file():
            config["chat_template"] = template_path.read_text(encoding="utf-8")
        if not config.get("chat_template") and getattr(tokenizer, "chat_template", None):
            config["chat_template"] = tokenizer.chat_template
        if not config.get("chat_template"):
            logger.warning(
                "%s has no chat template; the engine will refuse to chat", source.source_id
            )
        for name in ("bos_token", "eos_token", "unk_token", "pad_token"):
            value = getattr(tokenizer, name, None)
            if isinstance(value, str) and not isinstance(config.get(name), str):
                config[name] = value
        shutil.copyfile(saved / meta.TOKENIZER_FILE, destination / meta.TOKENIZER_FILE)
        (destination / meta.TOKENIZER_CONFIG_FILE).write_text(
            json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8"
        )
    generation = source.folder / "generation_config.json"
    if source.gguf_file is None and generation.is_file():
        shutil.copyfile(generation, destination / "generation_config.json")
