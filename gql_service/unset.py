"""The UNSET marker: a field left out of an update, as distinct from one set to None."""

from __future__ import annotations

import enum
from typing import Final, Literal


class _Unset(enum.Enum):
    UNSET = "UNSET"

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset.UNSET
Unset = Literal[_Unset.UNSET]
