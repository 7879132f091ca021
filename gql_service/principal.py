"""Who is acting: the seam where authentication will plug in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gql_service.settings import Settings


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller, as recorded in createdBy / modifiedBy."""

    name: str


def principal_for(headers: Mapping[str, str], settings: Settings) -> Principal:
    """The acting user of a request.

    Until authentication lands every request acts as the configured placeholder user; request
    headers are deliberately not trusted, so no client can write someone else's name.
    """
    del headers
    return Principal(settings.acting_user)
