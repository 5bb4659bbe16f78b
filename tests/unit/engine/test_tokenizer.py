"""The chat tokenizer's model facts and errors, and fetching tokenizer files a package lacks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.messages import ChatMessage
from engine.package import metadata as meta
from engine.package.model import ModelLoadError
from engine.text.tokenizer import ChatTokenizer
from engine.text.tokenizer_files import cached_tokenizer_folder, tokenizer_folder


def _copy(source: Path, destination: Path) -> Path:
    destination.mkdir(parents=True, exist_ok=True)
    for name in (meta.TOKENIZER_FILE, meta.TOKENIZER_CONFIG_FILE):
        shutil.copyfile(source / name, destination / name)
    return destination


def test_bos_and_eos_come_from_the_config_and_the_metadata(mistral_v3_tokenizer_dir):
    tokenizer = ChatTokenizer.from_folder(mistral_v3_tokenizer_dir)
    assert tokenizer.bos_token_id == 1 and tokenizer.eos_token_ids == {2}
    assert tokenizer.special_tokens["bos_token"] == "<s>"
    with_metadata = ChatTokenizer.from_folder(mistral_v3_tokenizer_dir, {meta.EOS_TOKEN_IDS: "2,7"})
    assert with_metadata.eos_token_ids == {2, 7}
    assert tokenizer.vocab_size == 32768


def test_smollm2_ends_on_im_end(smollm2_tokenizer_dir):
    tokenizer = ChatTokenizer.from_folder(smollm2_tokenizer_dir)
    assert tokenizer.eos_token_ids == {tokenizer.tokenizer.token_to_id("<|im_end|>")}


def test_a_folder_without_a_chat_template_is_refused(mistral_v3_tokenizer_dir, tmp_path):
    folder = _copy(mistral_v3_tokenizer_dir, tmp_path / "base")
    config = json.loads((folder / meta.TOKENIZER_CONFIG_FILE).read_text())
    del config["chat_template"]
    (folder / meta.TOKENIZER_CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="no chat_template"):
        ChatTokenizer.from_folder(folder)
    (folder / "chat_template.jinja").write_text("{{ messages[0].content }}!")
    tokenizer = ChatTokenizer.from_folder(folder)  # transformers 5 keeps it beside the config
    assert tokenizer.render([ChatMessage("user", "hi")]) == "hi!"


def test_broken_tokenizer_files_say_which_file(mistral_v3_tokenizer_dir, tmp_path):
    folder = _copy(mistral_v3_tokenizer_dir, tmp_path / "broken")
    (folder / meta.TOKENIZER_CONFIG_FILE).write_text("{not json")
    with pytest.raises(ModelLoadError, match=r"tokenizer_config\.json is not valid JSON"):
        ChatTokenizer.from_folder(folder)
    (folder / meta.TOKENIZER_FILE).write_text("[]")
    with pytest.raises(ModelLoadError, match=r"tokenizer\.json is not a tokenizers file"):
        ChatTokenizer.from_folder(folder)
    (folder / meta.TOKENIZER_FILE).unlink()
    with pytest.raises(ModelLoadError, match=r"expected tokenizer\.json in"):
        ChatTokenizer.from_folder(folder)


def test_tokenizer_files_beside_the_package_are_used(mistral_v3_tokenizer_dir, tmp_path):
    folder = _copy(mistral_v3_tokenizer_dir, tmp_path / "model")
    package = folder / "Model.mlpackage"
    package.mkdir()
    assert tokenizer_folder(package, {}) == folder


def test_no_tokenizer_files_and_no_model_id_is_a_clear_error(tmp_path):
    package = tmp_path / "Alone.mlpackage"
    package.mkdir()
    with pytest.raises(ModelLoadError, match="names no source model"):
        tokenizer_folder(package, {})
    with pytest.raises(ModelLoadError, match="not a Hugging Face model id"):
        tokenizer_folder(package, {meta.SOURCE_MODEL_ID: "SmolLM2-135M-Instruct.Q4_1.gguf"})


def test_fetched_tokenizer_files_are_found_in_the_cache(
    mistral_v3_tokenizer_dir, tmp_path, private_home
):
    package = tmp_path / "Mistral7B.mlpackage"
    package.mkdir()
    model_id = "mistralai/Mistral-7B-Instruct-v0.3"
    cached = cached_tokenizer_folder(model_id)
    assert cached == private_home / "cache" / "tokenizers" / "mistralai--Mistral-7B-Instruct-v0.3"
    _copy(mistral_v3_tokenizer_dir, cached)
    found = tokenizer_folder(package, {meta.SOURCE_MODEL_ID: model_id})
    assert found == cached
    assert ChatTokenizer.from_folder(found).eos_token_ids == {2}


def test_offline_fetch_fails_clearly_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    package = tmp_path / "Mistral7B.mlpackage"
    package.mkdir()
    model_id = "mistralai/Mistral-7B-Instruct-v0.3"
    with pytest.raises(ModelLoadError, match="offline, and it is not in the cache"):
        tokenizer_folder(package, {meta.SOURCE_MODEL_ID: model_id})
    cached = cached_tokenizer_folder(model_id)
    assert not cached.exists()
    assert not any(cached.parent.glob(".fetch-*"))
