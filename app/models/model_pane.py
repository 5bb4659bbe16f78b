"""The Settings dialog's Model tab: the current model, local models, compute units, Hub downloads
(their card is ``hub_download_card.HubDownloadCard``).

The local models list follows the models folder (a ``QFileSystemWatcher`` on it and on each model
folder, refreshed shortly after a change: a conversion, a download, the demo set-up, a Finder
copy), marks the loaded model, reveals a model in the file manager and deletes one (after asking;
``model_library.delete_model`` refuses the loaded model and anything outside the models folder).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from PySide6.QtCore import QFileSystemWatcher, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QFont
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QWidget,
)

from app.models.hub_download import (
    DownloadOutcome,
    partial_downloads,
    remove_partial_downloads,
)
from app.models.hub_download_card import HubDownloadCard
from app.models.model_library import (
    COMPUTE_UNIT_LABELS,
    COMPUTE_UNIT_TIPS,
    CORE_ML_PLATFORM,
    ModelDeleteError,
    ModelSummary,
    compute_unit_tip,
    delete_model,
    format_size,
    inspect_model,
    is_same_or_inside,
    library_row_text,
    local_models,
    model_info_rows,
)
from app.ui.pane_widgets import Card, clear_layout, hint, label, page_layout, row
from engine import paths
from engine.messages import ModelInfo
from engine.package.model import ModelLoadError

logger = logging.getLogger(__name__)

REFRESH_DELAY_MS = 400  # a conversion renames, a copy writes many files: refresh once after
FILE_MANAGER = {"darwin": "Finder", "win32": "Explorer"}.get(sys.platform, "File Manager")


class ModelPane(QWidget):
    modelChosen = Signal(str)  # a model folder or .mlpackage, checked
    computeUnitsChanged = Signal(str)
    tokenChanged = Signal(str)
    endpointChanged = Signal(str)

    def __init__(self, *, compute_units: str, token: str, hub_endpoint: str | None = None) -> None:
        super().__init__()
        self._loaded_path = ""
        self._info: ModelInfo | None = None  # the loaded model (the CPU-only memory warning)
        self._summaries: dict[str, ModelSummary] = {}
        self.delete_box: QMessageBox | None = None
        self.watcher = QFileSystemWatcher(self)
        self._refresh_timer = QTimer(self, singleShot=True, interval=REFRESH_DELAY_MS)
        self._refresh_timer.timeout.connect(self.refresh_local_models)
        self.watcher.directoryChanged.connect(lambda _path: self._refresh_timer.start())
        self.hub = HubDownloadCard(token=token, endpoint=hub_endpoint)
        self.hub.tokenChanged.connect(self.tokenChanged)
        self.hub.endpointChanged.connect(self.endpointChanged)
        self.hub.downloadFinished.connect(self._on_download_finished)
        layout = page_layout(self)
        layout.addWidget(self._current_model_card())
        layout.addWidget(self._local_models_card())
        layout.addWidget(self.hub)
        layout.addStretch(1)
        self.set_compute_units(compute_units)
        self.set_model_info(None)
        self.refresh_local_models()

    # --- layout ---------------------------------------------------------------------------------

    def _current_model_card(self) -> Card:
        card = Card("Current model")
        self.model_name = label("", name="ModelName")
        card.add(self.model_name)
        self.details = QGridLayout()
        self.details.setHorizontalSpacing(16)
        self.details.setVerticalSpacing(4)
        card.add(self.details)
        self.compute_units_box = QComboBox()
        for key, text in COMPUTE_UNIT_LABELS.items():
            self.compute_units_box.addItem(text, key)
            index = self.compute_units_box.count() - 1
            self.compute_units_box.setItemData(
                index, COMPUTE_UNIT_TIPS[key], Qt.ItemDataRole.ToolTipRole
            )
        self.compute_units_box.currentIndexChanged.connect(self._on_compute_units)
        self.compute_units_tip = hint("")
        form = card.form()
        if CORE_ML_PLATFORM:
            form.addRow(label("Run on", name="FieldLabel"), self.compute_units_box)
            form.addRow("", self.compute_units_tip)
        else:  # no Core ML here: no compute units or Metal to choose
            self.compute_units_box.hide()
            self.compute_units_tip.hide()
            card.add(hint("Runs on the CPU with the reference runtime: Core ML needs macOS."))
        self.open_button = QPushButton("Open Model…")
        self.open_button.setToolTip("Open a model folder (holding one .mlpackage) or a .mlpackage")
        self.open_button.clicked.connect(self._on_open_clicked)
        self.open_error = label("", name="ErrorText", word_wrap=True)
        self.open_error.hide()
        buttons = [self.open_button]
        if sys.platform == "darwin":  # Finder shows an .mlpackage as a file: open it as one
            self.open_package_button = QPushButton("Open Package…")
            self.open_package_button.clicked.connect(self._on_open_package_clicked)
            buttons.append(self.open_package_button)
        card.add(row(*buttons))
        card.add(self.open_error)
        return card

    def _local_models_card(self) -> Card:
        card = Card("Models on this computer", f"In {paths.models_dir()}")
        self.local_list = QListWidget()
        self.local_list.setFixedHeight(84)
        # A long row is cut in its middle with "…" (its name and "loaded" stay; all of it in the
        # tooltip) rather than scrolled sideways behind a bar.
        self.local_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.local_list.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.local_list.itemDoubleClicked.connect(
            lambda item: self._choose(item.data(Qt.ItemDataRole.UserRole))
        )
        self.local_list.currentItemChanged.connect(lambda *_: self._update_local_buttons())
        self.load_local_button = QPushButton("Load")
        self.load_local_button.clicked.connect(self._on_load_local)
        self.reveal_button = QPushButton(f"Show in {FILE_MANAGER}")
        self.reveal_button.clicked.connect(self.reveal_selected)
        self.delete_button = QPushButton("Delete…")
        self.delete_button.setObjectName("DestructiveButton")
        self.delete_button.clicked.connect(self.confirm_delete)
        self.local_status = hint("", word_wrap=True)
        self.local_status.hide()
        self.clean_partials_button = QPushButton()
        self.clean_partials_button.setToolTip(
            "Delete downloads that were cancelled or broken off (their hidden folders in the "
            "models folder); a download in progress is kept"
        )
        self.clean_partials_button.clicked.connect(self._on_clean_partials)
        card.add(self.local_list)
        card.add(
            row(
                self.load_local_button,
                self.reveal_button,
                self.delete_button,
                self.clean_partials_button,
            )
        )
        card.add(self.local_status)
        return card

    # --- state ----------------------------------------------------------------------------------

    def compute_units(self) -> str:
        return str(self.compute_units_box.currentData())

    def set_compute_units(self, units: str) -> None:
        index = self.compute_units_box.findData(units)
        self.compute_units_box.setCurrentIndex(max(index, 0))
        self.compute_units_tip.setText(compute_unit_tip(self.compute_units(), self._info))

    def token(self) -> str:
        return self.hub.token()

    def set_model_info(self, info: ModelInfo | None) -> None:
        self._info = info
        self.compute_units_tip.setText(compute_unit_tip(self.compute_units(), info))
        loaded = info.path if info is not None else ""
        if loaded != self._loaded_path:
            self._loaded_path = loaded
            self.refresh_local_models()  # move the "loaded" mark
        clear_layout(self.details)
        rows = model_info_rows(info)
        self.model_name.setText(rows[0][1])
        for index, (name, value) in enumerate(rows[1:]):
            self.details.addWidget(label(name, name="Hint"), index, 0, Qt.AlignmentFlag.AlignRight)
            value_label = label(value)
            value_label.setToolTip(value)
            self.details.addWidget(value_label, index, 1)
        self.details.setColumnStretch(1, 1)

    def refresh_local_models(self) -> None:
        """List the models folder again (keeping the selection) and watch what it holds."""
        selected = self.selected_model_folder()
        self.local_list.clear()
        self._summaries = {}
        for summary in local_models():
            folder = str(summary.folder)
            self._summaries[folder] = summary
            loaded = self.is_loaded(folder)
            row = library_row_text(summary, loaded=loaded)
            item = QListWidgetItem(row)
            item.setData(Qt.ItemDataRole.UserRole, folder)
            item.setToolTip(f"{' '.join(row.split())}\n{folder}")
            if loaded:
                font = QFont(item.font())
                font.setBold(True)
                item.setFont(font)
            self.local_list.addItem(item)
            if folder == selected:
                self.local_list.setCurrentItem(item)
        if self.local_list.count() == 0:
            placeholder = QListWidgetItem("No models yet: download one below or convert one.")
            placeholder.setFlags(Qt.ItemFlag.NoItemFlags)
            self.local_list.addItem(placeholder)
        self._watch(list(self._summaries))
        self._update_local_buttons()
        self._update_partials_button()

    def _watch(self, model_folders: list[str]) -> None:
        """The models folder (made if missing: it is ours) and each model folder in it."""
        models = paths.models_dir()
        try:
            models.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            logger.warning("cannot create the models folder %s: %s", models, error)
        wanted = {str(models), *model_folders}
        watched = set(self.watcher.directories())
        if watched - wanted:
            self.watcher.removePaths(sorted(watched - wanted))
        missing = [path for path in sorted(wanted - watched) if Path(path).is_dir()]
        if missing:
            self.watcher.addPaths(missing)

    def selected_model_folder(self) -> str:
        item = self.local_list.currentItem()
        folder = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        return folder if isinstance(folder, str) else ""

    def is_loaded(self, folder: str) -> bool:
        return bool(self._loaded_path) and is_same_or_inside(self._loaded_path, Path(folder))

    def reveal_selected(self) -> bool:
        """Open the selected model's folder in the file manager."""
        folder = self.selected_model_folder()
        if not folder:
            return False
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(folder)):
            self._set_local_status(f"cannot open {folder} in the {FILE_MANAGER}", error=True)
            return False
        return True

    def confirm_delete(self) -> None:
        """Ask before deleting the selected model (a sheet on macOS); Delete does it."""
        summary = self._summaries.get(self.selected_model_folder())
        if summary is None or self.is_loaded(str(summary.folder)):
            return
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Delete model",
            f"Delete “{summary.display_name}” ({format_size(summary.size_bytes)})?",
            QMessageBox.StandardButton.Cancel,
            self,
        )
        box.setTextFormat(Qt.TextFormat.PlainText)  # model names are file names
        box.setInformativeText(
            f"Its folder {summary.folder} and its compiled Core ML copy are removed. "
            "This cannot be undone."
        )
        delete = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.buttonClicked.connect(
            lambda button: self._delete(summary) if button is delete else None
        )
        box.finished.connect(lambda _result: setattr(self, "delete_box", None))
        self.delete_box = box
        box.open()

    def _delete(self, summary: ModelSummary) -> None:
        try:
            freed = delete_model(summary.folder, loaded=self._loaded_path)
        except (ModelDeleteError, OSError) as error:
            self._set_local_status(f"{summary.display_name} was not deleted: {error}", error=True)
        else:
            self._set_local_status(f"Deleted {summary.display_name}: {format_size(freed)} freed")
        self.refresh_local_models()

    def _set_local_status(self, text: str, *, error: bool = False) -> None:
        self.local_status.setObjectName("ErrorText" if error else "Hint")
        self.local_status.setStyleSheet("")  # re-polish with the new object name
        self.local_status.setText(text)
        self.local_status.setVisible(bool(text))

    def _running_staging(self) -> tuple[Path, ...]:
        staging = self.hub.download.staging
        return (staging,) if staging is not None else ()

    def _update_partials_button(self) -> None:
        partials = partial_downloads(keep=self._running_staging())
        size = sum(p.size_bytes for p in partials)
        self.clean_partials_button.setText(
            f"Remove {len(partials)} unfinished download{'s' if len(partials) != 1 else ''}"
            f" ({format_size(size)})"
        )
        self.clean_partials_button.setVisible(bool(partials))

    def _on_clean_partials(self) -> None:
        try:
            freed = remove_partial_downloads(keep=self._running_staging())
        except OSError as error:
            self.hub.set_status(f"cannot remove an unfinished download: {error}", error=True)
        else:
            self.hub.set_status(f"Removed unfinished downloads: {format_size(freed)} freed")
        self._update_partials_button()

    # --- behaviour ------------------------------------------------------------------------------

    def choose_path(self, path: str) -> bool:
        """Check ``path`` and emit ``modelChosen``; on a bad model show why and return False."""
        try:
            summary = inspect_model(path)
        except ModelLoadError as error:
            self.open_error.setText(str(error))
            self.open_error.show()
            return False
        self.open_error.hide()
        self.modelChosen.emit(str(summary.folder))
        return True

    def _choose(self, path: object) -> None:
        if isinstance(path, str) and path:
            self.choose_path(path)

    def _on_open_clicked(self) -> None:
        start = str(paths.models_dir()) if paths.models_dir().is_dir() else str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Open a model folder or .mlpackage", start)
        if folder:
            self.choose_path(folder)

    def _on_open_package_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open a Core ML package", str(Path.home()), "Core ML packages (*.mlpackage)"
        )
        if path:
            self.choose_path(path)

    def _on_load_local(self) -> None:
        item = self.local_list.currentItem()
        if item is not None:
            self._choose(item.data(Qt.ItemDataRole.UserRole))

    def _update_local_buttons(self) -> None:
        folder = self.selected_model_folder()
        loaded = bool(folder) and self.is_loaded(folder)
        self.load_local_button.setEnabled(bool(folder))
        self.reveal_button.setEnabled(bool(folder))
        self.delete_button.setEnabled(bool(folder) and not loaded)
        self.delete_button.setToolTip(
            "This model is loaded: load another one before deleting it"
            if loaded
            else "Delete the model's folder and its compiled Core ML copy"
        )

    def _on_compute_units(self) -> None:
        self.compute_units_tip.setText(compute_unit_tip(self.compute_units(), self._info))
        self.computeUnitsChanged.emit(self.compute_units())

    def _on_download_finished(self, outcome: DownloadOutcome) -> None:
        self._update_partials_button()
        if outcome.status == "done":
            self.refresh_local_models()
            self.choose_path(outcome.folder)
