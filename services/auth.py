"""Who is calling: service API keys, end users' Firebase ID tokens, and the Cloud Function's secret.

Service keys are random strings (`rk_` + 43 url-safe characters, from `python -m scripts.api_key`), so
Recall keeps only their sha256 and compares digests in constant time against every configured key.
End users present a Firebase ID token, verified with firebase-admin; they get `read` and `write` on
their own user_id and nothing else. The trigger secret is a credential of its own: it opens
`POST /firebase/message-created` and nothing else, and no key opens that endpoint.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import firebase_admin
import google.auth.credentials
import google.auth.exceptions
from firebase_admin import auth as firebase_auth
from firebase_admin import credentials as firebase_credentials
from pydantic import SecretStr, TypeAdapter, ValidationError

from services.config import SCOPES, ApiKeyEntry, Scope, Settings
from services.errors import ConfigurationError, DependencyError

log = logging.getLogger(__name__)

KEY_PREFIX = "rk_"
CLOCK_SKEW_SECONDS = 10
USER_SCOPES: frozenset[Scope] = frozenset({"read", "write"})
DEV_KEY_NAME = "dev"
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


class AuthError(Exception):
    """The credential is missing, malformed, unknown, expired or revoked: HTTP 401."""


class AuthServiceError(DependencyError):
    """The ID token could not be checked (Google's public keys out of reach): HTTP 503."""

    component = "auth"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. `user_id` is set for end users: the only user they may touch."""

    kind: Literal["service", "user"]
    name: str
    scopes: frozenset[Scope]
    rate_per_minute: int
    user_id: str | None = None

    def has(self, scope: Scope) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    def may_touch(self, user_id: str) -> bool:
        return self.user_id is None or hmac.compare_digest(self.user_id.encode(), user_id.encode())

    @property
    def rate_key(self) -> str:
        return f"{self.kind}:{self.name}"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class _StoredKey:
    entry: ApiKeyEntry
    digest: bytes


class KeyRing:
    """The configured service keys, by digest; `find` looks at every one whatever matches."""

    def __init__(self, entries: list[ApiKeyEntry], default_rate: int) -> None:
        names = [e.name for e in entries]
        clashes = sorted({n for n in names if names.count(n) > 1})
        if clashes:
            raise ConfigurationError(f"API key names must be unique; repeated: {', '.join(clashes)}")
        self._keys = [_StoredKey(e, bytes.fromhex(e.sha256)) for e in entries]
        self._default_rate = default_rate

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        entries = list(settings.recall_api_keys)
        if settings.recall_api_keys_file is not None:
            entries += load_key_file(settings.recall_api_keys_file)
        if settings.recall_dev_api_key is not None:
            if not settings.firestore_emulator_host:
                raise ConfigurationError(
                    "RECALL_DEV_API_KEY is for local development on the emulator; with real Firestore, "
                    "configure RECALL_API_KEYS or RECALL_API_KEYS_FILE (see README, Security)"
                )
            dev = settings.recall_dev_api_key.get_secret_value()
            entries.append(ApiKeyEntry(name=DEV_KEY_NAME, sha256=digest(dev), scopes=list(SCOPES)))
        return cls(entries, settings.rate_limit_per_minute)

    @property
    def names(self) -> list[str]:
        return [k.entry.name for k in self._keys]

    def find(self, presented: str) -> Principal | None:
        wanted = hashlib.sha256(presented.encode()).digest()
        found: ApiKeyEntry | None = None
        for key in self._keys:  # no early exit: the time taken does not depend on which key matched
            if hmac.compare_digest(key.digest, wanted):
                found = key.entry
        if found is None:
            return None
        rate = self._default_rate if found.rate_per_minute is None else found.rate_per_minute
        return Principal("service", found.name, frozenset(found.scopes), rate)


def load_key_file(path: Path) -> list[ApiKeyEntry]:
    try:
        raw = json.loads(path.read_text())
        return TypeAdapter(list[ApiKeyEntry]).validate_python(raw)
    except OSError as exc:
        raise ConfigurationError(f"cannot read RECALL_API_KEYS_FILE {path}: {exc.strerror}") from exc
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ConfigurationError(
            f"RECALL_API_KEYS_FILE {path} is not a JSON list of {{name, sha256, scopes}} entries: {exc}"
        ) from exc


class _Anonymous(firebase_credentials.Base):
    """Checking an ID token needs Google's public keys, which anyone may fetch: no service account."""

    def get_credential(self) -> google.auth.credentials.Credentials:
        return google.auth.credentials.AnonymousCredentials()


class FirebaseTokens:
    """Verifies end users' Firebase ID tokens for this project (unsigned ones only under the auth emulator)."""

    def __init__(self, project_id: str, rate_per_minute: int) -> None:
        self._project_id = project_id
        self._rate = rate_per_minute
        self._app: firebase_admin.App | None = None
        self._lock = threading.Lock()

    def _firebase_app(self) -> firebase_admin.App:
        with self._lock:
            if self._app is None:
                name = f"recall-auth-{id(self)}"
                options = {"projectId": self._project_id}
                self._app = firebase_admin.initialize_app(_Anonymous(), options=options, name=name)
            return self._app

    def verify(self, token: str) -> Principal:
        try:
            claims = firebase_auth.verify_id_token(
                token, app=self._firebase_app(), clock_skew_seconds=CLOCK_SKEW_SECONDS
            )
        except (firebase_auth.CertificateFetchError, google.auth.exceptions.GoogleAuthError) as exc:
            raise AuthServiceError("cannot fetch Google's public keys to check the ID token") from exc
        except (ValueError, firebase_auth.InvalidIdTokenError) as exc:
            # Expired, revoked, another project's, badly signed or not a JWT at all.
            raise AuthError(type(exc).__name__) from exc
        uid = claims.get("uid") or claims.get("sub")
        if not isinstance(uid, str) or not uid:
            raise AuthError("ID token without a user id")
        # firebase-admin skips the expiry check on the Auth emulator's tokens; Recall never does.
        expires = claims.get("exp")
        if not isinstance(expires, int | float) or expires < time.time() - CLOCK_SKEW_SECONDS:
            raise AuthError("expired ID token")
        return Principal("user", uid, USER_SCOPES, self._rate, user_id=uid)

    def close(self) -> None:
        with self._lock:
            if self._app is not None:
                firebase_admin.delete_app(self._app)
                self._app = None


class Authenticator:
    """Turns a bearer credential into a Principal, or raises AuthError."""

    def __init__(self, keys: KeyRing, tokens: FirebaseTokens | None, trigger_secret: SecretStr | None) -> None:
        self.keys = keys
        self.tokens = tokens
        self._trigger_secret = trigger_secret

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        tokens = None
        if settings.firebase_auth_enabled:
            tokens = FirebaseTokens(settings.google_cloud_project, settings.rate_limit_user_per_minute)
        return cls(KeyRing.from_settings(settings), tokens, settings.recall_trigger_secret)

    def authenticate(self, credential: str) -> Principal:
        if credential.startswith(KEY_PREFIX) or self.tokens is None or credential.count(".") != 2:
            principal = self.keys.find(credential)
            if principal is None:
                raise AuthError("unknown API key")
            return principal
        return self.tokens.verify(credential)

    def is_trigger_secret(self, credential: str) -> bool:
        if self._trigger_secret is None:
            return False
        return hmac.compare_digest(credential.encode(), self._trigger_secret.get_secret_value().encode())

    def close(self) -> None:
        if self.tokens is not None:
            self.tokens.close()


def refuse_public_without_keys(host: str, settings: Settings) -> None:
    """Serving beyond this machine needs configured keys: a development key alone is refused."""
    if host in _LOOPBACK:
        return
    if not settings.recall_api_keys and settings.recall_api_keys_file is None:
        raise ConfigurationError(
            f"refusing to serve on {host} without service keys: configure RECALL_API_KEYS or RECALL_API_KEYS_FILE "
            "(python -m scripts.api_key makes one), or serve on 127.0.0.1"
        )
