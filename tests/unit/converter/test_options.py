"""The torch-free conversion contract: the argv round trip, names, and what the app may import."""

from __future__ import annotations

from pathlib import Path

import pytest

from converter.naming import default_model_name, name_problem, safe_name
from converter.options import (
    HUB_ID,
    ConversionRequest,
    build_parser,
    model_folder_problem,
    problems,
)


def _parsed(argv: list[str]) -> ConversionRequest:
    """What the converter process makes of ``argv`` (as ``converter.cli`` parses it)."""
    return ConversionRequest.from_args(build_parser().parse_args(argv))


@pytest.mark.parametrize(
    "request_",
    [
        ConversionRequest("owner/model", Path("/m/out")),
        ConversionRequest(
            "/x/model.gguf",
            Path("/m/My Model"),
            context_length=512,
            quantize="int4",
            block_size=64,
            last_logits_only=True,
            verify=True,
            force=True,
            name="Tiny",
        ),
        ConversionRequest("a/b", Path("/o"), quantize="int8"),
        ConversionRequest("a/b", Path("/o"), int4_recipe="linear-symmetric", int8_embeddings=True),
        ConversionRequest("a/b", Path("/o"), quantize="int4", int4_recipe="searched-symmetric"),
        ConversionRequest("a/b", Path("/o"), quantize="none", context_length=16),
        ConversionRequest("/x/model.gguf", Path("/o"), gguf_form="native"),
    ],
)
def test_request_survives_its_command_line(request_: ConversionRequest) -> None:
    assert _parsed(request_.to_argv()) == request_


def test_the_native_gguf_form_applies_to_a_gguf_kept_in_its_blocks(tmp_path: Path) -> None:
    from converter.options import problems

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    kept = ConversionRequest(str(gguf), tmp_path / "out", gguf_form="native")
    assert problems(kept) == []
    requantized = ConversionRequest(
        str(gguf), tmp_path / "out", gguf_form="native", quantize="int4"
    )
    assert problems(requantized) == [
        "GGUF form native: applies to a GGUF source kept in its own blocks, found quantization int4"
    ]
    unknown = ConversionRequest(str(gguf), tmp_path / "out", gguf_form="approximate")  # type: ignore[arg-type]
    assert problems(unknown) == ["GGUF form: expected exact, native, found 'approximate'"]


def test_int4_recipe_and_int8_embeddings_are_checked() -> None:
    from converter.options import problems

    default = ConversionRequest("a/b", Path("/nonexistent/o"))
    assert default.int4_recipe == "searched" and not default.int8_embeddings
    assert problems(default) == []
    bad_recipe = ConversionRequest("a/b", Path("/nonexistent/o"), int4_recipe="nf4")  # type: ignore[arg-type]
    assert problems(bad_recipe) == [
        "int4 recipe: expected searched, searched-symmetric, linear-symmetric, found 'nf4'"
    ]
    eight = ConversionRequest("a/b", Path("/nonexistent/o"), quantize="int8", int8_embeddings=True)
    assert problems(eight) == [
        "int8 embeddings: only with int4 quantization, found quantization int8"
    ]


def test_the_token_never_travels_on_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    request = ConversionRequest("a/b", Path("/o"), token="hf_secret")
    assert "hf_secret" not in " ".join(request.to_argv())
    assert _parsed(request.to_argv()).token == "hf_from_env"


def test_default_names_pass_the_name_rule() -> None:
    for text in ("..", ".hidden", "a/b", "ü-model", "", "x" * 500, "Mistral 7B (v0.3)"):
        assert name_problem(safe_name(text)) is None, text
    assert name_problem(default_model_name("/models/..", "int4")) is None
    assert default_model_name("owner/Mistral 7B", "int8") == "Mistral-7B-int8"


def test_hub_ids() -> None:
    assert HUB_ID.match("mistralai/Mistral-7B-Instruct-v0.3")
    for text in ("model", "/abs/path", "a/b/c", "../x", ""):
        assert not HUB_ID.match(text), text


def test_model_folder_rule(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    (folder / "M.mlpackage").mkdir(parents=True)
    assert "no Manifest.json" in (model_folder_problem(folder) or "")
    (folder / "M.mlpackage" / "Manifest.json").write_text("{}")
    (folder / "tokenizer.json").write_text("{}")
    assert model_folder_problem(folder) is None
    (folder / "N.mlpackage").mkdir()
    assert "found 2" in (model_folder_problem(folder) or "")


def test_force_replaces_only_a_model_folder(tmp_path: Path) -> None:
    """The --force guard: an existing output is refused without it, and with it unless it is one
    of our model folders (replacing anything else would delete the user's files)."""
    output = tmp_path / "out"
    (output / "M.mlpackage").mkdir(parents=True)
    (output / "M.mlpackage" / "Manifest.json").write_text("{}")
    source = "owner/model"
    assert any("already exists" in p for p in problems(ConversionRequest(source, output)))
    assert problems(ConversionRequest(source, output, force=True)) == []
    (output / "thesis.docx").write_text("years of work")
    found = problems(ConversionRequest(source, output, force=True))
    assert any("is not a model folder" in p and "thesis.docx" in p for p in found)


def test_auto_means_one_thing_everywhere() -> None:
    from converter.naming import quantization_label, resolved_quantization

    assert resolved_quantization("auto", gguf=True) == "exact"
    assert resolved_quantization("auto", gguf=False) == "int4"
    assert resolved_quantization("int8", gguf=True) == "int8"
    assert default_model_name("/m/SmolLM2-135M-Instruct.Q4_1.gguf", "auto").endswith("-gguf")
    assert default_model_name("owner/Model", "auto") == "Model-int4"
    assert default_model_name("owner/Model", "none") == "Model-fp16"
    assert quantization_label("exact", 32) == "gguf-exact"
    assert quantization_label("int4", 32) == "int4-searched-block32"
    with pytest.raises(ValueError, match="resolved quantization"):
        quantization_label("auto", 32)


@pytest.mark.parametrize(("block", "ok"), [(4, False), (8, True), (1024, True), (2048, False)])
def test_the_block_size_range_is_the_one_the_pane_offers(block: int, ok: bool) -> None:
    found = problems(ConversionRequest("owner/model", Path("/tmp/new-model-x"), block_size=block))
    assert (not any("block size" in p for p in found)) is ok


def test_the_families_have_one_name_each_for_the_converter_and_the_app() -> None:
    from converter.model_spec import FAMILIES
    from converter.naming import FAMILY_NAMES, family_label

    assert {a: f.name for a, f in FAMILIES.items()} == FAMILY_NAMES
    assert family_label("Qwen3ForCausalLM") == "Qwen3 (Qwen3ForCausalLM)"
    assert family_label("GraniteForCausalLM") == "GraniteForCausalLM"
    assert family_label("") == "unknown"
