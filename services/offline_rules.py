"""Text rules behind the offline extractor: cleaning, splitting, filtering, typing and scoring clauses.

Everything here works on one user clause in the first person, before or after it is rewritten in the
third person by `offline_extractor`. Pure functions over word lists; no state, no I/O.
"""

from __future__ import annotations

import re
import unicodedata

from services.models import MemoryType


def wordset(text: str) -> frozenset[str]:
    """A word list written as one space-separated string."""
    return frozenset(text.split())


# People and animals a user talks about. A trailing "s" form is listed where people use it.
RELATIVES = (
    "brother|sister|mom|mum|mother|dad|father|parents|wife|husband|partner|boyfriend|girlfriend|fiance|"
    "fiancee|son|daughter|kids|children|child|baby|grandmother|grandma|granny|grandfather|grandpa|"
    "grandparents|aunt|uncle|cousin|niece|nephew|friend|friends|bestie|colleague|coworker|boss|manager|"
    "roommate|flatmate|neighbor|neighbour|stepmom|stepdad|stepmother|stepfather|stepbrother|stepsister|"
    "in-laws|sibling|siblings|twin|ex|mentor|therapist"
)
PETS = "dog|cat|puppy|kitten|parrot|hamster|rabbit|bunny|bird|horse|turtle|guinea pig"
_KIN_ADJ = r"(?:(?:little|big|older|younger|baby|twin|best|step|half|elder|oldest|youngest|late)\s+)?"
KIN = rf"{_KIN_ADJ}(?:{RELATIVES}|{PETS})"
NAME = r"[A-Z][a-z]+(?:-[A-Z][a-z]+)?"

MALE = wordset(
    "brother dad father husband boyfriend son grandfather grandpa uncle nephew stepdad stepfather stepbrother fiance"
)
FEMALE = wordset(
    "sister mom mum mother wife girlfriend daughter grandmother grandma granny aunt niece "
    "stepmom stepmother stepsister fiancee"
)
PLURAL = wordset("parents kids children grandparents friends in-laws siblings")

# Capitalised words that are never a user's or a relative's name.
NOT_NAMES = wordset(
    "i a an the so and but also just really not here there back fine good great ok okay sorry sure well "
    "glad happy sad tired home new from in at on with going doing done monday tuesday wednesday thursday "
    "friday saturday sunday january february march april may june july august september october "
    "november december today tomorrow yesterday honestly actually anyway yes no yeah hi hey hello thanks "
    "american canadian british english french german italian spanish mexican brazilian chinese japanese "
    "korean indian irish scottish welsh australian portuguese dutch russian polish swedish greek turkish "
    "jewish muslim christian catholic buddhist hindu atheist vegan vegetarian gay straight bi trans "
    "admin administrator root system assistant user bot god master sir madam human ai"
)

