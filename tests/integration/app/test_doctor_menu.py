"""Help → Run Diagnostics: the doctor runs as a process of its own in the background (the window
stays responsive) and its summary opens in a dialog with a Copy button. The doctor's own command
is replaced by a short script that writes a report the way ``coreml-chat --doctor`` does."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from PySide6.QtWidgets import QApplication, QPushButton

from app.shell import doctor_runner

SCRIPT = """
import pathlib, sys, time
report = pathlib.Path(sys.argv[sys.argv.index("--json") + 1])
time.sleep(0.5)
report.write_text("{}")
report.with_suffix(".txt").write_text("coreml-chat doctor: all measured rows ok\\n")
"""


def test_the_doctor_runs_in_the_background_and_its_summary_opens(qtbot, tmp_path, monkeypatch):
    def command(report: Path) -> list[str]:
        assert doctor_runner_command(report)[-3:] == ["--doctor", "--json", str(report)]
        return [sys.executable, "-c", SCRIPT, "--json", str(report)]

    doctor_runner_command = doctor_runner.doctor_command
    monkeypatch.setattr(doctor_runner, "doctor_command", command)
    runner = doctor_runner.DoctorRunner(tmp_path / "doctor" / "doctor-report.json")
    finished: list[str] = []
    runner.finished.connect(finished.append)
    started = time.perf_counter()
    assert runner.start()
    assert time.perf_counter() - started < 0.3  # the GUI thread did not wait for it
    assert not runner.start()  # one at a time
    qtbot.waitUntil(lambda: bool(finished), timeout=20_000)
    assert finished == ["coreml-chat doctor: all measured rows ok\n"]

    dialog = doctor_runner.DoctorDialog(finished[0], runner.report)
    qtbot.addWidget(dialog)
    assert dialog.text.toPlainText() == finished[0]
    (copy,) = [b for b in dialog.findChildren(QPushButton) if b.text() == "Copy Summary"]
    copy.click()
    assert QApplication.clipboard().text() == finished[0]


def test_a_doctor_that_writes_nothing_says_why(qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(
        doctor_runner,
        "doctor_command",
        lambda report: [sys.executable, "-c", "import sys; sys.exit('no Core ML today')"],
    )
    runner = doctor_runner.DoctorRunner(tmp_path / "doctor-report.json")
    failed: list[str] = []
    runner.failed.connect(failed.append)
    runner.start()
    qtbot.waitUntil(lambda: bool(failed), timeout=20_000)
    assert "wrote no report (exit code 1)" in failed[0] and "no Core ML today" in failed[0]


def test_help_menu_runs_the_doctor_and_shows_its_summary(make_window, qtbot, monkeypatch):
    monkeypatch.setattr(
        doctor_runner,
        "doctor_command",
        lambda report: [sys.executable, "-c", SCRIPT, "--json", str(report)],
    )
    window = make_window(loaded=False)
    menus = {action.text(): action.menu() for action in window.menuBar().actions()}
    (item,) = [a for a in menus["&Help"].actions() if a.text() == "Run Diagnostics…"]
    item.trigger()
    assert not item.isEnabled()  # one run at a time
    qtbot.waitUntil(
        lambda: window.findChild(doctor_runner.DoctorDialog) is not None, timeout=20_000
    )
    dialog = window.findChild(doctor_runner.DoctorDialog)
    assert dialog.text.toPlainText().startswith("coreml-chat doctor")
    assert item.isEnabled()
