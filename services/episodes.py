"""Episodes: the raw turns of a batch, three at a time, stored beside the extracted memories.

On LoCoMo (BENCHMARKS.md, "Memory quality") windows of three consecutive turns found the evidence for a
question far more often than extracted facts did, and a context that puts the best windows first and
fills the tokens left with facts recalled the most answer words. So every batch stores both: its
extracted memories, and one episode per window of three turns (stride one), which cites exactly the
three messages it quotes. Episodes are retried, replaced and deleted with the batch like any memory.

Windows never span a pause of more than `SESSION_GAP` (two sittings are two conversations), and never
quote a message that tries to steer the system (`memory_guard.steers`): such text is kept out of every
prompt, quoted or not.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import timedelta

from services.memory_guard import steers
from services.models import Message

WINDOW = 3
SESSION_GAP = timedelta(hours=1)
# An episode quotes, it does not archive: a long message is cut to its opening, on a word boundary.
TURN_MAX_CHARS = 400


class EpisodeDraft:
    """One window of turns: its text (quoted in the prompt, and embedded as it is) and the messages it quotes."""

    __slots__ = ("messages", "text")

    def __init__(self, messages: Sequence[Message], character_name: str) -> None:
        self.messages = list(messages)
        self.text = "\n".join(f"{speaker(m, character_name)}: {clip(m.text)}" for m in self.messages)

    @property
    def source_message_ids(self) -> list[str]:
        return [m.id for m in self.messages]

    @property
    def channel(self) -> str:
        return Counter(m.channel for m in self.messages).most_common(1)[0][0]


def episodes_of(messages: Sequence[Message], character_name: str) -> list[EpisodeDraft]:
    """The windows of a batch's messages (oldest first), within each sitting."""
    return [EpisodeDraft(w, character_name) for session in sittings(messages) for w in windows(session)]


def sittings(messages: Sequence[Message]) -> Iterator[list[Message]]:
    """Runs of consecutive quotable messages with no pause longer than SESSION_GAP."""
    run: list[Message] = []
    for message in messages:
        if steers(message.text):
            continue
        if run and message.created_at - run[-1].created_at > SESSION_GAP:
            yield run
            run = []
        run.append(message)
    if run:
        yield run


def windows(session: Sequence[Message]) -> Iterator[Sequence[Message]]:
    """Every run of WINDOW consecutive messages; a shorter sitting is one window of what it has."""
    if len(session) <= WINDOW:
        yield session
        return
    for start in range(len(session) - WINDOW + 1):
        yield session[start : start + WINDOW]


def speaker(message: Message, character_name: str) -> str:
    """The name the turn is quoted under: its speaker's if the handler gave one, else its role's."""
    if message.speaker:
        return " ".join(message.speaker.split())
    return "user" if message.role == "user" else character_name


def clip(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= TURN_MAX_CHARS:
        return text
    cut = text[:TURN_MAX_CHARS].rsplit(" ", 1)[0]
    return f"{cut}…"
