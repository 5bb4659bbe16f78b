"""The metadata keys a converted model package carries, shared by the converter and the engine.

``co.huggingface.exporters.name`` is the key the Mistral-7B Core ML model published with the WWDC 24
blog post carries, so the engine reads that model unchanged; the rest are namespaced keys of ours.
"""

from __future__ import annotations

SOURCE_MODEL_ID = "co.huggingface.exporters.name"

_NS = "com.coreml-chat."
CONTEXT_LENGTH = _NS + "context_length"
ARCHITECTURE = _NS + "architecture"
QUANTIZATION = _NS + "quantization"  # "int4-searched-block32", "int4-block32", "gguf-exact", …
QUANTIZATION_RECIPES = _NS + "quantizationRecipes"  # JSON: tensor group → recipe
CONVERTER_VERSION = _NS + "converter_version"
COREMLTOOLS_VERSION = _NS + "coremltools_version"
TORCH_VERSION = _NS + "torch_version"
TRANSFORMERS_VERSION = _NS + "transformers_version"
BOS_TOKEN_ID = _NS + "bos_token_id"
EOS_TOKEN_IDS = _NS + "eos_token_ids"  # comma-separated: some models have several
LAST_LOGITS_ONLY = _NS + "last_logits_only"  # "true" / "false"

# Names of the model's interface (the blog's Mistral-7B package uses the same).
INPUT_IDS = "inputIds"
CAUSAL_MASK = "causalMask"
LOGITS = "logits"
KEY_CACHE = "keyCache"
VALUE_CACHE = "valueCache"

# Files of the model folder beside the package.
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
