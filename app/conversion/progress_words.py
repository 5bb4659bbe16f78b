"""The converter's progress in the user's words: stage names and sentences, its log as sentences.

The converter speaks in its own terms (``resolve``, ``trace``), passes on coremltools' bar titles
("Converting PyTorch Frontend ==> MIL Ops") and, on stderr, Python logger lines
("INFO converter.convert: loaded 2 layers"). The Converter tab shows none of that as is: each stage
has a short title and a sentence saying what happens, a library's own title gives way to the
stage's sentence, and each logger line becomes a sentence (its prefix dropped, a warning said to
be one); other lines (a traceback) are kept as written.
"""

from __future__ import annotations

import logging
import re

logger = logging.getLogger(__name__)

STAGE_TITLES = {
    "resolve": "Find",
    "load": "Read",
    "trace": "Prepare",
    "convert": "Build",
    "quantize": "Compress",
    "save": "Save",
    "verify": "Check",
}
STAGE_SENTENCES = {
    "resolve": "Finding the model and its files",
    "load": "Reading the weights",
    "trace": "Preparing the model for Core ML",
    "convert": "Building the Core ML program",
    "quantize": "Compressing the weights",
    "save": "Writing the model folder",
    "verify": "Comparing its answers with the original model's",
}
# A logger line as the converter's CLI prints it (and the app's format, with a time in front).
LOGGER_LINE = re.compile(
    r"^(?:[\d-]+ [\d:,.]+ )?(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: (?P<text>.*)$"
)
# Titles of coremltools' own bars and passes: library words, not the user's.
LIBRARY_TITLE = re.compile(r"==>|\bMIL\b|pipeline|[Ff]rontend|[Bb]ackend|\bpass(es)?\b|^Running ")


def stage_title(stage: str) -> str:
    return STAGE_TITLES.get(stage, stage.replace("_", " ").capitalize())


def stage_sentence(stage: str) -> str:
    return STAGE_SENTENCES.get(stage, stage_title(stage))


def detail_words(message: str) -> str:
    """The converter's note about the running stage, when it is in plain words ("" otherwise:
    a library's title, which the stage's sentence replaces)."""
    message = message.strip()
    if not message or LIBRARY_TITLE.search(message):
        return ""
    return _capitalized(message)


def stage_line(stage: str, fraction: float, message: str) -> str:
    """The line under the bars: "Building the Core ML program… 42%", and a plain-words detail."""
    line = f"{stage_sentence(stage)}… {int(min(max(fraction, 0.0), 1.0) * 100)}%"
    detail = detail_words(message)
    return (
        f"{line} · {detail}" if detail and detail.lower() != stage_sentence(stage).lower() else line
    )


def log_sentence(line: str) -> str | None:
    """A converter logger line as a sentence ("INFO converter.convert: loaded 2 layers" → "Loaded
    2 layers."); None for a line not worth showing (debug chatter). Any other line is kept as it
    is: a traceback or a library's own complaint is read as written."""
    text = line.rstrip()
    if not text.strip():
        return None
    logged = LOGGER_LINE.match(text.strip())
    if not logged:
        return text
    level, text = logged.group("level"), logged.group("text").strip()
    if level == "DEBUG" or not text:
        return None
    sentence = _capitalized(text)
    if sentence[-1] not in ".!?…:)" and not sentence.endswith("..."):
        sentence += "."
    if level in ("WARNING", "ERROR", "CRITICAL"):
        return f"{'Warning' if level == 'WARNING' else 'Error'}: {sentence}"
    return sentence


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]
