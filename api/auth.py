"""Route dependencies that authenticate the caller, check its scope and user, and apply its rate limit.

Missing or unknown credentials: 401 with `WWW-Authenticate: Bearer`. A valid credential without the
scope, or an end user's token on another user's path: 403. Over the limit: 429 with `Retry-After`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.schemas import FORBIDDEN, RATE_LIMITED, UNAUTHORIZED
from services.auth import Authenticator, AuthError, Principal
from services.config import Scope
from services.rate_limit import RateLimiter, retry_after_header

log = logging.getLogger(__name__)

_bearer = HTTPBearer(
    auto_error=False,
    description="a service API key (`rk_...`), an end user's Firebase ID token, or on "
    "POST /firebase/message-created only, the Cloud Function's RECALL_TRIGGER_SECRET",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
RateClass = Literal["read", "write"]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def _authenticator(request: Request) -> Authenticator:
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator


def requires(scope: Scope, rate: RateClass | None = None) -> Callable[..., Principal]:
    """A dependency: the caller, with `scope`, allowed on the path's user_id, within its rate limit."""

    def dependency(request: Request, credentials: Credentials) -> Principal:
        if credentials is None:
            raise _unauthorized("credentials required: send Authorization: Bearer <API key or Firebase ID token>")
        authenticator = _authenticator(request)
        try:
            principal = authenticator.authenticate(credentials.credentials)
        except AuthError as exc:
            if authenticator.is_trigger_secret(credentials.credentials):
                raise HTTPException(403, "the trigger secret opens POST /firebase/message-created only") from exc
            log.info("refused a %s call: %s", request.url.path.split("/")[1], exc)
            raise _unauthorized("invalid credentials: an unknown API key or an invalid, expired ID token") from exc
        if not principal.has(scope):
            raise HTTPException(403, f"this credential does not have the '{scope}' scope")
        user_id = request.path_params.get("user_id")
        if user_id is not None and not principal.may_touch(user_id):
            raise HTTPException(403, "this credential may not access another user's data")
        if rate is not None:
            limiter: RateLimiter = request.app.state.rate_limiter
            wait = limiter.take(principal.rate_key, rate, principal.rate_per_minute)
            if wait is not None:
                raise HTTPException(
                    429,
                    f"rate limit exceeded: {principal.rate_per_minute} {rate} calls a minute for this credential",
                    headers={"Retry-After": retry_after_header(wait)},
                )
        return principal

    return dependency


def require_trigger_secret(request: Request, credentials: Credentials) -> None:
    """The Cloud Function's secret and nothing else; every call is refused while none is configured."""
    if credentials is None:
        raise _unauthorized("the Cloud Function's trigger secret is required")
    authenticator = _authenticator(request)
    if authenticator.is_trigger_secret(credentials.credentials):
        return
    try:
        authenticator.authenticate(credentials.credentials)
    except AuthError:
        log.warning("refused a trigger call with a wrong credential")
        raise _unauthorized("the Cloud Function's trigger secret is required") from None
    raise HTTPException(403, "only the Cloud Function's trigger secret may call this endpoint")


def auth_responses(rate: bool = False) -> dict[int | str, dict[str, Any]]:
    return {**UNAUTHORIZED, **FORBIDDEN, **(RATE_LIMITED if rate else {})}
