"""Text rules behind the offline extractor: cleaning, splitting, filtering, typing and scoring clauses.

Everything here works on one user clause in the first person, before or after it is rewritten in the
third person by `offline_extractor`. Pure functions over word lists; no state, no I/O.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterator

from services import memory_guard
from services.models import MemoryType
from services.offline_lexicon import (
    EMOTIONS,
    EVENT_NOUNS,
    KIN,
    KIN_ADJ,
    NAME,
    NATIONALITIES,
    NOT_ANTECEDENTS,
    NOT_NAMES,
    PETS,
    PLACE_HEADS,
    POINTING_NOUNS,
    RECIPROCAL,
    RELATIVES,
    STOPWORDS,
    TOPIC_ADJECTIVES,
    TOPIC_STOP,
    VERBS,
    WEAK,
    wordset,
)

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u02bc": "'", "\u201c": '"', "\u201d": '"', "`": "'"})
_EMOTICON = re.compile(r"(?<![\w:/])(?:[:;=]-?[)(DPpO/\\|]+|xD|<3+)(?![\w/])")
_NORMALISE = [
    (re.compile(r"(?<![\w.'])i(?=['\s,.!?;:]|$)"), "I"),
    (re.compile(r"\b[Ii]m\b"), "I'm"),
    (re.compile(r"\b[Ii]ve\b"), "I've"),
    (
        re.compile(
            r"\b([Dd]on|[Dd]oesn|[Dd]idn|[Cc]an|[Ww]on|[Ii]sn|[Ww]asn|[Aa]ren|[Ww]eren|[Hh]aven|[Hh]asn|"
            r"[Cc]ouldn|[Ww]ouldn|[Ss]houldn)t\b"
        ),
        r"\1't",
    ),
    (re.compile(r"\bgonna\b", re.I), "going to"),
    (re.compile(r"\bwanna\b", re.I), "want to"),
    (re.compile(r"\b(?:gotta|hafta)\b", re.I), "have to"),
    (re.compile(r"\btryna\b", re.I), "trying to"),
    (re.compile(r"\bkinda\b", re.I), "kind of"),
    (re.compile(r"\bsorta\b", re.I), "sort of"),
    (re.compile(r"\b(?:cuz|coz|bc)\b", re.I), "because"),
    (re.compile(r"\b(?:tmrw|tmr|tmw)\b", re.I), "tomorrow"),
    (re.compile(r"\bu\b"), "you"),
    (re.compile(r"\bbff\b", re.I), "best friend"),
    (re.compile(r"\bbf\b"), "boyfriend"),
    (re.compile(r"\bgf\b"), "girlfriend"),
]
_CONTRACTIONS = [
    (re.compile(r"\b(I|[Ww]e|[Yy]ou)'d(?=\s+(?:been|had|already|never|just|gone|done|ever)\b)"), r"\1 had"),
    (re.compile(r"\b(I|[Ww]e|[Yy]ou)'d\b"), r"\1 would"),
    (re.compile(r"\b(I|[Ww]e|[Yy]ou)'ll\b"), r"\1 will"),
    (re.compile(r"\b(I|[Ww]e|[Yy]ou)'ve\b"), r"\1 have"),
    (re.compile(r"\bI'm\b"), "I am"),
    (re.compile(r"\b([Ww]e|[Yy]ou)'re\b"), r"\1 are"),
]


def clean(text: str) -> str:
    """Chat text with plain quotes, no emoji, sloppy spellings of "I'm"/"don't" repaired."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    text = "".join(ch for ch in text if unicodedata.category(ch) not in {"So", "Sk", "Cs", "Co", "Cf"})
    text = _EMOTICON.sub(" ", text.replace("\ufe0f", ""))
    for pattern, replacement in _NORMALISE:
        text = pattern.sub(replacement, text)
    return re.sub(r"[ \t]+", " ", text).strip()


def expand(text: str) -> str:
    """Spell out first-person contractions so that verbs can be conjugated word by word."""
    for pattern, replacement in _CONTRACTIONS:
        text = pattern.sub(replacement, text)
    return text


