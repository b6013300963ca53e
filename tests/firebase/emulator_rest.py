"""The Firestore emulator's REST API, as a client SDK (with an ID token) or the emulator's admin sees it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

# The emulator treats this bearer token as an admin, as the server SDKs do on it.
OWNER = "owner"


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]

    @property
    def denied(self) -> bool:
        return self.status == 403 and self.body.get("error", {}).get("status") == "PERMISSION_DENIED"


def request(method: str, url: str, body: dict[str, Any] | None = None, token: str | None = None) -> Reply:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return Reply(response.status, json.loads(response.read() or b"{}"))
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, json.loads(exc.read() or b"{}"))


def documents_url(host: str, project: str) -> str:
    return f"http://{host}/v1/projects/{project}/databases/(default)/documents"


def load_rules(host: str, project: str, rules: str) -> Reply:
    """Install security rules for `project` only; other projects on the emulator stay open."""
    body = {"rules": {"files": [{"name": "firestore.rules", "content": rules}]}}
    return request("PUT", f"http://{host}/emulator/v1/projects/{project}:securityRules", body)


def get_document(host: str, project: str, path: str) -> dict[str, Any]:
    """A document as the REST API returns it (name, fields, createTime, updateTime), read as admin."""
    reply = request("GET", f"{documents_url(host, project)}/{path}", token=OWNER)
    assert reply.status == 200, reply
    return reply.body
