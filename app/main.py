"""`coreml-chat`: the chat window; `--convert ARGS…` runs the converter; `--self-test` checks a build;
`--doctor` writes the machine report (`--doctor-probe`: one of its measurement processes).

The flags are handled before anything imports Qt: a frozen app starts the converter as a
subprocess of its own executable (`--convert`), and the converter must never load Qt.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import TextIO

logger = logging.getLogger(__name__)

STARTUP_PROBE_ENV = "COREML_CHAT_STARTUP_PROBE"  # benchmarks: print when the window shows, quit
_LAUNCHED_AT = time.perf_counter()


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--convert"]:
        from converter.cli import main as convert_main  # torch: only in this subprocess

        return int(convert_main(args[1:]) or 0)
    if args[:1] == ["--engine"]:
        from engine.process import main as engine_main  # the model runs only in this subprocess

        return int(engine_main(args[1:]) or 0)
    if args[:1] == ["--doctor"]:
        from app.doctor import main as doctor_main  # measures in probe processes, never here

        return int(doctor_main(args[1:]) or 0)
    if args[:1] == ["--doctor-probe"]:
        from engine.diagnostics.probe import main as probe_main  # a model runs in this process

        return int(probe_main(args[1:]) or 0)
    if args[:1] == ["--render-templates"]:
        from engine.text.render_process import main as render_main  # the engine's template child

        return int(render_main(args[1:]) or 0)
    if args[:1] == ["--self-test"]:
        from app.self_test import main as self_test_main

        return int(self_test_main(args[1:]) or 0)
    configure_logging()
    return run_gui(args)


def configure_logging() -> Path | None:
    """stderr and a rotating file (a GUI app's stderr is often lost): ``~/Library/Logs/coreml-chat``
    on macOS, the data folder's ``logs`` elsewhere; 0600, as it may quote conversations."""
    handlers, log_file = log_handlers()
    logging.basicConfig(
        level=os.environ.get("COREML_CHAT_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
    )
    logging.getLogger("coremltools").setLevel(logging.WARNING)  # per-op INFO lines on each load
    return log_file


class PrivateRotatingFileHandler(RotatingFileHandler):
    """Each log file (the current one, and each after a rollover) is created 0600."""

    def _open(self) -> TextIO:
        from engine.paths import make_private_file

        make_private_file(Path(self.baseFilename))
        return super()._open()


def log_handlers() -> tuple[list[logging.Handler], Path | None]:
    """The handlers ``configure_logging`` installs, and the log file (None when it cannot be)."""
    from engine.paths import log_dir

    handlers: list[logging.Handler] = [logging.StreamHandler()]
    log_file: Path | None = log_dir() / "coreml-chat.log"
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(PrivateRotatingFileHandler(log_file, maxBytes=2_000_000, backupCount=2))
    except OSError as error:
        print(f"warning: no log file at {log_file}: {error}", file=sys.stderr)
        log_file = None
    return handlers, log_file


def qt_bindings_problem(pyside: tuple, python: tuple) -> str | None:
    """Why these Qt bindings cannot run the app, or None. PySide6 6.12.0 drops a reference to
    None or True on many calls; Python 3.12+ makes those immortal, on 3.11 the app aborts."""
    if tuple(pyside[:3]) == (6, 12, 0) and tuple(python[:2]) < (3, 12):
        return (
            "PySide6 6.12.0 crashes on Python 3.11 (it drops references to None and True): "
            "expected PySide6 below 6.12 (pip install 'PySide6-Essentials<6.12') or Python 3.12+"
        )
    return None


def run_gui(args: list[str]) -> int:
    import PySide6
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.chat.engine_bridge import EngineBridge, default_worker_factory
    from app.conversations.store import StorageError, default_database_path
    from app.settings.app_settings import load_settings
    from app.settings.settings_store import SettingsStore
    from app.shell import event_loop
    from app.shell.database_check import open_checked_store
    from app.shell.instance_lock import (
        InstanceLockError,
        acquire_instance_lock,
        tell_already_running,
    )
    from app.shell.main_window import MainWindow
    from app.shell.quit_signals import quit_on_sigterm
    from app.ui.theme import ThemeFollower, apply_theme

    problem = qt_bindings_problem(PySide6.__version_info__, sys.version_info)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    app = QApplication.instance() or QApplication([sys.argv[0], *args])
    try:  # one instance per data folder; held until run_gui returns
        instance_lock = acquire_instance_lock()  # noqa: F841
    except InstanceLockError as error:
        tell_already_running(str(error), interactive=not os.environ.get(STARTUP_PROBE_ENV))
        return 3
    settings = SettingsStore(load_settings())
    apply_theme(app, mode=settings.settings.theme)
    theme_follower = ThemeFollower(app, settings)  # noqa: F841  # lives as long as the window
    event_loop.install_excepthook()
    notices: list[str] = []  # what the database check did, shown once the window is
    try:
        store = open_checked_store(default_database_path(), tell=notices.append)
    except StorageError as error:
        event_loop.show_error_dialog(str(error), "")
        return 1
    if store is None:  # a damaged database and the user chose Quit: nothing was changed
        return 1
    bridge = EngineBridge(default_worker_factory(hf_token=settings.settings.hf_token))
    window = MainWindow(store=store, bridge=bridge, settings=settings)
    quit_on_sigterm(window)  # SIGTERM saves the answer being written, like Quit

    async def run_window() -> int:
        window.show()
        for notice in notices:
            window.status_line.show_notice(notice)
        shown = time.perf_counter() - _LAUNCHED_AT
        logger.info("window shown %.3f s after launch", shown)
        if os.environ.get(STARTUP_PROBE_ENV):
            print(f'{{"window_shown_seconds": {shown:.4f}}}', flush=True)
            QTimer.singleShot(0, window.close)
        else:
            QTimer.singleShot(0, window.start)  # the model loads behind the shown window
        await event_loop.wait_closed(app)
        return 0

    return event_loop.run(run_window)


if __name__ == "__main__":
    sys.exit(main())
