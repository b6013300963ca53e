"""Cloud Function for Firebase: forwards each new chat message's conversation to Recall's trigger.

Deployed alone (code outside `functions/` is not shipped with it), so it stays a thin, authenticated
forwarder: the batch logic lives once, in the API's `services/`. Delivery is at least once and out of
order; the API's trigger is idempotent, so a retry is harmless.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from firebase_functions import firestore_fn, logger, params

RECALL_API_URL = params.StringParam("RECALL_API_URL", description="base URL of the Recall API")
RECALL_TRIGGER_SECRET = params.SecretParam("RECALL_TRIGGER_SECRET")

# Retries stop once an event is this old: by then the API's idle sweep has flushed the conversation.
MAX_EVENT_AGE = timedelta(hours=1)
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class TriggerCall:
    url: str
    headers: dict[str, str]
    body: bytes


def build_trigger_call(api_url: str, secret: str, user_id: str, character_name: str, event_id: str) -> TriggerCall:
    """The request that tells Recall a message was created in this conversation."""
    body = {"user_id": user_id, "character_name": character_name, "event_id": event_id}
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {secret}", "Idempotency-Key": event_id}
    return TriggerCall(f"{api_url.rstrip('/')}/firebase/message-created", headers, json.dumps(body).encode())


def too_old(event_time: datetime, now: datetime) -> bool:
    return now - event_time > MAX_EVENT_AGE


def send(call: TriggerCall) -> dict[str, Any]:
    """POST the call; raises on any failure so that the platform retries the event."""
    request = urllib.request.Request(call.url, data=call.body, headers=call.headers, method="POST")
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        result: dict[str, Any] = json.loads(response.read() or b"{}")
        return result


@firestore_fn.on_document_created(
    document="users/{user_id}/characters/{character_name}/messages/{message_id}",
    secrets=[RECALL_TRIGGER_SECRET],
    retry=True,
)
def on_message_created(event: firestore_fn.Event[firestore_fn.DocumentSnapshot | None]) -> None:
    if event.data is None:
        return
    if too_old(event.time, datetime.now(UTC)):
        logger.warn("dropping an old message-created event", event_id=event.id)
        return
    call = build_trigger_call(
        RECALL_API_URL.value,
        RECALL_TRIGGER_SECRET.value,
        event.params["user_id"],
        event.params["character_name"],
        event.id,
    )
    try:
        result = send(call)
    except urllib.error.HTTPError as exc:
        if 400 <= exc.code < 500 and exc.code not in (408, 429):
            logger.error("Recall refused the trigger; not retrying", status=exc.code, event_id=event.id)
            return
        raise
    logger.info("trigger forwarded", event_id=event.id, batch_started=result.get("batch_started"))
