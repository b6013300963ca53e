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
    """One window of a sitting's turns: the messages it quotes and where they stand among the sitting's
    lines. Its text (quoted in the prompt) is those lines; the local embedder reads them among their
    neighbours (`local_model.embed_spans`)."""

    __slots__ = ("lines", "messages", "span")

    def __init__(self, lines: list[str], messages: Sequence[Message], span: tuple[int, int]) -> None:
        self.lines = lines
        self.messages = list(messages)
        self.span = span

    @property
    def text(self) -> str:
        return "\n".join(self.lines[self.span[0] : self.span[1]])

    @property
    def source_message_ids(self) -> list[str]:
        return [m.id for m in self.messages]

    @property
    def channel(self) -> str:
        return Counter(m.channel for m in self.messages).most_common(1)[0][0]


def episodes_of(messages: Sequence[Message], character_name: str) -> list[EpisodeDraft]:
    """The windows of a batch's messages (oldest first), within each sitting."""
    episodes = []
    for run in sittings(messages):
        lines = [f"{speaker(m, character_name)}: {clip(m.text)}" for m in run]
        episodes += [EpisodeDraft(lines, run[start:end], (start, end)) for start, end in windows(len(run))]
    return episodes


def passages(episodes: Sequence[EpisodeDraft]) -> list[tuple[list[str], list[tuple[int, int]]]]:
    """The sittings of `episodes` (from `episodes_of`), each with its episodes' spans, in their order:
    what `Embedder.embed_spans` takes."""
    grouped: list[tuple[list[str], list[tuple[int, int]]]] = []
    for episode in episodes:
        if grouped and grouped[-1][0] is episode.lines:  # one sitting's episodes share its list of lines
            grouped[-1][1].append(episode.span)
        else:
            grouped.append((episode.lines, [episode.span]))
    return grouped


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


def windows(count: int) -> Iterator[tuple[int, int]]:
    """Every run of WINDOW consecutive turns of a sitting of `count`; a shorter sitting is one window."""
    if count <= WINDOW:
        yield (0, count)
        return
    for start in range(count - WINDOW + 1):
        yield (start, start + WINDOW)


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