# A period after these never ends a sentence; after the second kind it does unless the text runs on in
# lower case or with a number ("at 6 a.m. every day", "No. 5").
_TITLE = re.compile(
    r"(?:^|\s|\()(?:Mr|Mrs|Ms|Mx|Dr|St|Mt|Ft|Jr|Sr|Prof|Rev|Fr|Sgt|Capt|Lt|Col|Gen|vs|approx|cf|"
    r"e\.g|i\.e)\.$",
    re.I,
)
_INITIAL = re.compile(r"(?:^|(?:^|\s)(?:[A-Z]\.|[A-Z][a-z]+)\s)(?!I\.)[A-Z]\.$")  # "J. K. Rowling", not "plan B."
_ABBREVIATION = re.compile(
    r"(?:^|\s)(?:(?:[A-Za-z]\.){2,}|etc\.|no\.|nos\.|approx\.|ave\.|rd\.|est\.|"
    r"(?:jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)\.)$",
    re.I,
)


def sentences(text: str) -> list[str]:
    """Sentences of a message; a line break or a semicolon ends one too, "Dr." and "a.m." do not."""
    pieces: list[str] = []
    for line in re.split(r"\n+|;\s*", text):
        for piece in re.split(r"(?<=[.!?])\s+", line.strip()):
            if pieces and _runs_on(pieces[-1], piece):
                pieces[-1] = f"{pieces[-1]} {piece}"
            elif piece:
                pieces.append(piece)
    return pieces


def _runs_on(before: str, after: str) -> bool:
    if _TITLE.search(before) or _INITIAL.search(before):
        return True
    return bool(_ABBREVIATION.search(before)) and bool(re.match(r"[a-z0-9(]", after))


_CLAUSE_BREAK = re.compile(
    r",?\s+(?:and|but|so|plus)\s+(?:(?:honestly|actually|also|really|then|now|yet)\s+)?(?=(?:I|[Mm]y|[Ww]e|[Oo]ur)\b)"
    r"|,\s+(?=(?:I|[Ww]e|[Hh]e|[Ss]he)\b)"
)
# "so I can talk to her" is the purpose of the clause before it, not a statement of its own.
_PURPOSE = re.compile(
    r"^(?:I|[Ww]e)\s+(?:can|could|will|would|may|might|can't|cannot|won't|wouldn't|don't|do not|"
    r"am able|have time)\b"
)
_CLAUSE_START = re.compile(r"^(?:I|[Ww]e|[Mm]y|[Oo]ur)\b")
_BARE_NOUN = re.compile(r"^(?:[Mm]y|[Oo]ur|[Mm]e)\s+\S+(?:\s+\S+)?$")
_VERBISH = wordset(
    "is are was were has have had will would can could does do did just also still lives live works work "
    "got gets loves love moved passed died said thinks wants lost started became studies"
)


def clauses(sentence: str) -> list[str]:
    """Split "I love hiking but my knees hate it" into independent clauses; keep the rest whole."""
    parts: list[str] = []
    start = 0
    for match in _CLAUSE_BREAK.finditer(sentence):
        left, right = sentence[start : match.start()], sentence[match.end() :]
        purpose = match[0].strip(" ,").startswith("so") and _PURPOSE.match(right)
        if _independent(left) and _has_verb(right) and not purpose:
            parts.append(left)
            start = match.end()
    parts.append(sentence[start:])
    return [p.strip(" ,") for p in parts if p.strip(" ,")]


def _independent(text: str) -> bool:
    text = text.strip(" ,")
    return bool(_CLAUSE_START.match(text)) and not _BARE_NOUN.match(text) and len(text.split()) >= 2


def _has_verb(text: str) -> bool:
    tokens = text.lower().split()
    if tokens and tokens[0] in {"i", "we"}:
        return True
    return any(w in _VERBISH or w.endswith("ed") for w in tokens[1:6])


