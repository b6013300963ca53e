"""Credentials the tests use: service keys by scope, the trigger secret, end users' ID tokens."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from services.auth import digest
from services.config import ApiKeyEntry, Scope

TRIGGER_SECRET = "test-trigger-secret-7f3a"
ADMIN_KEY = "rk_test-admin-key-0000000000000000000000000000"
KEYS: dict[str, tuple[str, list[Scope]]] = {
    "admin": (ADMIN_KEY, ["admin"]),
    "reader": ("rk_test-reader-key-000000000000000000000000000", ["read"]),
    "writer": ("rk_test-writer-key-000000000000000000000000000", ["write"]),
    "trigger": ("rk_test-trigger-key-00000000000000000000000000", ["trigger"]),
}


def key_entries(**rate_per_minute: int) -> list[ApiKeyEntry]:
    return [
        ApiKeyEntry(name=name, sha256=digest(key), scopes=scopes, rate_per_minute=rate_per_minute.get(name))
        for name, (key, scopes) in KEYS.items()
    ]


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def key_of(name: str) -> str:
    return KEYS[name][0]


def id_token(project: str, uid: str, **claims: Any) -> str:
    """A Firebase ID token as the Auth emulator issues them: unsigned (alg "none")."""
    now = int(time.time())
    body = {
        "iss": f"https://securetoken.google.com/{project}",
        "aud": project,
        "sub": uid,
        "user_id": uid,
        "iat": now,
        "exp": now + 3600,
        "auth_time": now,
        "firebase": {"sign_in_provider": "custom", "identities": {}},
        **claims,
    }
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(body)}."


def _b64(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
