"""The offline extractor: deterministic, rule-based memories from a batch, with no network and no model.

It keeps what the user discloses about themselves (who they are, the people in their life, what they like,
plan, did and feel), rewritten as short third-person statements that embed well, plus one summary of the
batch. Assistant turns are context only: they can tell who "he" is, never what is true about the user.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import NamedTuple

from services import offline_lexicon as lex
from services import offline_rules as rules
from services.errors import ExtractionError
from services.models import Conversation, MemoryDraft, MemoryType, Message

_ADVERBS = (
    "really|just|also|still|usually|always|never|often|sometimes|actually|absolutely|totally|honestly|"
    "definitely|recently|finally|already|even|only|mostly|seriously|literally|personally|generally|"
    "basically|probably|currently|now|truly|genuinely|secretly|kind of|sort of|pretty much|rarely|hardly|"
    "barely|almost|normally|typically|constantly|desperately|badly|originally|mainly|occasionally|"
    "hopefully|eventually|once|first|then|soon"
)
_FIRST_PERSON = re.compile(
    rf"(?P<pair>\b(?:[Mm]y|[Oo]ur)\s+(?P<pkin>{lex.KIN})(?:,?\s+(?P<pname>{lex.NAME}))?,?\s+and\s+(?:I|me)\b)"
    rf"|(?P<pair2>\b(?:I|[Mm]e)\s+and\s+(?:my|our)\s+(?P<p2kin>{lex.KIN})(?:\s+(?P<p2name>{lex.NAME}))?)"
    rf"|(?P<npair>\b(?P<nname>{lex.NAME})\s+and\s+(?:I|me)\b)"
    rf"|(?P<subj>\b(?:I|[Ww]e)\b)(?P<adv>(?:\s+(?:{_ADVERBS}))*)(?:\s+(?P<verb>[A-Za-z]+n't|[A-Za-z]+)\b)?"
    rf"|(?P<poss>\b(?:[Mm]y|[Oo]ur)\b)(?:\s+(?P<kin>{lex.KIN})\b)?"
    r"|(?P<obj>\b(?:[Mm]e|us)\b)|(?P<mine>\b(?:mine|ours)\b)|(?P<refl>\b(?:myself|ourselves)\b)"
    r"|(?P<you>\b[Yy]ou(?:rs|rself|r)?\b)"
)
_LEFTOVER = re.compile(r"\b(?:I|[Mm]e|[Mm]y|[Mm]ine|[Mm]yself|[Ww]e|us|[Oo]urs?|[Yy]ou|[Yy]our)\b")
_FRAGMENT = re.compile(r"\b(?:is|are|was|were|has|have|had|does|did|can|could|will|would)[.!?]*$")
_DANGLING = re.compile(r"(?:he|she|they|it|that|this|those|these|there)\b", re.I)
# fmt: off
_IRREGULAR = {"am": "is", "are": "is", "were": "was", "have": "has", "do": "does", "don't": "doesn't",
              "haven't": "hasn't", "aren't": "isn't", "weren't": "wasn't", "be": "is", "ain't": "isn't"}
# fmt: on
_AS_IS = lex.wordset(
    "can could will would shall should may might must was had did used ought quit put cut hit set let hurt "
    "cost read bet split spread shut went got made took saw met left bought ran began came found gave told "
    "thought felt knew lost won wrote said spent sold sent broke fell flew drove ate drank became kept slept "
    "brought taught caught heard paid built forgot grew held meant spoke stood understood wore and or but "
    "too as so then here there the a an to with in on at of for"
)
# "you" may stay only where it is an object ("talking to you"); "you are ..." is not about the user.
_OBJECT_FOLLOWERS = lex.wordset(
    "to about for and or but so too the a an that this what how when if because with in on at again more all guys"
)
_INTRO = re.compile(
    r"^(?P<form>I am|[Mm]y name is|[Mm]y name's|(?:[Yy]ou can |[Pp]lease )?[Cc]all me)\s+"
    r"(?P<name>[A-Za-z][a-z]+(?:-[A-Z][a-z]+)?)\b(?P<rest>.*)$"
)
_NAME = re.compile(r"[A-Z][a-z]+(?:[ -][A-Z][a-z]+)?")
_INTRO_REST = re.compile(r"^(?:$|[,.!]|\s+(?:and|from|btw|by the way|here)\b)")
_EXIT = re.compile(
    r"\b(?:have to|has to|need to|needs to|should|must|going to|will)\s+(?:go|run|head out|"
    r"sleep|go to (?:bed|sleep))\b(?:\s+now)?$",
    re.I,
)
# fmt: off
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
# fmt: on
_SUMMARY_WORDS = 40
_CHANNELS = {"whatsapp": "WhatsApp", "voice": "voice", "sms": "SMS", "telegram": "Telegram", "web": "web chat"}


class OfflineExtractor:
    """Rule-based memories in the user's third person, plus one summary memory per batch."""

    name = "offline"

    def extract(self, conversation: Conversation) -> list[MemoryDraft]:
        """Memories the user disclosed in this batch, merged, then the batch summary last."""
        if not conversation.messages:
            raise ExtractionError("an empty batch has no messages to remember")
        reader = _Reader(conversation)
        drafts = _merge(list(reader.memories()))
        return [*drafts, _summary(conversation, reader.me, reader.character, drafts)]


