"""The entry point and the qasync glue: flags dispatched before Qt, the loop, the excepthook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.main import STARTUP_PROBE_ENV
from app.shell.event_loop import install_excepthook
from tests.conftest import REPO


def _run(args: list[str], *, env: dict[str, str] | None = None, code: str | None = None):
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "app", *args]
    return subprocess.run(
        command,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen", **(env or {})},
    )


def test_the_app_shows_its_window_and_quits_cleanly(private_home: Path) -> None:
    result = _run([], env={STARTUP_PROBE_ENV: "1"})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert 0 < report["window_shown_seconds"] < 30
    assert (private_home / "data" / "conversations.sqlite3").is_file()


def test_convert_flag_runs_the_converter_cli_without_qt() -> None:
    code = (
        "import sys\n"
        "from app.main import main\n"
        "try:\n"
        "    code = main(['--convert', '--help'])\n"
        "except SystemExit as exit:\n"
        "    code = exit.code\n"
        "print('exit', code)\n"
        "print('qt', any(m.startswith('PySide6') for m in sys.modules))\n"
    )
    result = _run([], code=code)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout and "--json-progress" in result.stdout
    assert "exit 0" in result.stdout and "qt False" in result.stdout


def test_event_loop_runs_a_coroutine_on_qt() -> None:
    code = (
        "import asyncio\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "from app.shell import event_loop\n"
        "async def main():\n"
        "    loop = asyncio.get_running_loop()\n"
        "    await asyncio.sleep(0.01)\n"
        "    import qasync\n"
        "    return 7 if isinstance(loop, qasync.QEventLoop) else 1\n"
        "print('result', event_loop.run(main))\n"
    )
    result = _run([], code=code)
    assert result.returncode == 0, result.stderr
    assert "result 7" in result.stdout


def test_excepthook_logs_and_reports_unexpected_errors(qtbot, caplog) -> None:
    reports: list[tuple[str, str]] = []
    previous = install_excepthook(
        report=lambda summary, details: reports.append((summary, details))
    )
    try:
        try:
            raise ValueError("boom in a slot")
        except ValueError as error:
            sys.excepthook(type(error), error, error.__traceback__)
        qtbot.waitUntil(lambda: len(reports) == 1, timeout=5000)
    finally:
        sys.excepthook = previous
    summary, details = reports[0]
    assert summary == "ValueError: boom in a slot"
    assert "Traceback" in details and "test_excepthook" in details
    assert "boom in a slot" in caplog.text


def test_the_app_logs_to_a_file_in_its_data_folder(private_home: Path) -> None:
    result = _run([], env={STARTUP_PROBE_ENV: "1"})
    assert result.returncode == 0, result.stderr
    log = (private_home / "data" / "logs" / "coreml-chat.log").read_text()
    assert "window shown" in log


def _lock_holder(env: dict[str, str] | None = None) -> subprocess.Popen:
    """Another process holding the data folder's instance lock until its stdin closes."""
    code = (
        "import sys\n"
        "from app.shell.instance_lock import acquire_instance_lock\n"
        "lock = acquire_instance_lock()\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_instance_on_one_data_folder_says_so_and_exits(private_home: Path) -> None:
    from app.shell.instance_lock import LOCK_FILE_NAME

    holder = _lock_holder()
    try:
        # Older than any stale time: a live holder still keeps the folder.
        os.utime(private_home / "data" / LOCK_FILE_NAME, (1, 1))
        result = _run([], env={STARTUP_PROBE_ENV: "1"})
        assert result.returncode == 3, result.stderr
        assert f"coreml-chat is already running on the data folder {private_home / 'data'}" in (
            result.stderr
        )
        assert f"(process {holder.pid} on " in result.stderr
        assert not (private_home / "data" / "conversations.sqlite3").exists()  # no window built
    finally:
        holder.communicate("")
    assert _run([], env={STARTUP_PROBE_ENV: "1"}).returncode == 0


def test_a_lock_left_by_a_killed_instance_does_not_block(private_home: Path) -> None:
    from app.shell.instance_lock import LOCK_FILE_NAME, InstanceLockError, acquire_instance_lock

    holder = _lock_holder()
    holder.kill()  # kill -9: the lock file stays behind
    holder.wait()
    assert (private_home / "data" / LOCK_FILE_NAME).is_file()
    lock = acquire_instance_lock()
    try:  # a second lock object, even in the same process, is refused
        with pytest.raises(InstanceLockError, match="already running"):
            acquire_instance_lock()
    finally:
        lock.unlock()
    acquire_instance_lock().unlock()


def test_pyside_6_12_0_is_refused_on_python_3_11_only() -> None:
    from app.main import qt_bindings_problem

    problem = qt_bindings_problem((6, 12, 0, "", ""), (3, 11, 9))
    assert problem is not None and "expected PySide6 below 6.12" in problem
    assert qt_bindings_problem((6, 12, 0, "", ""), (3, 12, 1)) is None
    assert qt_bindings_problem((6, 11, 3, "", ""), (3, 11, 9)) is None


def test_the_theme_finds_the_style_sheet_and_icon() -> None:
    from app.ui.palette import DARK
    from app.ui.theme import resources_dir, style_sheet

    assert (resources_dir() / "icon.png").is_file(), resources_dir()
    sheet = style_sheet(DARK)
    assert "QWidget" in sheet and DARK.window in sheet and "${" not in sheet
