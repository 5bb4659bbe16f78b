"""Settings → Server: the engine's OpenAI-compatible server (enable, port, key, a ready curl line).

The pane holds the fields only; the dialog saves what it reports through ``changed`` and the main
window sends ``StartServer``/``StopServer`` to the engine. The key is made the first time the
server is enabled, shown, and copied with one click, as is a ``curl`` line that works as pasted.
"""

from __future__ import annotations

import logging
import shlex
from urllib.parse import urlsplit

from PySide6.QtCore import Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QCheckBox, QLineEdit, QPushButton, QSpinBox, QWidget

from app.settings.app_settings import AppSettings
from app.ui.pane_widgets import Card, hint, label, monospace_font, page_layout, row
from engine.messages import ServerState
from engine.server.host import exposure_notice, generate_api_key

logger = logging.getLogger(__name__)

SERVER_HOST = "127.0.0.1"


def server_base_url(port: int) -> str:
    return f"http://{SERVER_HOST}:{port}/v1"


def curl_line(port: int, api_key: str, model: str) -> str:
    """A request that works as pasted in a terminal (quoted for a POSIX shell)."""
    body = (
        '{"model": "' + model.replace('"', '\\"') + '", '
        '"messages": [{"role": "user", "content": "Hello!"}]}'
    )
    return (
        f"curl {server_base_url(port)}/chat/completions "
        f"-H {shlex.quote('Authorization: Bearer ' + api_key)} "
        f"-H 'Content-Type: application/json' -d {shlex.quote(body)}"
    )


def _wide_row(field: QLineEdit, button: QPushButton):
    """A text field that takes the row's width, and its button."""
    layout = row(field, button, stretch_last=True)
    layout.setStretch(0, 1)
    return layout


class ServerSettingsPane(QWidget):
    changed = Signal(dict)  # AppSettings field -> new value

    def __init__(self, settings: AppSettings) -> None:
        super().__init__()
        self._model = "MODEL"
        layout = page_layout(self)
        card = Card(
            "OpenAI-compatible server",
            "Lets other programs on this Mac (editors, scripts, agents) use the loaded model "
            f"through the OpenAI API on {SERVER_HOST}. Each request needs the key below.",
        )
        form = card.form()
        self.enabled = QCheckBox("Serve the loaded model")
        self.enabled.setChecked(settings.server_enabled)
        form.addRow(label("Server", name="FieldLabel"), row(self.enabled))
        self.port = QSpinBox()
        self.port.setRange(1024, 65535)
        self.port.setValue(settings.server_port)
        self.port.setToolTip("Other programs connect to this port on 127.0.0.1")
        form.addRow(label("Port", name="FieldLabel"), row(self.port, hint(SERVER_HOST)))
        self.key = QLineEdit(settings.server_api_key, readOnly=True)
        self.key.setFont(monospace_font(10))
        self.key.setPlaceholderText("made when the server is first enabled")
        self.copy_key = QPushButton("Copy")
        self.copy_key.clicked.connect(lambda: self._copy(self.key.text()))
        form.addRow(label("API key", name="FieldLabel"), _wide_row(self.key, self.copy_key))
        self.curl = QLineEdit(readOnly=True)
        self.curl.setFont(monospace_font(10))
        self.copy_curl = QPushButton("Copy")
        self.copy_curl.clicked.connect(lambda: self._copy(self.curl.text()))
        form.addRow(label("Try it", name="FieldLabel"), _wide_row(self.curl, self.copy_curl))
        self.origins = QLineEdit(", ".join(settings.server_cors_origins))
        self.origins.setPlaceholderText("none (web pages cannot call the server)")
        self.origins.setToolTip("Web origins allowed to call the server, comma-separated")
        form.addRow(label("Web origins", name="FieldLabel"), self.origins)
        self.status = hint("", word_wrap=True)
        card.add(self.status)
        layout.addWidget(card)
        layout.addStretch(1)
        self._refresh()

        self.enabled.toggled.connect(self._on_enabled)
        self.port.valueChanged.connect(self._on_port)
        self.origins.editingFinished.connect(self._on_origins)

    # --- the interface the dialog uses --------------------------------------------------------

    def set_model_name(self, name: str) -> None:
        self._model = name or "MODEL"
        self._refresh()

    def set_state(self, state: ServerState) -> None:
        if state.running:
            text = f"Running at {state.url} · {state.requests_served} requests served"
            exposure = exposure_notice(urlsplit(state.url).hostname or "")
            self.status.setText(f"{text}\n{exposure}" if exposure else text)
        else:
            self.status.setText(state.message or "Not running")

    # --- behaviour ----------------------------------------------------------------------------

    def _refresh(self) -> None:
        has_key = bool(self.key.text())
        self.copy_key.setEnabled(has_key)
        self.copy_curl.setEnabled(has_key)
        self.curl.setText(
            curl_line(self.port.value(), self.key.text(), self._model) if has_key else ""
        )
        self.curl.setCursorPosition(0)

    def _on_enabled(self, enabled: bool) -> None:
        changes: dict[str, object] = {"server_enabled": enabled}
        if enabled and not self.key.text():
            self.key.setText(generate_api_key())
            changes["server_api_key"] = self.key.text()
        self._refresh()
        self.changed.emit(changes)

    def _on_port(self, port: int) -> None:
        self._refresh()
        self.changed.emit({"server_port": port})

    def _on_origins(self) -> None:
        origins = tuple(o.strip() for o in self.origins.text().split(",") if o.strip())
        self.changed.emit({"server_cors_origins": origins})

    @staticmethod
    def _copy(text: str) -> None:
        if text:
            QGuiApplication.clipboard().setText(text)
