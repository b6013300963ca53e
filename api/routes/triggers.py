"""The batch trigger: from the Cloud Function (its secret only; idempotent per event), or by path (`trigger` scope)."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Header

from api.auth import auth_responses, require_trigger_secret, requires
from api.deps import CharacterName, ContainerDep, UserId
from api.schemas import CONFLICT, FORBIDDEN, UNAUTHORIZED, MessageCreatedEvent, TriggerPublic
from services.errors import ConflictError

log = logging.getLogger(__name__)


router = APIRouter(tags=["triggers"])


@router.post(
    "/firebase/message-created",
    dependencies=[Depends(require_trigger_secret)],
    responses={**CONFLICT, **UNAUTHORIZED, **FORBIDDEN},
)
def message_created(
    event: MessageCreatedEvent,
    container: ContainerDep,
    idempotency_key: Annotated[str | None, Header(max_length=256)] = None,
) -> TriggerPublic:
    """Called when a message is written: starts a batch in the background once enough are unsynced.

    A repeated event id (`event_id`, or the `Idempotency-Key` header) is acknowledged with the current
    counts and `duplicate: true`, and starts nothing.
    """
    if event.event_id and idempotency_key and event.event_id != idempotency_key:
        raise ConflictError("event_id and the Idempotency-Key header name different events")
    event_id = event.event_id or idempotency_key
    user_id, character_name = event.user_id, event.character_name
    if event_id is None:
        return TriggerPublic(**asdict(container.processor.trigger(user_id, character_name)))
    result = container.trigger_events.once(event_id, lambda: container.processor.trigger(user_id, character_name))
    if result is not None:
        return TriggerPublic(**asdict(result))
    log.info("trigger event %s was delivered before; nothing new started", event_id)
    return TriggerPublic(
        user_id=user_id,
        character_name=character_name,
        unsynced_count=container.store.count_unsynced(user_id, character_name),
        threshold=container.processor.policy.threshold,
        batch_started=False,
        batch_id=None,
        duplicate=True,
    )


@router.post(
    "/memory/check-batch/{user_id}/{character_name}",
    dependencies=[Depends(requires("trigger"))],
    responses=auth_responses(),
)
def check_batch(user_id: UserId, character_name: CharacterName, container: ContainerDep) -> TriggerPublic:
    """Count unsynced messages and start a batch at the threshold; answers without waiting for it."""
    return TriggerPublic(**asdict(container.processor.trigger(user_id, character_name)))
