from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from api.deps import CharacterName, ContainerDep, UserId
from api.schemas import MessageCreatedEvent, TriggerPublic

router = APIRouter(tags=["triggers"])


@router.post("/firebase/message-created")
def message_created(event: MessageCreatedEvent, container: ContainerDep) -> TriggerPublic:
    """Called when a message is written: starts a batch in the background once enough are unsynced."""
    result = container.processor.trigger(event.user_id, event.character_name)
    return TriggerPublic(**asdict(result))


@router.post("/memory/check-batch/{user_id}/{character_name}")
def check_batch(user_id: UserId, character_name: CharacterName, container: ContainerDep) -> TriggerPublic:
    """Count unsynced messages and start a batch at the threshold; answers without waiting for it."""
    return TriggerPublic(**asdict(container.processor.trigger(user_id, character_name)))
