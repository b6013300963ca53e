"""The Recall API: `uvicorn api.main:app`, or `create_app()` with a ready container in tests."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.limits import BodyLimit
from api.routes import memory, messages, triggers
from api.schemas import COMMON_ERRORS
from services.auth import Authenticator
from services.config import Settings, get_settings
from services.container import Container, set_container
from services.message_listener import MessageListener
from services.rate_limit import RateLimiter
from services.sweeper import PeriodicSweep

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, container: Container | None = None) -> FastAPI:
    """The app; it builds (and later closes) its own container unless one is handed in."""
    config = container.settings if container is not None else settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = container is None
        # Access first: a wrong key file stops start-up before the model loads.
        app.state.authenticator = Authenticator.from_settings(config)
        app.state.rate_limiter = RateLimiter()
        log_access(app.state.authenticator, config)
        app.state.container = Container.build(config) if owned else container
        settings_now = app.state.container.settings
        set_container(app.state.container)
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
            app.state.authenticator.close()
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
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    for router in (messages.router, triggers.router, memory.router):
        app.include_router(router)
    return app


def log_access(authenticator: Authenticator, settings: Settings) -> None:
    """What the API accepts, by name only: never a key, a digest or the secret."""
    names = authenticator.keys.names
    log.info(
        "access: %d service key(s)%s; Firebase ID tokens %s; trigger secret %s",
        len(names),
        f" ({', '.join(names)})" if names else "",
        "accepted" if authenticator.tokens is not None else "off",
        "set" if settings.recall_trigger_secret else "not set: POST /firebase/message-created refuses every call",
    )


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


_configure_logging()
app = create_app()
