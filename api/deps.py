"""Typed dependencies: routes take these as parameters."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from pydantic import AfterValidator

from services.container import Container
from services.models import ID_PATTERN, check_path_id


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]

_SEGMENT = "one path segment: 1-128 characters, no '/', no control characters, not '.', '..' or '__...__'"
UserId = Annotated[str, Path(pattern=ID_PATTERN, max_length=128, description=_SEGMENT), AfterValidator(check_path_id)]
CharacterName = Annotated[
    str, Path(pattern=ID_PATTERN, max_length=128, description=_SEGMENT), AfterValidator(check_path_id)
]