_FILLER_WORDS = (
    r"oh|ah+|aw+|well|so|yeah|yes|yep|yup|no|nope|nah|ha(?:ha)+|hah|he(?:he)+|lol|lmao|omg|honestly|actually|"
    r"anyway|anyways|btw|by the way|um+|uh+|hmm+|ok|okay|k|also|and|but|plus|right|wow|ugh|sure|true|"
    r"I mean|you know|tbh|to be honest|not really|not sure|fun fact|guess what|speaking of which|oh well|"
    r"the thing is|(?:like|as) I (?:said|mentioned)(?: before)?|I guess(?: that)?|I think(?: that)?|I feel like|"
    r"I believe(?: that)?|I suppose|ikr|"
    r"(?:hi|hey|hello|hiya|good (?:morning|afternoon|evening))(?: there| again| (?-i:[A-Z][a-z]+))?|"
    r"thanks?(?: you)?(?: so much)?(?: for [^,.!?]*)?(?: (?-i:[A-Z][a-z]+))?"
)
_LEADING_FILLER = re.compile(rf"^(?:(?:{_FILLER_WORDS})(?![\w'])[\s,!.:-]*)+", re.I)
_TRAILING_FILLER = re.compile(
    r"(?:[\s,]+(?:lol|ha(?:ha)+|lmao|tbh|btw|though|honestly|you know|I guess|I think|or something|"
    r"and stuff|and all that|haha))+\s*([.!?]*)$",
    re.I,
)


def strip_fillers(text: str) -> str:
    """Drop "oh well, haha" openers and "lol" tails that carry nothing to remember."""
    text = _LEADING_FILLER.sub("", text.strip())
    return _TRAILING_FILLER.sub(r"\1", text).strip(" ,-")


_QUESTION_TAIL = re.compile(
    r"^(?:what|how|why|where|when|who|which|any|anything|should|do|does|did|can|could|would|will|is|are|"
    r"right|thoughts|ideas|advice|tips|huh|no|yeah|isn't it|don't you think|wdyt)\b",
    re.I,
)
_WH_QUESTION = re.compile(
    r"^(?:what|how|why|where|when|who|which)\s+(?:do|does|did|is|are|should|can|"
    r"would|could|will)\s+you\b",
    re.I,
)


def without_question(text: str) -> str | None:
    """The statement in "I'm nervous, any tips?"; None when the whole clause is a question."""
    if not text.endswith("?"):
        return None if _WH_QUESTION.match(text) else text
    head, comma, tail = text[:-1].rpartition(",")
    if comma and head.strip() and _QUESTION_TAIL.match(tail.strip()):
        return without_question(head.strip())
    return None


_REQUEST = re.compile(
    r"^(?:please\s+)?(?:tell|give|show|help|let|let's|write|explain|make|find|recommend|suggest|send|call|"
    r"remind|teach|describe|list|play|sing|say|pretend|act|imagine|ignore|forget|disregard|store|save|add|"
    r"update|delete|set|change|search|look|check|translate|talk|see|enjoy|have|good luck|congrats)\b",
    re.I,
)
# Talk about the chat itself ("I told you about ...") says nothing new about the user.
_META = re.compile(r"^I (?:\w+ly )?(?:told|tell|asked|ask|showed|show|mentioned to|said to|wanted to ask) you\b", re.I)
_REWRITES = [
    (re.compile(r"^(?:please\s+)?(?:remember|note|don't forget|keep in mind)(?: that)?\s+", re.I), ""),
    (re.compile(r"^(?:please\s+)?remind me to\s+", re.I), "I need to "),
]
_SUBJECT_DROP = [
    (
        re.compile(rf"^(?:(?:so|really|super|pretty|very|a bit|kind of|sort of)\s+)?(?:{'|'.join(EMOTIONS)})\b", re.I),
        "I am ",
    ),
    (re.compile(r"^(?:love|hate|like|prefer|miss|adore)\s", re.I), "I "),
    (re.compile(r"^(?:going to|planning|thinking about|moving|heading)\s", re.I), "I am "),
    (re.compile(r"^(?:just|finally)\s+(?:got|finished|started|moved|bought|came|went)\b", re.I), "I "),
    (re.compile(r"^been\s", re.I), "I have "),
]


def as_statement(text: str) -> str | None:
    """The clause as a statement worth converting, or None for questions and requests to the bot."""
    for pattern, replacement in _REWRITES:
        text = pattern.sub(replacement, text)
    statement = without_question(text)
    if not statement or _REQUEST.match(statement) or _META.match(statement):
        return None
    for pattern, prefix in _SUBJECT_DROP:
        if pattern.match(statement):
            return expand(prefix + statement[0].lower() + statement[1:])
    return statement


