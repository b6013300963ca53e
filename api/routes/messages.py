from __future__ import annotations

from fastapi import APIRouter, Depends, status

from api.auth import auth_responses, requires
from api.deps import CharacterName, ContainerDep, UserId
from api.schemas import CONFLICT, MessageCreate, MessagePublic

router = APIRouter(prefix="/messages", tags=["messages"])


@router.post(
    "/{user_id}/{character_name}",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(requires("write", rate="write"))],
    responses={**CONFLICT, **auth_responses(rate=True)},
)
def save_message(
    user_id: UserId, character_name: CharacterName, body: MessageCreate, container: ContainerDep
) -> MessagePublic:
    """Save one chat message with `sync: false`, for services that do not use a Firebase SDK."""
    message = container.store.save_message(
        user_id,
        character_name,
        role=body.role,
        text=body.text,
        channel=body.channel,
        created_at=body.created_at,
        message_id=body.message_id,
        speaker=body.speaker,
    )
    return MessagePublic.of(message)