# Names the user gave the people and pets in their life, in the order they were first named.
class _People:
    _PATTERNS = (
        re.compile(rf"\b(?:[Mm]y|[Oo]ur)\s+(?P<kin>{lex.KIN}),?\s+(?P<name>{lex.NAME})\b"),
        re.compile(
            rf"\b(?:[Mm]y|[Oo]ur)\s+(?P<kin>{lex.KIN})(?:'s name is| is (?:named|called))\s+"
            rf"(?P<name>{lex.NAME})\b"
        ),
        re.compile(rf"\b(?:an?|one)\s+(?P<kin>{lex.KIN})\s+(?:named|called)\s+(?P<name>{lex.NAME})\b"),
        re.compile(rf"\b(?P<name>{lex.NAME}) is my (?P<kin>{lex.KIN})\b"),
    )

    def __init__(self) -> None:
        self.names: dict[str, list[str]] = {}

    def learn(self, clause: str) -> None:
        for pattern in self._PATTERNS:
            for match in pattern.finditer(clause):
                name = match["name"]
                if name.lower() not in lex.NOT_NAMES:
                    known = self.names.setdefault(_kin_key(match["kin"]), [])
                    known.extend([] if name in known else [name])

    def only_name(self, kin: str) -> str | None:
        names = self.names.get(_kin_key(kin), [])
        return names[0] if len(names) == 1 else None

    # The relative or pet mentioned last in `text`, as "my brother" (own) or "your brother".
    def last_mentioned(self, text: str, own: bool) -> str | None:
        owner = r"(?:[Mm]y|[Oo]ur)" if own else r"[Yy]our"
        spots = [(m.start(), _kin_key(m["kin"])) for m in re.finditer(rf"\b{owner}\s+(?P<kin>{lex.KIN})\b", text)]
        for kin, names in self.names.items():
            spots += [(m.start(), kin) for name in names for m in re.finditer(rf"\b{name}\b", text)]
        return max(spots)[1] if spots else None


def _kin_key(kin: str) -> str:
    if re.fullmatch(lex.BREEDS, kin.lower()):
        return "dog"
    return re.sub(r"^\w+\s+(?=\w)", "", kin.lower()) if " " in kin and kin.lower() != "guinea pig" else kin.lower()