# Prompt injection is data: a message that tries to steer the system is not remembered at all (the pattern
# is the memory guard's, so both extractors agree on it), and no clause may claim roles or permissions,
# however innocently phrased.
_PRIVILEGE = re.compile(
    r"\b(?:admins?|administrators?|sysadmin|superuser|super user|root (?:access|user|privileges?)|sudo|"
    r"moderator|mod rights|full access|unrestricted|permissions?|privileges?|access level|clearance|"
    r"authori[sz]ed|elevated|owner of (?:this|the) (?:system|bot|app|account|server)|developer of (?:this|"
    r"the) (?:system|bot|app)|your (?:creator|developer|owner|master))\b",
    re.I,
)


def is_override(text: str) -> bool:
    """True for a message that tries to instruct the system rather than talk about the user."""
    return memory_guard.steers(text)


def claims_privilege(text: str) -> bool:
    """True for a clause that mentions roles, access or permissions: never a memory, whoever says it."""
    return bool(_PRIVILEGE.search(text))


_ADVERB = r"(?:\w+ly\s+|just\s+|also\s+|still\s+|never\s+|always\s+|even\s+|kind of\s+|sort of\s+)*"
_MONTH = r"(?:january|february|march|april|may|june|july|august|september|october|november|december)"
_DAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_PERIOD = rf"(?:week|month|year|weekend|summer|spring|fall|autumn|winter|time|{_DAY})"
# Vague references: an "it", "that" or "this" that only the chat explains. Each one is resolved to the noun
# phrase it stands for, a tail that leans on one is cut, or the clause is not remembered.
_BOUNDARY = (
    r"on|in|at|for|with|to|from|of|about|by|into|near|after|before|during|next|last|this|that|which|who|where|"
    r"when|and|but|or|so|because|since|while|if|is|are|was|were|has|have|had|will|would|can|could|named|"
    r"called|every|each|today|tonight|tomorrow|yesterday|again|too|now|it|me|him|her|them|us|I|we|he|she|they"
)
_WHEN = rf"\s+(?:on|this|next|last|in)\s+(?:{_DAY}|{_MONTH}|week|weekend|month|year|summer|spring|fall|winter)"
_NOUN_PHRASE = re.compile(
    rf"\b(?P<det>an?|the|my|our|your|their|his|its)\s+(?P<body>(?:[\w'-]+\s+){{0,3}}?[\w'-]+?)(?P<when>{_WHEN})?"
    rf"(?=\s+(?:{_BOUNDARY})\b|\s*[,.!?]|\s*$)",
    re.I,
)
_BARE = re.compile(
    r"\b(?:it(?!')|(?:that|this)(?=\s*(?:[,.!?]|$)|\s+(?:so|too|very|really|a lot|anymore|again|now|though|"
    r"either|at all|much|more|and|but|or|when|because|since|if|already|yet|enough)\b))\b"
)
_SUBJECT_IT = re.compile(
    r"\s+(?:(?:still|also|just|really|always|never|even|only|already|usually|\w+ly)\s+)*"
    r"(?:is|was|has|had|will|would|can|could|does|did|might|may|must|should|(?!(?:as|was|is|this|us)\b)[a-z]+s)\b"
)
_IDIOM = re.compile(r"\b(?:make|makes|made|making)\s+it\b|\bhit it off\b|\btake it easy\b", re.I)
_POINTING = re.compile(rf"\b(?:that|this|those|these)\s+(?:{'|'.join(sorted(POINTING_NOUNS))})\b", re.I)
_TAIL = re.compile(
    r",\s*(?:so|and|but|which|though|because|since|as|especially|except|like|even|mostly|finally)\b"
    r"|\s+(?:and|but|so)\s"
)
_LIKING = r"love|loves|like|likes|enjoy|enjoys|hate|hates|prefer|prefers|miss|misses"
_LIKED = re.compile(rf"\b(?:{_LIKING}|can't stand)\s+(?P<thing>[a-z][a-z-]+)\b(?!\s+(?:to|that|it|when|how)\b)")