STOPWORDS = wordset(
    "a an the and or but so of to in on at for with from by about as into than then that this these those "
    "it its it's is am are was were be been being has have had having do does did doing will would can "
    "could should shall may might must not no nor very too also just really still even only quite rather "
    "some any all both each more most much many few lot lots there here what which who whom whose when "
    "where why how if because while until after before again once their them they theirs themselves he "
    "him his she her hers it's one ones own same other such up down out off over under s t don't doesn't "
    "didn't can't won't isn't aren't wasn't weren't haven't hasn't hadn't couldn't wouldn't shouldn't "
    "kind sort bit pretty always never often sometimes usually"
)
# Words that carry no disclosure on their own: "Maya is fine", "Maya loves that idea".
WEAK = wordset(
    "fine good ok okay great well alright doing thanks thank sure know knows see sees agree agrees guess "
    "guesses think thinks mean means back here sorry bad cool lol haha yeah right true today now anyway "
    "though glad curious wondering wonders question questions ask asking help advice idea ideas thing "
    "things stuff point sense love loves like likes enjoy enjoys hate hates prefer prefers want wants need "
    "needs feel feels feeling better worse get gets got go goes going went make makes made say says said "
    "tell tells told talk talks talking chat chatting try tries trying hope hopes busy exactly totally "
    "definitely probably maybe time day morning night later soon something anything everything nothing "
    "tonight tomorrow yesterday week weekend"
)
EMOTIONS = wordset(
    "worried worry worrying anxious anxiety stressed stressing nervous scared afraid terrified frightened "
    "excited thrilled sad unhappy depressed lonely happy upset angry frustrated overwhelmed heartbroken "
    "miserable exhausted tired proud grateful hopeful relieved ashamed embarrassed jealous guilty "
    "panicking dreading bummed devastated homesick insecure"
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


_ABBREVIATION = re.compile(r"\b(?:Mr|Mrs|Ms|Dr|St|Mt|Jr|Sr|vs|e\.g|i\.e|approx)\.$", re.I)


def sentences(text: str) -> list[str]:
    """Sentences of a message; a line break or a semicolon ends one too."""
    pieces: list[str] = []
    for line in re.split(r"\n+|;\s*", text):
        for piece in re.split(r"(?<=[.!?])\s+", line.strip()):
            if pieces and _ABBREVIATION.search(pieces[-1]):
                pieces[-1] = f"{pieces[-1]} {piece}"
            elif piece:
                pieces.append(piece)
    return pieces


_CLAUSE_BREAK = re.compile(
    r",?\s+(?:and|but|so|plus)\s+(?:(?:honestly|actually|also|really|then|now|yet)\s+)?(?=(?:I|[Mm]y|[Ww]e|[Oo]ur)\b)"
    r"|,\s+(?=(?:I|[Ww]e)\b)"
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
        if _independent(left) and _has_verb(right):
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


# Prompt injection is data: a message that tries to steer the system is not remembered at all, and no
# clause may claim roles or permissions, however innocently phrased.
_OVERRIDE = re.compile(
    r"\b(?:ignore|disregard|forget|override|bypass)\b[^.!?]{0,40}\b(?:instructions?|prompts?|rules|"
    r"guidelines|directives|guardrails|polic(?:y|ies)|everything (?:above|before))\b|\bsystem prompt\b|"
    r"\b(?:you are now|from now on,? you|act as an?|pretend (?:to be|you are)|jailbreak|developer mode|"
    r"do anything now)\b|\b(?:store|save|record|write|add|insert|put)\b[^.!?]{0,30}\b(?:memory|memories|"
    r"database|the user)\b|\b(?:the|this) user(?:'s)? (?:is|has|should|must|can|name|role)\b|"
    r"\[(?:system|assistant|admin)\]|^(?:system|assistant)\s*:",
    re.I | re.M,
)
_PRIVILEGE = re.compile(
    r"\b(?:admins?|administrators?|sysadmin|superuser|super user|root (?:access|user|privileges?)|sudo|"
    r"moderator|mod rights|full access|unrestricted|permissions?|privileges?|access level|clearance|"
    r"authori[sz]ed|elevated|owner of (?:this|the) (?:system|bot|app|account|server)|developer of (?:this|"
    r"the) (?:system|bot|app)|your (?:creator|developer|owner|master))\b",
    re.I,
)


def is_override(text: str) -> bool:
    """True for a message that tries to instruct the system rather than talk about the user."""
    return bool(_OVERRIDE.search(text))


def claims_privilege(text: str) -> bool:
    """True for a clause that mentions roles, access or permissions: never a memory, whoever says it."""
    return bool(_PRIVILEGE.search(text))


_ADVERB = r"(?:\w+ly\s+|just\s+|also\s+|still\s+|never\s+|always\s+|even\s+|kind of\s+|sort of\s+)*"
_MONTH = r"(?:january|february|march|april|may|june|july|august|september|october|november|december)"
_DAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_PERIOD = rf"(?:week|month|year|weekend|summer|spring|fall|autumn|winter|time|{_DAY})"
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
_KIN_SUBJECT = re.compile(rf"^(?:[Mm]y|[Oo]ur)\s+{KIN}\b")
_PERSON = re.compile(
    rf"\b(?:my|our|their|a|an|two|three|four|\d+)\s+{_KIN_ADJ}(?:{RELATIVES})\b(?!')"
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
    return "relationship" if _PERSON.search(clause) else "fact"


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
