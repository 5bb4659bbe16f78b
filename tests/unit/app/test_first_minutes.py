"""What a new user hits in the first minutes (issue 24, item 12): a chat with no model, buttons
that look enabled when they are not, a listing used for another repository, answers credited to
the wrong model, Settings left open after "Use This Model"."""

from __future__ import annotations

import colorsys
from collections import Counter
from pathlib import Path

import pytest
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication, QPushButton

from app.ui.palette import PALETTES
from app.ui.theme import apply_palette
from tests.unit.app.scripted_engine import scripted_window


def _saturation(button: QPushButton) -> float:
    """How colourful the button's face is (0 grey … 1 pure accent): its most common colour."""
    image = button.grab().toImage()
    counts = Counter(
        image.pixel(x, y) for x in range(2, image.width() - 2) for y in range(2, image.height() - 2)
    )
    color = QColor.fromRgb(counts.most_common(1)[0][0])
    return colorsys.rgb_to_hsv(color.redF(), color.greenF(), color.blueF())[1]


@pytest.fixture(params=["light", "dark"])
def look(request):
    apply_palette(QApplication.instance(), PALETTES[request.param])
    yield request.param
    apply_palette(QApplication.instance(), PALETTES["light"])


def test_new_chat_without_a_model_shows_the_welcome_page_and_send_looks_disabled(
    qtbot, tmp_path, look
) -> None:
    window, _engine = scripted_window(qtbot, tmp_path / "unused", model_path="")
    assert window.current_page == "welcome"
    window.new_action.trigger()  # File → New Chat, Ctrl+N
    assert window.current_page == "welcome"  # not a chat that nothing can answer
    assert "Choose a model" in window.welcome.status.text()
    window.show_page("chat")
    window.composer.input.setPlainText("Hello")
    button = window.composer.button
    qtbot.waitUntil(lambda: button.isVisible())
    assert not button.isEnabled()
    assert _saturation(button) < 0.25, look  # grey, not the accent: it looks disabled
    window.composer.set_can_send(True, placeholder="")
    assert button.isEnabled() and _saturation(button) > 0.5, look


def test_download_is_disabled_until_a_lookup_of_the_repository_typed(qtbot, look) -> None:
    from app.models.hub_download import RepoFile, RepoListing
    from app.settings.app_settings import AppSettings
    from app.settings.settings_store import SettingsStore
    from app.shell.settings_dialog import SettingsDialog

    dialog = SettingsDialog(SettingsStore(AppSettings()))  # its style sheet draws the buttons
    qtbot.addWidget(dialog)
    dialog.resize(760, 1000)
    dialog.show()
    qtbot.waitExposed(dialog)
    card = dialog.model_pane.hub
    assert not card.download_button.isEnabled()
    assert _saturation(card.download_button) < 0.25, look  # and it looks it
    card.repo_field.setText("apple/mistral-coreml")
    files = (RepoFile("Model.mlpackage/Manifest.json", 10), RepoFile("tokenizer.json", 10))
    card._on_lookup_finished(RepoListing("apple/mistral-coreml", "abc", files))
    assert card.download_button.isEnabled() and _saturation(card.download_button) > 0.5
    card.repo_field.setFocus()
    qtbot.keyClicks(card.repo_field, "-other")  # another repository: not looked up yet
    assert not card.download_button.isEnabled()
    assert card.package_box.count() == 0


def test_an_answer_stored_without_a_model_name_is_not_credited_to_the_loaded_one(
    qtbot, tmp_path
) -> None:
    window, _engine = scripted_window(qtbot, tmp_path / "Loaded Model")
    store = window.store
    chat = store.create_conversation("Old chat")
    store.append_message(chat.id, "user", "Hi")
    store.append_message(chat.id, "assistant", "Hello!", finish_reason="eos")  # no model name
    window.open_conversation(chat.id)
    answer = window.chat_view.rows[-1]
    assert answer.author_label.text() == "Assistant"
    assert "Loaded Model" not in answer.author_label.text()


def test_use_this_model_loads_it_and_closes_settings(qtbot, tmp_path: Path) -> None:
    window, _engine = scripted_window(qtbot, tmp_path / "First")
    window.open_settings("converter")
    dialog = window.settings_dialog
    qtbot.waitExposed(dialog)
    pane = dialog.converter_pane
    converted = tmp_path / "Converted"
    converted.mkdir()
    pane._converted_folder = str(converted)  # as a finished conversion leaves it
    pane.use_button.show()
    pane.use_button.click()
    assert not dialog.isVisible()
    qtbot.waitUntil(lambda: window.bridge.model_info.path == str(converted))
    assert window.model_chip.text().startswith("Converted · ")