# Rewrites one first-person clause in the third person; `failed` when it cannot do so cleanly.
class _Voice:
    def __init__(self, me: str | None, character: str, people: _People) -> None:
        self.me, self.character, self.people = me, character, people
        self.named = self.plural = self.failed = False

    def rewrite(self, clause: str) -> str | None:
        text = _FIRST_PERSON.sub(self._replace, clause)
        return None if self.failed else text

    def _ref(self, at_start: bool) -> str:
        self.named = True
        return self.me or ("The user" if at_start else "the user")

    def _kin(self, kin: str, name: str | None, match: re.Match[str]) -> str:
        known = name or self.people.only_name(kin)
        rest = match.string[match.end() :]
        if name or (known and known not in match.string and not re.match(r"'s|\s+(?:named|called)\b", rest)):
            return f"{kin} {known}"
        return kin

    def _replace(self, m: re.Match[str]) -> str:
        start = m.start() == 0
        if m["pair"] or m["pair2"]:
            kin = self._kin(m["pkin"] or m["p2kin"], m["pname"] or m["p2name"], m)
            self.plural = True
            return f"{self._ref(start)} and their {kin}"
        if m["npair"]:
            self.plural = True
            return f"{m['nname']} and {self._ref(False)}"
        if m["subj"]:
            return self._subject(m, start)
        if m["poss"]:
            owner = "their" if self.named else f"{self._ref(start)}'s"
            return f"{owner} {self._kin(m['kin'], None, m)}" if m["kin"] else owner
        if m["obj"]:
            return "them" if self.plural and m["obj"] == "us" else self._ref(start)
        if m["mine"]:
            return f"{self._ref(start)}'s"
        if m["refl"]:
            return "themselves"
        return self._you(m)

    def _subject(self, m: re.Match[str], start: bool) -> str:
        verb = m["verb"] or ""
        if verb.lower() in {"both", "all"}:
            self.failed = True  # "we both love ..." has no clean singular form
        if m["subj"].lower() == "we" and self.plural:
            subject = "they"
        else:
            subject, verb = self._ref(start), _third_person(verb)
        return subject + (m["adv"] or "") + (f" {verb}" if verb else "")

    def _you(self, m: re.Match[str]) -> str:
        word = m["you"].lower()
        if word != "you":
            return self.character if word == "yourself" else f"{self.character}'s"
        following = re.match(r"\s*([A-Za-z']*)", m.string[m.end() :])
        if following and following[1].lower() not in _OBJECT_FOLLOWERS and following[1]:
            self.failed = True
        return self.character


def _third_person(verb: str) -> str:
    low = verb.lower()
    if not low or low in _AS_IS or (low.endswith("n't") and low not in _IRREGULAR):
        return verb
    if low in _IRREGULAR:
        return _IRREGULAR[low]
    if low.endswith(("ed", "ing", "een", "one")) and not low.endswith("eed"):
        return verb  # past forms and participles: "went", "been", "gone", "done"
    if re.search(r"[^aeiou]y$", low):
        return verb[:-1] + "ies"
    return verb + ("es" if re.search(r"(?:s|sh|ch|x|z|o)$", low) else "s")


