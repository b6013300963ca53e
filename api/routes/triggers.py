"""The batch trigger, called by the Cloud Function (authenticated, idempotent per event) or by path."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import CharacterName, ContainerDep, UserId
from api.schemas import CONFLICT, UNAUTHORIZED, MessageCreatedEvent, TriggerPublic
from services.container import Container
from services.errors import ConflictError

log = logging.getLogger(__name__)


@asynccontextmanager
async def _warn_if_open(app: FastAPI) -> AsyncIterator[None]:
    # Runs inside the app's lifespan, once its container is built.
    container: Container = app.state.container
    if not container.settings.recall_trigger_secret:
        log.warning("RECALL_TRIGGER_SECRET is not set: POST /firebase/message-created accepts any caller")
    yield


router = APIRouter(tags=["triggers"], lifespan=_warn_if_open)

_bearer = HTTPBearer(auto_error=False, description="the Cloud Function's RECALL_TRIGGER_SECRET")


def require_trigger_secret(
    container: ContainerDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """401 unless the caller presents the trigger secret; open when none is configured (make run)."""
    secret = container.settings.recall_trigger_secret
    if not secret:
        return
    presented = credentials.credentials if credentials else ""
    if not hmac.compare_digest(presented.encode(), secret.encode()):
        log.warning("refused a trigger call without the right secret (%s)", "wrong" if presented else "none")
        raise HTTPException(401, "a valid trigger secret is required", headers={"WWW-Authenticate": "Bearer"})


@router.post(
    "/firebase/message-created", dependencies=[Depends(require_trigger_secret)], responses={**CONFLICT, **UNAUTHORIZED}
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


@router.post("/memory/check-batch/{user_id}/{character_name}")
def check_batch(user_id: UserId, character_name: CharacterName, container: ContainerDep) -> TriggerPublic:
    """Count unsynced messages and start a batch at the threshold; answers without waiting for it."""
    return TriggerPublic(**asdict(container.processor.trigger(user_id, character_name)))
