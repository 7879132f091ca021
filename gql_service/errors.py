"""Stable error codes and the typed violations that the rules and services report."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from gql_service.messages import Message
from gql_service.records import QuoteRecord


class ErrorCode(enum.StrEnum):
    """Every stable code of ``domain.md``; codes are added, never renamed or reused."""

    NOT_FOUND = "NOT_FOUND"
    CONCURRENCY_CONFLICT = "CONCURRENCY_CONFLICT"
    OPPORTUNITY_ALREADY_CLOSED = "OPPORTUNITY_ALREADY_CLOSED"
    OPPORTUNITY_NOT_CLOSED = "OPPORTUNITY_NOT_CLOSED"
    OPPORTUNITY_HAS_OPEN_QUOTES = "OPPORTUNITY_HAS_OPEN_QUOTES"
    INVALID_STATUS_REASON = "INVALID_STATUS_REASON"
    QUOTE_NOT_OPEN = "QUOTE_NOT_OPEN"
    QUOTE_READ_ONLY = "QUOTE_READ_ONLY"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    INVALID_VALUE = "INVALID_VALUE"


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule. ``field`` names the offending input field in snake_case, if any."""

    code: ErrorCode
    message: Message
    field: str | None = None


@dataclass(frozen=True, slots=True)
class ConcurrencyConflict(Violation):
    expected_version: int = 0
    actual_version: int = 0


@dataclass(frozen=True, slots=True)
class InvalidStatusReason(Violation):
    allowed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OpenQuotesBlock(Violation):
    open_quotes: tuple[QuoteRecord, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class CurrencyMismatch(Violation):
    expected_currency: str = ""
    actual_currency: str = ""


class ValidationFailedError(Exception):
    """Raised once by a service when any rule fails; nothing has been written."""

    def __init__(self, violations: Sequence[Violation]) -> None:
        if not violations:
            raise ValueError("ValidationFailedError needs at least one violation")
        self.violations = tuple(violations)
        super().__init__(
            "; ".join(f"{v.code}{f' ({v.field})' if v.field else ''}" for v in self.violations)
        )


def not_found(message: Message, field: str | None) -> ValidationFailedError:
    """NOT_FOUND: an id that names nothing the caller can see (or names another type)."""
    return ValidationFailedError([Violation(ErrorCode.NOT_FOUND, message, field)])


def raise_if_any(violations: Sequence[Violation]) -> None:
    if violations:
        raise ValidationFailedError(violations)
