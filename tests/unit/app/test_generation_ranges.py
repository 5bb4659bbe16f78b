"""One table of generation limits: the engine's ``GENERATION_RANGES``. The Settings dialog's spin
boxes, ``GenerationConfig.problems()`` and the settings file all read it, so a value the window
offers is one the engine samples with, and an edit of one side alone fails here."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.settings import generation_pane
from app.settings.app_settings import settings_from_dict
from app.settings.generation_pane import GenerationPane
from engine import messages
from engine.messages import GENERATION_RANGES, GenerationConfig

FLOAT_FIELDS = ("temperature", "top_p", "min_p", "repetition_penalty")
INT_FIELDS = ("max_new_tokens", "top_k", "seed")


def test_the_pane_and_the_engine_read_the_same_table() -> None:
    assert generation_pane.GENERATION_RANGES is messages.GENERATION_RANGES
    assert set(GENERATION_RANGES) == set(FLOAT_FIELDS + INT_FIELDS)


@pytest.fixture
def pane(qtbot) -> GenerationPane:
    pane = GenerationPane()
    qtbot.addWidget(pane)
    pane.fixed_seed.setChecked(True)  # the seed spin box counts too
    return pane


@pytest.mark.parametrize("name", FLOAT_FIELDS + INT_FIELDS)
def test_a_spin_box_spans_exactly_the_engines_range(pane, name: str) -> None:
    spin = getattr(pane, name)
    limits = GENERATION_RANGES[name]
    assert (spin.minimum(), spin.maximum()) == (limits.minimum, limits.maximum)


@pytest.mark.parametrize("name", FLOAT_FIELDS)
def test_every_value_a_decimal_spin_box_allows_is_accepted_by_the_engine(pane, name) -> None:
    spin = getattr(pane, name)
    unit = 10 ** -spin.decimals()
    count = round((spin.maximum() - spin.minimum()) / unit)
    refused = {}
    for index in range(count + 1):
        spin.setValue(spin.minimum() + index * unit)
        problems = pane.config().problems()
        if problems:
            refused[spin.value()] = problems
    assert refused == {}


@pytest.mark.parametrize("name", INT_FIELDS)
def test_both_ends_of_a_whole_number_spin_box_are_accepted_by_the_engine(pane, name) -> None:
    spin = getattr(pane, name)
    for end in (spin.minimum(), spin.maximum()):
        spin.setValue(end)
        assert pane.config().problems() == {}


@pytest.mark.parametrize("name", FLOAT_FIELDS + INT_FIELDS)
def test_the_engine_and_the_settings_file_refuse_a_step_beyond_either_end(name: str) -> None:
    limits = GENERATION_RANGES[name]
    unit = 1 if name in INT_FIELDS else 0.001
    for beyond in (limits.minimum - unit, limits.maximum + unit):
        assert name in replace(GenerationConfig(), **{name: beyond}).problems()
        loaded = settings_from_dict({"generation": {name: beyond}}).generation
        assert getattr(loaded, name) == getattr(GenerationConfig(), name)