def references(text: str) -> Iterator[re.Match[str]]:
    """Every "it", "that" or "this" in `text` that points at something, rather than opens a clause."""
    yield from _POINTING.finditer(text)
    for match in _BARE.finditer(text):
        idiom = _IDIOM.search(text[max(0, match.start() - 8) : match.end() + 4])
        if match[0] != "it" or not (_SUBJECT_IT.match(text[match.end() :]) or idiom):
            yield match


def vague_reference(text: str) -> re.Match[str] | None:
    """The first reference in `text` to nothing said before it in `text`, if any."""
    return next((m for m in references(text) if _POINTING.fullmatch(m[0]) or not _antecedents(text[: m.start()])), None)


def resolve_reference(statement: str, earlier: list[str], question: str) -> str:
    """`statement` with its vague reference replaced by what it stands for, when something clearly does.

    The antecedent comes from the assistant's question when it uses the same frame ("What got you into
    running?" for "... got me into it"), else from the clause just before in the user's own words, else
    from the one thing the question asked about ("How is your new job?").
    """
    match = vague_reference(statement)
    if match is None or _POINTING.fullmatch(match[0]):
        return statement
    antecedent = (
        _framed(statement[: match.start()], question)
        or next((found for clause in reversed(earlier) if (found := _antecedents(clause))), [None])[0]
    )
    antecedent = antecedent or _asked_about(question)
    return statement[: match.start()] + antecedent + statement[match.end() :] if antecedent else statement


def without_references(statement: str) -> str | None:
    """`statement` if it points at nothing, else its head without the tail that does ("My favorite food is
    pastel de nata, so at least I know that word"), else None: a memory must stand on its own."""
    if next(references(statement), None) is None:
        return statement
    for tail in reversed(list(_TAIL.finditer(statement))):
        head = statement[: tail.start()]
        if next(references(head), None) is None and len(head.split()) >= 3:
            return head
    return None


# Things "it" can stand for in `text`, first to last, in the user's own voice: "the job interview on Friday".
def _antecedents(text: str) -> list[str]:
    found = []
    for match in _NOUN_PHRASE.finditer(text):
        body = match["body"].split()
        verb = next((i for i, w in enumerate(body) if w.lower() in VERBS or re.fullmatch(r"\w{3,}ed", w)), None)
        words = [w.lower() for w in body[:verb]]
        if not words or words[-1] in NOT_ANTECEDENTS or any(re.fullmatch(RELATIVES, w) for w in words):
            continue  # a person is "he" or "she", never "it"
        if any(w in STOPWORDS for w in words) or not words[-1].isalpha():
            continue
        det = {"a": "the", "an": "the", "your": "my"}.get(match["det"].lower(), match["det"].lower())
        when = (match["when"] or "") if verb is None and words[-1] in EVENT_NOUNS else ""
        found.append(f"{det} {' '.join(body[:verb])}{when}")
    liked = (m["thing"] for m in _LIKED.finditer(text))  # "I love cooking and I'm good at it"
    return found + [w for w in liked if w not in STOPWORDS and w not in WEAK and w not in NOT_ANTECEDENTS]


# "into running" in "What got you into running?" for the "into it" in "My brother got me into it".
def _framed(before: str, question: str) -> str | None:
    words = before.split()
    if not words or not question:
        return None
    cue = words[-1].lower()
    frame = rf"(?:{_LIKING})" if re.fullmatch(_LIKING, cue) else re.escape(cue)
    phrase = r"(?P<np>(?:(?:the|a|an|your)\s+)?[a-z][\w'-]*(?:\s+[a-z][\w'-]*)?)"
    for match in re.finditer(rf"\b{frame}\s+{phrase}", question):
        np = re.split(rf"\s+(?:{_BOUNDARY}|you|yet|lately|today)\b", match["np"])[0]
        last = np.split()[-1].lower()
        if last not in STOPWORDS and last not in WEAK and last not in {"you", "yourself"}:
            return re.sub(r"^(?:your|an?)\b", lambda m: "my" if m[0] == "your" else "the", np)
    return None


# The one thing of the user's the question asked about: "How is your new job?" -> "my new job".
def _asked_about(question: str) -> str | None:
    asked = [s for s in sentences(question) if s.endswith("?")]
    found = [a for a in _antecedents(asked[-1]) if a.startswith("my ")] if asked else []
    return found[0] if len(found) == 1 else None


