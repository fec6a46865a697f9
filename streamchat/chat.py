"""What a person does in a chat — send, regenerate, continue, edit, trim and retry, pick up a
reply still streaming — on the store and the runner, without Streamlit.

The chat page holds only widgets: it calls these and shows what they return (a notice for a toast,
a message that could not be sent). One `ChatSession` is made per script run over the session's
own `replies` (conversation id -> the reply streaming into it) and `trimmed` (conversation id ->
how many of the oldest messages are left out of what is sent).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from . import live_bus
from .generation import GenerationParams, GenerationRequest, Timeouts
from .inputs import clean_user_message
from .kinds import MessageState
from .messages import Message, figures
from .replies import (
    ActiveReply,
    get_flusher,
    history_for_request,
    left_out,
    start_reply,
    trim_more,
    up_to_last_user_message,
)
from .runner import EndpointSource, Runner
from .store import APPEND, Store, StoreError

SUPERSEDED_SAVE_WAIT_S = 2.0  # a reply replaced by a new request: wait this long for its save


class ReplySettings(Protocol):
    """What a new reply is sent with (the sidebar's settings)."""

    @property
    def endpoint(self) -> EndpointSource | None: ...  # None: not usable, see `problem`
    @property
    def problem(self) -> str | None: ...
    @property
    def system_prompt(self) -> str: ...
    @property
    def stream(self) -> bool: ...
    @property
    def params(self) -> GenerationParams: ...
    @property
    def timeouts(self) -> Timeouts: ...
    @property
    def stop_rules(self) -> tuple[Any, ...]: ...


@dataclass
class Sent:
    """The outcome of sending a message: the conversation it went to, a notice to show, and the
    text with the reason when it could not be sent (it is kept for the person to send again)."""

    conversation_id: str | None
    notice: str | None = None
    unsent: tuple[str, str] | None = None


class ChatSession:
    def __init__(
        self,
        store: Store,
        runner: Runner,
        owner: str,
        replies: dict[str, ActiveReply],
        trimmed: dict[str, int],
        on_start: Callable[[ActiveReply], None] = lambda reply: None,
        bus: live_bus.LiveBus | None = None,
    ) -> None:
        self.store, self.runner, self.owner = store, runner, owner
        self.replies, self.trimmed, self.on_start = replies, trimmed, on_start
        self.bus = bus or live_bus.current()  # replies streaming in other replicas (issue 16)

    # ---- sending -------------------------------------------------------------------------------
    def send(self, conversation_id: str | None, typed: str, settings: ReplySettings) -> Sent:
        """Save the user's message and start the reply (a new conversation if there is none, or
        if this one was deleted meanwhile, in another tab)."""
        text, problem = clean_user_message(typed)
        if problem and not text:
            # Too long (the chat input is cleared: keep what was typed) or empty (nothing to keep).
            return Sent(conversation_id, notice=problem, unsent=(typed, problem) if typed.strip() else None)
        notice = problem
        if conversation_id is not None and self.store.get_conversation(conversation_id) is None:
            notice = "That chat was deleted (in another tab): your message starts a new chat."
            conversation_id = None
        try:
            if conversation_id is None:
                conversation_id = self.store.create_conversation(owner=self.owner)
            message_id = self.store.add_message(conversation_id, "user", text)
        except StoreError as exc:  # e.g. locked by another program for longer than we wait, server gone
            why = (
                f"Your message could not be saved ({exc}), so it was not sent. "
                "It is kept below: send it again when the database is free."
            )
            return Sent(conversation_id, notice=notice, unsent=(text, why))
        # The branch up to this very message: another tab may have added to the chat meanwhile.
        base = self.store.conversation_path(conversation_id, up_to=message_id)
        self.start(conversation_id, base, settings, parent_id=message_id)
        return Sent(conversation_id, notice=notice)

    def start(
        self, conversation_id: str, base: list[Message], settings: ReplySettings, **reply_args: Any
    ) -> ActiveReply | None:
        """Send `base` (a branch of the conversation) and fill a reply with the answer."""
        previous = self.replies.get(conversation_id)
        if previous is not None:
            previous.generation.stop()  # a new request supersedes a reply still in progress
            previous.saved.wait(SUPERSEDED_SAVE_WAIT_S)  # its partial text is saved before we build on it
        if settings.endpoint is None:
            self.store.add_message(
                conversation_id,
                "assistant",
                "",
                state=MessageState.FAILED,
                error=settings.problem,
                **({"parent_id": base[-1]["id"]} if base else {}),
            )
            return None
        history = history_for_request(
            base, settings.system_prompt, skip_oldest=self.trimmed.get(conversation_id, 0)
        )
        request = GenerationRequest(
            history,
            stream=settings.stream,
            params=settings.params,
            timeouts=settings.timeouts,
            stop_rules=settings.stop_rules,
        )
        reply = start_reply(
            self.runner, self.store, conversation_id, request, settings.endpoint, **reply_args
        )
        self.replies[conversation_id] = reply
        self.on_start(reply)
        return reply

    def reply_again(self, conversation_id: str, settings: ReplySettings) -> None:
        """A new version of the reply to the branch's last user message (Retry, Regenerate): an
        earlier reply there stays as a sibling version."""
        base = up_to_last_user_message(self.store.conversation_path(conversation_id))
        self.start(conversation_id, base, settings, parent_id=base[-1]["id"] if base else APPEND)

    def continue_reply(self, conversation_id: str, message: Message, settings: ReplySettings) -> None:
        """The model carries on from the partial reply, which stays; the new text is appended."""
        path = self.store.conversation_path(conversation_id)
        base = path[: [m["id"] for m in path].index(message["id"]) + 1]
        self.start(conversation_id, base, settings, continue_message=message)

    def send_edit(
        self, conversation_id: str, message: Message, typed: str | None, settings: ReplySettings
    ) -> str | None:
        """The edited text becomes a new version of the user message, answered afresh; returns
        why it was not sent, if it was not."""
        text, problem = clean_user_message(typed)
        if problem:
            return problem
        self.store.add_message(conversation_id, "user", text, parent_id=message["parent_id"])
        self.reply_again(conversation_id, settings)
        return None

    def switch_version(self, conversation_id: str, message_id: str) -> None:
        self.store.switch_branch(conversation_id, message_id)

    # ---- a context too long for the model ------------------------------------------------------
    def can_trim(self, conversation_id: str) -> bool:
        base = up_to_last_user_message(self.store.conversation_path(conversation_id))
        already = self.trimmed.get(conversation_id, 0)
        return trim_more(base, already) > already

    def trim_and_retry(self, conversation_id: str, settings: ReplySettings) -> None:
        """Leave about half of the earlier messages out of the context (they stay on screen)."""
        base = up_to_last_user_message(self.store.conversation_path(conversation_id))
        self.trimmed[conversation_id] = trim_more(base, self.trimmed.get(conversation_id, 0))
        self.reply_again(conversation_id, settings)

    def left_out(self, conversation_id: str, messages: list[Message]) -> int:
        """How many shown messages are not sent to the model (0: nothing trimmed)."""
        skip = self.trimmed.get(conversation_id, 0)
        return left_out(messages, skip) if skip else 0

    # ---- replies in progress -------------------------------------------------------------------
    def live_reply(self, conversation_id: str | None, messages: list[Message]) -> ActiveReply | None:
        """The reply streaming into this conversation: one this session started, or (after a
        reload) one still streaming in this process, which is picked up again, or one streaming
        in another replica of the app, which is followed from here."""
        if conversation_id is None:
            return None
        active = self.replies.get(conversation_id)
        if active is None and messages and messages[-1]["state"] == MessageState.STREAMING:
            last_id = messages[-1]["id"]
            active = get_flusher().live(last_id) or self._followed(conversation_id, last_id)
            if active is not None:
                self.replies[conversation_id] = active
        return active

    def _followed(self, conversation_id: str, message_id: str) -> ActiveReply | None:
        """Issue 16: the reply another replica is writing into `message_id`, followed live."""
        g = self.bus.follow(message_id, lambda: self.store.get_message(message_id))
        return ActiveReply(g, conversation_id, message_id, saved=g.saved) if g is not None else None

    def is_interrupted(self, message: Message) -> bool:
        """Saved as streaming but no longer streaming anywhere (the app, or the replica that
        wrote it, stopped)."""
        return (
            message["state"] == MessageState.STREAMING
            and get_flusher().live(message["id"]) is None
            and not self.bus.is_live(message["id"])
        )

    def finished(self, reply: ActiveReply) -> Message | None:
        """The reply has ended: forget it; its saved message when it is still the branch's last."""
        self.replies.pop(reply.conversation_id, None)
        path = self.store.conversation_path(reply.conversation_id)
        return path[-1] if path and path[-1]["id"] == reply.message_id else None

    def recorded(self, conversation_id: str | None) -> set[str]:
        """The conversation's replies that have a recording (they can be replayed)."""
        return self.store.recorded_messages(conversation_id) if conversation_id else set()

    def keep_visible_ttft(self, message_id: str, seconds: float) -> dict[str, Any]:
        """A browser-measured visible TTFT for a reply: kept with it and its run (once); the
        reply's saved figures."""
        self.store.record_visible_ttft(message_id, seconds)
        return figures(self.store.get_message(message_id))
