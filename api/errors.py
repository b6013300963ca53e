"""HTTP status is decided here, once, for every Recall error."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from services.errors import ConfigurationError, ConflictError, DependencyError, InvalidInputError

log = logging.getLogger(__name__)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def unprocessable(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's shape without the offending `input`: it may be megabytes, someone's secret pasted in
        # the wrong field, or a lone surrogate that cannot even be encoded in the response.
        detail = [{"type": e["type"], "loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.exception_handler(ConflictError)
    async def conflict(_: Request, exc: ConflictError) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": str(exc)})

    @app.exception_handler(InvalidInputError)
    async def invalid(_: Request, exc: InvalidInputError) -> JSONResponse:
        # The same shape as FastAPI's own 422s, which is what the OpenAPI spec documents for every route.
        detail = [{"type": "value_error", "loc": [], "msg": str(exc)}]
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.exception_handler(DependencyError)
    async def unavailable(_: Request, exc: DependencyError) -> JSONResponse:
        log.warning("%s unavailable: %s", exc.component, exc)
        return JSONResponse(
            status_code=503,
            content={"detail": f"{exc.component} is unavailable; try again shortly", "component": exc.component},
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(ConfigurationError)
    async def misconfigured(_: Request, exc: ConfigurationError) -> JSONResponse:
        log.error("configuration error: %s", exc)
        return JSONResponse(status_code=500, content={"detail": "server misconfigured; see its log"})