_PARTNER = re.compile(rf"^[Ww]e\s+{_ADVERB}(?:{RECIPROCAL})\b|\b(?:each other|one another|together|both|all)\b", re.I)


def needs_partner(clause: str) -> bool:
    """True for "we talk every Sunday": a "we" clause that is false of the user alone."""
    return bool(_PARTNER.search(clause))


_EMOTION_RE = re.compile(
    rf"\b(?:(?:I|we) (?:am|are|was|were|have been|had been|feel|felt|get|got|will be|would be|keep)\s+"
    rf"(?:\w+\s+){{0,3}}?|(?:makes?|made|making) me (?:\w+\s+)?)(?:{'|'.join(sorted(EMOTIONS))})\b"
    r"|\b(?:I|we) (?:\w+ly )?(?:worry|dread|panic|stress)\b",
    re.I,
)
_PLAN_RE = re.compile(
    rf"\b(?:will|going to|planning|plan to|intend|intending|hoping to|hope to|want to|would like to|"
    rf"would love to|about to|looking forward|need to|have to|thinking (?:about|of) \w+ing|next {_PERIOD}|"
    rf"tomorrow|tonight|someday|one day|in (?:a|an|two|three|a few|\d+) (?:days?|weeks?|months?|years?))\b",
    re.I,
)
_SOON_RE = re.compile(rf"\b(?:this (?:coming )?{_PERIOD}|soon|on {_DAY}|upcoming|later this|in {_MONTH})\b", re.I)
_PAST_RE = re.compile(
    rf"\b(?:yesterday|last (?:night|{_PERIOD})|ago|earlier today|this morning|recently)\b|"
    rf"\b(?:I|we|he|she|they|{KIN}(?:\s+(?-i:{NAME}))?)\s+{_ADVERB}(?!named\b|called\b)"
    r"(?:went|got|had|made|took|saw|met|left|bought|ran|began|came|found|gave|lost|won|wrote|spent|sold|sent|broke|fell|flew|drove|became|quit|was|were|born|[a-z]+ed)\b",
    re.I,
)
_PREFERENCE_RE = re.compile(
    rf"\b(?:I|we)\s+{_ADVERB}(?:do not |don't |do )?{_ADVERB}(?:love|like|enjoy|hate|prefer|adore|dislike|"
    r"detest|can't stand|cannot stand)\b|\bfavou?rites?\b|\bnot a fan\b|\b(?:I am|we are)\s+(?:\w+\s+)?"
    r"(?:into|obsessed with|a (?:big |huge )?fan of|crazy about|passionate about)\b",
    re.I,
)
_PURPOSE_TAIL = re.compile(r",?\s+(?:so that|so (?:I|we) (?:can|could|will|would|may|might)|because|in order to)\b.*$")
_KIN_SUBJECT = re.compile(rf"^(?:[Mm]y|[Oo]ur)\s+{KIN}\b")
_PERSON = re.compile(
    rf"\b(?:my|our|their|a|an|two|three|four|\d+)\s+{KIN_ADJ}(?:{RELATIVES})\b(?!')"
    r"|\b(?:been friends|friends with|married to|dating|engaged to|broke up with)\b",
    re.I,
)
_PET = re.compile(rf"\b(?:{PETS})\b", re.I)


def classify(clause: str, about_other: bool = False) -> MemoryType:
    """The memory type of a first-person clause, by its cues."""
    if about_other or _KIN_SUBJECT.match(clause):
        return _about_someone(clause)
    if _EMOTION_RE.search(clause):
        return "emotion"
    if _PLAN_RE.search(clause) or (_SOON_RE.search(clause) and not _PAST_RE.search(clause)):
        return "plan"
    if _PREFERENCE_RE.search(clause):
        return "preference"
    if _PAST_RE.search(clause):
        return "event"
    main = _PURPOSE_TAIL.sub("", clause)  # "so I can talk to my grandmother" is not about the grandmother
    return "relationship" if _PERSON.search(main) else "fact"


def _about_someone(clause: str) -> MemoryType:
    if _PLAN_RE.search(clause):
        return "plan"
    if _PAST_RE.search(clause):
        return "event"
    return "fact" if _PET.search(clause) and not _PERSON.search(clause) else "relationship"


