"""The Recall API: `uvicorn api.main:app`, or `create_app()` with a ready container in tests."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.routes import memory, messages, triggers
from api.schemas import COMMON_ERRORS
from services.config import Settings, get_settings
from services.container import Container, set_container
from services.message_listener import MessageListener
from services.sweeper import PeriodicSweep


def create_app(settings: Settings | None = None, container: Container | None = None) -> FastAPI:
    """The app; it builds (and later closes) its own container unless one is handed in."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = container is None
        app.state.container = Container.build(settings or get_settings()) if owned else container
        set_container(app.state.container)
        settings_now = app.state.container.settings
        listener, sweep = None, None
        if settings_now.listener_enabled:
            listener = MessageListener(app.state.container.firestore, app.state.container.processor.trigger)
            listener.start()
            if settings_now.sweep_interval_seconds > 0:
                sweep = PeriodicSweep(app.state.container.sweeper, settings_now.sweep_interval_seconds)
                sweep.start()
        try:
            yield
        finally:
            if sweep is not None:
                sweep.stop()
            if listener is not None:
                listener.stop()
            set_container(None)
            if owned:
                app.state.container.close()

    app = FastAPI(
        title="Recall",
        summary="Conversation memory for chat and voice: Firestore in, Qdrant memories out.",
        version="0.1.0",
        lifespan=lifespan,
        responses=COMMON_ERRORS,
    )
    install_error_handlers(app)
    for router in (messages.router, triggers.router, memory.router):
        app.include_router(router)
    return app


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


_configure_logging()
app = create_app()
