"""The chat's behaviour: send, stop, regenerate, edit, switch, delete; saving before and after.

No widgets here: the controller talks to the store and the engine bridge, and tells views what
happened through signals. A user message is committed before its request goes to the engine; the
answer is committed at its first token, about every ``SAVE_INTERVAL_SECONDS`` while it streams
(marked interrupted, so a kill -9 leaves all but the last second of it, marked as cut off) and when
the engine finishes, into the conversation it belongs to even when the user switched away meanwhile.
A quit saves the answer so far as interrupted (``save_interrupted``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from app.chat.active_answer import ActiveAnswer, generation_json
from app.chat.engine_bridge import EngineBridge
from app.chat.live_stats import LiveStats, estimate_context_tokens
from app.conversations.store import ConversationStore, StoredMessage, title_from_text
from app.models.model_library import display_name
from app.ui.keyboard import shortcut_text
from engine.messages import (
    ChatMessage,
    ContextTrimmed,
    EngineError,
    GenerationConfig,
    GenerationFinished,
    ModelInfo,
    PrefillProgress,
    TokenText,
)
from engine.text.reasoning import CLOSE as THINK_CLOSE
from engine.text.reasoning import OPEN as THINK_OPEN
from engine.text.reasoning import split_reasoning

logger = logging.getLogger(__name__)

ERROR_GRACE_MS = 250  # how long a failed answer waits for the engine's GenerationFinished
SAVE_INTERVAL_SECONDS = 1.0  # a streaming answer is written to the store this often
# Continue asks for the rest of an answer cut at the token limit with this turn after it (the
# engine renders every request as a new answer); the reply joins the answer, the turn is not kept.
CONTINUE_PROMPT = "Continue exactly where your last answer stopped, without repeating anything."


@dataclass(frozen=True)
class ChatOptions:
    """What a turn needs from the settings (read each time a turn starts)."""

    system_prompt: str = ""
    generation: GenerationConfig = field(default_factory=GenerationConfig)


class ChatController(QObject):
    conversationOpened = Signal(object, object)  # conversation id (str | None), list[StoredMessage]
    messageAdded = Signal(object)  # StoredMessage (a user message, shown at once)
    answerStarted = Signal()
    answerText = Signal(str)  # the whole answer so far
    answerFinished = Signal(object)  # StoredMessage | None (nothing worth saving)
    busyChanged = Signal(bool)
    statsChanged = Signal(object)  # LiveStats
    notice = Signal(str)  # e.g. the context policy trimmed the conversation
    errorOccurred = Signal(str)
    conversationsChanged = Signal()
    systemPromptChanged = Signal(str)  # conversation id

    def __init__(
        self,
        store: ConversationStore,
        bridge: EngineBridge,
        *,
        options: Callable[[], ChatOptions] = ChatOptions,
        parent: Any = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.bridge = bridge
        self._options = options
        self.current_conversation_id: str | None = None
        self._active: ActiveAnswer | None = None
        self._stats = LiveStats()
        self._cache_lengths: dict[str, int] = {}
        removed = store.delete_empty_conversations()  # left by versions that stored them early
        if removed:
            logger.info("removed %d empty chat(s)", removed)
        bridge.tokenArrived.connect(self._on_token)
        bridge.prefillProgress.connect(self._on_prefill)
        bridge.generationFinished.connect(self._on_finished)
        bridge.contextTrimmed.connect(self._on_trimmed)
        bridge.engineError.connect(self._on_error)
        bridge.modelLoaded.connect(self._on_model_loaded)

    # --- state -------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._active is not None

    @property
    def model_info(self) -> ModelInfo | None:
        return self.bridge.model_info

    @property
    def stats(self) -> LiveStats:
        return self._stats

    def messages(self) -> list[StoredMessage]:
        if self.current_conversation_id is None:
            return []
        return self.store.messages(self.current_conversation_id)

    # --- conversations -----------------------------------------------------------------------

    def new_conversation(self) -> None:
        """Open a new, empty chat. It is stored when it gets something of the user's (its first
        message, or a system prompt of its own), so unused "New chat" rows never pile up."""
        self.open_conversation(None)

    def _store_new_conversation(self) -> str:
        conversation = self.store.create_conversation()
        self.conversationsChanged.emit()
        self.open_conversation(conversation.id)
        return conversation.id

    def open_conversation(self, conversation_id: str | None) -> None:
        if conversation_id is not None and self.store.conversation(conversation_id) is None:
            raise ValueError(f"no conversation with id {conversation_id!r}")
        if conversation_id == self.current_conversation_id:
            return
        if self._active is not None:
            self.stop()  # its partial answer is saved into its own conversation
        self.current_conversation_id = conversation_id
        self._show_context_only()
        self.conversationOpened.emit(conversation_id, self.messages())

    def _show_context_only(self) -> None:
        """The status line without an answer's figures: the chat's context, nothing measured."""
        used, estimated = self._context_used(self.current_conversation_id)
        self._stats = LiveStats(
            context_used=used,
            context_estimated=estimated,
            context_length=self.model_info.context_length if self.model_info else None,
        )
        self.statsChanged.emit(self._stats)

    def delete_conversation(self, conversation_id: str) -> None:
        if self._active is not None and self._active.conversation_id == conversation_id:
            self.stop()
        self.store.delete_conversation(conversation_id)
        self.bridge.forget(conversation_id)
        self._cache_lengths.pop(conversation_id, None)
        if self.current_conversation_id == conversation_id:
            self.current_conversation_id = None
            self.conversationOpened.emit(None, [])
        self.conversationsChanged.emit()

    def system_prompt(self, conversation_id: str | None) -> str:
        """The prompt a turn of ``conversation_id`` starts with: its own, else the global one."""
        conversation = self.store.conversation(conversation_id) if conversation_id else None
        if conversation is not None and conversation.system_prompt is not None:
            return conversation.system_prompt
        return self._options().system_prompt

    def own_system_prompt(self) -> str | None:
        """The current chat's own system prompt (None: it follows the global one)."""
        conversation_id = self.current_conversation_id
        conversation = self.store.conversation(conversation_id) if conversation_id else None
        return conversation.system_prompt if conversation else None

    def set_system_prompt(self, prompt: str | None) -> None:
        """Give the current chat its own system prompt (None: the global one again); a chat not
        stored yet is stored now, since it holds something of the user's."""
        if self.current_conversation_id is None:
            if prompt is None:
                return
            self._store_new_conversation()
        assert self.current_conversation_id is not None
        self.store.set_system_prompt(self.current_conversation_id, prompt)
        self.systemPromptChanged.emit(self.current_conversation_id)

    def rename_conversation(self, conversation_id: str, title: str) -> None:
        self.store.rename_conversation(conversation_id, title)
        self.conversationsChanged.emit()

    # --- turns -------------------------------------------------------------------------------

    def send(self, text: str) -> bool:
        """Save ``text`` as the user's message, then ask the engine for an answer."""
        text = text.strip()
        if not text:
            return False
        if not self._can_generate():
            return False
        if self.current_conversation_id is None:
            self._store_new_conversation()
        assert self.current_conversation_id is not None
        message = self.store.append_message(self.current_conversation_id, "user", text)
        self.messageAdded.emit(message)
        self.conversationsChanged.emit()
        self._start_answer()
        return True

    def stop(self) -> None:
        if self._active is not None:
            self.bridge.cancel()

    def regenerate(self) -> bool:
        """Answer the last user message again; the last answer stays stored as an earlier version
        (hidden at the new answer's first token) and the cache is rewound."""
        messages = self.messages()
        if not messages or not self._can_generate():
            return False
        last = messages[-1]
        replaces: int | None = None
        if last.role == "assistant":
            replaces = last.id
            messages = messages[:-1]
        elif last.role != "user":
            return False
        self.conversationOpened.emit(self.current_conversation_id, messages)
        self._start_answer(replaces=replaces)
        return True

    def continue_answer(self, message_id: int) -> bool:
        """Carry on the last answer, cut at the token limit: the new text joins it, in its row."""
        messages = self.messages()
        if not messages or messages[-1].id != message_id or messages[-1].role != "assistant":
            self.errorOccurred.emit("only the last answer can be continued")
            return False
        if not self._can_generate():
            return False
        answer = messages[-1]
        self.conversationOpened.emit(self.current_conversation_id, messages[:-1])
        self._start_answer(continues=answer)
        return True

    def show_version(self, message_id: int, step: int) -> bool:
        """Show the answer version ``step`` places away from ``message_id`` (‹ -1, › +1); the
        shown version is what the next turn continues from. Only the last answer switches: the
        turns after an earlier one followed the version shown then."""
        messages = self.messages()
        if self._active is not None or not messages or messages[-1].id != message_id:
            self.errorOccurred.emit("only the last answer's versions can be switched, when idle")
            return False
        versions = self.store.versions(message_id)
        index = next(i for i, m in enumerate(versions) if m.id == message_id) + step
        if not 0 <= index < len(versions):
            return False
        self.store.show_version(versions[index].id)
        self.conversationOpened.emit(self.current_conversation_id, self.messages())
        self._show_context_only()  # the figures of the last answer are not this version's
        return True

    def edit_message(self, message_id: int, new_text: str) -> bool:
        """Replace a user message, drop everything after it, and answer it."""
        new_text = new_text.strip()
        messages = self.messages()
        target = next((m for m in messages if m.id == message_id), None)
        if target is None or target.role != "user":
            self.errorOccurred.emit(
                f"only a user message of this conversation can be edited (id {message_id})"
            )
            return False
        if not new_text or not self._can_generate():
            return False
        retitle = self._title_follows(target, messages)
        self.store.truncate_from(target.conversation_id, target.position)
        self.store.append_message(target.conversation_id, "user", new_text)
        if retitle:
            self.store.rename_conversation(target.conversation_id, title_from_text(new_text))
        self.conversationOpened.emit(self.current_conversation_id, self.messages())
        self.conversationsChanged.emit()
        self._start_answer()
        return True

    def _title_follows(self, target: StoredMessage, messages: list[StoredMessage]) -> bool:
        """Whether editing ``target`` retitles its chat: it is the first user message and the
        title is still the one made from it (a title the user gave stays)."""
        first_user = next((m for m in messages if m.role == "user"), None)
        if first_user is None or first_user.id != target.id:
            return False
        conversation = self.store.conversation(target.conversation_id)
        return conversation is not None and conversation.title == title_from_text(target.content)

    def _can_generate(self) -> bool:
        if self._active is not None:
            self.errorOccurred.emit("an answer is still being written: stop it first")
            return False
        if self.model_info is None:
            self.errorOccurred.emit(
                f"no model is loaded yet: open one in Settings ({shortcut_text('Ctrl+,')})"
            )
            return False
        return True

    def _start_answer(
        self, *, replaces: int | None = None, continues: StoredMessage | None = None
    ) -> None:
        conversation_id = self.current_conversation_id
        assert conversation_id is not None
        options = self._options()
        history: list[ChatMessage] = []
        system_prompt = self.system_prompt(conversation_id).strip()
        if system_prompt:
            history.append(ChatMessage("system", system_prompt))
        history.extend(
            ChatMessage(m.role, m.content if m.role == "user" else split_reasoning(m.content)[1])
            for m in self.store.messages(conversation_id)
            if m.content and m.role in ("user", "assistant") and m.id != replaces
        )
        if continues is not None:
            history.append(ChatMessage("user", CONTINUE_PROMPT))
        request_id = self.bridge.generate(conversation_id, tuple(history), options.generation)
        self._active = ActiveAnswer(
            request_id,
            conversation_id,
            time.perf_counter(),
            context_base=self._cache_lengths.get(conversation_id, 0),
            replaces=replaces,
            model=display_name(self.model_info.path) if self.model_info else "",
            generation=generation_json(options.generation),
        )
        if continues is not None:
            self._active.message_id = continues.id
            self._active.prefix = continues.content
            self._active.continued_finish = continues.finish_reason
        info = self.model_info
        used, estimated = self._context_used(conversation_id)
        self._stats = LiveStats(
            generating=True,
            context_used=used,
            context_estimated=estimated,
            context_length=info.context_length if info else None,
        )
        self.busyChanged.emit(True)
        self.answerStarted.emit()
        self.statsChanged.emit(self._stats)

    # --- engine events -----------------------------------------------------------------------

    def _is_active(self, request_id: int | None) -> bool:
        return self._active is not None and self._active.request_id == request_id

    def _shows_active(self) -> bool:
        return self._active is not None and (
            self._active.conversation_id == self.current_conversation_id
        )

    @Slot(object)
    def _on_token(self, event: TokenText) -> None:
        if not self._is_active(event.request_id):
            return
        active = self._active
        assert active is not None
        now = time.perf_counter()
        if active.first_token_at is None:
            active.first_token_at = now
            self._stats.time_to_first_token = now - active.started_at
        if event.reasoning != active.reasoning:  # the engine leaves the markers out: put them back
            active.pieces.append(THINK_OPEN if event.reasoning else THINK_CLOSE)
            active.reasoning = event.reasoning
        active.pieces.append(event.text)
        active.tokens += 1
        self._stats.generated_tokens = active.tokens
        self._stats.context_used = active.context_base + active.fed + active.tokens  # estimate
        self._stats.context_estimated = False  # counted from the engine's own numbers now
        elapsed = now - active.first_token_at
        if active.tokens > 1 and elapsed > 0:
            self._stats.tokens_per_second = (active.tokens - 1) / elapsed
        if active.message_id is None or now - active.saved_at >= SAVE_INTERVAL_SECONDS:
            self._save_progress(active, now)
        if self._shows_active():
            self.answerText.emit(active.text)
            self.statsChanged.emit(self._stats)

    def _save_progress(self, active: ActiveAnswer, now: float) -> None:
        """Write the answer so far, marked interrupted until it ends (a kill -9 keeps it)."""
        active.saved_at = now
        try:
            if active.message_id is None:
                active.message_id = self.store.append_message(
                    active.conversation_id,
                    "assistant",
                    active.text,
                    interrupted=True,
                    **active.provenance(),
                ).id
            else:
                self.store.update_message(active.message_id, active.text, interrupted=True)
        except ValueError:  # the conversation was deleted while it answered
            logger.info("answer not saved: conversation %s is gone", active.conversation_id)

    def save_interrupted(self) -> None:
        """The app quits mid-answer: keep what was written, marked interrupted (no signals)."""
        active = self._active
        if active is None:
            return
        self._active = None
        self._store_answer(active, active.text, "interrupted")

    @Slot(object)
    def _on_prefill(self, event: PrefillProgress) -> None:
        if self._is_active(event.request_id) and self._shows_active():
            assert self._active is not None
            self._active.fed = event.done
            self._stats.prefill_done, self._stats.prefill_total = event.done, event.total
            self.statsChanged.emit(self._stats)

    @Slot(object)
    def _on_trimmed(self, event: ContextTrimmed) -> None:
        if self._is_active(event.request_id):
            self.notice.emit(event.message)

    @Slot(object)
    def _on_finished(self, event: GenerationFinished) -> None:
        if not self._is_active(event.request_id):
            return
        stats = event.stats
        active = self._active
        assert active is not None
        counted = stats.context_length > 0  # 0: an end the app made up (the engine died)
        if counted:
            self._cache_lengths[active.conversation_id] = stats.cache_length
        shown = self._shows_active()
        self._stats = LiveStats(
            generating=False,
            time_to_first_token=_first_token_seconds(active, stats.time_to_first_token),
            tokens_per_second=stats.decode_tokens_per_second or self._stats.tokens_per_second,
            generated_tokens=stats.generated_tokens,
            context_used=stats.cache_length if counted else self._stats.context_used,
            context_length=stats.context_length if counted else self._stats.context_length,
            context_estimated=not counted and self._stats.context_estimated,
            finish_reason=stats.finish_reason,
        )
        # event.text is the answer alone: it is stored with its reasoning before it, between the
        # think markers (the window folds it; nothing shown is lost).
        if event.text:  # the engine's own whole text (stop strings cut)
            thought = [THINK_OPEN, event.reasoning, THINK_CLOSE] if event.reasoning else []
            active.pieces = [*thought, event.text]
        self._finish(active.text, stats.finish_reason, shown=shown)
        if shown:
            self.statsChanged.emit(self._stats)

    @Slot(object)
    def _on_error(self, event: EngineError) -> None:
        """Show the error; the answer ends with the GenerationFinished that may follow (a full
        context sends both), or as failed when none comes within ERROR_GRACE_MS."""
        self.errorOccurred.emit(event.message)
        if self._is_active(event.request_id) or (event.request_id is None and self._active):
            assert self._active is not None
            request_id = self._active.request_id
            QTimer.singleShot(ERROR_GRACE_MS, self, lambda: self._fail_if_still_active(request_id))

    def _fail_if_still_active(self, request_id: int) -> None:
        if self._is_active(request_id):
            assert self._active is not None
            self._finish(self._active.text, "error", shown=self._shows_active())
            self._stats.generating = False
            self.statsChanged.emit(self._stats)

    @Slot(object)
    def _on_model_loaded(self, _event: object) -> None:
        info = self.model_info
        self._stats.context_length = info.context_length if info else None
        self._cache_lengths.clear()
        if not self.busy:
            used, estimated = self._context_used(self.current_conversation_id)
            self._stats.context_used, self._stats.context_estimated = used, estimated
        self.statsChanged.emit(self._stats)

    def _context_used(self, conversation_id: str | None) -> tuple[int | None, bool]:
        """Tokens in the model's context for the chat: the engine's count once it ran in this
        session, an estimate from the stored text before (``True``: estimated)."""
        if conversation_id is None:
            return None, False
        if conversation_id in self._cache_lengths:
            return self._cache_lengths[conversation_id], False
        texts = [self.system_prompt(conversation_id)]
        texts += [m.content for m in self.store.messages(conversation_id)]
        estimate = estimate_context_tokens(texts)
        info = self.model_info
        if info is not None:
            estimate = min(estimate, info.context_length)
        return (estimate, True) if estimate else (None, False)

    def _finish(self, text: str, finish_reason: str, *, shown: bool) -> None:
        active = self._active
        assert active is not None
        self._active = None
        saved = self._store_answer(active, text, finish_reason)
        self.busyChanged.emit(False)
        if shown:
            self.answerFinished.emit(saved)
            if saved is None and active.replaces is not None:  # nothing new: the old one shows
                self.conversationOpened.emit(self.current_conversation_id, self.messages())
        self.conversationsChanged.emit()

    def _store_answer(
        self, active: ActiveAnswer, text: str, finish_reason: str
    ) -> StoredMessage | None:
        """The answer's final text into its row (made at the first token, or now)."""
        interrupted = finish_reason == "interrupted"
        if active.prefix and active.tokens == 0:  # a Continue that added nothing: as it was
            text, finish_reason, interrupted = active.prefix, active.continued_finish, False
        try:
            if active.message_id is not None:
                self.store.update_message(
                    active.message_id, text, finish_reason=finish_reason, interrupted=interrupted
                )
                return self.store.message(active.message_id)
            if text:
                return self.store.append_message(
                    active.conversation_id,
                    "assistant",
                    text,
                    finish_reason=finish_reason,
                    interrupted=interrupted,
                    **active.provenance(),
                )
        except ValueError:  # the conversation was deleted while it answered
            logger.info("answer dropped: conversation %s is gone", active.conversation_id)
        return None


def _first_token_seconds(active: ActiveAnswer, reported: float) -> float | None:
    """The time to the first token, or None when no token came: the engine reports 0.0 then (a
    stop before the first token, an error), and so does the end the app makes up after a crash,
    where the app's own measurement at the first token is the figure."""
    if active.first_token_at is None:
        return None
    if reported > 0:
        return reported
    return active.first_token_at - active.started_at
