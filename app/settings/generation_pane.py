"""The Settings dialog's Generation tab: system prompt, sampling, length, stop strings and the
context policy.

Its spin boxes take their limits from the engine's ``GENERATION_RANGES``, the table that
``GenerationConfig.problems()`` checks against (and so the settings file), so the pane can never
produce a value the engine would refuse.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QInputDialog,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.settings.stop_strings import format_stop_strings, parse_stop_strings
from app.ui.pane_widgets import Card, hint, label, page_layout, row
from engine.messages import GENERATION_RANGES, GenerationConfig

CONTEXT_POLICY_LABELS = {
    "drop_oldest": "Drop the oldest turns and continue",
    "stop": "Stop and say the context is full",
}


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
    presetSaved = Signal(str)  # the name to save this tab's settings under
    presetDeleted = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        layout = page_layout(self)
        for card in (
            self._presets_card(),
            self._prompt_card(),
            self._sampling_card(),
            self._length_card(),
        ):
            layout.addWidget(card)
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
        self.thinking.toggled.connect(self.changed)
        self.context_policy.currentIndexChanged.connect(self.changed)
        self.system_prompt.textChanged.connect(self.changed)
        self.stop_strings.textChanged.connect(self._on_stop_strings_edited)

    def _presets_card(self) -> Card:
        presets_card = Card(
            "Presets",
            "Save these settings and system prompt under a name; choose one per chat from the "
            "chat's header. Chats without one use the settings below.",
        )
        self.presets_box = QComboBox()
        self.presets_box.setAccessibleName("Presets")
        self.presets_box.setMinimumWidth(180)
        self.save_preset_button = QPushButton("Save as Preset…")
        self.save_preset_button.clicked.connect(self._ask_preset_name)
        self.delete_preset_button = QPushButton("Delete")
        self.delete_preset_button.clicked.connect(
            lambda: self.presetDeleted.emit(str(self.presets_box.currentData() or ""))
        )
        presets_card.add(row(self.presets_box, self.delete_preset_button, self.save_preset_button))
        self.set_presets(())
        return presets_card

    def _prompt_card(self) -> Card:
        prompt_card = Card("System prompt", "Sent first in every conversation.")
        self.system_prompt = QPlainTextEdit()
        self.system_prompt.setPlaceholderText("You are a helpful assistant.")
        self.system_prompt.setFixedHeight(84)
        self.system_prompt.setTabChangesFocus(True)  # Tab moves on, as in every Mac field
        prompt_card.add(self.system_prompt)

        return prompt_card

    def _sampling_card(self) -> Card:
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
            ("Temperature", self.temperature, f"0 – {self.temperature.maximum():g}"),
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

        return sampling

    def _length_card(self) -> Card:
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
        self.stop_strings = QPlainTextEdit()
        self.stop_strings.setAccessibleName("Stop strings")
        self.stop_strings.setPlaceholderText("One a line, for example: </answer>")
        self.stop_strings.setFixedHeight(76)
        self.stop_strings.setTabChangesFocus(True)  # a typed tab made a stop string never match
        self.stop_strings.setToolTip("The answer ends where one of these appears (it is not shown)")
        self.stop_strings_error = label("", name="ErrorText", word_wrap=True)
        self.stop_strings_error.hide()
        stop_column = QVBoxLayout()  # one column: the hint and the error wrap at the editor's width
        stop_column.setSpacing(4)
        stop_column.addWidget(self.stop_strings)
        stop_column.addWidget(hint("One a line; \\n is a line break."))
        stop_column.addWidget(self.stop_strings_error)
        form.addRow(label("Stop strings", name="FieldLabel"), stop_column)
        self.thinking = QCheckBox("Let reasoning models think before answering")
        self.thinking.setToolTip(
            "Off: models whose chat template can skip reasoning (Qwen3) answer at once"
        )
        form.addRow(label("Reasoning", name="FieldLabel"), self.thinking)
        return length

    def set_values(self, system_prompt: str, config: GenerationConfig) -> None:
        widgets = (self.system_prompt, self.temperature, self.top_k, self.top_p, self.min_p,
                   self.repetition_penalty, self.fixed_seed, self.seed, self.max_new_tokens,
                   self.context_policy, self.stop_strings, self.thinking)  # fmt: skip
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
            if parse_stop_strings(self.stop_strings.toPlainText())[0] != config.stop_strings:
                self.stop_strings.setPlainText(format_stop_strings(config.stop_strings))
            self.stop_strings_error.hide()
            self.thinking.setChecked(config.enable_thinking is not False)
        finally:
            for widget in widgets:
                widget.blockSignals(False)

    def set_presets(self, presets: tuple) -> None:
        """The saved presets (``app.settings.presets.Preset``), listed by name."""
        chosen = self.presets_box.currentData()
        self.presets_box.clear()
        for preset in presets:
            self.presets_box.addItem(preset.name, preset.name)
        if not presets:
            self.presets_box.addItem("No presets yet", None)
        index = self.presets_box.findData(chosen)
        self.presets_box.setCurrentIndex(max(index, 0))
        self.presets_box.setEnabled(bool(presets))
        self.delete_preset_button.setEnabled(bool(presets))

    def _ask_preset_name(self) -> None:
        name, accepted = QInputDialog.getText(
            self, "Save as Preset", "Name for these generation settings and system prompt:"
        )
        if accepted and name.strip():
            self.presetSaved.emit(name.strip())

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
            # on: left unset (the template's default); off: the template is told not to think
            enable_thinking=None if self.thinking.isChecked() else False,
        )

    def _on_stop_strings_edited(self) -> None:
        """Take the stop strings when they are fine; otherwise say why and keep the last good ones
        (the settings never hold a bad list)."""
        strings, problem = parse_stop_strings(self.stop_strings.toPlainText())
        self.stop_strings_error.setText(problem or "")
        self.stop_strings_error.setVisible(problem is not None)
        if problem is None and strings != self._stop_strings:
            self._stop_strings = strings
            self.changed.emit()

    def _restore_defaults(self) -> None:
        self.set_values(self.system_prompt_text(), GenerationConfig())
        self.changed.emit()
