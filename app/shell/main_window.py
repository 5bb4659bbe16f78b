"""The main window: sidebar, welcome screen or chat (header, messages, composer, status line).

Wiring only: behaviour lives in ``ChatController`` (turns) and here in small handlers for the
window's own concerns (which page shows, loading a model, opening Settings).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.chat.chat_controller import ChatController, ChatOptions
from app.chat.chat_view import ChatView
from app.chat.composer import Composer
from app.chat.elided_label import ElidedLabel
from app.chat.engine_bridge import EngineBridge, default_worker_factory
from app.chat.model_switcher import ModelSwitcher
from app.chat.preset_switcher import PresetSwitcher
from app.chat.status_line import StatusLine
from app.chat.system_prompt_dialog import SystemPromptEditor
from app.conversations.conversation_list_model import ConversationListModel
from app.conversations.export_dialog import ConversationTransfer
from app.conversations.search_highlight import show_search_hit
from app.conversations.sidebar import SIDEBAR_WIDTH, Sidebar
from app.conversations.store import ConversationStore, StoredMessage
from app.conversion.demo_conversion import DemoConversion, DemoOutcome, DemoProgress
from app.models.model_library import display_name
from app.settings.app_settings import AppSettings
from app.settings.presets import chat_preset, find_preset, with_chat_preset
from app.settings.settings_store import SettingsStore
from app.shell.loading_notice import LoadingNotice
from app.shell.quit_signals import CLOSE_WITHOUT_ASKING
from app.shell.welcome_view import WelcomeView
from engine.messages import EngineError, ModelLoaded, ServerState

logger = logging.getLogger(__name__)

WINDOW_TITLE = "coreml-chat"
CHIP_MAX_WIDTH = 300
PRESET_CHIP_MAX_WIDTH = (
    160  # the model chip in the header; a longer name ends in "…" (whole in its tip)
)
ANSWERED = ("eos", "stop_string", "max_tokens")  # finish reasons of an answer that came through


class ErrorBanner(QFrame):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setObjectName("errorBanner")
        self.label = QLabel(objectName="errorText")
        self.label.setTextFormat(Qt.TextFormat.PlainText)  # error messages quote untrusted text
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton(objectName="messageAction")
        close.setText("✕")
        close.setAccessibleName("Dismiss the error")
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 6, 6, 6)
        layout.addWidget(self.label, 1)
        layout.addWidget(close)
        self.hide()

    def show_message(self, text: str) -> None:
        self.label.setText(text)
        self.show()

    @property
    def text(self) -> str:
        return self.label.text() if not self.isHidden() else ""


class MainWindow(QMainWindow):
    def __init__(
        self,
        *,
        store: ConversationStore,
        bridge: EngineBridge,
        settings: SettingsStore,
        parent: Any = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(WINDOW_TITLE)
        self.resize(1180, 780)
        self.setMinimumSize(760, 480)
        self.settings_store = settings
        self.store = store
        self.bridge = bridge
        self.controller = ChatController(store, bridge, options=self._chat_options, parent=self)
        self.settings_dialog: Any = None
        self._pending_preset = ""  # chosen for a new chat before its first message
        self.close_box: QMessageBox | None = None  # "stop the conversion and quit?"
        self._load_request: int | None = None
        self.demo = DemoConversion(self)  # "Try the demo model": fetch, convert, cancel

        self.conversations = ConversationListModel(store, self)
        self.sidebar = Sidebar(self.conversations)
        self.welcome = WelcomeView()
        self.chat_view = ChatView()
        self.composer = Composer()
        self.status_line = StatusLine()
        self.banner = ErrorBanner()
        # User and model text, cut with "…" at a narrow window (the whole text in the tooltip).
        self.title_label = ElidedLabel("New chat", objectName="chatTitle")
        self.model_chip = ModelSwitcher()  # a menu of the library's models
        self.model_chip.set_model("No model")
        self.model_chip.setMaximumWidth(CHIP_MAX_WIDTH)  # the chat's title comes first

        self._lay_out()

        self.loading_notice = LoadingNotice(self._show_loading, parent=self)
        self._make_actions()
        self._connect()
        self._update_model_state()
        self._show_preset()
        self.show_page("chat" if self.settings.model_path else "welcome")

    # --- layout -------------------------------------------------------------------------------

    def _lay_out(self) -> None:
        """The sidebar beside the pages: the welcome page and the chat page (header, banner,
        messages, composer, status line)."""
        header = self._header()
        composer_row = QHBoxLayout()
        composer_row.setContentsMargins(24, 6, 24, 2)
        composer_row.addStretch(1)
        composer_row.addWidget(self.composer, 100)
        composer_row.addStretch(1)
        self.composer.setMaximumWidth(780)
        hint_row = QHBoxLayout()
        hint_row.addStretch(1)
        hint_row.addWidget(self.composer.hint)
        hint_row.addStretch(1)
        banner_row = QHBoxLayout()
        banner_row.setContentsMargins(24, 8, 24, 0)
        banner_row.addWidget(self.banner)

        chat_page = QWidget(objectName="chatPage")
        chat_page.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        chat_layout = QVBoxLayout(chat_page)
        chat_layout.setContentsMargins(0, 0, 0, 0)
        chat_layout.setSpacing(0)
        chat_layout.addWidget(header)
        chat_layout.addLayout(banner_row)
        chat_layout.addWidget(self.chat_view, 1)
        chat_layout.addLayout(composer_row)
        chat_layout.addLayout(hint_row)
        chat_layout.addSpacing(6)
        chat_layout.addWidget(self.status_line)
        self.chat_page = chat_page

        self.pages = QStackedWidget()
        self.pages.addWidget(self.welcome)
        self.pages.addWidget(chat_page)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.sidebar)
        splitter.addWidget(self.pages)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([SIDEBAR_WIDTH, 1180 - SIDEBAR_WIDTH])
        splitter.setHandleWidth(1)
        splitter.setChildrenCollapsible(False)
        self.setCentralWidget(splitter)

    def _header(self) -> QWidget:
        """The chat's title, then its system prompt, preset and model chips."""
        header = QWidget(objectName="chatHeader")
        header.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        header_layout = QHBoxLayout(header)
        header_layout.setContentsMargins(20, 10, 16, 10)
        header_layout.addWidget(self.title_label)
        header_layout.addStretch(1)
        self.system_prompt = SystemPromptEditor(
            self.controller, self.settings_store, self, inherited=self._inherited_prompt
        )
        header_layout.addWidget(self.system_prompt.button)
        self.preset_chip = PresetSwitcher()  # this chat's generation preset
        self.preset_chip.setMaximumWidth(PRESET_CHIP_MAX_WIDTH)
        header_layout.addWidget(self.preset_chip)
        header_layout.addWidget(self.model_chip)
        return header

    # --- set-up ------------------------------------------------------------------------------

    def _make_actions(self) -> None:
        def action(text: str, keys: Any, slot: Callable[[], Any]) -> QAction:
            item = QAction(text, self)
            shortcuts = keys if isinstance(keys, list) else [keys]
            item.setShortcuts([QKeySequence(k) for k in shortcuts])
            item.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            item.triggered.connect(slot)
            self.addAction(item)
            return item

        preferences = QKeySequence(QKeySequence.StandardKey.Preferences)
        self.new_action = action("New Chat", QKeySequence.StandardKey.New, self.new_chat)
        self.settings_action = action(
            "Settings…",
            [preferences, QKeySequence("Ctrl+,")] if not preferences.isEmpty() else "Ctrl+,",
            lambda: self.open_settings("model"),
        )
        self.stop_action = action("Stop", "Esc", self.controller.stop)
        self.regenerate_action = action("Regenerate", "Ctrl+R", self.controller.regenerate)
        self.copy_answer_action = action(
            "Copy Last Answer", "Ctrl+Shift+C", self.chat_view.copy_last_answer
        )
        self.reasoning_action = action(
            "Show or Hide Last Reasoning", "Ctrl+Shift+R", self.chat_view.toggle_last_reasoning
        )
        self.edit_last_action = action("Edit Last Message", [], self._edit_last_message)
        self.edit_last_action.setToolTip("Or ↑ in an empty message box")
        self.search_action = action(
            "Search Chats", QKeySequence.StandardKey.Find, self._focus_search
        )
        self.transfer = ConversationTransfer(self.store, self)
        self.export_action = action(
            "Export Chats…",
            "Ctrl+Shift+E",
            lambda: self.transfer.open_export(self.controller.current_conversation_id, self),
        )
        self.import_action = action(
            "Import Chats…", "Ctrl+Shift+I", lambda: self.transfer.choose_import(self)
        )
        self.system_prompt_action = action(
            "System Prompt…", "Ctrl+Shift+P", lambda: self.system_prompt.open_dialog()
        )
        self.quit_action = action("Quit", QKeySequence.StandardKey.Quit, self.close)
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        for item in (self.new_action, self.export_action, self.import_action):
            file_menu.addAction(item)
        for item in (self.settings_action, self.quit_action):
            file_menu.addAction(item)
        chat_menu = menu.addMenu("&Chat")
        for item in (self.stop_action, self.regenerate_action, self.copy_answer_action,
                     self.reasoning_action, self.edit_last_action,
                     self.search_action):  # fmt: skip
            chat_menu.addAction(item)
        chat_menu.addAction(self.system_prompt_action)
        self.doctor_action = QAction("Run Diagnostics…", self)
        self.doctor_action.triggered.connect(self.run_doctor)
        menu.addMenu("&Help").addAction(self.doctor_action)
        menu.setNativeMenuBar(True)

    def run_doctor(self) -> None:
        """Help → Run Diagnostics: ``coreml-chat --doctor`` in the background, then its summary."""
        from app.doctor import default_report_path
        from app.shell.doctor_runner import DoctorDialog, DoctorRunner

        if getattr(self, "doctor", None) is None:
            self.doctor = DoctorRunner(default_report_path(), self)
            self.doctor.finished.connect(
                lambda text: DoctorDialog(text, self.doctor.report, self).open()
            )
            self.doctor.failed.connect(self.banner.show_message)
            self.doctor.finished.connect(lambda _: self.doctor_action.setEnabled(True))
            self.doctor.failed.connect(lambda _: self.doctor_action.setEnabled(True))
        if self.doctor.start():
            self.doctor_action.setEnabled(False)
            self.status_line.show_notice(
                "Running diagnostics in the background (a few minutes): the report opens when done"
            )

    def _connect(self) -> None:
        c = self.controller
        c.conversationOpened.connect(self._on_conversation_opened)
        c.messageAdded.connect(self._on_message_added)
        c.answerStarted.connect(self.chat_view.begin_answer)
        c.answerText.connect(self.chat_view.update_answer)
        c.answerFinished.connect(self._on_answer_finished)
        c.busyChanged.connect(self._on_busy)
        self.model_chip.modelChosen.connect(self.switch_model)
        self.model_chip.manageRequested.connect(lambda: self.open_settings("model"))
        self.preset_chip.presetChosen.connect(self.choose_preset)
        self.preset_chip.manageRequested.connect(lambda: self.open_settings("generation"))
        c.statsChanged.connect(self.status_line.set_stats)
        c.notice.connect(self.status_line.show_notice)
        c.errorOccurred.connect(self.banner.show_message)
        c.conversationsChanged.connect(self._refresh_sidebar)
        self.composer.sendRequested.connect(self._send)
        self.composer.stopRequested.connect(c.stop)
        self.composer.input.editLastRequested.connect(self._edit_last_message)
        self.composer.attachmentRefused.connect(self.banner.show_message)
        self.chat_view.editSubmitted.connect(c.edit_message)
        self.chat_view.regenerateRequested.connect(c.regenerate)
        self.chat_view.continueRequested.connect(c.continue_answer)
        self.chat_view.versionRequested.connect(c.show_version)
        self.sidebar.newRequested.connect(self.new_chat)
        self.sidebar.conversationSelected.connect(self.open_conversation)
        self.sidebar.searchHitChosen.connect(
            lambda _, message, words: show_search_hit(self.chat_view, message, words)
        )
        self.sidebar.deleteRequested.connect(c.delete_conversation)
        self.sidebar.deleteRequested.connect(self._forget_preset)
        self.sidebar.settingsRequested.connect(lambda: self.open_settings("model"))
        self.conversations.dataChanged.connect(lambda *_: self._update_title())
        self.welcome.demoRequested.connect(self.start_demo_model)
        self.welcome.demo_progress.cancelRequested.connect(self.demo.cancel)
        self.demo.progressChanged.connect(self._on_demo_progress)
        self.demo.finished.connect(self._on_demo_finished)
        self.welcome.openRequested.connect(self.choose_local_model)
        self.welcome.hubRequested.connect(lambda: self.open_settings("model"))
        self.welcome.convertRequested.connect(lambda: self.open_settings("converter"))
        self.bridge.modelLoaded.connect(self._on_model_loaded)
        self.bridge.engineError.connect(self._on_engine_error)
        self.bridge.serverStateChanged.connect(self._on_server_state)
        self.settings_store.changed.connect(self._on_settings_changed)
        self.settings_store.saveFailed.connect(self.banner.show_message)
        self.transfer.failed.connect(self.banner.show_message)
        self.transfer.exported.connect(
            lambda path: self.status_line.show_notice(f"Exported to {path}")
        )
        self.transfer.imported.connect(self._on_imported)

    @property
    def settings(self) -> AppSettings:
        """The current settings (a copy; changes go through ``settings_store.update``)."""
        return self.settings_store.settings

    def _chat_options(self) -> ChatOptions:
        """What the current chat's next turn uses: its preset's, or Settings → Generation."""
        settings = self.settings
        preset = find_preset(settings.presets, self._current_preset())
        if preset is not None:
            return ChatOptions(preset.system_prompt, preset.generation)
        return ChatOptions(settings.system_prompt, settings.generation)

    def _current_preset(self) -> str:
        conversation_id = self.controller.current_conversation_id
        if conversation_id is None:
            return self._pending_preset
        return chat_preset(self.settings.chat_presets, conversation_id)

    def choose_preset(self, name: str) -> None:
        """The header's preset menu: this chat uses ``name`` ("" : Settings → Generation). A new
        chat, not stored yet, takes it when its first message is sent."""
        conversation_id = self.controller.current_conversation_id
        if conversation_id is None:
            self._pending_preset = name
        else:
            chats = with_chat_preset(self.settings.chat_presets, conversation_id, name)
            self.settings_store.update(chat_presets=chats)
        self._show_preset()

    def _forget_preset(self, conversation_id: str) -> None:
        """A deleted chat's preset choice goes with it."""
        if chat_preset(self.settings.chat_presets, conversation_id):
            chats = with_chat_preset(self.settings.chat_presets, conversation_id, "")
            self.settings_store.update(chat_presets=chats)

    def _show_preset(self) -> None:
        self.preset_chip.show_presets(self.settings.presets, self._current_preset())
        self.system_prompt.refresh()  # a preset's prompt replaces the global one

    def _inherited_prompt(self) -> tuple[str, str]:
        """Where the current chat's prompt comes from when it has none of its own, and that prompt."""
        preset = find_preset(self.settings.presets, self._current_preset())
        if preset is not None:
            return f"preset “{preset.name}”", preset.system_prompt
        return "global", self.settings.system_prompt

    # --- pages and conversations -------------------------------------------------------------

    def show_page(self, name: str) -> None:
        self.pages.setCurrentWidget(self.welcome if name == "welcome" else self.chat_page)

    @property
    def current_page(self) -> str:
        return "welcome" if self.pages.currentWidget() is self.welcome else "chat"

    def new_chat(self) -> None:
        """A new chat; without a model (none loaded or loading) the welcome page instead, where
        one is chosen: a chat there could never be answered."""
        if self.bridge.model_info is None and self._load_request is None:
            self.show_page("welcome")
            self.welcome.setFocus()
            self.welcome.set_status("Choose a model first: a chat needs one to answer.")
            return
        self.controller.new_conversation()
        self.show_page("chat")
        self.composer.input.setFocus()

    def open_conversation(self, conversation_id: str) -> None:
        self.controller.open_conversation(conversation_id)
        self.show_page("chat")

    def _edit_last_message(self) -> None:
        if self.current_page == "chat" and not self.controller.busy:
            self.chat_view.edit_last_message()

    def _focus_search(self) -> None:
        self.sidebar.search.setFocus()
        self.sidebar.search.selectAll()

    def _send(self, text: str) -> None:
        if self.controller.send(text):
            self.composer.clear()
            self.show_page("chat")

    def _on_conversation_opened(self, conversation_id: str | None, messages: list) -> None:
        if conversation_id is not None and self._pending_preset and not messages:
            chats = with_chat_preset(
                self.settings.chat_presets, conversation_id, self._pending_preset
            )  # the new chat was just stored: it keeps the preset chosen for it
            self.settings_store.update(chat_presets=chats)
        if conversation_id is not None:
            self._pending_preset = ""
        self._show_preset()
        self.chat_view.set_messages(messages)
        self.sidebar.select(conversation_id)
        self._update_title()

    def _on_imported(self, ids: list[str]) -> None:
        self._refresh_sidebar()
        self.status_line.show_notice(f"Imported {len(ids)} chat{'s' if len(ids) != 1 else ''}")
        if ids:
            self.open_conversation(ids[0])

    def _on_message_added(self, message: StoredMessage) -> None:
        self.chat_view.add_message(message)

    def _on_answer_finished(self, message: StoredMessage | None) -> None:
        self.chat_view.finish_answer(message)
        if message is not None and message.finish_reason in ANSWERED:
            self.banner.hide()  # an answer came through: an earlier error no longer holds

    def _on_busy(self, busy: bool) -> None:
        self.composer.set_busy(busy)
        self.model_chip.set_blocked("Stop the answer first" if busy else "")

    def _refresh_sidebar(self) -> None:
        self.sidebar.refresh(current=self.controller.current_conversation_id)
        self._update_title()

    def _update_title(self) -> None:
        conversation_id = self.controller.current_conversation_id
        conversation = self.store.conversation(conversation_id) if conversation_id else None
        title = conversation.title if conversation else "New chat"
        self.title_label.setText(title)
        self.setWindowTitle(f"{title} — {WINDOW_TITLE}" if conversation else WINDOW_TITLE)

    # --- the model ---------------------------------------------------------------------------

    def start(self) -> None:
        """After the window is shown: load the last model (the window never waits for it)."""
        path = self.settings.model_path
        if path and Path(path).exists():
            self.load_model(path)
        elif path:
            self.banner.show_message(
                f"The last model is gone: expected a model folder at {path}. Choose another."
            )
            self.show_page("welcome")
        else:
            self.show_page("welcome")

    def load_model(self, path: str) -> None:
        self._load_request = self.bridge.load_model(
            path,
            compute_units=self.settings.compute_units,
            hub_endpoint=self.settings.hub_endpoint or None,
        )
        name = Path(path).name
        self.model_chip.set_model(f"Loading {name}…", loaded_path=self._loaded_path())
        self.loading_notice.start(path)  # says so when Core ML compiles first (minutes for a 7B)
        self._update_model_state()

    def _show_loading(self, text: str) -> None:
        self.welcome.set_status(text, busy=True)
        self.status_line.set_model(None, loading=text)

    def _on_model_loaded(self, event: ModelLoaded) -> None:
        if event.request_id != self._load_request:
            return
        self._load_request = None
        self.loading_notice.stop()
        info = event.info
        self.banner.hide()
        self.welcome.set_status("")
        if self.settings_store.update(model_path=info.path):
            self.settings_store.save_now()
        name = display_name(info.path)
        self.chat_view.assistant_name = name
        self.chat_view.set_empty_text(
            "How can I help?", f"{name} runs on this computer: nothing leaves it."
        )
        self.status_line.set_model(info, loading=f"{name} ready ({event.seconds:.1f} s)")
        self._apply_server_settings()
        if self.settings_dialog is not None:
            self.settings_dialog.set_model_info(info)
        self._update_model_state()
        if self.current_page == "welcome":
            self.show_page("chat")
        if self.controller.current_conversation_id is None:
            recent = self.store.conversations()
            if recent:
                self.controller.open_conversation(recent[0].id)
        self.composer.input.setFocus()

    def _on_engine_error(self, event: EngineError) -> None:
        if event.request_id is not None and event.request_id == self._load_request:
            self._load_request = None
            self.loading_notice.stop()
            message = f"Could not load the model: {event.message}"
            self.welcome.set_status(message)
            self.banner.show_message(message)
            self._update_model_state()

    def _update_model_state(self) -> None:
        info = self.bridge.model_info
        loading = self._load_request is not None
        if info is not None:
            name = display_name(info.path)
            self.model_chip.set_model(
                f"{name} · {info.quantization} · {info.context_length:,} ctx",
                loaded_path=info.path,
                tooltip=f"{name} ({info.name})\n{info.path}\nruntime: {info.runtime_name}\n"
                "Click to switch models",
            )
            placeholder = f"Message {name}…" if len(name) <= 32 else "Message the model…"
        elif loading:
            placeholder = "Loading the model…"
        else:
            self.model_chip.set_model("No model")
            placeholder = "Load a model to chat (Settings → Model)"
        self.composer.set_can_send(info is not None, placeholder=placeholder)
        self.composer.set_context_length(info.context_length if info is not None else None)

    def switch_model(self, path: str) -> None:
        """Another model from the header's menu: loaded for the chat that shows, which stays
        (its next answer is the new model's, labelled so)."""
        if self.controller.busy:
            self.banner.show_message("An answer is being written: stop it before switching models")
            return
        self.load_model(path)

    def _loaded_path(self) -> str:
        info = self.bridge.model_info
        return info.path if info is not None else ""

    def choose_local_model(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a model folder or .mlpackage")
        if path:
            self.load_model(path)

    def start_demo_model(self) -> None:
        """Load the demo model, fetching and converting it the first time (with progress and
        Cancel on the welcome page; closing the window cancels it)."""
        from app.conversion.demo_setup import demo_model_dir, is_model_folder

        folder = demo_model_dir()
        if is_model_folder(folder):
            self.load_model(str(folder))
            return
        if self.demo.is_running():
            return
        self.welcome.set_status("", busy=True)
        self.welcome.demo_progress.start()
        self.demo.start()

    def _on_demo_progress(self, progress: DemoProgress) -> None:
        self.welcome.demo_progress.show_progress(progress)

    def _on_demo_finished(self, outcome: DemoOutcome) -> None:
        self.welcome.demo_progress.finish()
        opened_another = self.bridge.model_info is not None or self._load_request is not None
        if outcome.status == "done" and opened_another:
            ready = "The demo model is ready: open it in Settings → Model."
            self.welcome.set_status(ready)
            self.status_line.show_notice(ready)  # the chat page shows: say it there too
        elif outcome.status == "done":  # nothing else was opened meanwhile
            self.load_model(outcome.folder)
        else:
            self.welcome.set_status(outcome.message)

    # --- settings ----------------------------------------------------------------------------

    def open_settings(self, tab: str = "model") -> None:
        try:
            from app.shell.settings_dialog import SettingsDialog
        except ImportError as error:
            logger.exception("the settings dialog cannot be imported")
            self.banner.show_message(f"Settings are not available: {error}")
            return
        if self.settings_dialog is None:
            dialog = SettingsDialog(
                self.settings_store, model_info=self.bridge.model_info, parent=self
            )
            dialog.modelChosen.connect(self.load_model)
            self.settings_dialog = dialog
        self.settings_dialog.show_tab(tab)
        self.settings_dialog.show()
        self.settings_dialog.raise_()

    def _on_settings_changed(self, previous: AppSettings, settings: AppSettings) -> None:
        units_changed = settings.compute_units != previous.compute_units
        if (settings.presets, settings.chat_presets) != (previous.presets, previous.chat_presets):
            self._show_preset()
        if settings.hf_token != previous.hf_token:
            self.bridge.replace_worker_factory(default_worker_factory(hf_token=settings.hf_token))
        if _server_fields(settings) != _server_fields(previous):
            self._apply_server_settings()
        info = self.bridge.model_info
        if units_changed and info is not None and not self.controller.busy:
            self.load_model(info.path)

    def _apply_server_settings(self) -> None:
        s = self.settings
        self.bridge.set_server(
            enabled=s.server_enabled and self.bridge.model_info is not None,
            port=s.server_port,
            api_key=s.server_api_key,
            cors_origins=s.server_cors_origins,
        )

    def _on_server_state(self, state: ServerState) -> None:
        self.status_line.set_server_state(state)
        if self.settings_dialog is not None:
            self.settings_dialog.server_pane.set_state(state)
        if state.message:
            self.status_line.show_notice(state.message)

    # --- closing -----------------------------------------------------------------------------

    def ask_to_stop_conversion(self) -> None:
        """Closing while Settings converts a model: ask (a sheet on macOS); "Stop and Quit"
        cancels the conversion, removes what it wrote, and closes."""
        if self.close_box is not None:
            self.close_box.raise_()
            return
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Quit coreml-chat",
            "A model is still being converted. Stop the conversion and quit?",
            QMessageBox.StandardButton.NoButton,
            self,
        )
        box.setInformativeText("Nothing of the conversion is kept; it has to start again.")
        stop = box.addButton("Stop and Quit", QMessageBox.ButtonRole.DestructiveRole)
        keep = box.addButton("Keep Converting", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(keep)
        box.setEscapeButton(keep)
        box.buttonClicked.connect(lambda button: _close_box_result(self, button, stop))
        self.close_box = box
        box.open()

    def _converter_pane(self) -> Any:
        """The Settings dialog's Converter tab, if the dialog was opened."""
        return self.settings_dialog.converter_pane if self.settings_dialog is not None else None

    def closeEvent(self, event: QCloseEvent) -> None:
        pane = self._converter_pane()
        converting = pane is not None and pane.is_running()
        if converting and not self.property(CLOSE_WITHOUT_ASKING):
            event.ignore()  # asked first: a conversion can have run for many minutes
            self.ask_to_stop_conversion()
            return
        if converting:
            pane.process.wait_closed()  # stopped, and its staging folder removed, before we go
        self.demo.wait_closed()  # no converter outlives the window, nothing half-written stays
        self.controller.save_interrupted()  # before the bridge's signals are blocked
        self.settings_store.save_now()
        self.bridge.blockSignals(True)  # events still queued must not reach the closed store
        self.bridge.close()
        self.store.close()
        super().closeEvent(event)


def _close_box_result(window: MainWindow, button: Any, stop: Any) -> None:
    window.close_box = None
    if button is stop:
        window.setProperty(CLOSE_WITHOUT_ASKING, True)
        window.close()


def _server_fields(settings: AppSettings) -> tuple:
    return (
        settings.server_enabled,
        settings.server_port,
        settings.server_api_key,
        settings.server_cors_origins,
    )
