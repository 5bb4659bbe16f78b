"""Chat-window fixtures: a converted tiny random model and a main window that has loaded it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.messages import GenerationConfig

LOAD_TIMEOUT_MS = 120_000


@pytest.fixture(scope="session")
def tiny_chat_model(converted_package) -> Path:
    """The tiny random Mistral (context 256), converted int4 once per session."""
    return converted_package("mistral", "int4")


@pytest.fixture
def make_window(qtbot) -> Iterator[Callable[..., object]]:
    """``make_window(model_path="", *, max_new_tokens=16, loaded=True, in_process=False)``: a
    shown MainWindow on the real engine (its process, or ``in_process`` a worker thread), with
    greedy decoding; waits for the model when ``loaded``."""
    from app.chat.engine_bridge import EngineBridge
    from app.conversations.conversation_store import ConversationStore
    from app.settings.app_settings import AppSettings
    from app.settings.settings_store import SettingsStore
    from app.shell.main_window import MainWindow

    windows: list[MainWindow] = []

    def make(
        model_path: str | Path = "",
        *,
        max_new_tokens: int = 16,
        loaded: bool = True,
        system_prompt: str = "",
        context_policy: str = "drop_oldest",
        in_process: bool = False,
    ) -> MainWindow:
        settings = AppSettings(
            system_prompt=system_prompt,
            model_path=str(model_path),
            generation=GenerationConfig(
                max_new_tokens=max_new_tokens,
                temperature=0.0,
                seed=0,
                context_policy=context_policy,  # type: ignore[arg-type]
            ),
        )
        factory = None
        if in_process:  # the real engine on a thread of the test process: no process to start
            from engine.worker import EngineWorker

            factory = EngineWorker
        window = MainWindow(
            store=ConversationStore(),
            bridge=EngineBridge(factory),
            settings=SettingsStore(settings),
        )
        qtbot.addWidget(window)
        window.show()
        window.start()
        windows.append(window)
        if loaded and model_path:
            qtbot.waitUntil(lambda: window.bridge.model_info is not None, timeout=LOAD_TIMEOUT_MS)
        return window

    yield make
    for window in windows:
        if window.isVisible():
            window.close()
