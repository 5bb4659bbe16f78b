"""The chat header at the smallest window, and which name a model goes by (issue 24)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QRect

from app.models.model_library import ModelSummary, display_name, library_row_text, model_info_rows
from tests.unit.app.scripted_engine import INFO, scripted_window

LONG_FOLDER = "SmolLM2-135M-Instruct-exact-copy-for-the-long-context-experiments"


def test_at_the_minimum_size_the_title_and_model_chip_end_in_an_ellipsis(qtbot, tmp_path) -> None:
    window, engine = scripted_window(qtbot, tmp_path / LONG_FOLDER)
    engine.answers.append(["Fine."])
    window.composer.input.setPlainText("A long first question about " + "many things " * 12)
    window.composer.button.click()
    qtbot.waitUntil(lambda: not window.controller.busy)
    window.resize(window.minimumSize())
    qtbot.waitUntil(lambda: window.size() == window.minimumSize())
    qtbot.wait(20)
    header = window.title_label.parentWidget()
    for label in (window.title_label, window.model_chip):
        assert label.shown_text().endswith("…"), label.shown_text()
        assert LONG_FOLDER in window.model_chip.toolTip()
        frame = QRect(label.mapTo(header, label.rect().topLeft()), label.size())
        assert header.rect().contains(frame)
    assert window.model_chip.text().startswith(LONG_FOLDER)
    for chip in (window.system_prompt.button, window.preset_chip):  # they shrink too
        frame = QRect(chip.mapTo(header, chip.rect().topLeft()), chip.size())
        assert header.rect().contains(frame), chip.objectName()
    assert window.title_label.width() >= window.title_label.minimumSizeHint().width()
    answer = window.chat_view.rows[-1]  # its author line is cut too, never widening the column
    assert answer.author_label.shown_text().endswith("…")
    assert window.chat_view.horizontalScrollBar().maximum() == 0
    column = window.chat_view.widget()
    assert column.width() <= window.chat_view.viewport().width()
    window.grab().save("/tmp/shots/i24-header-minimum.png")


def test_two_copies_of_a_model_go_by_their_folder_names(tmp_path: Path) -> None:
    """The package inside is called the same in every copy: the folder tells them apart."""

    def summary(folder: str, quantization: str) -> ModelSummary:
        return ModelSummary(
            "SmolLM2-135M-Instruct",
            tmp_path / folder,
            tmp_path / folder / "SmolLM2-135M-Instruct.mlpackage",
            8192,
            quantization,
            "llama",
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            100_000_000,
            True,
        )

    exact, int4 = summary("SmolLM2 exact", "q8_0"), summary("SmolLM2 int4", "int4")
    assert library_row_text(exact, loaded=True).startswith(
        "● SmolLM2 exact (SmolLM2-135M-Instruct)"
    )
    assert library_row_text(int4, loaded=False).startswith("SmolLM2 int4 (SmolLM2-135M-Instruct)")
    assert display_name(tmp_path / "Alone.mlpackage") == "Alone"
    info = replace(INFO, path=str(exact.folder))
    assert model_info_rows(info)[:2] == [("Model", "SmolLM2 exact"), ("Package", "Scripted")]


def test_the_chip_and_the_answers_carry_the_folder_name(qtbot, tmp_path) -> None:
    window, engine = scripted_window(qtbot, tmp_path / "Copy B")
    assert window.model_chip.text().startswith("Copy B · ")
    engine.answers.append(["Hi."])
    window.composer.input.setPlainText("Hello")
    window.composer.button.click()
    qtbot.waitUntil(lambda: not window.controller.busy)
    assert window.controller.messages()[-1].model == "Copy B"
    assert window.chat_view.rows[-1].author_label.text() == "Copy B"