# One pass over a batch: the user's name first, then clause by clause in message order.
class _Reader:
    def __init__(self, conversation: Conversation) -> None:
        self.messages = conversation.messages
        self.character = _display_character(conversation.character_name)
        self.people = _People()
        self.me = _find_name(self.messages)
        self.known = frozenset(w for w in (self.me, self.character) if w)

    def memories(self) -> Iterator[MemoryDraft]:
        question, carried = "", None
        earlier: list[str] = []
        for message in self.messages:
            if message.role == "assistant":
                question, earlier = rules.clean(message.text), []
                continue
            # "He" is whom the assistant just asked about or the user just named in this message; "we" may
            # also be the user and the person they named in their previous message.
            asked = self.people.last_mentioned(question, own=False)
            referent, partner = asked, asked or carried
            for clause in _clauses(message.text):
                yield from self._clause(message, clause, referent, _Said(earlier, question, partner))
                referent = self.people.last_mentioned(clause, own=True) or referent
                partner = referent or partner
                earlier.append(clause)
            carried = partner

    def _clause(self, message: Message, clause: str, referent: str | None, said: _Said) -> Iterator[MemoryDraft]:
        intro = _intro(clause)
        if intro:
            clause = intro.rest
            if intro.name == self.me:
                yield self._draft(message, f"The user's name is {intro.name}", "fact", 0.9)
        statement = rules.as_statement(clause) if clause else None
        if not statement or rules.claims_privilege(statement):
            return
        self.people.learn(statement)
        statement = rules.without_references(rules.resolve_reference(statement, said.earlier, said.question))
        statement = self._resolve_we(statement, said.partner) if statement else None
        if not statement:
            return
        statement, about_other = self._resolve(statement, referent)
        statement = self._resolve_object(statement, referent)
        text = _Voice(self.me, self.character, self.people).rewrite(statement)
        if text is None or not self._discloses(text):
            return
        text = _tidy(text)
        kind = rules.classify(statement, about_other)
        yield self._draft(message, text, kind, rules.importance(text, kind, self.known))

    # "We talk every Sunday", just after "my brother Tom", is the user and Tom; with nobody to pair the user
    # with, a "we" that the user alone cannot do is not remembered at all.
    def _resolve_we(self, clause: str, referent: str | None) -> str | None:
        if not re.match(r"^[Ww]e\b", clause):
            return clause
        if referent and self._resolve_object(clause, referent) == clause:
            return f"{self._phrase(referent)} and I{clause[2:]}"
        return None if rules.needs_partner(clause) else clause

    # "He just got promoted", after "how is your brother?", is about the user's brother.
    def _resolve(self, clause: str, referent: str | None) -> tuple[str, bool]:
        match = re.match(r"^([Hh]e|[Ss]he|[Tt]hey)(?:'s|'re|'ve)?\b", clause)
        if not match or not referent or not _agrees(match[1].capitalize(), referent):
            return clause, False
        verb = {"'s": " is", "'re": " are", "'ve": " have"}.get(match[0][len(match[1]) :], "")
        if verb == " is" and re.match(r"\s+(?:been|got|gotten|had)\b", clause[match.end() :]):
            verb = " has"
        return self._phrase(referent) + verb + clause[match.end() :], True

    # "We're throwing her a party", after "my grandma turns 90", is a party for the grandma.
    def _resolve_object(self, clause: str, referent: str | None) -> str:
        match = re.search(r"\b(him|her|them)(?=\s+(?:a|an|the|to|for|about|with|at|on|in)\b|[\s,.!?]*$)", clause)
        pronoun = {"him": "He", "her": "She", "them": "They"}.get(match[1] if match else "", "")
        if not match or not referent or not _agrees(pronoun, referent):
            return clause
        return clause[: match.start()] + self._phrase(referent) + clause[match.end() :]

    def _phrase(self, kin: str) -> str:
        name = self.people.only_name(kin)
        return f"my {kin} {name}" if name else f"my {kin}"

    def _discloses(self, text: str) -> bool:
        me = self.me or "the user"
        exclude = frozenset(w.lower() for w in (*self.known, "user"))
        return (
            re.search(rf"\b{re.escape(me)}\b", text, re.I) is not None
            and not _LEFTOVER.search(text)
            and not _DANGLING.match(text)
            and next(rules.references(text), None) is None
            and not _FRAGMENT.search(text)
            and not _EXIT.search(text.rstrip(".!"))
            and bool(rules.content_words(text, exclude))
        )

    def _draft(self, message: Message, text: str, kind: MemoryType, importance: float) -> MemoryDraft:
        return MemoryDraft(
            text=text, type=kind, importance=importance, source_message_ids=[message.id], occurred_at=message.created_at
        )


