"""Converted packages on the reference runtime against the torch module they came from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.package import metadata as meta
from engine.package.model import ModelLoadError, check_chat_model, find_package
from engine.runtime import load_model


def causal_mask(past: int, length: int) -> np.ndarray:
    mask = np.zeros((1, 1, length, past + length), dtype=np.float16)
    for i in range(length):
        mask[0, 0, i, past + i + 1 :] = -np.inf
    return mask


def feed(model, ids: np.ndarray, chunks: list[int]) -> np.ndarray:
    state = model.make_state()
    rows, past = [], 0
    for size in chunks:
        piece = ids[None, past : past + size].astype(np.int32)
        logits = model.predict(
            {meta.INPUT_IDS: piece, meta.CAUSAL_MASK: causal_mask(past, size)}, state
        )
        rows.append(np.asarray(logits[meta.LOGITS], dtype=np.float32)[0])
        past += size
    return np.concatenate(rows)


def transformers_logits(folder: Path, ids: np.ndarray) -> np.ndarray:
    from transformers import AutoModelForCausalLM

    reference = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    with torch.no_grad():
        return reference(torch.tensor(ids[None].astype(np.int64))).logits[0].numpy()


@pytest.mark.parametrize("arch", ["mistral", "llama"])
@pytest.mark.parametrize("quantize", ["none", "int4"])
def test_package_matches_the_source_model_whole_chunked_and_token_by_token(
    converted_package, request, arch, quantize
):
    folder = converted_package(arch, quantize)
    model = load_model(folder)
    assert model.description.runtime_name == "reference"
    check_chat_model(model.description)
    ids = np.random.default_rng(7).integers(0, 32768, size=10)
    expected = transformers_logits(request.getfixturevalue(f"tiny_{arch}_dir"), ids)
    # float16 storage: close to float32 transformers; int4 weights: the same top-1 token.
    tolerance = 5e-3 if quantize == "none" else 0.5
    for chunks in ([10], [3, 4, 3], [1] * 10):
        got = feed(model, ids, chunks)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=tolerance, rtol=0)
        if quantize == "none":
            assert (got.argmax(-1) == expected.argmax(-1)).all()


def test_last_logits_only_package_returns_one_row(converted_package, tiny_mistral_dir):
    # The package test_session.py answers with: no conversion of its own.
    model = load_model(converted_package("mistral", "none", last_logits_only=True))
    ids = np.random.default_rng(3).integers(0, 32768, size=6)
    state = model.make_state()
    out = model.predict(
        {meta.INPUT_IDS: ids[None].astype(np.int32), meta.CAUSAL_MASK: causal_mask(0, 6)}, state
    )
    assert out[meta.LOGITS].shape == (1, 1, 32768)
    expected = transformers_logits(tiny_mistral_dir, ids)[-1]
    np.testing.assert_allclose(out[meta.LOGITS][0, 0].astype(np.float32), expected, atol=0.5)


def test_states_are_independent(converted_package):
    model = load_model(converted_package("mistral", "int4"))
    ids = np.arange(5, 10)
    first, second = model.make_state(), model.make_state()
    a = model.predict(
        {meta.INPUT_IDS: ids[None].astype(np.int32), meta.CAUSAL_MASK: causal_mask(0, 5)}, first
    )
    b = model.predict(
        {meta.INPUT_IDS: ids[None, :1].astype(np.int32), meta.CAUSAL_MASK: causal_mask(0, 1)},
        second,
    )
    np.testing.assert_allclose(a[meta.LOGITS][0, 0], b[meta.LOGITS][0, 0], atol=1e-3)
    assert np.abs(first.arrays[meta.KEY_CACHE][:, :, :, 1:5]).sum() > 0
    assert np.abs(second.arrays[meta.KEY_CACHE][:, :, :, 1:5]).sum() == 0


def test_smollm2_says_paris(smollm2_exact_dir):
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    from tokenizers import Tokenizer

    model = load_model(smollm2_exact_dir)
    tokenizer = Tokenizer.from_file(str(smollm2_exact_dir / meta.TOKENIZER_FILE))
    config = json.loads((smollm2_exact_dir / meta.TOKENIZER_CONFIG_FILE).read_text())
    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    prompt = environment.from_string(config["chat_template"]).render(
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
    )
    ids = tokenizer.encode(prompt, add_special_tokens=False).ids
    state = model.make_state()
    logits = model.predict(
        {meta.INPUT_IDS: np.array([ids], np.int32), meta.CAUSAL_MASK: causal_mask(0, len(ids))},
        state,
    )
    answer, length = [], len(ids)
    for _ in range(10):
        token = int(logits[meta.LOGITS][0, -1].argmax())
        answer.append(token)
        logits = model.predict(
            {
                meta.INPUT_IDS: np.array([[token]], np.int32),
                meta.CAUSAL_MASK: causal_mask(length, 1),
            },
            state,
        )
        length += 1
    assert "Paris" in tokenizer.decode(answer)


def test_inputs_are_checked_against_the_spec(converted_package):
    model = load_model(converted_package("mistral", "int4"))
    state = model.make_state()
    with pytest.raises(ValueError, match="missing input 'causalMask'"):
        model.predict({meta.INPUT_IDS: np.zeros((1, 1), np.int32)}, state)
    with pytest.raises(ValueError, match=r"dimension 1 is 300; the model accepts 1\.\.256"):
        model.predict(
            {meta.INPUT_IDS: np.zeros((1, 300), np.int32), meta.CAUSAL_MASK: causal_mask(0, 300)},
            state,
        )
    with pytest.raises(ValueError, match="has rank 1"):
        model.predict(
            {meta.INPUT_IDS: np.zeros(3, np.int32), meta.CAUSAL_MASK: causal_mask(0, 3)}, state
        )
    with pytest.raises(ValueError, match="stateful"):
        model.predict(
            {meta.INPUT_IDS: np.zeros((1, 1), np.int32), meta.CAUSAL_MASK: causal_mask(0, 1)}
        )


def test_corrupt_weights_and_missing_packages_are_clear_errors(converted_package, tmp_path):
    folder = shutil.copytree(converted_package("mistral", "none"), tmp_path / "model")
    (weights,) = folder.rglob("weight.bin")
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match=r"weight\.bin"):
        load_model(folder)
    with pytest.raises(ModelLoadError, match="no such model"):
        load_model(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match=r"holds no \.mlpackage"):
        find_package(tmp_path / "empty")


def test_not_stateful_and_unknown_ops_are_refused(tmp_path):
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4))], opset_version=ct.target.iOS18)
    def plain(x):
        return mb.relu(x=x, name="logits")

    model = ct.convert(
        plain,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS18,
        skip_model_load=True,
    )
    model.save(str(tmp_path / "plain.mlpackage"))
    loaded = load_model(tmp_path / "plain.mlpackage")
    with pytest.raises(ModelLoadError, match="lacks input inputIds, input causalMask"):
        check_chat_model(loaded.description)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4))], opset_version=ct.target.iOS18)
    def exotic(x):
        return mb.erf(x=mb.erf(x=x))

    model = ct.convert(
        exotic,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS18,
        skip_model_load=True,
    )
    model.save(str(tmp_path / "exotic.mlpackage"))
    with pytest.raises(ModelLoadError, match=r"does not implement these ops: erf \(2×\)"):
        load_model(tmp_path / "exotic.mlpackage")
