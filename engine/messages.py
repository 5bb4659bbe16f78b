"""Requests to the engine worker and the events it sends back: the whole contract between app and engine.

The worker runs on its own thread. Requests are plain dataclasses handed to ``EngineWorker.submit``;
events arrive through the ``on_event`` callback **on the worker thread**: the app forwards them to
the GUI thread (a Qt signal or ``loop.call_soon_threadsafe``) and never touches widgets from there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant", "tool"]
ContextPolicy = Literal["stop", "drop_oldest"]
FinishReason = Literal[
    "eos", "stop_string", "max_tokens", "cancelled", "context_full", "error", "interrupted"
]
# Below this a temperature's inverse overflows float32 against float16 logits (and means greedy).
MIN_TEMPERATURE = 1e-3


@dataclass(frozen=True)
class NumberRange:
    """The accepted range of one numeric generation setting, both ends included."""

    minimum: float
    maximum: float

    def contains(self, value: float) -> bool:
        return self.minimum <= value <= self.maximum


# The one table of GenerationConfig's numeric limits: ``problems()`` checks against it and the
# Settings dialog's spin boxes take their limits from it, so the window never offers a value the
# engine refuses. Finite, because a spin box needs both ends; seed's end is a QSpinBox's int32.
GENERATION_RANGES: dict[str, NumberRange] = {
    "max_new_tokens": NumberRange(1, 32768),
    "temperature": NumberRange(0.0, 5.0),  # 0 is greedy; else at least MIN_TEMPERATURE
    "top_k": NumberRange(0, 1000),  # 0 disables
    "top_p": NumberRange(0.0, 1.0),  # 1 disables; 0 keeps only the most probable token
    "min_p": NumberRange(0.0, 1.0),  # 0 disables
    "repetition_penalty": NumberRange(0.5, 3.0),  # 1 disables
    "seed": NumberRange(0, 2**31 - 1),
}

MAX_TOP_LOGPROBS = 20  # OpenAI's

# Knobs only API clients turn (the window has no control for them): OpenAI's ranges.
CLIENT_RANGES: dict[str, NumberRange] = {
    "presence_penalty": NumberRange(-2.0, 2.0),  # 0 disables
    "frequency_penalty": NumberRange(-2.0, 2.0),  # 0 disables
    "logit_bias": NumberRange(-100.0, 100.0),  # each bias, added to a token's logit
}


# Stop strings: the engine holds back as much streamed text as the longest one is long, so they are
# few and short, and never empty (an empty one would stop every answer before its first character).
MAX_STOP_STRINGS = 16
MAX_STOP_STRING_LENGTH = 80  # characters


def stop_strings_problem(value: object) -> str | None:
    """What is wrong with ``value`` as stop strings (None: nothing): the one rule the Settings
    dialog, the HTTP server and the engine apply."""
    if not isinstance(value, list | tuple) or not all(isinstance(s, str) for s in value):
        return f"expected a list of strings, found {value!r}"
    if len(value) > MAX_STOP_STRINGS:
        return f"expected at most {MAX_STOP_STRINGS} stop strings, found {len(value)}"
    for text in value:
        if not text.strip(" "):
            return f"expected visible text or a line break in each stop string, found {text!r}"
        if len(text) > MAX_STOP_STRING_LENGTH:
            return (
                f"expected stop strings of at most {MAX_STOP_STRING_LENGTH} characters, found "
                f"{len(text)} in {text[:20]!r}…"
            )
    if len(set(value)) != len(value):
        return "expected each stop string once, found one twice"
    return None


@dataclass(frozen=True)
class ToolCall:
    """A function call an assistant message made (OpenAI's ``tool_calls`` item)."""

    id: str
    name: str
    arguments: str  # JSON text of the arguments object, as OpenAI carries it


@dataclass(frozen=True)
class TokenLogprob:
    """A sampled token's text and log-probability, and the most probable tokens' (OpenAI's
    ``logprobs.content`` item)."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()  # an assistant's calls
    tool_call_id: str = ""  # a tool message: the call it answers


@dataclass(frozen=True)
class RawPrompt:
    """Text to continue as it is, with no chat template (OpenAI's legacy completions): tokenized as
    text, with the BOS the tokenizer adds. With ``suffix``, the middle between ``text`` and it is
    asked for, in the tokenizer's fill-in-the-middle format (a tokenizer without one refuses)."""

    text: str
    suffix: str | None = None


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 512
    temperature: float = 0.7  # 0 is greedy
    top_k: int = 0  # 0 disables
    top_p: float = 1.0  # 1 disables
    min_p: float = 0.0  # 0 disables
    repetition_penalty: float = 1.0  # 1 disables
    presence_penalty: float = 0.0  # subtracted once from each token already in the answer
    frequency_penalty: float = 0.0  # subtracted per time a token is already in the answer
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, added to its logit)
    seed: int | None = None
    stop_strings: tuple[str, ...] = ()
    context_policy: ContextPolicy = "drop_oldest"
    # Constrained decoding: the answer is JSON matching this JSON schema (as JSON text).
    json_schema: str | None = None
    # Tools the model may call (OpenAI's ``tools`` list as JSON text), rendered by its template;
    # tool_choice "auto", "none", "required" or a function's name (the last two: the answer is
    # that call, under constrained decoding in the model's own call format).
    tools: str | None = None
    tool_choice: str = "auto"
    parallel_tool_calls: bool = True
    # Report each sampled token's log-probability and this many alternatives' (None: none).
    top_logprobs: int | None = None
    # False: no reasoning before the answer, where the chat template takes ``enable_thinking``
    # (Qwen3); None: the template's own default.
    enable_thinking: bool | None = None

    def problems(self) -> dict[str, str]:
        """What the engine cannot sample with, by field ("must be ..., not ..."); empty if none.

        The engine's one definition of a usable config, against ``GENERATION_RANGES``:
        ``stream_generate`` refuses a config with problems, so the window, the CLI and the HTTP
        server get the same checks."""
        found: dict[str, str] = {}

        def span(name: str, low: float | None = None) -> str:
            limits = GENERATION_RANGES[name]
            return f"from {limits.minimum if low is None else low} to {limits.maximum}"

        def number(name: str, value: object, text: str, *, low: float | None = None) -> None:
            limits = GENERATION_RANGES[name]
            low = limits.minimum if low is None else low
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or not low <= value <= limits.maximum:  # type: ignore[arg-type]
                found[name] = f"must be {text}, not {value!r}"

        def whole(name: str, value: object, text: str) -> None:
            limits = GENERATION_RANGES[name]
            if not isinstance(value, int) or isinstance(value, bool) or not limits.contains(value):
                found[name] = f"must be {text}, not {value!r}"

        whole("max_new_tokens", self.max_new_tokens, f"a whole number {span('max_new_tokens')}")
        if self.temperature != 0:
            greedy_or = f"0 (greedy) or a finite number {span('temperature', MIN_TEMPERATURE)}"
            number("temperature", self.temperature, greedy_or, low=MIN_TEMPERATURE)
        whole("top_k", self.top_k, f"a whole number {span('top_k')} (0 disables)")
        number("top_p", self.top_p, f"a number {span('top_p')} (1 disables)")
        number("min_p", self.min_p, f"a number {span('min_p')} (0 disables)")
        number("repetition_penalty", self.repetition_penalty,
               f"a number {span('repetition_penalty')} (1 disables)")  # fmt: skip
        found.update(self._client_problems())
        if self.top_logprobs is not None and not (
            isinstance(self.top_logprobs, int) and 0 <= self.top_logprobs <= MAX_TOP_LOGPROBS
        ):
            found["top_logprobs"] = (
                f"must be None or a whole number from 0 to {MAX_TOP_LOGPROBS}, "
                f"not {self.top_logprobs!r}"
            )
        if self.seed is not None:
            whole("seed", self.seed, f"none or a whole number {span('seed')}")
        if not isinstance(self.stop_strings, tuple):
            found["stop_strings"] = f"must be a tuple of strings, not {self.stop_strings!r}"
        elif problem := stop_strings_problem(self.stop_strings):
            found["stop_strings"] = problem
        if self.enable_thinking not in (None, True, False):
            found["enable_thinking"] = f"must be true, false or none, not {self.enable_thinking!r}"
        if self.context_policy not in ("stop", "drop_oldest"):
            found["context_policy"] = f"must be stop or drop_oldest, not {self.context_policy!r}"
        for name in ("json_schema", "tools"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                found[name] = f"must be None or text, not {value!r:.80}"
        return found

    def _client_problems(self) -> dict[str, str]:
        """The knobs of ``CLIENT_RANGES`` (penalties, logit bias)."""
        found: dict[str, str] = {}

        def fits(name: str, value: object) -> bool:
            limits = CLIENT_RANGES[name]
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            return ok and math.isfinite(value) and limits.contains(value)  # type: ignore[arg-type]

        for name in ("presence_penalty", "frequency_penalty"):
            if not fits(name, getattr(self, name)):
                limits = CLIENT_RANGES[name]
                found[name] = (
                    f"must be a number from {limits.minimum} to {limits.maximum} (0 disables), "
                    f"not {getattr(self, name)!r}"
                )
        pairs = self.logit_bias if isinstance(self.logit_bias, tuple) else (self.logit_bias,)
        for pair in pairs:
            good = isinstance(pair, tuple) and len(pair) == 2
            token = pair[0] if good else None
            if not isinstance(token, int) or isinstance(token, bool) or token < 0:
                found["logit_bias"] = f"must be (token id, bias) pairs, not {pair!r:.60}"
                break
            if not fits("logit_bias", pair[1]):
                found["logit_bias"] = f"must hold biases from -100 to 100, not {pair[1]!r}"
                break
        return found

    def check(self) -> None:
        """Raise ``InvalidConfig`` naming every problem (one line) and the first field at fault."""
        problems = self.problems()
        if problems:
            message = "; ".join(f"{name} {text}" for name, text in problems.items())
            raise InvalidConfig(message, field=next(iter(problems)))


class InvalidConfig(ValueError):
    """A ``GenerationConfig`` the engine cannot sample with; ``field`` is the first one at fault."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


# Requests ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadModel:
    """Load the model at ``path``. ``hub_endpoint`` is the Hub address for fetching tokenizer files
    the package came without (the app's setting; None: huggingface_hub's own, ``HF_ENDPOINT``)."""

    request_id: int
    path: str
    compute_units: str = "cpu_and_gpu"
    hub_endpoint: str | None = None


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
    raw_prompt: RawPrompt | None = None  # continue this text instead (``messages`` unused)

    @property
    def prompt(self) -> tuple[ChatMessage, ...] | RawPrompt:
        """What the model is given: the raw prompt when there is one, else the conversation."""
        return self.messages if self.raw_prompt is None else self.raw_prompt


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
    fill_in_middle: bool = False  # the tokenizer has FIM tokens: a raw prompt may take a suffix
    tool_format: str = "generic"  # how its tool calls are written (engine.text.tool_calls)


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
    """A piece of the answer, or of the reasoning before it (``reasoning``: text the model wrote
    between ``<think>`` and ``</think>``, markers left out): whole UTF-8 characters only.
    ``logprobs``: the tokens sampled since the last piece, when the request asked for them
    (``GenerationConfig.top_logprobs``)."""

    request_id: int
    text: str
    token_id: int
    logprobs: tuple[TokenLogprob, ...] = ()
    reasoning: bool = False


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
    text: str  # the answer, without the reasoning
    stats: GenerationStats
    reasoning: str = ""  # what the model wrote between <think> and </think>


ErrorKind = Literal[
    "invalid_request",  # the request cannot be served as it is (``field`` names what is wrong)
    "context_full",  # the conversation does not fit the model's context
    "no_model",  # nothing is loaded
    "load_failed",  # the model could not be loaded
    "out_of_memory",
    "engine_stopped",  # the engine process ended (the app restarts it)
    "internal",  # a bug
]


@dataclass(frozen=True)
class EngineError:
    """A request failed; the worker keeps serving. ``request_id`` None: not tied to one request.

    ``kind`` is what a caller acts on (the server's HTTP status, the window's notice), never a
    prefix of ``message``, which is for people. ``field``: the request's field at fault (a
    ``GenerationConfig`` field, or ``messages``), for ``invalid_request``."""

    request_id: int | None
    message: str
    kind: ErrorKind = "internal"
    field: str = ""


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
