"""Hostile input aimed at what the app stores and reads back (issue 21): search queries, a damaged
database, import files, the settings file."""

from __future__ import annotations

import logging

from app.settings.app_settings import AppSettings, load_settings, settings_path

# --- the settings file -----------------------------------------------------------------------


def test_a_settings_file_nested_100000_deep_gives_the_defaults(caplog) -> None:
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"generation": ' + "[" * 100_000 + "]" * 100_000 + "}", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        assert load_settings() == AppSettings()  # no RecursionError: the promise is "never raises"
    assert "nested deeper" in caplog.text
