"""Word lists behind the offline extractor: people, names, function words, feelings and topics.

Data only, shared by `offline_rules` and `offline_extractor`; every list is lower-case unless it is a regex.
"""

from __future__ import annotations


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
# Breeds say "dog": "a golden retriever called Biscuit" is the user's dog Biscuit.
BREEDS = (
    "golden retriever|labrador retriever|retriever|labrador|lab|poodle|beagle|terrier|bulldog|dachshund|"
    "husky|corgi|chihuahua|pug|spaniel|collie|border collie|german shepherd|shepherd|greyhound|doodle|"
    "goldendoodle|labradoodle"
)
KIN_ADJ = r"(?:(?:little|big|older|younger|baby|twin|best|step|half|elder|oldest|youngest|late)\s+)?"
KIN = rf"{KIN_ADJ}(?:{RELATIVES}|{PETS}|{BREEDS})"
NAME = r"[A-Z][a-z]+(?:-[A-Z][a-z]+)?"

MALE = wordset(
    "brother dad father husband boyfriend son grandfather grandpa uncle nephew stepdad stepfather stepbrother fiance"
)
FEMALE = wordset(
    "sister mom mum mother wife girlfriend daughter grandmother grandma granny aunt niece "
    "stepmom stepmother stepsister fiancee"
)
PLURAL = wordset("parents kids children grandparents friends in-laws siblings")

# Nationalities, languages and faiths: never a name, but a fine topic ("learning Portuguese").
NATIONALITIES = wordset(
    "american canadian british english french german italian spanish mexican brazilian chinese japanese "
    "korean indian irish scottish welsh australian portuguese dutch russian polish swedish greek turkish "
    "jewish muslim christian catholic buddhist hindu"
)
# Capitalised words that are never a user's or a relative's name.
NOT_NAMES = NATIONALITIES | wordset(
    "i a an the so and but also just really not here there back fine good great ok okay sorry sure well "
    "glad happy sad tired home new from in at on with going doing done monday tuesday wednesday thursday "
    "friday saturday sunday january february march april may june july august september october "
    "november december today tomorrow yesterday honestly actually anyway yes no yeah hi hey hello thanks "
    "atheist vegan vegetarian gay straight bi trans "
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

# "We talk every Sunday" says nothing true of the user alone: these need the other person.
RECIPROCAL = (
    r"talk|talks|talked|chat|chats|chatted|speak|speaks|spoke|meet|meets|met|text|texts|texted|call|calls|"
    r"called|fight|fights|fought|argue|argues|argued|date|dates|dated|get along|got along|hang out|hung out"
)

# Nouns that "it" never stands for, and bare "that"/"this" nouns that only point back into the chat.
NOT_ANTECEDENTS = wordset(
    "lot bit while time day week month year weekend morning night evening minute hour moment way thing "
    "things stuff one ones kind sort couple few mind life plans thoughts feelings heart head self"
)
# Things that happen on a day: "it" after "a job interview on Friday" is the interview on Friday.
EVENT_NOUNS = wordset(
    "interview appointment exam test party meeting date trip flight surgery operation concert game match "
    "presentation wedding shift class lesson race marathon deadline visit dinner"
)
POINTING_NOUNS = wordset("word words one ones thing things stuff idea part bit name story way point")

# Topics: adjectives dropped in front of a head noun, words that are never a topic, and the common nouns
# that end a proper name ("St. Mary's hospital", "Berlin half marathon").
TOPIC_ADJECTIVES = wordset(
    "long short big small little new old own whole great good bad best worst favorite favourite second "
    "first last next few many other same nice lovely beautiful huge tiny entire main only real very "
    "really pretty quite same certain lot couple"
)
TOPIC_STOP = wordset(
    "work works working lives live living plans planning visit visits visiting thinking takes orders order "
    "being outside when especially wants every also home years year months month weeks next last second "
    "first third little best worst great whole lots far big new old fun yet way put let lol near "
    "days day week weekend time times morning night evening afternoon today tomorrow yesterday while "
    "along around across through afterwards properly off out away back ever never together worst"
)
PLACE_HEADS = (
    r"hospital|university|college|school|park|church|street|station|airport|lake|river|bridge|mall|cafe|"
    r"center|centre|museum|library|clinic|marathon|half marathon|festival|mountains|beach|club|office|"
    r"restaurant|bar|gym|zoo|stadium|theater|theatre"
)

# Common verbs that end a noun phrase: "my brother Tom got me into it" has no antecedent for "it".
VERBS = wordset(
    "is are was were be been am has have had do does did got get gets took take takes made make makes went "
    "go goes gave give gives told tell tells said say says loves love likes like hates hate enjoys enjoy "
    "runs run works work lives live called named turned turns wants want needs need keeps kept"
)
