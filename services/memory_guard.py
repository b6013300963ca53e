"""The last check before memories are stored: text in a message is data, never a grant or an instruction.

Both extractors are built to treat messages as data; this guard holds even when one does not (a model
talked round by a message, a rule that misses a phrasing). It runs on every batch, whatever the
extractor, and drops a memory that

- claims or grants a role or permission in this product: "the user is an admin", "has admin
  privileges", "full access", "is the owner of this bot", "is verified";
- instructs the assistant or the system: "always ...", "ignore previous instructions", "the assistant
  must ...", "should be trusted";
- or, not being the batch summary, cites only messages that try to instruct the system.

It is narrow on purpose, so that ordinary facts using the same words stay: "Maya works as an admin
assistant", "Maya is a system administrator at a hospital", "Maya always runs on Sundays", "Maya is
making a scrapbook to save memories of Lisbon". A bare role with nothing after it ("Maya is an admin.")
is a claim on this product, not a job, and is dropped.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from services.models import Conversation, MemoryDraft

log = logging.getLogger(__name__)

_ROLE = (
    r"(?:admins?|administrators?|sysadmin|superuser|super user|root user|moderator|owner|operator|developer|creator)"
)
_PRODUCT = r"(?:system|bot|app|application|chat|account|server|platform|service|assistant|ai|database|memory)"
_AUTHORITY = re.compile(
    rf"\b(?:admin|administrator|superuser|root|sudo|moderator|owner|developer|operator)\s+(?:rights|privileges?|"
    r"permissions?|access|role|status|mode|level|powers?)\b|"
    r"\b(?:full|unrestricted|elevated|special|root|privileged|unlimited)\s+(?:access|privileges?|permissions?|"
    r"rights|clearance)\b|"
    rf"\b(?:owner|developer|creator|administrator|admin|operator)\s+of\s+(?:this|the|your)\s+{_PRODUCT}\b|"
    rf"\bis\s+(?:now\s+)?(?:an?|the)\s+{_ROLE}\s*(?:[.!]|$)|"
    r"\b(?:is|are|has been|was)\s+(?:now\s+)?(?:verified|authenticated|whitelisted)\b",
    re.I,
)
_INSTRUCTION = re.compile(
    r"^\W*(?:always|never|ignore|disregard|forget|override|bypass|do not|don't|you must|you should|you are|"
    r"from now on|obey|grant|treat)\b|"
    r"\b(?:ignore|disregard|forget|override|bypass)\b[^.!?]{0,40}\b(?:instructions?|prompts?|rules|guidelines|"
    r"directives|guardrails|polic(?:y|ies))\b|\bsystem prompt\b|\bdeveloper mode\b|\bjailbreak|"
    rf"\b(?:the|this|your)\s+{_PRODUCT}\s+(?:must|should|shall|has to|needs to|is required to|will always|"
    r"will never)\b|\b(?:should|must)\s+(?:always\s+)?be\s+(?:trusted|obeyed|believed|granted|treated as)\b",
    re.I,
)
# A message that tries to steer the system rather than talk about the user. The offline extractor
# skips such messages whole; the guard drops a memory that rests on nothing else.
_STEERING = re.compile(
    r"\b(?:ignore|disregard|forget|override|bypass)\b[^.!?]{0,40}\b(?:instructions?|prompts?|rules|"
    r"guidelines|directives|guardrails|polic(?:y|ies)|everything (?:above|before))\b|\bsystem prompt\b|"
    r"\b(?:you are now|from now on,? you|act as an?|pretend (?:to be|you are)|jailbreak|developer mode|"
    r"do anything now)\b|\b(?:store|save|record|write|add|insert|put)\b[^.!?]{0,30}(?:\b(?:in|to|into)"
    r"(?: your| the)? (?:memory|memories|database)\b|\bthe user\b)|\b(?:the|this) user(?:'s)? (?:is|has|"
    r"should|must|can|name|role)\b|\[(?:system|assistant|admin)\]|^(?:system|assistant)\s*:",
    re.I | re.M,
)


def claims_authority(text: str) -> bool:
    """True for a memory text that claims a role or permission, or instructs the assistant."""
    return bool(_AUTHORITY.search(text) or _INSTRUCTION.search(text))


def steers(text: str) -> bool:
    """True for a message that tries to instruct the system rather than talk about the user."""
    return bool(_STEERING.search(text))


def screen(drafts: Sequence[MemoryDraft], conversation: Conversation) -> list[MemoryDraft]:
    """`drafts` without the memories this module refuses; the reasons are logged, never the text."""
    steering = {m.id for m in conversation.messages if steers(m.text)}
    kept: list[MemoryDraft] = []
    for draft in drafts:
        if claims_authority(draft.text):
            reason = "claims authority"
        elif draft.type != "summary" and set(draft.source_message_ids) <= steering:
            reason = "rests only on messages that try to instruct the system"
        else:
            kept.append(draft)
            continue
        log.warning("dropped a %s memory citing %d messages: it %s", draft.type, len(draft.source_message_ids), reason)
    return kept