# Cleaned, filler-free clauses of one user message; nothing from a message that tries to steer us.
def _clauses(text: str) -> Iterator[str]:
    text = rules.clean(text)
    if rules.is_override(text):
        return
    for sentence in rules.sentences(text):
        for clause in rules.clauses(rules.expand(rules.strip_fillers(sentence))):
            clause = rules.strip_fillers(clause)
            if clause:
                yield clause


class _Said(NamedTuple):
    earlier: list[str]  # the user's clauses since the assistant last spoke
    question: str  # what the assistant last said
    partner: str | None  # the relative or pet the user or assistant mentioned last


class _Intro(NamedTuple):
    name: str
    rest: str  # what else the clause says, as a clause of its own
    rank: int  # "call me" beats "my name is", which beats "I am"


# The name in "I am Maya, a nurse" (and "I am a nurse"); None when the clause is not an introduction.
def _intro(clause: str) -> _Intro | None:
    match = _INTRO.match(clause)
    if not match or match["name"].lower() in lex.NOT_NAMES or not _INTRO_REST.match(match["rest"]):
        return None
    if match["form"] == "I am" and not match["name"][0].isupper():
        return None
    rest = match["rest"].strip(" ,.!")
    keep = re.match(r"(?:an?|the)\s|\d{1,3}\b|from\s", rest)
    # "I'm Lena and my cat Miso hates the vacuum": what follows the introduction is a clause of its own.
    tail = re.match(r"(?:and|btw|by the way),?\s+(?P<clause>(?:I|[Mm]y|[Ww]e|[Oo]ur)\b.*)", rest)
    form = match["form"].lower()
    rank = 0 if "call" in form else 1 if "name" in form else 2
    following = f"I am {rest}" if keep else tail["clause"] if tail else ""
    return _Intro(match["name"].capitalize(), following, rank)


# The name the user gave: "call me" beats "my name is", which beats "I'm"; first of each wins. Without an
# introduction, the name the handler gave the user's turns (`speaker`), if it reads as a name.
def _find_name(messages: list[Message]) -> str | None:
    found: dict[int, str] = {}
    for message in messages:
        for clause in _clauses(message.text) if message.role == "user" else ():
            intro = _intro(clause)
            if intro and not rules.claims_privilege(clause):
                found.setdefault(intro.rank, intro.name)
    if found:
        return found[min(found)]
    speakers = Counter(m.speaker for m in messages if m.role == "user" and m.speaker and _NAME.fullmatch(m.speaker))
    return speakers.most_common(1)[0][0] if speakers else None


def _agrees(pronoun: str, kin: str) -> bool:
    if pronoun == "They":
        return kin in lex.PLURAL
    other = lex.FEMALE if pronoun == "He" else lex.MALE
    return kin not in other and kin not in lex.PLURAL


def _display_character(name: str) -> str:
    if re.fullmatch(r"[A-Za-z][A-Za-z' -]{0,39}", name):
        return name[0].upper() + name[1:]
    return "the assistant"


def _tidy(text: str) -> str:
    text = re.sub(r"\s+([,.!?])", r"\1", re.sub(r"\s+", " ", text)).strip(" ,;:-.!")
    text += "." if re.search(r"(?:^|\s)(?:[A-Za-z]\.)+[A-Za-z]$", text) else ""  # "6 a.m", "the U.S"
    if len(text) > 300:
        cut = text[:300]
        text = cut[: cut.rfind(",")] if "," in cut[150:] else cut[: cut.rfind(" ")]
    return text[0].upper() + text[1:]


def _merge_key(text: str) -> frozenset[str]:
    words = re.findall(r"[a-z0-9][a-z0-9'-]*", text.lower())
    negated = any(w in {"not", "never", "no"} or w.endswith("n't") for w in words)
    return frozenset([w for w in words if w not in lex.STOPWORDS] + (["<not>"] if negated else []))


