"""The status line: model, time to first token, tokens/s, a context gauge, trim notices."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QWidget

from app.chat.elided_label import ElidedLabel
from app.chat.live_stats import LiveStats
from engine.messages import ModelInfo, ServerState

logger = logging.getLogger(__name__)

NOTICE_SECONDS = 12


def describe_stats(stats: LiveStats) -> str:
    parts: list[str] = []
    if stats.generating and stats.time_to_first_token is None:
        if stats.prefill_total:
            parts.append(f"Reading the prompt… {stats.prefill_done}/{stats.prefill_total}")
        else:
            parts.append("Starting…")
    if stats.time_to_first_token is not None:
        parts.append(f"First token {format_seconds(stats.time_to_first_token)}")
    if stats.tokens_per_second:
        parts.append(f"{stats.tokens_per_second:.1f} tok/s")
    if stats.generated_tokens and not stats.generating:
        count = stats.generated_tokens
        parts.append(f"{count} token{'s' if count != 1 else ''}")
    return "  ·  ".join(parts)


def format_seconds(seconds: float) -> str:
    """A short time as people read it: "85 ms" (never "0.00 s" for a real measurement), "1.42 s"."""
    if seconds < 1.0:
        return f"{max(1, round(seconds * 1000))} ms"
    return f"{seconds:.2f} s"


def describe_context(stats: LiveStats) -> str:
    if not stats.context_length:
        return ""
    used = "—" if stats.context_used is None else f"{stats.context_used:,}"
    if stats.context_used is not None and stats.context_estimated:
        used = f"≈ {used}"
    return f"{used} / {stats.context_length:,} tokens"


class StatusLine(QWidget):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setObjectName("statusLine")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.stats_label = QLabel(objectName="statusText")
        self.stats_label.setTextFormat(Qt.TextFormat.PlainText)  # "Loading <model name>…"
        self.notice_label = ElidedLabel(objectName="noticePill")  # never widens the page
        self.notice_label.hide()
        self.server_label = QLabel(objectName="statusText")
        self.server_label.hide()
        self.context_label = QLabel(objectName="statusText")
        self.gauge = QProgressBar(objectName="contextGauge")
        self.gauge.setTextVisible(False)
        self.gauge.setFixedWidth(110)
        self.gauge.setRange(0, 1000)
        self.gauge.setAccessibleName("Context used")
        self.gauge.hide()
        self._notice_timer = QTimer(self, singleShot=True)
        self._notice_timer.timeout.connect(self.notice_label.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(16, 5, 16, 5)
        layout.setSpacing(10)
        layout.addWidget(self.stats_label)
        layout.addWidget(self.notice_label)
        layout.addStretch(1)
        layout.addWidget(self.server_label)
        layout.addWidget(self.context_label)
        layout.addWidget(self.gauge)

    def set_stats(self, stats: LiveStats) -> None:
        self.stats_label.setText(describe_stats(stats))
        context = describe_context(stats)
        self.context_label.setText(context)
        self.context_label.setToolTip(
            "About this many tokens, estimated from the chat's text: the exact count comes "
            "with its next answer"
            if stats.context_estimated
            else "Tokens in the model's context after the last answer"
        )
        self.gauge.setAccessibleDescription(context or "not known yet")
        if stats.context_length and stats.context_used is not None:
            fraction = min(1.0, stats.context_used / stats.context_length)
            self.gauge.setValue(int(fraction * 1000))
            level = "full" if fraction >= 0.95 else "high" if fraction >= 0.75 else "ok"
            if self.gauge.property("level") != level:
                self.gauge.setProperty("level", level)
                self.gauge.style().unpolish(self.gauge)
                self.gauge.style().polish(self.gauge)
            self.gauge.show()
        else:
            self.gauge.hide()

    def set_model(self, info: ModelInfo | None, *, loading: str = "") -> None:
        if loading:
            self.stats_label.setText(loading)

    def set_server_state(self, state: ServerState) -> None:
        """'API on :8080 · 3 requests' while the OpenAI-compatible server runs."""
        port = state.url.rsplit(":", 1)[-1].split("/", 1)[0] if state.url else ""
        served = f"{state.requests_served} request{'s' if state.requests_served != 1 else ''}"
        self.server_label.setText(f"API on :{port} · {served}")
        self.server_label.setToolTip(state.url or state.message)
        self.server_label.setVisible(state.running)

    def show_notice(self, text: str) -> None:
        self.notice_label.setText(text)  # elided to fit; the whole text in its tooltip
        self.notice_label.show()
        self._notice_timer.start(NOTICE_SECONDS * 1000)

    @property
    def notice(self) -> str:
        return self.notice_label.text() if self.notice_label.isVisible() else ""
