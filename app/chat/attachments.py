"""Text files attached to a message: read and checked, their token cost estimated, and folded into
the message that is sent (no Qt: the composer shows them, ``ChatController`` sends the text).

An attachment is sent as part of the user's message, each file in a fenced block under its name,
so the model reads it as the user's text and the stored chat keeps it. Only text is taken: a file
that is not UTF-8, holds NUL bytes, or is larger than ``MAX_ATTACHMENT_BYTES`` is refused with a
line saying what was expected.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from app.chat.live_stats import estimate_context_tokens

logger = logging.getLogger(__name__)

MAX_ATTACHMENT_BYTES = 512 * 1024  # about 130k tokens of English: more than most contexts hold
# The file dialog's filter (any file can still be chosen; its content decides).
TEXT_SUFFIXES = (
    ".txt", ".md", ".markdown", ".rst", ".csv", ".tsv", ".json", ".jsonl", ".yaml", ".yml",
    ".toml", ".ini", ".cfg", ".xml", ".html", ".css", ".log", ".py", ".js", ".ts", ".tsx",
    ".jsx", ".swift", ".m", ".h", ".c", ".cc", ".cpp", ".hpp", ".rs", ".go", ".java", ".kt",
    ".rb", ".php", ".sh", ".zsh", ".sql", ".r", ".lua", ".pl", ".scala", ".cs",
)  # fmt: skip
FENCE_LANGUAGES = {".py": "python", ".js": "javascript", ".ts": "typescript", ".md": "markdown",
                   ".sh": "bash", ".rs": "rust", ".swift": "swift", ".json": "json",
                   ".yaml": "yaml", ".yml": "yaml", ".html": "html", ".c": "c", ".cpp": "cpp",
                   ".go": "go", ".java": "java", ".sql": "sql", ".toml": "toml"}  # fmt: skip


class AttachmentError(ValueError):
    """A file that cannot be attached; the message says what was expected and what was found."""


@dataclass(frozen=True)
class Attachment:
    name: str
    text: str

    @property
    def tokens(self) -> int:
        """About how many tokens the file adds to the prompt (as the context gauge estimates)."""
        return estimate_context_tokens([self.text])

    def as_markdown(self) -> str:
        """The file as the message carries it: its name, then its text in a fence it cannot close."""
        language = FENCE_LANGUAGES.get(Path(self.name).suffix.lower(), "")
        fence = "```"
        while fence in self.text:
            fence += "`"
        return f"{self.name}:\n{fence}{language}\n{self.text.rstrip()}\n{fence}"


def read_attachment(path: str | Path) -> Attachment:
    """Read ``path`` as a text attachment, or raise ``AttachmentError`` saying why not."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise AttachmentError(f"{path.name}: expected a file, found a folder or a device")
        if size > MAX_ATTACHMENT_BYTES:
            raise AttachmentError(
                f"{path.name}: expected a text file of at most {MAX_ATTACHMENT_BYTES // 1024} KB, "
                f"found {size / 1024:,.0f} KB"
            )
        data = path.read_bytes()
    except OSError as error:
        raise AttachmentError(f"{path.name}: cannot be read ({error.strerror or error})") from None
    if b"\x00" in data:
        raise AttachmentError(f"{path.name}: expected a text file, found binary data")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise AttachmentError(f"{path.name}: expected UTF-8 text, found another encoding") from None
    return Attachment(path.name, text.replace("\r\n", "\n"))


def message_with_attachments(text: str, attachments: list[Attachment]) -> str:
    """What is sent: the typed text, then each file under its name."""
    parts = [text.strip()] if text.strip() else []
    parts += [attachment.as_markdown() for attachment in attachments]
    return "\n\n".join(parts)


# One file at the end of a message, as ``Attachment.as_markdown`` writes it: its name (with a
# suffix, so a typed "Example:" before a code block stays as typed), a colon, and its text in a
# fence that its text does not hold.
_TRAILING_FILE = re.compile(
    r"(?:\A|\n\n)(?P<name>[^\n`]{0,250}\.\w{1,12}):\n(?P<fence>`{3,})[\w+#.-]*\n"
    r"(?P<text>(?:(?!(?P=fence)).)*?)\n(?P=fence)\Z",
    re.DOTALL,
)


def split_attachments(message: str) -> tuple[str, list[Attachment]]:
    """A sent message's typed text and the files attached at its end (``message_with_attachments``
    undone), for showing them folded; a message without files comes back whole."""
    files: list[Attachment] = []
    while (match := _TRAILING_FILE.search(message)) is not None:
        files.insert(0, Attachment(match["name"], match["text"]))
        message = message[: match.start()]
    return message, files


def describe_tokens(attachments: list[Attachment], context_length: int | None) -> tuple[str, bool]:
    """The line under the attachments ("≈ 1,234 tokens", and of how many) and whether they alone
    do not fit the model's context."""
    total = sum(a.tokens for a in attachments)
    if not attachments:
        return "", False
    line = f"≈ {total:,} tokens"
    if context_length:
        line += f" of the model's {context_length:,}"
    return line, bool(context_length) and total > context_length
