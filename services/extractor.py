"""The memory extraction contract, and the choice between OpenAI and the offline extractor."""

from __future__ import annotations

from typing import Protocol

from services.config import Settings
from services.models import Conversation, MemoryDraft


class Extractor(Protocol):
    name: str

    def extract(self, conversation: Conversation) -> list[MemoryDraft]:
        """Conversation-level memories of one batch.

        Raises ExtractionError when no valid result can be had; never returns an empty list to hide
        a failure. Every draft's source_message_ids are ids of `conversation.messages`.
        """


def build_extractor(settings: Settings) -> Extractor:
    if settings.use_openai:
        from services.openai_extractor import OpenAIExtractor

        return OpenAIExtractor.from_settings(settings)
    from services.offline_extractor import OfflineExtractor

    return OfflineExtractor()
