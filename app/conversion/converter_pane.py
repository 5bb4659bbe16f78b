"""The Settings dialog's Converter tab (the view); ``ConverterProcess`` runs the conversion."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QWidget,
)

from app.conversion.converter_process import ConversionOutcome, ConverterProcess, stage_list
from app.conversion.progress_words import stage_line, stage_sentence, stage_title
from app.ui.pane_widgets import Card, clear_layout, label, monospace_font, page_layout, row
from converter.naming import default_model_name, name_problem
from converter.options import (
    MAX_BLOCK_SIZE,
    MAX_CONTEXT_LENGTH,
    MIN_BLOCK_SIZE,
    MIN_CONTEXT_LENGTH,
    ConversionRequest,
    problems,
)

logger = logging.getLogger(__name__)

QUANTIZATION_CHOICES = (
    ("auto", "Automatic (recommended)"),
    ("int4", "int4 per-block (smallest)"),
    ("int8", "int8 per-channel"),
    ("none", "float16 (no quantization)"),
)
INT4_RECIPE_CHOICES = (
    ("searched", "Searched scale and zero point (best)"),
    ("searched-symmetric", "Searched scale, symmetric"),
    ("linear-symmetric", "coremltools max-abs scale"),
)
GGUF_FORM_CHOICES = (
    ("exact", "Exact: the GGUF's own blocks"),
    ("native", "Core ML's own forms"),
)
GGUF_FORM_HINT = (
    "Core ML's own forms: only what coremltools itself writes and tests on Macs (each block's "
    "offset rounded to a whole zero point): a little further from the GGUF, the safer choice if "
    "a model imported exactly misbehaves on your Mac."
)
LOG_LIMIT = 5000  # lines kept in the log view


# Stage marks: glyphs every font has (Latin-1 and geometric shapes), told apart by colour too
# (the Settings style sheet colours QLabel#StageMark by its "state" property from the palette).
STAGE_MARKS = {"pending": "○", "running": "●", "done": "●", "stopped": "×"}


def _set_mark(mark: QLabel, state: str) -> None:
    mark.setText(STAGE_MARKS[state])
    mark.setProperty("state", state)
    mark.style().unpolish(mark)
    mark.style().polish(mark)


def format_elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ConverterPane(QWidget):
    modelConverted = Signal(str)  # "Use this model": the converted model folder
    outputDirChanged = Signal(str)

    def __init__(
        self, *, output_dir: str, token_source=None, executable: str | None = None
    ) -> None:
        super().__init__()
        self._token_source = token_source or (lambda: "")
        self._name_edited = False
        self._converted_folder = ""
        self._cancelling = False
        self.process = ConverterProcess(self, executable=executable)
        layout = page_layout(self)
        layout.addWidget(self._source_card(output_dir))
        layout.addWidget(self._run_card(), 1)
        self.elapsed_timer = QTimer(self)
        self.elapsed_timer.setInterval(500)
        self.elapsed_timer.timeout.connect(self._update_elapsed)
        self.elapsed_timer.timeout.connect(self._update_progress)  # the bars creep between reports
        self.process.progressChanged.connect(self._update_progress)
        self.process.logLine.connect(self._append_log)
        self.process.finished.connect(self._on_finished)
        self._build_stage_rows(self.request())
        self._on_quantization()

    # --- layout ---------------------------------------------------------------------------------

    def _source_card(self, output_dir: str) -> Card:
        card = Card(
            "Convert a Hugging Face model",
            "Llama, Mistral, Qwen2/2.5, Qwen3, Gemma 2/3 or Phi-3/3.5/4-mini models: a Hub id, a "
            "local model folder, or a .gguf file. The model "
            "becomes a stateful Core ML package with its tokenizer.",
        )
        form = card.form()
        self.source_field = QLineEdit()
        self.source_field.setPlaceholderText(
            "mistralai/Mistral-7B-Instruct-v0.3, a folder, or a .gguf file"
        )
        self.source_field.textChanged.connect(self._on_quantization)  # also suggests the name
        folder_button = QPushButton("Folder…")
        folder_button.clicked.connect(self._choose_source_folder)
        file_button = QPushButton("GGUF…")
        file_button.clicked.connect(self._choose_source_file)
        form.addRow(
            label("Source", name="FieldLabel"),
            row(self.source_field, folder_button, file_button, stretch_last=True),
        )
        self.output_field = QLineEdit(output_dir)
        self.output_field.editingFinished.connect(
            lambda: self.outputDirChanged.emit(self.output_field.text())
        )
        output_button = QPushButton("Choose…")
        output_button.clicked.connect(self._choose_output)
        form.addRow(
            label("Save in", name="FieldLabel"),
            row(self.output_field, output_button, stretch_last=True),
        )
        self.name_field = QLineEdit()
        self.name_field.setPlaceholderText("model folder name")
        self.name_field.textEdited.connect(lambda _: setattr(self, "_name_edited", True))
        form.addRow(label("Name", name="FieldLabel"), self.name_field)
        self._add_output_options(form)
        return card

    def _add_output_options(self, form: QFormLayout) -> None:
        """Context length, quantization (block size, int4 recipe, 8-bit embeddings), and the
        last-logits, verify and replace choices."""
        self.context_spin = QSpinBox()
        self.context_spin.setRange(MIN_CONTEXT_LENGTH, MAX_CONTEXT_LENGTH)
        self.context_spin.setSingleStep(256)
        self.context_spin.setValue(ConversionRequest.context_length)
        self.context_spin.setSuffix(" tokens")
        self.context_spin.setToolTip("The kv-cache size: longer contexts take more memory")
        form.addRow(label("Context length", name="FieldLabel"), row(self.context_spin))
        self.quantization_box = QComboBox()
        for key, text in QUANTIZATION_CHOICES:
            self.quantization_box.addItem(text, key)
        self.quantization_box.setItemData(
            0,
            "A .gguf file keeps its own quantized blocks exactly; other sources become int4",
            Qt.ItemDataRole.ToolTipRole,
        )
        self.quantization_box.currentIndexChanged.connect(self._on_quantization)
        self.block_spin = QSpinBox()
        self.block_spin.setRange(MIN_BLOCK_SIZE, MAX_BLOCK_SIZE)
        self.block_spin.setValue(ConversionRequest.block_size)
        self.block_spin.setPrefix("block ")
        self.block_spin.setToolTip(
            "Weights per int4 scale: smaller blocks are more accurate, larger files"
        )
        form.addRow(
            label("Quantization", name="FieldLabel"), row(self.quantization_box, self.block_spin)
        )
        self.int4_recipe_box = QComboBox()
        for key, text in INT4_RECIPE_CHOICES:
            self.int4_recipe_box.addItem(text, key)
        self.int4_recipe_box.setToolTip(
            "How each block's scale is chosen when weights become int4 (not for a .gguf kept "
            "exactly): searching for the least error follows the original model most closely"
        )
        self.int8_embeddings_check = QCheckBox("Embeddings at 8 bits")
        self.int8_embeddings_check.setToolTip(
            "Keep the embedding and output layer at int8: closer to the original, a few percent "
            "larger (a fifth larger on very small models)"
        )
        form.addRow(
            label("int4 recipe", name="FieldLabel"),
            row(self.int4_recipe_box, self.int8_embeddings_check),
        )
        self.gguf_form_box = QComboBox()
        for key, text in GGUF_FORM_CHOICES:
            self.gguf_form_box.addItem(text, key)
        self.gguf_form_box.setToolTip(GGUF_FORM_HINT)
        form.addRow(label("GGUF blocks", name="FieldLabel"), row(self.gguf_form_box))
        self.last_logits_check = QCheckBox("Last-position logits only")
        self.last_logits_check.setToolTip(
            "Output (1, 1, vocab): less memory per step while prefilling"
        )
        self.verify_check = QCheckBox("Verify against the original model")
        self.verify_check.setToolTip(
            "Run the package and the torch model on the same text and compare"
        )
        self.force_check = QCheckBox("Replace an existing model folder")
        self.force_check.setToolTip(
            "Only a folder holding a converted model and its tokenizer is replaced; "
            "a folder with anything else in it is refused"
        )
        form.addRow("", row(self.last_logits_check, self.verify_check))
        form.addRow("", self.force_check)

    def _run_card(self) -> Card:
        card = Card("Progress")
        self.start_button = QPushButton("Convert")
        self.start_button.setObjectName("PrimaryButton")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.use_button = QPushButton("Use This Model")
        self.use_button.setObjectName("PrimaryButton")
        self.use_button.hide()
        self.use_button.clicked.connect(lambda: self.modelConverted.emit(self._converted_folder))
        self.elapsed_label = label("", name="Hint")
        self.status_label = label("Ready.", name="Hint", word_wrap=True)
        card.add(row(self.start_button, self.cancel_button, self.use_button))
        self.overall_bar = QProgressBar()
        self.overall_bar.setRange(0, 1000)
        overall_row = row(
            label("Overall", name="FieldLabel"),
            self.overall_bar,
            self.elapsed_label,
            stretch_last=True,
        )
        overall_row.setStretch(1, 1)
        card.add(overall_row)
        self.stage_grid = QGridLayout()
        self.stage_grid.setHorizontalSpacing(10)
        self.stage_grid.setVerticalSpacing(3)
        card.add(self.stage_grid)
        card.add(self.status_label)
        self.log_view = QPlainTextEdit()
        self.log_view.setObjectName("LogView")
        self.log_view.setReadOnly(True)
        self.log_view.setFont(monospace_font(10))
        self.log_view.setMaximumBlockCount(LOG_LIMIT)
        self.log_view.setPlaceholderText("The converter's log appears here.")
        self.log_view.setMinimumHeight(90)
        self.log_view.setMaximumHeight(200)
        card.add(self.log_view)
        return card

    def _build_stage_rows(self, request: ConversionRequest) -> None:
        clear_layout(self.stage_grid)
        self.stage_bars: dict[str, QProgressBar] = {}
        self.stage_marks: dict[str, QLabel] = {}
        for index, stage in enumerate(stage_list(request)):
            column = (index % 4) * 3
            line = index // 4
            mark = label("", name="StageMark")
            _set_mark(mark, "pending")
            bar = QProgressBar()
            bar.setObjectName("StageBar")
            bar.setRange(0, 1000)
            bar.setMinimumWidth(70)
            self.stage_grid.addWidget(mark, line, column)
            title = label(stage_title(stage.name), name="Hint")
            title.setToolTip(stage_sentence(stage.name))
            self.stage_grid.addWidget(title, line, column + 1)
            self.stage_grid.addWidget(bar, line, column + 2)
            self.stage_bars[stage.name] = bar
            self.stage_marks[stage.name] = mark
        for column in range(4):
            self.stage_grid.setColumnStretch(column * 3 + 2, 1)

    # --- public ---------------------------------------------------------------------------------

    def prefill(self, source: str, output_dir: str) -> None:
        self.source_field.setText(source)
        if output_dir:
            self.output_field.setText(output_dir)

    def output_dir(self) -> str:
        return self.output_field.text().strip()

    def folder_name(self) -> str:
        """The Name field, or the default name when it is empty."""
        quantize = str(self.quantization_box.currentData())
        return self.name_field.text().strip() or default_model_name(
            self.source_field.text(), quantize
        )

    def request(self) -> ConversionRequest:
        quantize = str(self.quantization_box.currentData())
        name = self.folder_name()
        return ConversionRequest(
            source=self.source_field.text().strip(),
            output_dir=Path(self.output_dir()).expanduser() / name,
            context_length=self.context_spin.value(),
            quantize=quantize,  # type: ignore[arg-type]
            block_size=self.block_spin.value(),
            int4_recipe=str(self.int4_recipe_box.currentData()),  # type: ignore[arg-type]
            int8_embeddings=self.int8_embeddings_check.isEnabled()
            and self.int8_embeddings_check.isChecked(),
            gguf_form=str(self.gguf_form_box.currentData())  # type: ignore[arg-type]
            if self.gguf_form_box.isEnabled()
            else "exact",
            last_logits_only=self.last_logits_check.isChecked(),
            verify=self.verify_check.isChecked(),
            force=self.force_check.isChecked(),
            token=self._token_source(),
        )

    def start(self) -> bool:
        """Start converting what the form says; on a bad form show why and return False."""
        if self.process.is_running():
            return False
        # The name is checked before it is joined to the folder: "." or ".." would vanish or
        # climb out in the joined path, and the output would become the models folder itself.
        problem = name_problem(self.folder_name(), what="name")
        request = self.request()
        found = [problem] if problem else problems(request)
        if found:
            self._set_status("; ".join(found), error=True)
            return False
        self.log_view.clear()
        self._build_stage_rows(request)
        self.overall_bar.setValue(0)
        self.use_button.hide()
        self._converted_folder = ""
        try:
            self.process.start(request)
        except (ValueError, OSError) as error:
            self._set_status(str(error), error=True)
            return False
        self._set_running(True)
        self._cancelling = False
        self._set_status(f"Converting into {request.output_dir}…")
        self.elapsed_timer.start()
        self._update_elapsed()
        return True

    def cancel(self) -> None:
        if self.process.is_running():
            self.cancel_button.setEnabled(False)
            self._cancelling = True
            self._set_status("Cancelling…")
            self.process.cancel()

    def is_running(self) -> bool:
        return self.process.is_running()

    # --- behaviour ------------------------------------------------------------------------------

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        for widget in (self.source_field, self.output_field, self.name_field, self.context_spin,
                       self.quantization_box, self.block_spin, self.int4_recipe_box,
                       self.gguf_form_box,
                       self.int8_embeddings_check, self.last_logits_check, self.verify_check,
                       self.force_check):  # fmt: skip
            widget.setEnabled(not running)
        if not running:
            self._on_quantization()

    def _set_status(self, text: str, *, error: bool = False, success: bool = False) -> None:
        self.status_label.setObjectName(
            "ErrorText" if error else "SuccessText" if success else "Hint"
        )
        self.status_label.setStyleSheet("")
        self.status_label.setText(text)

    def _suggest_name(self) -> None:
        if not self._name_edited:
            source = self.source_field.text().strip()
            quantize = str(self.quantization_box.currentData())
            self.name_field.setText(default_model_name(source, quantize) if source else "")

    def _on_quantization(self) -> None:
        """Block size and int4 recipe matter for int4 (and Automatic, which is int4 for all but a
        .gguf file); 8-bit embeddings only for an explicit int4 or a non-GGUF source."""
        int4 = self.quantization_box.currentData() in ("int4", "auto") and not self.is_running()
        gguf_kept = self.quantization_box.currentData() == "auto" and self._source_is_gguf()
        self.block_spin.setEnabled(int4)
        self.int4_recipe_box.setEnabled(int4)
        self.int8_embeddings_check.setEnabled(int4 and not gguf_kept)
        kept = self.quantization_box.currentData() in ("auto", "exact") and self._source_is_gguf()
        self.gguf_form_box.setEnabled(kept and not self.is_running())
        self._suggest_name()

    def _source_is_gguf(self) -> bool:
        return self.source_field.text().strip().lower().endswith(".gguf")

    def _choose_source_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a Hugging Face model folder")
        if folder:
            self.source_field.setText(folder)

    def _choose_source_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a GGUF file", "", "GGUF files (*.gguf)")
        if path:
            self.source_field.setText(path)

    def _choose_output(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Save converted models in", self.output_dir()
        )
        if folder:
            self.output_field.setText(folder)
            self.outputDirChanged.emit(folder)

    def _update_elapsed(self) -> None:
        self.elapsed_label.setText(format_elapsed(self.process.elapsed()))

    def _update_progress(self) -> None:
        tracker = self.process.tracker
        overall, running = tracker.shown()
        self.overall_bar.setValue(int(overall * 1000))
        for stage in tracker.stages:
            bar = self.stage_bars.get(stage.name)
            if bar is None:
                continue
            shown = running if stage.name == tracker.current_stage else stage.fraction
            bar.setValue(int(shown * 1000))
            if stage.fraction >= 1.0:
                state = "done"
            elif stage.name == tracker.current_stage:
                state = "running"
            else:
                state = "pending"
            _set_mark(self.stage_marks[stage.name], state)
        current = tracker.stage(tracker.current_stage)
        if current is not None and self.process.is_running() and not self._cancelling:
            self._set_status(stage_line(current.name, running, current.message))

    def _append_log(self, line: str) -> None:
        self.log_view.appendPlainText(line)

    def _on_finished(self, outcome: ConversionOutcome) -> None:
        self.elapsed_timer.stop()
        self._update_elapsed()
        self._set_running(False)
        if outcome.status == "done":
            self._update_progress()
            self._converted_folder = outcome.output
            verification = ""
            if outcome.verification:
                agreement = outcome.verification.get("top1_agreement")
                if isinstance(agreement, int | float):
                    verification = f"; verified: top-1 agreement {agreement:.0%}"
            self._set_status(
                f"Converted in {format_elapsed(outcome.seconds)}{verification}.", success=True
            )
            self.use_button.show()
        elif outcome.status == "cancelled":
            left = f" Could not remove: {', '.join(outcome.leftovers)}" if outcome.leftovers else ""
            self._set_status(f"Cancelled; nothing was written.{left}", error=bool(left))
        else:
            self._set_status(outcome.message, error=True)
        if outcome.status != "done":  # mark where it stopped: the first unfinished stage
            stopped = next((s for s in self.process.tracker.stages if s.fraction < 1.0), None)
            if stopped is not None and stopped.name in self.stage_marks:
                _set_mark(self.stage_marks[stopped.name], "stopped")
