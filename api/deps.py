"""Typed dependencies: routes take these as parameters."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from pydantic import AfterValidator

from services.container import Container
from services.models import ID_PATTERN, ID_RESERVED_SCHEMA, check_path_id


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]

_SEGMENT = "one path segment: 1-128 characters, no '/', no control characters, not '.', '..' or '__...__'"
_ID_PATH = Path(pattern=ID_PATTERN, max_length=128, description=_SEGMENT, json_schema_extra=ID_RESERVED_SCHEMA)
UserId = Annotated[str, _ID_PATH, AfterValidator(check_path_id)]
CharacterName = Annotated[str, _ID_PATH, AfterValidator(check_path_id)]
