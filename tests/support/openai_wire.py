"""A real HTTP server speaking the OpenAI wire format: the only stand-in Recall's tests use.

It serves `POST /v1/chat/completions` and `POST /v1/embeddings` on 127.0.0.1, records every request,
and answers from a per-endpoint script (first in, first out). A script item is a `Reply` (status,
JSON body, headers), a handler `(RecordedRequest) -> Reply`, or a `Delay` that holds the answer back
(longer than the client's timeout, it makes the client time out). When an endpoint's script is empty,
its default handler answers: deterministic embeddings, and for chat one summary memory of the
conversation the extractor sent.

    with OpenAIWireServer() as server:
        server.script_chat(error(429), chat({"memories": [...]}))
        client = OpenAI(api_key="test-key", base_url=server.base_url, max_retries=1, timeout=0.5)
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import random
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from services.prompts import DATA_END, DATA_START

CHAT_PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"
DEFAULT_DIMENSIONS = 1536


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # sent as is instead of `body`, for malformed responses


Handler = Callable[[RecordedRequest], Reply]


@dataclass(frozen=True)
class Delay:
    seconds: float
    then: Reply | Handler | None = None  # None: the endpoint's default handler


ScriptItem = Reply | Handler | Delay


def error(
    status: int,
    message: str = "scripted error",
    *,
    kind: str | None = None,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """An error in OpenAI's shape; pass headers such as {"retry-after-ms": "10"} to shorten backoff."""
    if kind is None:
        kind = "rate_limit_error" if status == 429 else "server_error" if status >= 500 else "invalid_request_error"
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return Reply(status=status, body=body, headers=dict(headers or {}))


def chat(
    content: str | Mapping[str, Any] | None = None, *, refusal: str | None = None, finish_reason: str = "stop"
) -> Handler:
    """A chat completion whose first choice carries `content` (a mapping is sent as JSON text)."""
    text = json.dumps(content) if isinstance(content, Mapping) else content

    def handle(request: RecordedRequest) -> Reply:
        return Reply(body=chat_completion(request, text, refusal=refusal, finish_reason=finish_reason))

    return handle


def chat_completion(
    request: RecordedRequest, content: str | None, *, refusal: str | None = None, finish_reason: str = "stop"
) -> dict[str, Any]:
    """The body of a `chat.completion` object, as the API returns it."""
    prompt_tokens = _tokens(json.dumps(request.body.get("messages", [])))
    completion_tokens = _tokens(content or refusal or "")
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": refusal, "annotations": []}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.body.get("model", "unknown"),
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "system_fingerprint": "fp_openai_wire",
        "service_tier": "default",
    }


def summarize_conversation(request: RecordedRequest) -> Reply:
    """Default chat handler: one summary memory citing every message of the extractor's data block."""
    conversation = conversation_data(request)
    if not conversation:
        return error(400, f"no {DATA_START} block with messages in the last user message")
    memory = {
        "text": f"The user talked with the assistant over {len(conversation)} messages.",
        "type": "summary",
        "importance": 0.3,
        "source_message_ids": [row["id"] for row in conversation],
        "occurred_at": None,
    }
    return chat({"memories": [memory]})(request)


def conversation_data(request: RecordedRequest) -> list[dict[str, Any]]:
    """The JSON rows between the data delimiters of the last user message, or [] if there are none."""
    users = [m for m in request.body.get("messages", []) if m.get("role") == "user"]
    content = users[-1].get("content", "") if users else ""
    start, end = content.find(DATA_START), content.rfind(DATA_END)
    if start < 0 or end < start:
        return []
    try:
        rows = json.loads(content[start + len(DATA_START) : end])
    except json.JSONDecodeError:
        return []
    return rows if isinstance(rows, list) else []


