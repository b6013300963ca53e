from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from api.auth import auth_responses, requires
from api.deps import CharacterName, ContainerDep, UserId
from api.schemas import (
    ComponentHealth,
    ContextPublic,
    ContextRequest,
    HealthPublic,
    MemoryPublic,
    MessagePublic,
    SearchResults,
    StatsPublic,
    SweepPublic,
)
from services.health import check_health
from services.memory_integration import compose_prompt
from services.vector_store import SearchKind

router = APIRouter(prefix="/memory", tags=["memory"])

_READER = [Depends(requires("read", rate="read"))]
_READER_ERRORS = auth_responses(rate=True)


@router.get("/search/{user_id}/{character_name}", dependencies=_READER, responses=_READER_ERRORS)
def search(
    user_id: UserId,
    character_name: CharacterName,
    container: ContainerDep,
    query: Annotated[str, Query(min_length=1, max_length=1000)],
    limit: Annotated[int, Query(ge=1, le=50)] = 5,
    kind: Annotated[SearchKind, Query(description="memories: extracted only; episodes: quoted turns only")] = "all",
) -> SearchResults:
    """The memories and episodes of this user and character most relevant to `query`."""
    hits = container.integration.search(user_id, character_name, query, limit, kind=kind)
    return SearchResults(query=query, results=[MemoryPublic.of_hit(h) for h in hits])


@router.get("/stats/{user_id}/{character_name}", dependencies=_READER, responses=_READER_ERRORS)
def stats(user_id: UserId, character_name: CharacterName, container: ContainerDep) -> StatsPublic:
    store = container.store
    return StatsPublic(
        user_id=user_id,
        character_name=character_name,
        total_memories=container.vectors.count(user_id, character_name, "memories"),
        episodes=container.vectors.count(user_id, character_name, "episodes"),
        synced_messages=store.count_synced(user_id, character_name),
        unsynced_messages=store.count_unsynced(user_id, character_name),
        threshold=container.processor.policy.threshold,
        last_batch=store.last_batch(user_id, character_name),
    )


@router.post("/context/{user_id}/{character_name}", dependencies=_READER, responses=_READER_ERRORS)
async def context(
    user_id: UserId, character_name: CharacterName, body: ContextRequest, container: ContainerDep
) -> ContextPublic:
    """The enriched system prompt for the current message; the base prompt unchanged if memory fails."""
    ctx = await container.integration.get_conversation_context(
        user_id=user_id,
        character_name=character_name,
        current_message=body.current_message,
        channel=body.channel,
    )
    return ContextPublic(
        prompt=compose_prompt(body.base_system_prompt, ctx),
        context=ctx.text,
        memories=[MemoryPublic.of_hit(h) for h in ctx.memories],
        recent_turns=[MessagePublic.of(m) for m in ctx.recent_turns],
        tokens=ctx.tokens,
        elapsed_ms=ctx.elapsed_ms,
        degraded=ctx.degraded,
        reason=ctx.reason,
    )


@router.post("/sweep", dependencies=[Depends(requires("admin"))], responses=auth_responses())
def sweep(container: ContainerDep) -> SweepPublic:
    """Flush conversations that stayed below the threshold for the quiet period; for a scheduler to call."""
    report = container.sweeper.sweep()
    return SweepPublic(
        scanned_messages=report.scanned_messages,
        quiet_conversations=report.quiet_conversations,
        batches_started=report.batches,
        errors=report.errors,
    )


@router.get("/health", response_model=HealthPublic)
def health(container: ContainerDep) -> JSONResponse:
    """Overall status and each component's, with latency; 503 when any component is degraded. No credentials."""
    components = check_health(container)
    ok = all(c.status == "ok" for c in components.values())
    body = HealthPublic(
        status="ok" if ok else "degraded", components={k: ComponentHealth(**asdict(v)) for k, v in components.items()}
    )
    return JSONResponse(status_code=200 if ok else 503, content=body.model_dump())
