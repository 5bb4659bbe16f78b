"""The Settings dialog (⌘, on macOS, Ctrl+, elsewhere): Model, Generation, Converter and General tabs.

Changes apply as they are made (the macOS way): each one goes to the app's ``SettingsStore``,
which tells the window and saves shortly after (at once when the dialog closes).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut, QShowEvent
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QHBoxLayout,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.conversion.converter_pane import ConverterPane
from app.models.model_pane import ModelPane
from app.settings.app_settings import AppSettings
from app.settings.general_pane import GeneralPane
from app.settings.generation_pane import GenerationPane
from app.settings.presets import Preset, preset_name_problem, with_preset, without_preset
from app.settings.server_pane import ServerSettingsPane
from app.settings.settings_store import SettingsStore
from app.ui.palette import current_palette
from app.ui.pane_widgets import hint, scrolling, settings_style_sheet
from engine.messages import ModelInfo

logger = logging.getLogger(__name__)

TabName = Literal["model", "generation", "converter", "server", "general"]
TABS: tuple[tuple[TabName, str], ...] = (
    ("model", "Model"),
    ("generation", "Generation"),
    ("converter", "Converter"),
    ("server", "Server"),
    ("general", "General"),
)


class SettingsDialog(QDialog):
    modelChosen = Signal(str)  # a model folder or .mlpackage path to load

    def __init__(
        self,
        store: SettingsStore,
        *,
        model_info: ModelInfo | None = None,
        parent: QWidget | None = None,
        hub_endpoint: str | None = None,
        converter_executable: str | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("SettingsDialog")
        self.setWindowTitle("Settings")
        self._palette_shown = current_palette()
        self.setStyleSheet(settings_style_sheet(self._palette_shown))
        self.resize(740, 820)
        self.store = store
        self._make_panes(store.settings, hub_endpoint, converter_executable)
        self._lay_out()
        self._connect_panes()
        self.set_model_info(model_info)
        self.show_tab("model")

    def _make_panes(
        self, settings: Any, hub_endpoint: str | None, converter_executable: str | None
    ) -> None:
        self.general_pane = GeneralPane(theme=settings.theme)
        self.model_pane = ModelPane(
            compute_units=settings.compute_units,
            token=settings.hf_token,
            hub_endpoint=hub_endpoint or settings.hub_endpoint or None,
        )
        self.generation_pane = GenerationPane()
        self.generation_pane.set_values(settings.system_prompt, settings.generation)
        self.generation_pane.set_presets(settings.presets)
        self.converter_pane = ConverterPane(
            output_dir=settings.converter_output_dir,
            token_source=self.model_pane.token,
            executable=converter_executable,
        )
        self.server_pane = ServerSettingsPane(settings)

    def _segments(self) -> QHBoxLayout:
        """The segmented control over the pages (one button a tab)."""
        self.segment_group = QButtonGroup(self)
        self.segment_group.setExclusive(True)
        segments = QHBoxLayout()
        segments.setSpacing(0)
        segments.addStretch(1)
        for index, (_name, title) in enumerate(TABS):
            button = QToolButton()
            button.setObjectName("SegmentButton")
            button.setText(title)
            button.setCheckable(True)
            button.setProperty(
                "segment", "first" if index == 0 else "last" if index == len(TABS) - 1 else "middle"
            )
            button.setCursor(Qt.CursorShape.PointingHandCursor)
            self.segment_group.addButton(button, index)
            segments.addWidget(button)
        segments.addStretch(1)
        return segments

    def _lay_out(self) -> None:
        self.pages = QStackedWidget()
        segments = self._segments()
        for page in (
            self.model_pane,
            self.generation_pane,
            self.converter_pane,
            self.server_pane,
            self.general_pane,
        ):
            self.pages.addWidget(scrolling(page))
        self.segment_group.idClicked.connect(self.pages.setCurrentIndex)
        close_button = QPushButton("Done")
        close_button.setObjectName("PrimaryButton")
        close_button.setDefault(True)
        close_button.clicked.connect(self.accept)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 14, 0, 14)
        layout.setSpacing(6)
        layout.addLayout(segments)
        layout.addWidget(self.pages, 1)
        footer = QHBoxLayout()
        footer.setContentsMargins(20, 0, 20, 0)
        footer.addWidget(hint("Changes are saved as you make them."))
        footer.addStretch(1)
        footer.addWidget(close_button)
        layout.addLayout(footer)
        QShortcut(QKeySequence.StandardKey.Close, self, activated=self.accept)

    def _connect_panes(self) -> None:
        self.server_pane.changed.connect(lambda changes: self._update(**changes))
        self.general_pane.themeChanged.connect(lambda theme: self._update(theme=theme))
        self.generation_pane.changed.connect(self._on_generation_changed)
        self.generation_pane.presetSaved.connect(self.save_preset)
        self.generation_pane.presetDeleted.connect(self.delete_preset)
        self.model_pane.computeUnitsChanged.connect(lambda units: self._update(compute_units=units))
        self.model_pane.tokenChanged.connect(lambda token: self._update(hf_token=token))
        self.model_pane.endpointChanged.connect(lambda url: self._update(hub_endpoint=url))
        self.model_pane.modelChosen.connect(self._on_model_chosen)
        self.converter_pane.outputDirChanged.connect(
            lambda folder: self._update(converter_output_dir=folder)
        )
        self.converter_pane.modelConverted.connect(self._use_converted_model)
        self.converter_pane.process.finished.connect(
            lambda _outcome: self.model_pane.refresh_local_models()  # a new model may be there
        )

    # --- the interface the chat window uses ------------------------------------------------------

    def show_tab(self, name: TabName) -> None:
        names = [tab for tab, _ in TABS]
        if name not in names:
            raise ValueError(f"no settings tab {name!r}: expected one of {', '.join(names)}")
        index = names.index(name)
        self.segment_group.button(index).setChecked(True)
        self.pages.setCurrentIndex(index)

    def set_model_info(self, info: ModelInfo | None) -> None:
        self.model_pane.set_model_info(info)
        self.server_pane.set_model_name(info.name if info is not None else "")

    def prefill_converter(self, source: str, output_dir: str) -> None:
        self.converter_pane.prefill(source, output_dir)
        self.show_tab("converter")

    def settings(self) -> AppSettings:
        return self.store.settings

    # --- behaviour ------------------------------------------------------------------------------

    def _update(self, **changes: object) -> None:
        self.store.update(**changes)

    def _on_generation_changed(self) -> None:
        self._update(
            system_prompt=self.generation_pane.system_prompt_text(),
            generation=self.generation_pane.config(),
        )

    def _on_model_chosen(self, path: str) -> None:
        if not path:
            return
        self._update(model_path=path)
        self.modelChosen.emit(path)

    def _use_converted_model(self, path: str) -> None:
        """ "Use This Model": load it and get out of the way (the chat is where it is used)."""
        self._on_model_chosen(path)
        if path:
            self.accept()

    def save_preset(self, name: str) -> str | None:
        """The Generation tab's settings and system prompt as preset ``name`` (replacing one of
        that name); returns why not, when it cannot be."""
        settings = self.store.settings
        problem = preset_name_problem(name, settings.presets)
        if problem is not None:
            QMessageBox.warning(self, "Save as Preset", problem)
            return problem
        pane = self.generation_pane
        preset = Preset(name.strip(), pane.system_prompt_text(), pane.config())
        self._update(presets=with_preset(settings.presets, preset))
        self.generation_pane.set_presets(self.store.settings.presets)
        return None

    def delete_preset(self, name: str) -> None:
        settings = self.store.settings
        presets, chats = without_preset(settings.presets, settings.chat_presets, name)
        self._update(presets=presets, chat_presets=chats)
        self.generation_pane.set_presets(presets)

    def save_now(self) -> None:
        """Take what is still being typed (token, output folder), then write the file."""
        self._update(hf_token=self.model_pane.token())
        output_dir = self.converter_pane.output_dir()
        if output_dir:
            self._update(converter_output_dir=output_dir)
        self.store.save_now()

    def changeEvent(self, event: QEvent) -> None:
        """The app switched between light and dark: this dialog's own style sheet follows."""
        super().changeEvent(event)
        if event.type() in (QEvent.Type.ApplicationPaletteChange, QEvent.Type.StyleChange):
            self._follow_palette()

    def showEvent(self, event: QShowEvent) -> None:
        self._follow_palette()
        super().showEvent(event)

    def _follow_palette(self) -> None:
        palette = current_palette()
        if palette != self._palette_shown:
            self._palette_shown = palette
            self.setStyleSheet(settings_style_sheet(palette))

    def done(self, result: int) -> None:
        self.save_now()
        super().done(result)
