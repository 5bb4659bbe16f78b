"""The Model tab's "Download from Hugging Face" card: look a repository up, pick one of its Core ML
packages, download it with progress and cancel (``hub_jobs`` runs the work off the GUI thread).

The access token typed here is the app's Hub token (``tokenChanged``), the address the app's Hub
address (``endpointChanged``: a mirror, empty for huggingface.co; the engine fetches tokenizer files
from it too); ``downloadFinished`` tells the Model tab when a download ended, after the card has
shown how.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QLineEdit, QProgressBar, QPushButton, QToolButton

from app.models.hub_download import (
    DownloadOutcome,
    DownloadProgress,
    HubError,
    RepoListing,
    plan_files,
)
from app.models.hub_jobs import HubDownload, HubLookup
from app.models.model_library import format_size
from app.settings.app_settings import endpoint_problem
from app.ui.pane_widgets import Card, hint, label, row

EXAMPLE_REPO = "apple/mistral-coreml"


class HubDownloadCard(Card):
    """One lookup or download at a time; its status line also carries the Model tab's notes about
    unfinished downloads (``set_status``)."""

    tokenChanged = Signal(str)
    endpointChanged = Signal(str)  # "" for huggingface.co
    downloadFinished = Signal(object)  # DownloadOutcome, once the card shows it

    def __init__(self, *, token: str, endpoint: str | None = None) -> None:
        super().__init__(
            "Download from Hugging Face",
            "A Core ML package published on the Hub, for example apple/mistral-coreml.",
        )
        self._listing: RepoListing | None = None
        self.lookup = HubLookup(self, endpoint=endpoint)
        self.download = HubDownload(self, endpoint=endpoint)
        form = self.form()
        self.repo_field = QLineEdit()
        self.repo_field.setPlaceholderText(EXAMPLE_REPO)
        self.repo_field.returnPressed.connect(self._on_lookup_clicked)
        self.repo_field.textEdited.connect(self._on_repo_edited)
        self.lookup_button = QPushButton("Look Up")
        self.lookup_button.clicked.connect(self._on_lookup_clicked)
        form.addRow(
            label("Repository", name="FieldLabel"),
            row(self.repo_field, self.lookup_button, stretch_last=True),
        )
        self.package_box = QComboBox()
        self.package_box.setEnabled(False)
        self.package_box.setPlaceholderText("Look up a repository first")
        form.addRow(label("Package", name="FieldLabel"), self.package_box)
        self.token_field = QLineEdit(token)
        self.token_field.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_field.setPlaceholderText("hf_…  (only for gated or private repositories)")
        self.token_field.setToolTip("Stored in the settings file, readable only by you (mode 0600)")
        self.token_field.editingFinished.connect(lambda: self.tokenChanged.emit(self.token()))
        self.show_token = QToolButton()
        self.show_token.setText("Show")
        self.show_token.setCheckable(True)
        self.show_token.toggled.connect(self._on_show_token)
        form.addRow(
            label("Access token", name="FieldLabel"),
            row(self.token_field, self.show_token, stretch_last=True),
        )
        self.endpoint_field = QLineEdit(endpoint or "")
        self.endpoint_field.setPlaceholderText("https://huggingface.co")
        self.endpoint_field.setAccessibleName("Hub address")
        self.endpoint_field.setToolTip(
            "A mirror of the Hugging Face Hub, for downloads and tokenizer files; empty for "
            "huggingface.co"
        )
        self.endpoint_field.editingFinished.connect(self._on_endpoint_edited)
        form.addRow(label("Hub address", name="FieldLabel"), self.endpoint_field)
        self.download_button = QPushButton("Download")
        self.download_button.setObjectName("PrimaryButton")
        self.download_button.setEnabled(False)
        self.download_button.clicked.connect(self._on_download_clicked)
        self.cancel_download_button = QPushButton("Cancel")
        self.cancel_download_button.setEnabled(False)
        self.cancel_download_button.clicked.connect(self.download.cancel)
        self.download_bar = QProgressBar()
        self.download_bar.setRange(0, 1000)
        self.download_bar.hide()
        self.download_status = hint("", word_wrap=True)
        self.add(row(self.download_button, self.cancel_download_button))
        self.add(self.download_bar)
        self.add(self.download_status)

        self.lookup.finished.connect(self._on_lookup_finished)
        self.download.progress.connect(self._on_download_progress)
        self.download.finished.connect(self._on_download_finished)

    def token(self) -> str:
        return self.token_field.text().strip()

    def _on_endpoint_edited(self) -> None:
        endpoint = self.endpoint_field.text().strip().rstrip("/")
        problem = endpoint_problem(endpoint)
        if problem is not None:
            self.set_status(f"Hub address: {problem}", error=True)
            return
        if endpoint == (self.lookup.endpoint or ""):
            return
        self.endpoint_field.setText(endpoint)
        self.lookup.endpoint = self.download.endpoint = endpoint or None
        self.set_status(f"Hub address: {endpoint or 'huggingface.co'}")
        self.endpointChanged.emit(endpoint)

    def _on_show_token(self, shown: bool) -> None:
        mode = QLineEdit.EchoMode.Normal if shown else QLineEdit.EchoMode.Password
        self.token_field.setEchoMode(mode)
        self.show_token.setText("Hide" if shown else "Show")

    def set_status(self, text: str, *, error: bool = False) -> None:
        self.download_status.setObjectName("ErrorText" if error else "Hint")
        self.download_status.setStyleSheet("")  # re-polish with the new object name
        self.download_status.setText(text)

    def _on_lookup_clicked(self) -> None:
        repo_id = self.repo_field.text().strip() or EXAMPLE_REPO
        self.repo_field.setText(repo_id)
        try:
            self.lookup.start(repo_id, token=self.token())
        except HubError as error:
            self.set_status(str(error), error=True)
            return
        self.lookup_button.setEnabled(False)
        self.set_status(f"Looking up {repo_id}…")

    def _on_repo_edited(self, text: str) -> None:
        """Another repository typed: the packages listed are not its own; look it up first."""
        if self._listing is not None and text.strip() != self._listing.repo_id:
            self._listing = None
            self.package_box.clear()
            self.package_box.setEnabled(False)
            self.download_button.setEnabled(False)

    def _on_lookup_finished(self, result: object) -> None:
        self.lookup_button.setEnabled(True)
        self.package_box.clear()
        self._listing = None
        if isinstance(result, HubError):
            self.set_status(str(result), error=True)
            self.download_button.setEnabled(False)
            return
        if not isinstance(result, RepoListing):
            return
        packages = result.packages
        if not packages:
            self.set_status(
                f"{result.repo_id} holds no Core ML package; convert it in the Converter tab",
                error=True,
            )
            return
        self._listing = result
        for package in packages:
            size = sum(f.size for f in plan_files(result, package))
            self.package_box.addItem(f"{package}  ({format_size(size)})", package)
        self.package_box.setCurrentIndex(0)
        self.package_box.setEnabled(True)
        self.download_button.setEnabled(True)
        self.set_status(f"{len(packages)} package(s) in {result.repo_id}")

    def _on_download_clicked(self) -> None:
        if self._listing is None:
            return
        package = str(self.package_box.currentData())
        try:
            destination = self.download.start(self._listing, package, token=self.token())
        except HubError as error:
            self.set_status(str(error), error=True)
            return
        self.download_button.setEnabled(False)
        self.cancel_download_button.setEnabled(True)
        self.download_bar.setValue(0)
        self.download_bar.show()
        self.set_status(f"Downloading into {destination}…")

    def _on_download_progress(self, progress: DownloadProgress) -> None:
        fraction = progress.done_bytes / progress.total_bytes if progress.total_bytes else 0.0
        self.download_bar.setValue(int(fraction * 1000))
        self.set_status(
            f"{format_size(progress.done_bytes)} of {format_size(progress.total_bytes)} · "
            f"file {min(progress.files_done + 1, progress.files_total)} of {progress.files_total}"
            f" · {Path(progress.current_file).name}"
        )

    def _on_download_finished(self, outcome: DownloadOutcome) -> None:
        self.cancel_download_button.setEnabled(False)
        self.download_button.setEnabled(self._listing is not None)
        self.download_bar.setVisible(outcome.status == "done")
        self.set_status(outcome.message, error=outcome.status == "error")
        self.downloadFinished.emit(outcome)
