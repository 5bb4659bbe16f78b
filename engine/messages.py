"""Requests to the engine worker and the events it sends back: the whole contract between app and engine.

The worker runs on its own thread. Requests are plain dataclasses handed to ``EngineWorker.submit``;
events arrive through the ``on_event`` callback **on the worker thread**: the app forwards them to
the GUI thread (a Qt signal or ``loop.call_soon_threadsafe``) and never touches widgets from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]
ContextPolicy = Literal["stop", "drop_oldest"]
FinishReason = Literal["eos", "stop_string", "max_tokens", "cancelled", "context_full", "error"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 512
    temperature: float = 0.7  # 0 is greedy
    top_k: int = 0  # 0 disables
    top_p: float = 1.0  # 1 disables
    min_p: float = 0.0  # 0 disables
    repetition_penalty: float = 1.0  # 1 disables
    seed: int | None = None
    stop_strings: tuple[str, ...] = ()
    context_policy: ContextPolicy = "drop_oldest"


# Requests ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadModel:
    request_id: int
    path: str
    compute_units: str = "cpu_and_gpu"


@dataclass(frozen=True)
class Generate:
    """Answer the last user message of ``messages`` (system prompt first, if any).

    The worker keeps one kv-cache state per ``conversation_id`` and feeds only what is new: a
    regenerate or an edit is the same request with a shorter or changed ``messages``, and the
    cache is rewound to the longest common prefix. An empty ``conversation_id`` (the HTTP server's
    requests) takes the kept anonymous state with the longest common token prefix instead.
    """

    request_id: int
    conversation_id: str
    messages: tuple[ChatMessage, ...]
    config: GenerationConfig = field(default_factory=GenerationConfig)


@dataclass(frozen=True)
class Cancel:
    """Stop the running generation (``request_id`` None: whatever runs). Checked between tokens."""

    request_id: int | None = None


@dataclass(frozen=True)
class ForgetConversation:
    conversation_id: str


@dataclass(frozen=True)
class StartServer:
    """Serve the loaded model over OpenAI's HTTP API (handled at once, not queued).

    A running server is restarted with the new settings. Every HTTP request needs
    ``Authorization: Bearer <api_key>``; ``cors_origins`` empty: no CORS headers at all.
    """

    host: str
    port: int
    api_key: str
    cors_origins: tuple[str, ...] = ()


@dataclass(frozen=True)
class StopServer:
    """Stop the HTTP server (its running requests are cancelled). Handled at once."""


Request = LoadModel | Generate | Cancel | ForgetConversation | StartServer | StopServer


# Events -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: str
    context_length: int
    quantization: str
    architecture: str
    runtime_name: str  # "coreml" or "reference"
    compute_units: str
    source_model_id: str = ""


@dataclass(frozen=True)
class ModelLoaded:
    request_id: int
    info: ModelInfo
    seconds: float


@dataclass(frozen=True)
class PrefillProgress:
    request_id: int
    done: int
    total: int


@dataclass(frozen=True)
class TokenText:
    """A piece of the answer: whole UTF-8 characters only."""

    request_id: int
    text: str
    token_id: int


@dataclass(frozen=True)
class ContextTrimmed:
    """The context-full policy dropped the oldest turns (never the system prompt)."""

    request_id: int
    dropped_messages: int
    message: str


@dataclass(frozen=True)
class GenerationStats:
    prompt_tokens: int  # tokens of the rendered conversation
    tokens_fed: int  # tokens actually run through the model in prefill (new ones only)
    generated_tokens: int
    time_to_first_token: float  # seconds
    prefill_tokens_per_second: float
    decode_tokens_per_second: float
    cache_length: int  # tokens in the kv-cache after this turn
    context_length: int
    finish_reason: FinishReason


@dataclass(frozen=True)
class GenerationFinished:
    request_id: int
    text: str
    stats: GenerationStats


@dataclass(frozen=True)
class EngineError:
    """A request failed; the worker keeps serving. ``request_id`` None: not tied to one request."""

    request_id: int | None
    message: str


@dataclass(frozen=True)
class ServerState:
    """The HTTP server started, stopped, failed to start, or served one more request.

    ``message`` says why when it is not running after a ``StartServer`` (a port in use, ...).
    """

    running: bool
    url: str
    requests_served: int
    message: str = ""


Event = (
    ModelLoaded
    | PrefillProgress
    | TokenText
    | ContextTrimmed
    | GenerationFinished
    | EngineError
    | ServerState
)