_BASE_IMPORTANCE = {"relationship": 0.7, "plan": 0.65, "fact": 0.55, "event": 0.55, "emotion": 0.55, "preference": 0.5}
_IDENTITY = re.compile(
    r"\b(?:works? (?:as|at|for|in)|job|career|lives? in|(?:is|was) from|grew up|born|years old|studies|"
    r"student|major|degree|university|college|married|divorced|engaged|pregnant|allergic|allergy|"
    r"diabetes|diabetic|asthma|anxiety|depression|adhd|autism|cancer|diagnosed|medication|vegan|vegetarian|"
    r"(?:is|am) \d{1,3}(?! ?%))\b",
    re.I,
)
_TIME = re.compile(rf"\b(?:{_DAY}|{_MONTH}|tomorrow|tonight|yesterday|next|last|ago)\b", re.I)


def importance(statement: str, kind: MemoryType, known: frozenset[str]) -> float:
    """Higher for who the user is and who is in their life, and for specifics: names, places, numbers."""
    score = _BASE_IMPORTANCE.get(kind, 0.5)
    if _IDENTITY.search(statement):
        score += 0.15
    proper = [w for w in re.findall(r"(?<=\s)[A-Z][a-z]+", statement) if w not in known]
    score += min(0.15, 0.05 * len(proper))
    score += 0.05 if re.search(r"\d", statement) else 0.0
    score += 0.05 if kind in ("plan", "event", "emotion") and _TIME.search(statement) else 0.0
    score -= 0.1 if len(statement.split()) < 5 else 0.0
    return round(min(0.95, max(0.2, score)), 2)


def content_words(text: str, exclude: frozenset[str] = frozenset()) -> list[str]:
    """Lower-case words that say something: not function words, not chit-chat, not the people talking."""
    words = (w.removesuffix("'s") for w in re.findall(r"[a-z][a-z'-]*|\d+", text.lower()))
    return [w for w in words if w not in STOPWORDS and w not in WEAK and w not in exclude]


# Topics of one memory: proper names kept whole ("St. Mary's hospital", "Berlin half marathon"), then the
# nouns it is about: heads of noun phrases ("back pain", not "long") and the objects of likes ("hiking").
_ENTITY = re.compile(
    r"(?<=\s)(?:(?:St|Dr|Mt|Mr|Mrs|Ms|Prof)\.\s+)?[A-Z][a-z]+(?:'s)?"
    r"(?:\s+(?:(?:de|da|del|van|von|of)\s+)?[A-Z][a-z]+(?:'s)?)*"
    rf"(?:\s+(?:{PLACE_HEADS})\b)?"
)
_NOUN_START = re.compile(
    r"\b(?:a|an|the|their|his|her|its|[A-Z][a-z]+'s|two|three|four|five|some)\s+|"
    r"\b(?:loves?|likes?|hates?|enjoys?|can't stand|prefers?|learning|studies|plays?|misses|into|about)\s+"
    r"(?=[a-z])"
)


def topic_phrases(text: str) -> tuple[list[str], list[str]]:
    """Proper names, then nouns, that one third-person memory is about."""
    names = []
    for match in _ENTITY.finditer(text):
        name = match[0].removesuffix("'s")
        if not all(w.lower().strip(".") in NOT_NAMES - NATIONALITIES for w in name.split()):
            names.append(name)
    nouns = []
    for match in _NOUN_START.finditer(text):
        words = re.findall(r"\S+", text[match.end() :])[:4]
        ending = next((i + 1 for i, w in enumerate(words) if re.search(r"[,.!?;:]$", w)), len(words))
        phrase = list(itertools.takewhile(_nounish, (w.rstrip(",.!?;:") for w in words[:ending])))
        while phrase and (phrase[0] in TOPIC_ADJECTIVES or phrase[0].endswith("ly")):
            phrase.pop(0)
        if phrase and phrase[-1] not in TOPIC_STOP and phrase[-1] not in WEAK and len(phrase[-1]) > 2:
            nouns.append(" ".join(phrase[-2:]))
    return names, nouns


def _nounish(word: str) -> bool:
    return (
        re.fullmatch(r"[a-z][a-z-]*", word) is not None
        and word not in STOPWORDS
        and word not in VERBS
        and not word.endswith("ed")
    )
