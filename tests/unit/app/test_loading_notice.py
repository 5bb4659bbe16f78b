"""The window while a model loads: a first Core ML compile (no compiled copy in the cache yet)
says "Preparing this model for your Mac, first time only" with the time elapsed, so a 7B's
minutes-long compile does not look like a hang; a cached model, or no Core ML, says "Loading"."""

from __future__ import annotations

from pathlib import Path

from app.shell.loading_notice import LoadingNotice
from engine.package import coreml_support
from engine.paths import compiled_model_path


def _model(tmp_path: Path) -> tuple[Path, Path]:
    package = tmp_path / "Mistral7B" / "Mistral7B.mlpackage"
    (package / "Data").mkdir(parents=True)
    (package / "Manifest.json").write_text("{}")
    return package.parent, package


def test_a_first_compile_says_so_with_the_time_elapsed(qtbot, tmp_path, monkeypatch) -> None:
    folder, package = _model(tmp_path)
    monkeypatch.setattr(coreml_support, "coreml_available", lambda: True)
    now = [100.0]
    shown: list[str] = []
    notice = LoadingNotice(shown.append, clock=lambda: now[0])

    notice.start(str(folder))
    assert notice.first_compile
    assert shown[-1].startswith("Preparing this model for your Mac, first time only")
    assert "7B model can take several minutes" in shown[-1] and "Mistral7B" in shown[-1]
    now[0] += 75
    qtbot.waitUntil(lambda: "(1:15)" in shown[-1], timeout=3000)  # the timer ticks each second
    notice.stop()

    compiled_model_path(package).mkdir(parents=True)  # compiled once: the cache has it
    notice.start(str(folder))
    assert not notice.first_compile and shown[-1] == "Loading Mistral7B…"
    notice.stop()


def test_without_core_ml_a_load_is_only_loading(qtbot, tmp_path, monkeypatch) -> None:
    folder, _ = _model(tmp_path)
    monkeypatch.setattr(coreml_support, "coreml_available", lambda: False)
    shown: list[str] = []
    now = [0.0]
    notice = LoadingNotice(shown.append, clock=lambda: now[0])
    notice.start(str(folder))
    now[0] = 12.0
    qtbot.waitUntil(lambda: shown[-1] == "Loading Mistral7B… (12 s)", timeout=3000)
    notice.stop()
