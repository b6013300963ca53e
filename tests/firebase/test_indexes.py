"""Every query the code makes has its index declared in firestore.indexes.json.

The emulator serves any query without an index; real Firestore refuses one that needs a composite index
(or a collection-group single-field index) that is not deployed. So this test runs the real code paths
against the emulator through a client that records each query on the wire, works out the index each
needs, and looks for it in firestore.indexes.json. A source scan makes sure no query-building function
in `services/` is left out of the exercise.
"""

from __future__ import annotations

import ast
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore_v1.types import StructuredQuery

from services.container import Container
from services.message_listener import MessageListener
from services.message_store import MessageStore
from services.sweeper import Sweeper

ROOT = Path(__file__).resolve().parents[2]
INDEXES = json.loads((ROOT / "firestore.indexes.json").read_text())
PROJECT = "demo-recall-indexes"  # its own database: the sweep must not touch other tests' messages
_OP = StructuredQuery.FieldFilter.Operator
_RANGE_OPS = {_OP.LESS_THAN, _OP.LESS_THAN_OR_EQUAL, _OP.GREATER_THAN, _OP.GREATER_THAN_OR_EQUAL, _OP.NOT_EQUAL}
_QUERY_CALLS = {"where", "order_by", "collection_group"}


class QueryRecorder(grpc.UnaryStreamClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Notes the structured query of every RunQuery, RunAggregationQuery and Listen request."""

    def __init__(self) -> None:
        self.queries: list[StructuredQuery] = []

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        self._note(request)
        return continuation(details, request)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Iterator[Any]) -> Any:
        def noted() -> Iterator[Any]:
            for request in requests:
                self._note(request)
                yield request

        return continuation(details, noted())

    def _note(self, request: Any) -> None:
        name = type(request).__name__
        if name == "RunQueryRequest":
            self.queries.append(request.structured_query)
        elif name == "RunAggregationQueryRequest":
            self.queries.append(request.structured_aggregation_query.structured_query)
        elif name == "ListenRequest" and "add_target" in request and "query" in request.add_target:
            self.queries.append(request.add_target.query.structured_query)


class RecordingClient(firestore.Client):
    """The real client on the emulator, with the recorder on its gRPC channel."""

    def __init__(self, recorder: QueryRecorder) -> None:
        super().__init__(project=PROJECT, credentials=AnonymousCredentials())
        self.recorder = recorder

    def _emulator_channel(self, transport: Any) -> Any:
        return grpc.intercept_channel(super()._emulator_channel(transport), self.recorder)


@dataclass(frozen=True)
class Need:
    """The index one query needs: equality fields (any order), then ordered fields with directions."""

    collection: str
    scope: str  # COLLECTION | COLLECTION_GROUP
    equalities: frozenset[str]
    orders: tuple[tuple[str, str], ...]

    @property
    def fields(self) -> set[str]:
        return set(self.equalities) | {f for f, _ in self.orders}


def need_of(query: StructuredQuery) -> Need:
    source = query.from_[0]
    equalities, ranges = set(), []
    for f in _field_filters(query.where):
        if f.op == _OP.EQUAL:
            equalities.add(f.field.field_path)
        elif f.op in _RANGE_OPS:
            ranges.append(f.field.field_path)
    orders = [(o.field.field_path, o.direction.name) for o in query.order_by if o.field.field_path != "__name__"]
    # Firestore orders by an inequality field first, implicitly, when the query does not.
    orders += [(f, "ASCENDING") for f in ranges if f not in {name for name, _ in orders}]
    scope = "COLLECTION_GROUP" if source.all_descendants else "COLLECTION"
    return Need(source.collection_id, scope, frozenset(equalities), tuple(orders))


def _field_filters(where: StructuredQuery.Filter) -> Iterator[StructuredQuery.FieldFilter]:
    if "field_filter" in where:
        yield where.field_filter
    elif "composite_filter" in where:
        for sub in where.composite_filter.filters:
            yield from _field_filters(sub)


def served_by_declared_index(need: Need) -> bool:
    if len(need.fields) <= 1:
        return _single_field_served(need)
    return any(_composite_serves(index, need) for index in INDEXES["indexes"])


def _single_field_served(need: Need) -> bool:
    if not need.fields:
        return True
    (field,) = need.fields
    order = need.orders[0][1] if need.orders else "ASCENDING"
    overrides = [
        o
        for o in INDEXES.get("fieldOverrides", [])
        if (o["collectionGroup"], o["fieldPath"])
        == (
            need.collection,
            field,
        )
    ]
    if not overrides:
        # Firestore keeps single-field indexes for collection queries only, unless told otherwise.
        return need.scope == "COLLECTION"
    # An override replaces the automatic indexes of that field: it must list what is needed.
    return any(i.get("order") == order and i["queryScope"] == need.scope for i in overrides[0]["indexes"])


def _composite_serves(index: dict[str, Any], need: Need) -> bool:
    if (index["collectionGroup"], index["queryScope"]) != (need.collection, need.scope):
        return False
    fields = [(f["fieldPath"], f.get("order")) for f in index["fields"] if f["fieldPath"] != "__name__"]
    head, tail = fields[: len(need.equalities)], fields[len(need.equalities) :]
    return {f for f, _ in head} == need.equalities and tuple(tail) == need.orders


def query_functions() -> set[str]:
    """`module.Class.function` of every public function in services/ that makes a Firestore query.

    A private helper's query counts as made by the public functions of its class or module that call it.
    """
    found = set()
    for path in sorted((ROOT / "services").glob("*.py")):
        for owner, functions in _scopes(ast.parse(path.read_text())):
            calls = {name: _attribute_calls(fn) | _name_calls(fn) for name, fn in functions.items()}
            pending, seen = {n for n, c in calls.items() if c & _QUERY_CALLS}, set()
            while pending:
                name = pending.pop()
                seen.add(name)
                if not name.startswith("_"):
                    found.add(".".join(filter(None, [path.stem, owner, name])))
                else:
                    pending |= {n for n, c in calls.items() if name in c} - seen
    return found


def _scopes(tree: ast.Module) -> Iterator[tuple[str | None, dict[str, ast.FunctionDef]]]:
    yield None, {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        yield cls.name, {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}


def _attribute_calls(fn: ast.FunctionDef) -> set[str]:
    return {n.func.attr for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}


def _name_calls(fn: ast.FunctionDef) -> set[str]:
    return {n.func.id for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


def _listen_once(client: firestore.Client, recorder: QueryRecorder) -> None:
    listener = MessageListener(client, lambda user_id, character_name: None)
    before = len(recorder.queries)
    listener.start()
    try:
        deadline = time.monotonic() + 10
        while len(recorder.queries) == before and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        listener.stop()


def _watch_once(store: MessageStore, user: str, char: str) -> None:
    delivered = threading.Event()
    watch = store.watch_recent_unsynced(user, char, 8, lambda _turns: delivered.set())
    try:
        assert delivered.wait(10), "the recent-turns listener delivered no view"
    finally:
        watch.unsubscribe()


def exercises(client: RecordingClient, container: Container) -> dict[str, Callable[[], object]]:
    """Each query-building function, run for real against the emulator."""
    store = MessageStore(client)
    user, char = f"user-{uuid.uuid4().hex[:8]}", "meher"
    return {
        "message_store.MessageStore.count_unsynced": lambda: store.count_unsynced(user, char),
        "message_store.MessageStore.count_synced": lambda: store.count_synced(user, char),
        "message_store.MessageStore.recent_unsynced": lambda: store.recent_unsynced(user, char, 8),
        "message_store.MessageStore.watch_recent_unsynced": lambda: _watch_once(store, user, char),
        "message_store.MessageStore.claim": lambda: store.claim(
            user, char, batch_id="b1", max_messages=10, min_messages=1, lease_seconds=1
        ),
        "message_store.MessageStore.last_batch": lambda: store.last_batch(user, char),
        "message_listener.MessageListener.start": lambda: _listen_once(client, client.recorder),
        "sweeper.Sweeper.sweep": lambda: Sweeper(client, store, container.processor, 900).sweep(),
    }


@pytest.fixture
def recorded(emulator_host: str, container: Container) -> tuple[list[StructuredQuery], set[str]]:
    client = RecordingClient(QueryRecorder())
    try:
        calls = exercises(client, container)
        missing = query_functions() - set(calls)
        for call in calls.values():
            call()
        return client.recorder.queries, missing
    finally:
        client.close()


def test_every_query_building_function_is_exercised(recorded: tuple[list[StructuredQuery], set[str]]) -> None:
    _, missing = recorded
    assert not missing, f"these build Firestore queries; add them to `exercises` in this test: {sorted(missing)}"


def test_every_query_has_its_index_declared(recorded: tuple[list[StructuredQuery], set[str]]) -> None:
    queries, _ = recorded
    needs = {need_of(q) for q in queries}
    assert len(needs) >= 5, needs  # counts, claim, recent turns, batches, listener, sweep
    undeclared = [n for n in needs if not served_by_declared_index(n)]
    assert not undeclared, f"add these to firestore.indexes.json: {undeclared}"


def test_every_declared_composite_index_is_used(recorded: tuple[list[StructuredQuery], set[str]]) -> None:
    queries, _ = recorded
    needs = {need_of(q) for q in queries if len(need_of(q).fields) > 1}
    unused = [i for i in INDEXES["indexes"] if not any(_composite_serves(i, n) for n in needs)]
    assert not unused, f"no query needs these (each costs every write): {unused}"


def test_the_trigger_events_ttl_policy_is_declared() -> None:
    ttl = [o for o in INDEXES["fieldOverrides"] if o.get("ttl")]
    assert [(o["collectionGroup"], o["fieldPath"], o["indexes"]) for o in ttl] == [("trigger_events", "expires_at", [])]