# One memory per fact: near-identical statements of one type become one, citing every source.
def _merge(drafts: list[MemoryDraft]) -> list[MemoryDraft]:
    kept: list[MemoryDraft] = []
    for draft in drafts:
        for i, other in enumerate(kept):
            if other.type == draft.type and _near(_merge_key(draft.text), _merge_key(other.text)):
                kept[i] = _combine(other, draft)
                break
        else:
            kept.append(draft)
    return kept


def _near(a: frozenset[str], b: frozenset[str]) -> bool:
    small, large = sorted((a, b), key=len)
    return len(a & b) / max(1, len(a | b)) >= 0.8 or (len(small) >= 3 and small <= large)


def _combine(first: MemoryDraft, second: MemoryDraft) -> MemoryDraft:
    richer = second if len(_merge_key(second.text)) > len(_merge_key(first.text)) else first
    sources = list(dict.fromkeys([*first.source_message_ids, *second.source_message_ids]))
    return richer.model_copy(
        update={
            "source_message_ids": sources,
            "occurred_at": first.occurred_at,
            "importance": max(first.importance, second.importance),
        }
    )


# Who talked with whom, over what, when, and the user's main topics: one memory per batch.
def _summary(conversation: Conversation, me: str | None, character: str, drafts: list[MemoryDraft]) -> MemoryDraft:
    messages = conversation.messages
    who = me or "The user"
    count = f"{len(messages)} message{'s' if len(messages) > 1 else ''}"
    text = f"{who} and {character} chatted over {_channels(messages)} {_when(messages)} ({count})."
    facts = [d for d in drafts if not d.text.startswith("The user's name is")]
    budget = max(8, _SUMMARY_WORDS - len(text.split()) - 3)
    topics = _topics(facts, frozenset(w.lower() for w in (me, character, "user") if w), budget)
    text += f" {who} talked about {', '.join(topics)}." if topics else f" {who} shared nothing personal."
    return MemoryDraft(
        text=text,
        type="summary",
        importance=0.5,
        source_message_ids=list(dict.fromkeys(m.id for m in messages)),
        occurred_at=messages[-1].created_at,
    )


def _channels(messages: list[Message]) -> str:
    names = list(dict.fromkeys(_CHANNELS.get(m.channel.lower(), m.channel) for m in messages))
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"


def _when(messages: list[Message]) -> str:
    first, last = min(m.created_at for m in messages), max(m.created_at for m in messages)
    if first.date() == last.date():
        return f"on {_day(first)}, {first.year}"
    if first.year == last.year:
        return f"from {_day(first)} to {_day(last)}, {last.year}"
    return f"from {_day(first)}, {first.year} to {_day(last)}, {last.year}"


def _day(moment: datetime) -> str:
    return f"{_MONTHS[moment.month - 1]} {moment.day}"  # not strftime: month names must not follow the locale


# Proper names by weight, then each memory's nouns in turn, most important memory first, in few words.
def _topics(drafts: list[MemoryDraft], exclude: frozenset[str], budget: int) -> list[str]:
    names: dict[str, float] = {}
    queues = []
    for draft in sorted(drafts, key=lambda d: -d.importance):
        found, nouns = rules.topic_phrases(draft.text)
        for name in found:
            if name.lower() not in exclude:
                names[name] = names.get(name, 0.0) + draft.importance
        queues.append(nouns)
    ranked = sorted(names, key=lambda n: -names[n])
    chosen: list[str] = []
    taken: set[str] = set()

    def take(topic: str, limit: int) -> None:
        words = {w.lower().removesuffix("'s") for w in topic.split()}
        if words & (taken | exclude) or sum(len(t.split()) for t in chosen) + len(words) > limit:
            return
        chosen.append(topic)
        taken.update(words)

    for name in ranked:
        take(name, budget * 2 // 3)
    while any(queues):
        for queue in queues:
            if queue:
                take(queue.pop(0), budget)
    return chosen
