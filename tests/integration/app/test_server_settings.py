"""Settings → Server: the fields saved 0600, the key made on first enable, a curl line that works,
and the status line's server notice."""

from __future__ import annotations

import json
import os
import shlex
import stat

from app.settings.app_settings import AppSettings, load_settings, save_settings, settings_path
from engine.messages import ServerState


def test_server_settings_round_trip_with_mode_0600() -> None:
    settings = AppSettings(
        server_enabled=True,
        server_port=9123,
        server_api_key="cmc-secret",
        server_cors_origins=("http://localhost:3000",),
    )
    save_settings(settings)
    assert load_settings() == settings
    assert stat.S_IMODE(os.stat(settings_path()).st_mode) == 0o600


def test_bad_server_fields_fall_back_to_their_defaults() -> None:
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    bad = {"server_enabled": "yes", "server_port": 80, "server_cors_origins": "*"}
    path.write_text(json.dumps({**bad, "server_api_key": "kept"}))
    loaded = load_settings()
    assert (loaded.server_enabled, loaded.server_port, loaded.server_cors_origins) == (
        False,
        8080,
        (),
    )
    assert loaded.server_api_key == "kept"


def test_first_enable_makes_a_key_and_a_curl_line(qtbot) -> None:
    from app.settings.server_pane import ServerSettingsPane

    pane = ServerSettingsPane(AppSettings())
    qtbot.addWidget(pane)
    pane.set_model_name("SmolLM2-135M-Instruct")
    assert pane.key.text() == "" and pane.curl.text() == ""
    changes: list[dict] = []
    pane.changed.connect(changes.append)
    pane.enabled.setChecked(True)
    key = pane.key.text()
    assert key.startswith("cmc-") and len(key) > 20
    assert changes[-1] == {"server_enabled": True, "server_api_key": key}
    words = shlex.split(pane.curl.text())
    assert words[1] == "http://127.0.0.1:8080/v1/chat/completions"
    assert f"Authorization: Bearer {key}" in words
    assert json.loads(words[-1])["model"] == "SmolLM2-135M-Instruct"
    pane.enabled.setChecked(False)
    pane.enabled.setChecked(True)
    assert pane.key.text() == key  # the key stays: clients keep working
    pane.port.setValue(9000)
    assert changes[-1] == {"server_port": 9000}
    assert "127.0.0.1:9000" in pane.curl.text()


def test_the_settings_dialog_has_a_server_tab(qtbot) -> None:
    from app.settings.settings_store import SettingsStore
    from app.shell.settings_dialog import SettingsDialog

    dialog = SettingsDialog(SettingsStore(AppSettings()))
    qtbot.addWidget(dialog)
    dialog.show_tab("server")
    dialog.server_pane.enabled.setChecked(True)
    assert dialog.settings().server_enabled
    assert dialog.settings().server_api_key == dialog.server_pane.key.text()


def test_the_status_line_shows_the_server_and_its_requests(qtbot) -> None:
    from app.chat.status_line import StatusLine

    line = StatusLine()
    qtbot.addWidget(line)
    line.show()
    line.set_server_state(ServerState(True, "http://127.0.0.1:8080/v1", 3))
    assert line.server_label.isVisible()
    assert line.server_label.text() == "API on :8080 · 3 requests"
    line.set_server_state(ServerState(False, "", 0))
    assert not line.server_label.isVisible()


def test_the_bridge_starts_and_stops_the_engines_server(qtbot) -> None:
    import socket

    from app.chat.engine_bridge import EngineBridge

    with socket.socket() as probe:  # a free port (the settings allow 1024..65535, not 0)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    bridge = EngineBridge()
    try:
        with qtbot.waitSignal(bridge.serverStateChanged, timeout=30_000) as started:
            bridge.set_server(enabled=True, port=port, api_key="k")
        assert started.args[0].running
        assert started.args[0].url == f"http://127.0.0.1:{port}/v1"
        with qtbot.waitSignal(bridge.serverStateChanged, timeout=30_000) as stopped:
            bridge.set_server(enabled=False, port=port, api_key="k")
        assert not stopped.args[0].running
    finally:
        bridge.close()
