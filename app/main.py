"""`coreml-chat`: the chat window; `--convert ARGS…` runs the converter; `--self-test` checks a build.

The two flags are handled before anything imports Qt: a frozen app starts the converter as a
subprocess of its own executable (`--convert`), and the converter must never load Qt.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

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
    if args[:1] == ["--self-test"]:
        from app.self_test import main as self_test_main

        return int(self_test_main(args[1:]) or 0)
    configure_logging()
    return run_gui(args)


def configure_logging() -> Path | None:
    """stderr and a rotating file in the app's data folder (a GUI app's stderr is often lost)."""
    from logging.handlers import RotatingFileHandler

    from engine.paths import data_dir

    handlers: list[logging.Handler] = [logging.StreamHandler()]
    log_file: Path | None = data_dir() / "logs" / "coreml-chat.log"
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(RotatingFileHandler(log_file, maxBytes=2_000_000, backupCount=2))
    except OSError as error:
        print(f"warning: no log file at {log_file}: {error}", file=sys.stderr)
        log_file = None
    logging.basicConfig(
        level=os.environ.get("COREML_CHAT_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
    )
    logging.getLogger("coremltools").setLevel(logging.WARNING)  # per-op INFO lines on each load
    return log_file


def run_gui(args: list[str]) -> int:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app import event_loop
    from app.engine_bridge import EngineBridge, default_worker_factory
    from app.main_window import MainWindow
    from app.qt_fixes import install_refcount_guard, install_signal_emit_fix
    from app.quit_signals import quit_on_sigterm
    from app.settings import load_settings, save_settings
    from app.storage import ConversationStore, StorageError
    from app.theme import apply_theme

    install_signal_emit_fix()  # before any signal is emitted
    app = QApplication.instance() or QApplication([sys.argv[0], *args])
    install_refcount_guard()
    apply_theme(app)
    event_loop.install_excepthook()
    settings = load_settings()
    try:
        store = ConversationStore()
    except StorageError as error:
        event_loop.show_error_dialog(str(error), "")
        return 1
    bridge = EngineBridge(default_worker_factory(hf_token=settings.hf_token))
    window = MainWindow(store=store, bridge=bridge, settings=settings, save_settings=save_settings)
    quit_on_sigterm(window)  # SIGTERM saves the answer being written, like Quit

    async def run_window() -> int:
        window.show()
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
