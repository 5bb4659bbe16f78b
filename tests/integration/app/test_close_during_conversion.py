"""Closing the window while Settings converts a model asks first, and a yes cancels cleanly
(issue 24): nothing of the conversion stays behind."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QMessageBox

from tests.integration.app.window_helpers import stand_in_converter
from tests.unit.app.scripted_engine import scripted_window

SLOW_CONVERTER = """
import json, os, sys, time
from pathlib import Path
output = Path(sys.argv[sys.argv.index("-o") + 1]).resolve()
staging = output.parent / f".{output.name}.partial-{os.getpid()}"
staging.mkdir(parents=True)
(staging / "weight.bin").write_bytes(b"x" * 1000)
print(json.dumps({"event": "progress", "stage": "convert", "stage_fraction": 0.3}), flush=True)
time.sleep(60)
"""


def _converting_window(qtbot, tmp_path: Path):
    window, _engine = scripted_window(qtbot, tmp_path / "Model")
    window.open_settings("converter")
    pane = window.settings_dialog.converter_pane
    pane.process.executable = stand_in_converter(tmp_path, SLOW_CONVERTER)
    models = tmp_path / "models"
    pane.source_field.setText("owner/model")
    pane.output_field.setText(str(models))
    with qtbot.waitSignal(pane.process.progressChanged, timeout=20000):
        assert pane.start()
    assert any(p.name.startswith(".") and ".partial-" in p.name for p in models.iterdir())
    return window, pane, models


def _answer(qtbot, window, role: QMessageBox.ButtonRole) -> None:
    qtbot.waitUntil(lambda: window.close_box is not None and window.close_box.isVisible())
    box = window.close_box
    (button,) = [b for b in box.buttons() if box.buttonRole(b) == role]
    button.click()


def test_closing_mid_conversion_asks_and_keep_converting_keeps_it(qtbot, tmp_path) -> None:
    window, pane, _models = _converting_window(qtbot, tmp_path)
    window.close()
    assert window.isVisible() and pane.is_running()
    window.close_box.grab().save("/tmp/shots/i24-close-during-conversion.png")
    _answer(qtbot, window, QMessageBox.ButtonRole.RejectRole)
    assert window.isVisible() and pane.is_running()
    pane.process.wait_closed(timeout_ms=300)  # the test's own clean-up


def test_stop_and_quit_cancels_the_conversion_and_leaves_nothing(qtbot, tmp_path) -> None:
    window, pane, models = _converting_window(qtbot, tmp_path)
    window.close()
    _answer(qtbot, window, QMessageBox.ButtonRole.DestructiveRole)
    qtbot.waitUntil(lambda: not window.isVisible())
    assert not pane.is_running()
    assert list(models.iterdir()) == []  # no .partial folder left
