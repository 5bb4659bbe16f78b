"""The Settings dialog (⌘,): Model, Generation and Converter tabs.

Changes apply as they are made (the macOS way): each one updates the dialog's ``AppSettings``,
emits ``settingsChanged`` and is saved shortly after (at once when the dialog closes).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Literal

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QHBoxLayout,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.converter_pane import ConverterPane
from app.model_manager_view import ModelPane
from app.server_settings_pane import ServerSettingsPane
from app.settings import GENERATION_RANGES, AppSettings, save_settings
from app.settings_dialog_widgets import (
    STYLE_SHEET,
    Card,
    hint,
    label,
    page_layout,
    row,
    scrolling,
)
from engine.messages import GenerationConfig, ModelInfo

logger = logging.getLogger(__name__)

TabName = Literal["model", "generation", "converter", "server"]
TABS: tuple[tuple[TabName, str], ...] = (
    ("model", "Model"),
    ("generation", "Generation"),
    ("converter", "Converter"),
    ("server", "Server"),
)
CONTEXT_POLICY_LABELS = {
    "drop_oldest": "Drop the oldest turns and continue",
    "stop": "Stop and say the context is full",
}
SAVE_DELAY_MS = 400


def _double_spin(name: str, *, step: float, decimals: int = 2, tip: str = "") -> QDoubleSpinBox:
    limits = GENERATION_RANGES[name]
    spin = QDoubleSpinBox()
    spin.setRange(limits.minimum, limits.maximum)
    spin.setSingleStep(step)
    spin.setDecimals(decimals)
    spin.setToolTip(tip)
    spin.setMinimumWidth(110)
    return spin


def _int_spin(name: str, *, step: int = 1, suffix: str = "", tip: str = "") -> QSpinBox:
    limits = GENERATION_RANGES[name]
    spin = QSpinBox()
    spin.setRange(int(limits.minimum), int(limits.maximum))
    spin.setSingleStep(step)
    spin.setSuffix(suffix)
    spin.setToolTip(tip)
    spin.setMinimumWidth(110)
    return spin


class GenerationPane(QWidget):
    changed = Signal()

    def __init__(self) -> None:
        super().__init__()
        layout = page_layout(self)
        prompt_card = Card("System prompt", "Sent first in every conversation.")
        self.system_prompt = QPlainTextEdit()
        self.system_prompt.setPlaceholderText("You are a helpful assistant.")
        self.system_prompt.setFixedHeight(84)
        prompt_card.add(self.system_prompt)
        layout.addWidget(prompt_card)

        sampling = Card("Sampling", "Temperature 0 always picks the most likely token.")
        form = sampling.form()
        self.temperature = _double_spin("temperature", step=0.05, tip="Higher is more varied")
        self.top_k = _int_spin("top_k", tip="Keep the k most likely tokens; 0 turns it off")
        self.top_p = _double_spin(
            "top_p",
            step=0.01,
            tip="Keep the most likely tokens up to this probability mass; 1 turns it off",
        )
        self.min_p = _double_spin(
            "min_p",
            step=0.01,
            tip="Drop tokens less likely than this fraction of the top token; 0 turns it off",
        )
        self.repetition_penalty = _double_spin(
            "repetition_penalty",
            step=0.05,
            tip="Above 1 discourages repeating tokens; 1 turns it off",
        )
        for title, widget, note in (
            ("Temperature", self.temperature, "0 – 5"),
            ("Top-k", self.top_k, "0 = off"),
            ("Top-p", self.top_p, "1 = off"),
            ("Min-p", self.min_p, "0 = off"),
            ("Repetition penalty", self.repetition_penalty, "1 = off"),
        ):
            form.addRow(label(title, name="FieldLabel"), row(widget, hint(note)))
        self.fixed_seed = QCheckBox("Fixed seed")
        self.fixed_seed.setToolTip("The same seed and settings give the same answer")
        self.seed = _int_spin("seed")
        self.fixed_seed.toggled.connect(self.seed.setEnabled)
        form.addRow(label("Seed", name="FieldLabel"), row(self.fixed_seed, self.seed))
        layout.addWidget(sampling)

        length = Card("Length and context")
        form = length.form()
        self.max_new_tokens = _int_spin(
            "max_new_tokens", step=64, suffix=" tokens", tip="The longest answer"
        )
        form.addRow(label("Max new tokens", name="FieldLabel"), row(self.max_new_tokens))
        self.context_policy = QComboBox()
        for key, text in CONTEXT_POLICY_LABELS.items():
            self.context_policy.addItem(text, key)
        self.context_policy.setToolTip(
            "What happens when the conversation no longer fits the model's context"
        )
        form.addRow(label("When the context is full", name="FieldLabel"), self.context_policy)
        layout.addWidget(length)
        self.restore_button = QPushButton("Restore Defaults")
        self.restore_button.clicked.connect(self._restore_defaults)
        layout.addLayout(row(self.restore_button))
        layout.addStretch(1)
        self._stop_strings: tuple[str, ...] = ()

        for spin in (self.temperature, self.top_p, self.min_p, self.repetition_penalty):
            spin.valueChanged.connect(self.changed)
        for spin in (self.top_k, self.seed, self.max_new_tokens):
            spin.valueChanged.connect(self.changed)
        self.fixed_seed.toggled.connect(self.changed)
        self.context_policy.currentIndexChanged.connect(self.changed)
        self.system_prompt.textChanged.connect(self.changed)

    def set_values(self, system_prompt: str, config: GenerationConfig) -> None:
        widgets = (self.system_prompt, self.temperature, self.top_k, self.top_p, self.min_p,
                   self.repetition_penalty, self.fixed_seed, self.seed, self.max_new_tokens,
                   self.context_policy)  # fmt: skip
        for widget in widgets:
            widget.blockSignals(True)
        try:
            if self.system_prompt.toPlainText() != system_prompt:
                self.system_prompt.setPlainText(system_prompt)
            self.temperature.setValue(config.temperature)
            self.top_k.setValue(config.top_k)
            self.top_p.setValue(config.top_p)
            self.min_p.setValue(config.min_p)
            self.repetition_penalty.setValue(config.repetition_penalty)
            self.fixed_seed.setChecked(config.seed is not None)
            self.seed.setValue(config.seed if config.seed is not None else 0)
            self.seed.setEnabled(config.seed is not None)
            self.max_new_tokens.setValue(config.max_new_tokens)
            self.context_policy.setCurrentIndex(
                max(self.context_policy.findData(config.context_policy), 0)
            )
            self._stop_strings = config.stop_strings
        finally:
            for widget in widgets:
                widget.blockSignals(False)

    def system_prompt_text(self) -> str:
        return self.system_prompt.toPlainText().strip()

    def config(self) -> GenerationConfig:
        return GenerationConfig(
            max_new_tokens=self.max_new_tokens.value(),
            temperature=round(self.temperature.value(), 4),
            top_k=self.top_k.value(),
            top_p=round(self.top_p.value(), 4),
            min_p=round(self.min_p.value(), 4),
            repetition_penalty=round(self.repetition_penalty.value(), 4),
            seed=self.seed.value() if self.fixed_seed.isChecked() else None,
            stop_strings=self._stop_strings,
            context_policy=str(self.context_policy.currentData()),  # type: ignore[arg-type]
        )

    def _restore_defaults(self) -> None:
        self.set_values(self.system_prompt_text(), GenerationConfig())
        self.changed.emit()


class SettingsDialog(QDialog):
    settingsChanged = Signal(object)  # AppSettings
    modelChosen = Signal(str)  # a model folder or .mlpackage path to load

    def __init__(
        self,
        settings: AppSettings,
        *,
        model_info: ModelInfo | None = None,
        parent: QWidget | None = None,
        hub_endpoint: str | None = None,
        converter_executable: str | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("SettingsDialog")
        self.setWindowTitle("Settings")
        self.setStyleSheet(STYLE_SHEET)
        self.resize(740, 820)
        self._settings = replace(settings)
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self.save_now)

        self.model_pane = ModelPane(
            compute_units=settings.compute_units, token=settings.hf_token, hub_endpoint=hub_endpoint
        )
        self.generation_pane = GenerationPane()
        self.generation_pane.set_values(settings.system_prompt, settings.generation)
        self.converter_pane = ConverterPane(
            output_dir=settings.converter_output_dir,
            token_source=self.model_pane.token,
            executable=converter_executable,
        )
        self.server_pane = ServerSettingsPane(settings)
        self.server_pane.changed.connect(lambda changes: self._update(**changes))
        self.pages = QStackedWidget()
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
        for page in (self.model_pane, self.generation_pane, self.converter_pane, self.server_pane):
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

        self.generation_pane.changed.connect(self._on_generation_changed)
        self.model_pane.computeUnitsChanged.connect(lambda units: self._update(compute_units=units))
        self.model_pane.tokenChanged.connect(lambda token: self._update(hf_token=token))
        self.model_pane.modelChosen.connect(self._on_model_chosen)
        self.converter_pane.outputDirChanged.connect(
            lambda folder: self._update(converter_output_dir=folder)
        )
        self.converter_pane.modelConverted.connect(self._on_model_chosen)
        self.set_model_info(model_info)
        self.show_tab("model")

    # --- the interface the chat window uses ------------------------------------------------------

    def show_tab(self, name: TabName) -> None:
        names = [tab for tab, _ in TABS]
        if name not in names:
            raise ValueError(f"no settings tab {name!r}: expected one of {', '.join(names)}")
        index = names.index(name)
        self.segment_group.button(index).setChecked(True)
        self.pages.setCurrentIndex(index)

    def set_model_info(self, info: ModelInfo | None) -> None:
        """Show the loaded model; its path becomes ``model_path`` (the window saves that itself),
        so a later save from this dialog never writes back an older model."""
        self.model_pane.set_model_info(info)
        self.server_pane.set_model_name(info.name if info is not None else "")
        if info is not None and info.path:
            self._settings = replace(self._settings, model_path=info.path)

    def prefill_converter(self, source: str, output_dir: str) -> None:
        self.converter_pane.prefill(source, output_dir)
        self.show_tab("converter")

    def settings(self) -> AppSettings:
        return replace(self._settings)

    # --- behaviour ------------------------------------------------------------------------------

    def _update(self, **changes: object) -> None:
        updated = replace(self._settings, **changes)
        if updated == self._settings:
            return
        self._settings = updated
        self._save_timer.start()
        self.settingsChanged.emit(self.settings())

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

    def save_now(self) -> None:
        self._save_timer.stop()
        token = self.model_pane.token()
        if token != self._settings.hf_token:
            self._update(hf_token=token)
            self._save_timer.stop()
        output_dir = self.converter_pane.output_dir()
        if output_dir and output_dir != self._settings.converter_output_dir:
            self._update(converter_output_dir=output_dir)
            self._save_timer.stop()
        try:
            save_settings(self._settings)
        except OSError as error:
            logger.error("cannot save the settings: %s", error)

    def done(self, result: int) -> None:
        self.save_now()
        super().done(result)
