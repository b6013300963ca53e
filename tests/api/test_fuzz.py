"""The API fuzzed from its own OpenAPI spec (schemathesis): no 5xx, and every answer matches the spec.

Bounded: EXAMPLES examples per operation and generation mode (valid and invalid input), derandomised, on
the real emulator and engines, with the trigger secret configured as in production. Driven through
schemathesis' Hypothesis strategies, one operation at a time (its pytest plugin does not run under
pytest 9).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

from api.main import create_app
from services.container import Container
from services.embedder import LocalEmbedder
from tests.conftest import make_settings
from tests.support.access import ADMIN_KEY, TRIGGER_SECRET, bearer

EXAMPLES = 25


@pytest.fixture
def api_schema(emulator_host: str, tmp_path: Path, embedder: LocalEmbedder) -> Iterator[schemathesis.BaseSchema]:
    settings_ = make_settings(emulator_host, tmp_path)
    container = Container.build(settings_, embedder=embedder)
    app = create_app(container=container)
    try:
        with TestClient(app):  # runs the lifespan, so the app holds its container while it is fuzzed
            yield schemathesis.openapi.from_asgi("/openapi.json", app)
    finally:
        container.close()


def fuzz(operation: schemathesis.APIOperation, mode: GenerationMode) -> int:
    """Run up to EXAMPLES generated calls of one operation through every schemathesis check; how many ran.

    0 when the operation takes no input that could be made invalid (health, sweep).
    """
    ran = 0
    # The function's trigger takes the trigger secret, every other operation the admin key; passed to the
    # call, not generated, so schemathesis's ignored_auth check also replays each call without them.
    credential = TRIGGER_SECRET if operation.path == "/firebase/message-created" else ADMIN_KEY

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
    )
    def run(case: schemathesis.Case) -> None:
        nonlocal ran
        ran += 1
        case.call_and_validate(headers=bearer(credential))

    try:
        run()
    except Unsatisfiable:
        if mode is GenerationMode.NEGATIVE:
            return 0
        raise
    return ran


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_server_errors_and_answers_match_the_spec(api_schema: schemathesis.BaseSchema, mode: GenerationMode) -> None:
    examples = {op.label: fuzz(op, mode) for op in (r.ok() for r in api_schema.get_all_operations())}
    fuzzed = [label for label, n in examples.items() if n]
    expected = 8 if mode is GenerationMode.POSITIVE else 6  # health and sweep take no input to negate
    assert len(fuzzed) >= expected, examples
    print(f"\nfuzzed {mode.value}: {sum(examples.values())} examples over {len(fuzzed)} operations {examples}")
