"""Cloud Function for Firebase: tells Recall's API that a conversation has a new message.

Deployed alone (code outside `functions/` is not shipped with it), so it stays a thin, authenticated
forwarder: the batch logic lives once, in the API's `services/`. Delivery is at least once and out of
order. Each call only says "look at this conversation" and carries the event id as its idempotency key:
the API counts what is unsynced itself and acknowledges a repeated event id without a new batch.
"""

# No `from __future__ import annotations`: the Firebase CLI loads this file without registering it in
# sys.modules, and a dataclass with string annotations then fails to build (dataclasses looks the module up).
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from firebase_functions import firestore_fn, logger, params

RECALL_API_URL = params.StringParam("RECALL_API_URL", description="base URL of the Recall API, https://...")
RECALL_TRIGGER_SECRET = params.SecretParam(
    "RECALL_TRIGGER_SECRET", description="shared with the API, which wants it as a Bearer token"
)

# Retries stop once an event is this old. Dropping one loses no message: it stays unsynced, and the
# next message's trigger or the API's idle sweep takes it.
MAX_EVENT_AGE = timedelta(hours=1)
TIMEOUT_S = 10.0
# Client errors that a later attempt may not get; every other 4xx is final.
_RETRYABLE_4XX = frozenset({408, 425, 429})

F = TypeVar("F", bound=Callable[..., Any])


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
    """POST the call and return the API's answer; raises urllib's errors on any failure."""
    request = urllib.request.Request(call.url, data=call.body, headers=call.headers, method="POST")
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        result: dict[str, Any] = json.loads(response.read() or b"{}")
        return result


def final_refusal(exc: urllib.error.HTTPError) -> bool:
    """True for answers a retry cannot change (a wrong secret, a bad id); False for 5xx, 429 and the like."""
    return 400 <= exc.code < 500 and exc.code not in _RETRYABLE_4XX


def _retried(fn: F) -> F:
    # firebase-functions 0.6.0 has no `retry` option on Firestore triggers and writes `retry: false` into
    # the manifest the Firebase CLI deploys from (firebase/firebase-functions-python#165). The CLI reads
    # the field for every event trigger, so it is set there.
    endpoint = getattr(fn, "__firebase_endpoint__")  # noqa: B009 - set by the SDK's decorator
    endpoint.eventTrigger["retry"] = True
    return fn


@_retried
@firestore_fn.on_document_created(
    document="users/{user_id}/characters/{character_name}/messages/{message_id}",
    secrets=[RECALL_TRIGGER_SECRET],
)
def on_message_created(event: firestore_fn.Event[firestore_fn.DocumentSnapshot | None]) -> None:
    """Forward the new message's conversation to `POST /firebase/message-created`.

    Returns normally when done or when retrying cannot help; raises so that the platform retries.
    """
    if event.data is None:
        return
    if too_old(event.time, datetime.now(UTC)):
        logger.warn(
            "dropping a message-created event that is too old to retry", event_id=event.id, time=event.time.isoformat()
        )
        return
    api_url, secret = RECALL_API_URL.value, RECALL_TRIGGER_SECRET.value
    if not api_url or not secret:
        raise RuntimeError("RECALL_API_URL and RECALL_TRIGGER_SECRET must be set")
    call = build_trigger_call(api_url, secret, event.params["user_id"], event.params["character_name"], event.id)
    try:
        result = send(call)
    except urllib.error.HTTPError as exc:
        if final_refusal(exc):
            logger.error("Recall refused the trigger; not retrying", status=exc.code, event_id=event.id)
            return
        raise
    logger.info(
        "trigger forwarded",
        event_id=event.id,
        batch_started=result.get("batch_started"),
        duplicate=bool(result.get("duplicate")),
    )