def embeddings_body(request: RecordedRequest) -> dict[str, Any]:
    """The body of an embeddings `list`: one deterministic unit vector per input, in input order."""
    body = request.body
    dimensions = int(body.get("dimensions") or DEFAULT_DIMENSIONS)
    texts = _inputs(body.get("input"))
    as_base64 = body.get("encoding_format") == "base64"
    data = [
        {"object": "embedding", "index": i, "embedding": _encode(vector_for(text, dimensions), as_base64)}
        for i, text in enumerate(texts)
    ]
    tokens = sum(_tokens(text) for text in texts)
    return {
        "object": "list",
        "data": data,
        "model": body.get("model", "unknown"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def embeddings(request: RecordedRequest) -> Reply:
    """Default embeddings handler."""
    return Reply(body=embeddings_body(request))


def vector_for(text: str, dimensions: int) -> list[float]:
    """A unit vector derived from a hash of `text`: equal texts, equal vectors, across runs."""
    rng = random.Random(hashlib.sha256(text.encode()).digest())
    vector = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


def _encode(vector: list[float], as_base64: bool) -> list[float] | str:
    # The API's base64 form is little-endian float32, which the SDK asks for by default.
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if as_base64 else vector


def _inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [item if isinstance(item, str) else json.dumps(item) for item in value or []]


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


class OpenAIWireServer:
    """The server; a context manager, or start() and stop()."""

    def __init__(
        self,
        *,
        chat_handler: Handler = summarize_conversation,
        embeddings_handler: Handler = embeddings,
        api_key: str | None = None,
    ) -> None:
        self._defaults: dict[str, Handler] = {CHAT_PATH: chat_handler, EMBEDDINGS_PATH: embeddings_handler}
        self._scripts: dict[str, deque[ScriptItem]] = {CHAT_PATH: deque(), EMBEDDINGS_PATH: deque()}
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._api_key = api_key
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> OpenAIWireServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        self._httpd.daemon_threads = True
        # A short poll interval: shutdown() waits for one, and every test stops a server.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="openai-wire", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers held in a Delay, so none outlives the server
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OpenAIWireServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def script_chat(self, *items: ScriptItem) -> None:
        self._enqueue(CHAT_PATH, items)

    def script_embeddings(self, *items: ScriptItem) -> None:
        self._enqueue(EMBEDDINGS_PATH, items)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return self.requests_to(CHAT_PATH)

    @property
    def embedding_requests(self) -> list[RecordedRequest]:
        return self.requests_to(EMBEDDINGS_PATH)

    def _enqueue(self, path: str, items: tuple[ScriptItem, ...]) -> None:
        with self._lock:
            self._scripts[path].extend(items)

    def _answer(self, request: RecordedRequest) -> tuple[float, Reply]:
        """Record the request and choose its answer: (seconds to hold it back, reply)."""
        with self._lock:
            self._requests.append(request)
            script = self._scripts.get(request.path)
            item = script.popleft() if script else None
        if request.path not in self._defaults:
            return 0.0, error(404, f"Invalid URL (POST {request.path})", code="unknown_url")
        if self._api_key and request.headers.get("authorization") != f"Bearer {self._api_key}":
            return 0.0, error(401, "Incorrect API key provided", code="invalid_api_key")
        delay = 0.0
        if isinstance(item, Delay):
            delay, item = item.seconds, item.then
        item = item or self._defaults[request.path]
        return delay, item if isinstance(item, Reply) else _run(item, request)


def _run(handler: Handler, request: RecordedRequest) -> Reply:
    try:
        return handler(request)
    except Exception as exc:  # a broken test handler: say so plainly, and stop the SDK from retrying it
        return error(500, f"wire handler failed: {exc!r}", headers={"x-should-retry": "false"})


def _handler_class(server: OpenAIWireServer) -> type[BaseHTTPRequestHandler]:
    class WireHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects

        def do_POST(self) -> None:
            # The client may have given up first (a timeout under test): then nothing is left to answer.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._serve()

        def _serve(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            try:
                body = json.loads(raw or b"null")
            except json.JSONDecodeError:
                self._send(error(400, "We could not parse the JSON body of your request."))
                return
            headers = {name.lower(): value for name, value in self.headers.items()}
            delay, reply = server._answer(RecordedRequest(self.path, headers, body))
            if delay and server._stopping.wait(delay):
                self.close_connection = True  # the server is stopping: end this connection's thread too
                return
            self._send(reply)

        def _send(self, reply: Reply) -> None:
            payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
            self.send_response(reply.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.send_header("x-request-id", f"req_{uuid.uuid4().hex[:16]}")
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean; the recorded requests say what happened

    return WireHandler
